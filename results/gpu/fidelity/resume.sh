#!/usr/bin/env bash
# Resume one fidelity sweep after the first pass (its errored trials run again), detached like run.sh.
# The first pass packed 48 trials onto 16 CPUs: trials queued longer than Ray Train's 60 s worker-group
# start-up timeout errored, so the resume raises that timeout.
#   usage: bash results/gpu/fidelity/resume.sh STAGE_DIR NAME TASK CONFIG [--set ...]
set -u
stage=$1 name=$2 task=$3 config=$4; shift 4
out=/tmp/fid
cd "$stage/repo"
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled TOKENIZERS_PARALLELISM=false
export RAY_ADDRESS=auto RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S=1800
python3 -m orchestrator.sweep --config "$config" --set "model=$stage/minilm-l6-h384" \
  --set "method.student=$stage/minilm-l3-h384" --set "data_dir=$stage/data" --set "results_dir=$out/results" \
  --set "task=$task" --set "name=$name" --set "tracking.uri=sqlite:///$out/mlflow-$name.db" "$@" --resume \
  > "$out/$name.resume.log" 2>&1
echo "$name resume rc=$? $(date -u +%FT%TZ)" >> "$out/status.txt"
