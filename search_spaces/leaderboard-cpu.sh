#!/usr/bin/env bash
# The sweeps behind results/leaderboards/ (sized for 2 CPU cores), then the leaderboards themselves.
#   bash search_spaces/leaderboard-cpu.sh [task ...]      # default: sst2 cola mrpc stsb and cifar10
set -uo pipefail  # one failed sweep does not stop the others
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || tasks=(sst2 cola mrpc stsb cifar10)
for t in "${tasks[@]}"; do
  if [ "$t" = cifar10 ]; then
    "$PY" -m orchestrator.sweep --config search_spaces/leaderboard-cifar-fft.yaml
    "$PY" -m orchestrator.sweep --config search_spaces/leaderboard-cifar.yaml
    continue
  fi
  "$PY" -m orchestrator.sweep --config search_spaces/leaderboard-glue-fft.yaml --set task=glue/$t --set name=lb-$t-fft
  "$PY" -m orchestrator.sweep --config search_spaces/leaderboard-glue.yaml --set task=glue/$t --set name=lb-$t
done
"$PY" -m orchestrator.leaderboard --results results
