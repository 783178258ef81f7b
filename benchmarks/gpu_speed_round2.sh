#!/usr/bin/env bash
# Issue 34 ("Speed, second round") on one lent NVIDIA H200: every measurement the issue needs, in one or two
# device calls. The device machine runs this from the repository's working tree as its cwd, with torch 2.11
# (CUDA 13), transformers 5.17, peft 0.21 and Triton, Python 3.12 (`python3`); nothing needs to be carried
# (random BERT-base-shaped weights from a config; no Ray, no data sets). Results go under $OUT (default
# ./out_round2): each benchmark's .md and .json (device, commit, command inside) and a log per command.
#
#   bash benchmarks/gpu_speed_round2.sh serve   # profile + inference side by side, about 6 min
#   bash benchmarks/gpu_speed_round2.sh train   # training-step MFU at batch 512, eager vs compiled, about 4 min
#   bash benchmarks/gpu_speed_round2.sh all     # both (about 10 min: over one call's limit; use two calls)
#   DEVICE=cpu TINY=1 PYTHON=.venv/bin/python bash benchmarks/gpu_speed_round2.sh all   # toy sizes, on a CPU
#
# The estimates are guesses from the last figures (inference_h200_served.md, throughput_h200_b512.md) plus
# about a minute per torch.compile'd model and shape; each command has its own time limit, so one that hangs
# does not take the rest with it.
set -u
STAGE="${1:-all}"
OUT="${OUT:-./out_round2}"
DEVICE="${DEVICE:-cuda}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [ "${TINY:-0}" = 1 ]; then  # argument parsing and the code paths, in a minute or two on a CPU
  ARCH=tiny; SEQ=16; BIG=4; TRAIN_BATCH=4; ROUNDS=2; WARMUP=2; STEPS=2; STUDENT=2; TRAIN_ROUNDS=2; LIMIT=900
else
  ARCH=bert-base; SEQ=128; BIG=256; TRAIN_BATCH=512; ROUNDS=50; WARMUP=10; STEPS=20; STUDENT=6; TRAIN_ROUNDS=8; LIMIT=0
fi

run() {  # run NAME SECONDS CMD...: log to $OUT/NAME.log, report the exit status, go on either way
  local name="$1" seconds="$2"; shift 2
  [ "$LIMIT" != 0 ] && seconds="$LIMIT"
  echo "=== $name: $*"
  local start=$SECONDS
  timeout "$seconds" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - start)) s"
  tail -n 30 "$OUT/$name.log"
}

{ git log -1 --format='commit %H %s'; git status --short --untracked-files=no; } > "$OUT/commit.txt" 2>&1
command -v nvidia-smi > /dev/null && nvidia-smi > "$OUT/nvidia_smi.txt" 2>&1

if [ "$STAGE" = serve ] || [ "$STAGE" = all ]; then
  # Item 1: where the served forward spends its time, the old path (served) beside the new one (fast).
  run profile 150 "$PY" -m benchmarks.profile_serving --arch "$ARCH" --device "$DEVICE" --ranks 32 8 \
    --batches 1 "$BIG" --seq-len "$SEQ" --runtimes served fast --steps "$STEPS" --warmup 5 --threads 8 \
    --suffix h200_round2 --out "$OUT"
  # Item 2 and the targets: every runtime side by side in one run; compiled for the base and r32 only
  # (about a minute per model and shape).
  run inference 400 "$PY" -m benchmarks.inference --arch "$ARCH" --device "$DEVICE" --ranks 8 32 --seq-len "$SEQ" \
    --throughput-batch "$BIG" --rounds "$ROUNDS" --warmup "$WARMUP" --threads 8 \
    --runtimes eager served fast compiled --compile-models uncompressed r32 --suffix h200_round2 --out "$OUT"
fi

if [ "$STAGE" = train ] || [ "$STAGE" = all ]; then
  # Item 3: FFT and PC-LoRA at λ = 0 (no KD), eager and under torch.compile, batch 512, interleaved.
  run throughput 330 "$PY" -m benchmarks.throughput --arch "$ARCH" --device "$DEVICE" --batch "$TRAIN_BATCH" \
    --seq-len "$SEQ" --rank 32 --student-layers "$STUDENT" --only fft "kd=0 (W" --compile --rounds "$TRAIN_ROUNDS" --warmup 3 \
    --threads 8 --suffix h200_b512_compile --out "$OUT"
fi
ls -l "$OUT"
