#!/usr/bin/env bash
# The second fidelity pass on one GPU: search_spaces/fidelity2-gpu.yaml on four GLUE tasks (KD-LoRA after
# the pooler fix, PC-LoRA r20 with the zero and svd adapter starts) and search_spaces/fidelity-gpu-cifar.yaml
# (all four methods on CIFAR-10 with DINOv2-S), all at once on one local Ray cluster. Started detached
# (setsid) by a device call from a copy of the repository in STAGE/repo; writes /tmp/fid2/status.txt.
#   usage: bash results/gpu/fidelity2/run.sh STAGE   (STAGE holds minilm-l6-h384, minilm-l3-h384, dinov2-small, data/)
set -u
stage=${1:-/tmp/stage}
out=/tmp/fid2
mkdir -p "$out"
cd "$stage/repo"
export PYTHONPATH=/tmp/site:$PWD NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled TOKENIZERS_PARALLELISM=false
# Trials queue for a CPU slot longer than Ray Train's default 60 s worker-group start-up (the first pass lost two).
export RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S=1800
(while true; do nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader >> "$out/gpu_util.csv"; sleep 2; done) &
python3 -m ray.scripts.scripts start --head --num-cpus 16 --num-gpus 1 --include-dashboard=false --disable-usage-stats > "$out/ray_start.log" 2>&1
export RAY_ADDRESS=auto
echo "start $(date -u +%FT%TZ)" >> "$out/status.txt"
sweep() {  # name task config [extra --set ...]
  local name=$1 task=$2 config=$3; shift 3
  python3 -m orchestrator.sweep --config "$config" --set "data_dir=$stage/data" --set "results_dir=$out/results" \
    --set "task=$task" --set "name=$name" --set "tracking.uri=sqlite:///$out/mlflow-$name.db" "$@" > "$out/$name.log" 2>&1
  echo "$name rc=$? $(date -u +%FT%TZ)" >> "$out/status.txt"
}
glue=(--set "model=$stage/minilm-l6-h384" --set "method.student=$stage/minilm-l3-h384")
# Longest first. SST-2 (67 k examples, 3 epochs) runs one KD-LoRA learning rate: the first pass's best.
sweep fidelity2-sst2 glue/sst2 search_spaces/fidelity2-gpu.yaml "${glue[@]}" --set train.epochs=3 --set method.teacher_epochs=2 \
  --set 'space.train.lr={"per_method": {"kd_lora": {"grid": [0.001]}, "pc_lora": {"grid": [0.001, 0.002]}}}' &
sweep fidelity-cifar10 cifar10 search_spaces/fidelity-gpu-cifar.yaml --set "model=$stage/dinov2-small" &
sleep 20
for t in cola stsb mrpc; do
  sweep fidelity2-$t glue/$t search_spaces/fidelity2-gpu.yaml "${glue[@]}" &
done
wait %2 %3 %4 %5 %6
echo "done $(date -u +%FT%TZ)" >> "$out/status.txt"
