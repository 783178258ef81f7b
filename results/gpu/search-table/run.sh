#!/usr/bin/env bash
# The recorded table of the search replay (issue 35): search_spaces/search-table-gpu.yaml, 317 points of one GLUE
# task (PC-LoRA 120, KD-LoRA 189, LoRA 4, FFT 4), MiniLM-L6, full splits, 3 epochs, every trial to the end, on one
# H200 with 16 one-CPU trials at once. NOT RUN YET (written 2026-12-04 without a GPU; README.md has the plan).
#   usage: bash results/gpu/search-table/run.sh STAGE TASK   (TASK: stsb or mrpc; STAGE holds repo/ (the committed
#   HEAD), site.tar.xz unpacked in /tmp/site, minilm-l6-h384/ and data/glue/{STS-B,MRPC}/, as stage.sh packs them);
#   started detached (setsid) by a device call; writes /tmp/table/status.txt; collect.sh packs what it wrote.
#
# Plan: one task per GPU session of at most ~25 min of running. The grid runs as six sweeps ("chunks"), each
# committed (collect.sh, then results/gpu/search-table/NAME/) as soon as it finishes, in two lanes on one Ray
# cluster so that the 16 slots stay full: lane A PC-LoRA svd, PC-LoRA zero (60 + 60 points); lane B the references
# (FFT, LoRA: 8 points), KD-LoRA with 2, 3, 4 student layers (63 each). Estimate from results/gpu/search-grid/
# (STS-B, 16 one-CPU trials on one H200: PC-LoRA 127 s and KD-LoRA 50 s of training per 4-epoch trial, i.e. 32
# and 12.5 s per epoch; FFT and LoRA about 1.6x KD-LoRA's per epoch, results/gpu/fidelity/): STS-B 18,900
# trial-s / 16 = 19.7 min of trials plus ~3 min (Ray, the FFT teacher, each trial's start and evaluation, the
# tail) = ~23 min; MRPC (3,668 training and 408 validation examples against STS-B's 5,749 and 1,500) ~0.62x:
# ~15 min.
#
# Continues where the last run stopped: a chunk whose committed trials.csv has every trial complete or diverged is
# skipped; one whose folder this machine still holds is resumed (--resume; Tune restores it and a trial whose
# metrics.json exists is reported, not trained again). A chunk cut off in a session that ended starts again from
# nothing in the next (its trials.csv is written only when it ends): at most one chunk per lane is lost.
# TRAINER=torch_trainer runs each trial in its own Ray Train worker group instead (as search-grid did: 20-30 s more
# per trial, ~+8 min for STS-B) if the in-trial mode fails on the GPU.
set -u
stage=${1:-/tmp/stage}
task=${2:?usage: run.sh STAGE stsb|mrpc}
out=/tmp/table
committed=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
cd "$stage/repo"
export PYTHONPATH=/tmp/site:$PWD NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled TOKENIZERS_PARALLELISM=false
export RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S=1800
# GPU and CPU load every 2 s: the next plan needs to know which one bounds 16 packed trials
(while true; do echo "$(nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader), $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/gpu_util.csv"; sleep 2; done) &
sampler=$!
python3 -m ray.scripts.scripts start --head --num-cpus 16 --num-gpus 1 --include-dashboard=false --disable-usage-stats > "$out/ray_start.log" 2>&1
export RAY_ADDRESS=auto
echo "start $task $(date -u +%FT%TZ) commit $(cat "$stage/commit" 2>/dev/null)" >> "$out/status.txt"

finished() {  # every row of the committed trials.csv is complete or diverged (both are points of the table)
  local csv=$committed/$1/trials.csv
  [ -f "$csv" ] && python3 -c "import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); sys.exit(0 if r and all(x['status'] in ('complete','diverged') for x in r) else 1)" "$csv"
}
chunk() {  # chunk-name --set ... (the chunk's share of the grid)
  local name=search-table-$task-$1; shift
  if finished "$name"; then echo "$name skipped (committed, complete)" >> "$out/status.txt"; return; fi
  local resume=(); [ -d "$out/results/$name" ] && resume=(--resume)
  echo "$name start $(date -u +%FT%TZ) ${resume[*]}" >> "$out/status.txt"
  python3 -m orchestrator.sweep --config search_spaces/search-table-gpu.yaml --set "task=glue/$task" \
    --set "name=$name" --set "data_dir=$stage/data" --set "results_dir=$out/results" \
    --set "model=$stage/minilm-l6-h384" --set "tracking.uri=sqlite:///$out/mlflow-$name.db" \
    --set "resources.trainer=${TRAINER:-trial}" "${resume[@]}" "$@" > "$out/$name.log" 2>&1
  echo "$name rc=$? $(date -u +%FT%TZ)" >> "$out/status.txt"
}
pc=(--set 'space.method.name={"grid": ["pc_lora"]}')
kd=(--set 'space.method.name={"grid": ["kd_lora"]}')
# Lane B first: its references (FFT, LoRA) need no teacher and fill slots while the first PC-LoRA or KD-LoRA
# trial trains the FFT teacher that every other one waits for (one cached copy under results/teachers/, a file lock).
(chunk refs --set 'space.method.name={"grid": ["lora", "fft"]}'
 for k in 2 3 4; do chunk kd-l$k "${kd[@]}" --set "space.method.student_layers={\"grid\": [$k]}"; done) &
lane_b=$!
sleep 15
(chunk pc-svd "${pc[@]}" --set 'space.method.adapter_init={"grid": ["svd"]}'
 chunk pc-zero "${pc[@]}" --set 'space.method.adapter_init={"grid": ["zero"]}') &
lane_a=$!
wait $lane_a $lane_b
echo "done $task $(date -u +%FT%TZ)" >> "$out/status.txt"
kill $sampler
