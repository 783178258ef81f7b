#!/bin/bash
# Runs every line of runs.txt with the project's CLI, one after another; status lines go to /tmp/stage/status.
cd /tmp/stage/repo || exit 1
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:/tmp/stage/repo NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
extra=()
if [ ! -e /tmp/stage/mlflow_ok ]; then export MLFLOW_ALLOW_FILE_STORE=true; extra=(--set tracking.uri=file:///tmp/mlruns); fi
R=/tmp/stage/runs; mkdir -p $R; t0=$(date +%s)
while read -r name args; do
  [ -z "$name" ] && continue
  if [ "$name" = WAIT_L3 ]; then
    for i in $(seq 600); do [ -e /tmp/stage/minilm-l3-h384/.ready ] && break; sleep 2; done
    echo "L3 ready after wait, t=$(( $(date +%s)-t0 ))s" >> /tmp/stage/status; continue
  fi
  s=$(date +%s)
  set -x
  python3 -m orchestrator.train --config sst2.yaml --out $R/$name $args "${extra[@]}" > $R/$name.log 2>&1
  rc=$?
  set +x
  echo "$name rc=$rc ${s}->$(date +%s) $(( $(date +%s)-s ))s t=$(( $(date +%s)-t0 ))s $(grep -ho 'epoch [0-9]/[0-9] loss [0-9.]* accuracy [0-9.]*' $R/$name.log | tail -1)" >> /tmp/stage/status
done < runs.txt
echo ALLDONE >> /tmp/stage/status
