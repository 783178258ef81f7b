#!/usr/bin/env bash
# Pack what the fidelity runs wrote (no checkpoints, no models) into $OUT/fidelity.tar.xz.
#   usage: bash results/gpu/fidelity/collect.sh
set -u
cd /tmp/fid || exit 1
cat status.txt
files=$(ls *.log status.txt gpu_util.csv 2>/dev/null)
sweeps=$(cd results 2>/dev/null && find . -maxdepth 4 \( -name trials.csv -o -name 'pareto.*' -o -name sweep.yaml \
  -o -name ablation.md -o -name metrics.json -o -name config.yaml -o -name epochs.jsonl \) -not -path '*/ray/*' | sed 's|^\./|results/|')
tar -cJf "$OUT/fidelity.tar.xz" $files $sweeps 2>/dev/null
ls -la "$OUT"
