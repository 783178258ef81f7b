#!/usr/bin/env bash
# The sweeps behind results/leaderboards/ (sized for 2 CPU cores), then the leaderboards themselves.
#   bash search_spaces/leaderboard-cpu.sh [task ...]      # default: sst2 cola mrpc stsb and cifar10
# A sweep whose trials.csv exists is skipped (delete its folder to run it again); one that fails
# does not stop the others. One grid point alone, e.g. after its trial failed:
#   python -m orchestrator.sweep --config search_spaces/leaderboard-cifar.yaml --set name=lb-cifar10-pc \
#       --set 'space.method.name={choice: [pc_lora]}'
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

sweep() {  # sweep NAME CONFIG [--set ...]
  local name=$1 config=$2
  shift 2
  if [ -f "results/$name/trials.csv" ]; then
    echo "== $name: done before (results/$name/trials.csv), skipped"
    return
  fi
  "$PY" -m orchestrator.sweep --config "$config" --set name="$name" "$@" || echo "== $name: FAILED"
}

tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || tasks=(sst2 cola mrpc stsb cifar10)
for t in "${tasks[@]}"; do
  if [ "$t" = cifar10 ]; then
    sweep lb-cifar10-fft search_spaces/leaderboard-cifar-fft.yaml
    sweep lb-cifar10 search_spaces/leaderboard-cifar.yaml
  else
    sweep "lb-$t-fft" search_spaces/leaderboard-glue-fft.yaml --set task="glue/$t"
    sweep "lb-$t" search_spaces/leaderboard-glue.yaml --set task="glue/$t"
  fi
done
"$PY" -m orchestrator.leaderboard --results results
