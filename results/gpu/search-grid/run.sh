#!/usr/bin/env bash
# The recorded grid for benchmarks/search_replay.py: search_spaces/search-grid-gpu.yaml (48 points, STS-B,
# 4 epochs, no early stopping) on one GPU. Started detached (setsid) by a device call from a copy of the
# repository in STAGE/repo; writes /tmp/grid/status.txt.
#   usage: bash results/gpu/search-grid/run.sh STAGE   (STAGE holds minilm-l6-h384, minilm-l3-h384, data/)
set -u
stage=${1:-/tmp/stage}
out=/tmp/grid
mkdir -p "$out"
cd "$stage/repo"
export PYTHONPATH=/tmp/site:$PWD NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled TOKENIZERS_PARALLELISM=false
export RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S=1800
(while true; do nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader >> "$out/gpu_util.csv"; sleep 2; done) &
python3 -m ray.scripts.scripts start --head --num-cpus 16 --num-gpus 1 --include-dashboard=false --disable-usage-stats > "$out/ray_start.log" 2>&1
export RAY_ADDRESS=auto
echo "start $(date -u +%FT%TZ) commit $(cat COMMIT 2>/dev/null)" >> "$out/status.txt"
python3 -m orchestrator.sweep --config search_spaces/search-grid-gpu.yaml --set "data_dir=$stage/data" \
  --set "results_dir=$out/results" --set "model=$stage/minilm-l6-h384" --set "method.student=$stage/minilm-l3-h384" \
  --set "tracking.uri=sqlite:///$out/mlflow.db" > "$out/sweep.log" 2>&1
echo "search-grid-stsb rc=$? $(date -u +%FT%TZ)" >> "$out/status.txt"
echo "done $(date -u +%FT%TZ)" >> "$out/status.txt"
