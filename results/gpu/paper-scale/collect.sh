#!/usr/bin/env bash
# Pack what the paper-scale run wrote so far (no checkpoints, no models) into $OUT/paper.tar.xz.
#   usage: bash results/gpu/paper-scale/collect.sh
set -u
cd /tmp/paper || exit 1
cat status.txt
files=$(ls *.log status.txt gpu_util.csv 2>/dev/null)
sweeps=$(cd results 2>/dev/null && find . -maxdepth 4 \( -name trials.csv -o -name 'pareto.*' -o -name sweep.yaml \
  -o -name metrics.json -o -name config.yaml -o -name epochs.jsonl \) -not -path '*/ray/*' | sed 's|^\./|results/|')
# the auxiliary models' records (fine-tuned teachers, students' cached ceilings), not their weights
teachers=$(cd results 2>/dev/null && find . \( -path '*teachers*' -o -path '*ceilings*' \) \( -name metrics.json -o -name config.yaml \) \
  | sed 's|^\./|results/|')
tar -cJf "$OUT/paper.tar.xz" $files $sweeps $teachers 2>/dev/null
tail -n 3 ./*.log | cut -c1-200
ls -la "$OUT"
