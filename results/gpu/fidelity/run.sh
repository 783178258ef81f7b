#!/usr/bin/env bash
# The fidelity runs on one GPU (issue "Recipes that hold up on real data"): one local Ray cluster, the
# four GLUE sweeps of search_spaces/fidelity-gpu.yaml and the PC-LoRA ablation on STS-B, all at once
# (fractional GPUs, one CPU per trial). Started detached (setsid) by the second device call from a copy
# of the repository in /tmp/stage/repo; writes /tmp/fid/status.txt as sweeps end.
#   usage: bash results/gpu/fidelity/run.sh STAGE_DIR   (STAGE_DIR holds minilm-l6-h384, minilm-l3-h384, data/)
set -u
stage=${1:-/tmp/stage}
out=/tmp/fid
mkdir -p "$out"
cd "$stage/repo"
export PYTHONPATH=/tmp/site:$PWD NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled TOKENIZERS_PARALLELISM=false
(while true; do nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader >> "$out/gpu_util.csv"; sleep 2; done) &
python3 -m ray.scripts.scripts start --head --num-cpus 16 --num-gpus 1 --include-dashboard=false --disable-usage-stats > "$out/ray_start.log" 2>&1
export RAY_ADDRESS=auto
echo "start $(date -u +%FT%TZ)" >> "$out/status.txt"
common=(--set "model=$stage/minilm-l6-h384" --set "method.student=$stage/minilm-l3-h384" --set "data_dir=$stage/data"
        --set "results_dir=$out/results")
sweep() {  # name task config [extra --set ...]
  local name=$1 task=$2 config=$3; shift 3
  python3 -m orchestrator.sweep --config "$config" "${common[@]}" --set "task=$task" --set "name=$name" \
    --set "tracking.uri=sqlite:///$out/mlflow-$name.db" "$@" > "$out/$name.log" 2>&1
  echo "$name rc=$? $(date -u +%FT%TZ)" >> "$out/status.txt"
}
# Longest first: SST-2 has 67 k training examples (3 epochs); the others 2.5-8.5 k (10 epochs).
sweep fidelity-sst2 glue/sst2 search_spaces/fidelity-gpu.yaml --set train.epochs=3 --set method.teacher_epochs=2 &
sleep 20
sweep fidelity-cola glue/cola search_spaces/fidelity-gpu.yaml &
sweep fidelity-stsb glue/stsb search_spaces/fidelity-gpu.yaml &
sweep fidelity-mrpc glue/mrpc search_spaces/fidelity-gpu.yaml &
sleep 40
sweep ablation-pc-lora-stsb glue/stsb search_spaces/ablation-pc-lora-gpu.yaml &
wait %2 %3 %4 %5 %6
echo "done $(date -u +%FT%TZ)" >> "$out/status.txt"
