#!/bin/bash
# wait until ALLDONE or $1 seconds, printing new status lines; then pack what exists into $OUT
end=$(( $(date +%s) + $1 ))
while [ $(date +%s) -lt $end ]; do grep -q ALLDONE /tmp/stage/status 2>/dev/null && break; sleep 5; done
cat /tmp/stage/status; date
for f in /tmp/stage/runs/*.log; do echo "== $f"; grep -h 'epoch [0-9]/\|Error\|error:' $f | tail -3; done
bash /tmp/stage/repo/pack.sh
last=$(ls -t /tmp/stage/runs/*.log | head -1); echo "== tail $last"; tail -c 1500 $last
