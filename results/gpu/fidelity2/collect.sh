#!/usr/bin/env bash
# Pack what the second fidelity pass wrote so far (no checkpoints, no models) into $OUT/fidelity2.tar.xz.
#   usage: bash results/gpu/fidelity2/collect.sh
set -u
cd /tmp/fid2 || exit 1
cat status.txt
files=$(ls *.log status.txt gpu_util.csv 2>/dev/null)
sweeps=$(cd results 2>/dev/null && find . -maxdepth 4 \( -name trials.csv -o -name 'pareto.*' -o -name sweep.yaml \
  -o -name metrics.json -o -name config.yaml -o -name epochs.jsonl \) -not -path '*/ray/*' | sed 's|^\./|results/|')
tar -cJf "$OUT/fidelity2.tar.xz" $files $sweeps 2>/dev/null
ls -la "$OUT"
