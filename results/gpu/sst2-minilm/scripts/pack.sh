#!/bin/bash
# Pack metrics/config/logs of every run (and the cached teacher) into $OUT.
cd /tmp/stage || exit 1
cp status $OUT/status.txt 2>/dev/null
for t in /tmp/results/teachers/*/; do [ -d "$t" ] && mkdir -p runs/teacher && cp $t/metrics.json $t/config.yaml runs/teacher/ 2>/dev/null; done
python3 - <<'PY'
import json, glob, os
out = {}
for f in sorted(glob.glob("/tmp/stage/runs/*/metrics.json")):
    out[os.path.basename(os.path.dirname(f))] = json.load(open(f))
json.dump(out, open(os.environ["OUT"] + "/all_metrics.json", "w"), indent=2, sort_keys=True)
print({k: (v.get("accuracy"), v.get("params"), v.get("flops"), round(v.get("train_seconds", 0))) for k, v in out.items()})
PY
tar -czf $OUT/runs.tar.gz runs/*.log runs/*/metrics.json runs/*/config.yaml repo_state.txt pipeline.log 2>/dev/null
ls -la $OUT
