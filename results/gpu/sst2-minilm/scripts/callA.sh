#!/bin/bash
set -x
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
mkdir -p /tmp/stage/repo /tmp/site && cp -r .gpu/minilm-l6-h384 .gpu/data .gpu/b1/sitepart.00 .gpu/ctl/repo_state.txt /tmp/stage/ && cp -r orchestrator methods pyproject.toml /tmp/stage/repo/ && cp .gpu/ctl/sst2.yaml .gpu/ctl/runs.txt .gpu/ctl/pipeline.sh .gpu/ctl/pack.sh /tmp/stage/repo/ && ls -la /tmp/stage
