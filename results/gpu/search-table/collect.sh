#!/usr/bin/env bash
# Pack what the table's chunks wrote so far (no checkpoints, no models, no MLflow databases) into
# $OUT/table.tar.xz; unpack it here under results/gpu/search-table/ and commit each finished chunk's folder
# (search-table-TASK-CHUNK/: trials.csv, pareto.*, sweep.yaml, each trial's config.yaml, metrics.json, epochs.jsonl)
# with the logs, status.txt and gpu_util.csv.
#   usage: bash results/gpu/search-table/collect.sh
set -u
cd /tmp/table || exit 1
cat status.txt
for f in search-table-*.log; do [ -f "$f" ] && { echo "== $f"; tail -2 "$f"; }; done
files=$(ls *.log status.txt gpu_util.csv 2>/dev/null)
sweeps=$(cd results 2>/dev/null && find . -maxdepth 4 \( -name trials.csv -o -name 'pareto.*' -o -name sweep.yaml \
  -o -name metrics.json -o -name config.yaml -o -name epochs.jsonl \) -not -path '*/ray/*' -not -path './teachers/*' \
  | sed 's|^\./|results/|')
tar -cJf "$OUT/table.tar.xz" $files $sweeps 2>/dev/null
ls -la "$OUT"
