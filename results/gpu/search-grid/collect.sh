#!/usr/bin/env bash
# Pack what the grid wrote so far (no checkpoints, no models) into $OUT/grid.tar.xz.
#   usage: bash results/gpu/search-grid/collect.sh
set -u
cd /tmp/grid || exit 1
cat status.txt
tail -3 sweep.log
files=$(ls *.log status.txt gpu_util.csv 2>/dev/null)
sweeps=$(cd results 2>/dev/null && find . -maxdepth 4 \( -name trials.csv -o -name 'pareto.*' -o -name sweep.yaml \
  -o -name metrics.json -o -name config.yaml -o -name epochs.jsonl \) -not -path '*/ray/*' | sed 's|^\./|results/|')
tar -cJf "$OUT/grid.tar.xz" $files $sweeps 2>/dev/null
ls -la "$OUT"
