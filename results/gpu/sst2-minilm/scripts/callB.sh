#!/bin/bash
set -x
ls /tmp/stage || exit 1
cat /tmp/stage/sitepart.00 .gpu/b2/sitepart.01 | xz -d | tar -x -C /tmp/site || exit 1
cp -r .gpu/minilm-l3-h384 /tmp/stage/ && touch /tmp/stage/minilm-l3-h384/.ready
PYTHONPATH=/tmp/site python3 -c "
from mlflow.tracking import MlflowClient; c = MlflowClient('sqlite:////tmp/mlcheck.db'); c.create_experiment('check'); print('mlflow ok')" && touch /tmp/stage/mlflow_ok
setsid nohup bash /tmp/stage/repo/pipeline.sh > /tmp/stage/pipeline.log 2>&1 < /dev/null &
set +x
bash .gpu/ctl/wait.sh 540
