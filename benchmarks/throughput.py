"""Training throughput and model-FLOPs utilisation of each method on a BERT-base-shaped model (issue 10, item 5).

    python -m benchmarks.throughput [--arch bert-base] [--batch 32] [--seq-len 128] [--rank 32]
                                    [--student-layers 6] [--device cuda] [--suffix h200]

Random weights from a config (speed does not depend on the values), fixed-length random tokens, bf16
autocast on a GPU (float32 on a CPU), the training step of orchestrator/engine/loop.py (`_common.make_step`)
with each method's model, teacher side, λ and loss from its recipe (orchestrator/recipes;
`_common.method_conditions`): what training runs, the random model saved to a temporary folder for
the recipes to build from.
Conditions: FFT, LoRA, PC-LoRA at λ = 0.5 and λ = 0 (W skipped), each without and with feature KD,
KD-LoRA's student (the model cut to k layers + LoRA) with cached teacher logits and with a teacher
forward each step. They run interleaved, one step each per round.

`--only` keeps the conditions whose names contain one of its strings; `--compile` adds, for each kept
condition, a twin built again by its recipe with the model under torch.compile (Inductor, static shapes;
`--compile-mode reduce-overhead` adds CUDA graphs), timed interleaved with the eager one (issue 34, item 3).
Its FLOPs are the eager twin's (the counter does not see into compiled code); compilation happens in the
warm-up rounds, so give it at least 2.

FLOPs of one step are counted per condition with torch.utils.flop_counter.FlopCounterMode over a whole
step (forward + backward: what the method really computes, e.g. no weight gradients for frozen W);
MFU = those FLOPs / median step time / the GPU's dense bf16 peak (H100/H200 SXM: 989 TFLOP/s). On a
CPU, only the achieved FLOP/s are given. Needs only torch, transformers, peft, methods/ and the
orchestrator's recipes (no Ray, no data sets), so it runs on the lent GPU machine as it is.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks._common import (
    command_line,
    common_args,
    interleaved,
    load_average,
    machine,
    machine_line,
    make_step,
    method_conditions,
    pick_device,
    quiet_transformers,
    random_bert,
    summary,
    sync,
    synthetic_batch,
    write,
)
from methods import kd_lora

PEAK_BF16 = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12}  # dense, SXM data sheets


def peak_flops(gpu_name: str | None) -> float | None:
    for key, value in PEAK_BF16.items():
        if gpu_name and key in gpu_name:
            return value
    return None


def step_flops(step: Callable[[int], None]) -> int:
    with FlopCounterMode(display=False) as counter:
        step(0)
    return int(counter.get_total_flops())


COMPILED = " +compile"


def compiled_twins(spec: list, mode: str | None) -> list:
    """The conditions of ``spec`` (built anew, so their models are their own) with each model compiled in
    place: the recipe's loss calls ``model(...)``, which then runs the compiled forward (and backward)."""
    compiled = {}
    for _, model, _, _ in spec:
        if id(model) not in compiled:  # conditions share models (PC-LoRA at several λ): compile each once
            model.compile(dynamic=False, mode=mode)
            compiled[id(model)] = model
    return [(name + COMPILED, model, fn, before) for name, model, fn, before in spec]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="bert-base", help="bert-base | minilm-l6 | tiny")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--student-layers", type=int, default=6)
    parser.add_argument("--kd-weight", type=float, default=0.5)
    parser.add_argument("--only", nargs="+", default=None, help="keep conditions whose names contain one of these")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile twin of each kept condition")
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode: default | reduce-overhead | ...")
    common_args(parser, rounds=20, warmup=5)
    return parser.parse_args(argv)


def cached_teacher(base: torch.nn.Module, batches: list[dict], device: torch.device, amp: bool
                   ) -> tuple[torch.nn.Module, kd_lora.TeacherLogits]:
    """The KD-LoRA teacher (the base itself; values do not change the time) and its logits for every example."""
    teacher = copy.deepcopy(base).to(device).eval().requires_grad_(False)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        cached = torch.cat([teacher(**{k: v.to(device) for k, v in b.items() if k not in ("idx", "labels")}
                                    ).logits.float() for b in batches])
    logits = kd_lora.TeacherLogits(cached.cpu()).to(device)
    assert len(logits) == sum(len(b["idx"]) for b in batches)
    return teacher, logits


def step_rows(args: argparse.Namespace, stats: dict[str, dict[str, float]], flops: dict[str, float],
              trainable: dict[str, int], peaks: dict[str, int], peak: float | None) -> dict[str, dict[str, Any]]:
    """Per condition: the step time's summary, examples and tokens per second, FLOPs, MFU, ratio to FFT."""
    fft_median = stats["fft"]["median"] if "fft" in stats else next(iter(stats.values()))["median"]
    rows = {}
    for name, s in stats.items():
        achieved = flops[name] / s["median"]
        rows[name] = {**s, "examples_per_s": args.batch / s["median"],
                      "tokens_per_s": args.batch * args.seq_len / s["median"],
                      "step_flops": flops[name], "achieved_flops_per_s": achieved,
                      "mfu": achieved / peak if peak else None, "ratio_to_fft": s["median"] / fft_median,
                      "trainable_params": trainable[name], "peak_gpu_bytes": peaks.get(name)}
    return rows


def report(args: argparse.Namespace, info: dict[str, Any], rows: dict[str, dict[str, Any]], layers: int,
           peak: float | None, amp: bool) -> str:
    precision = "bf16 autocast" if amp else "float32"
    lines = [
        f"Training throughput per method, `{args.arch}`-shaped BertForSequenceClassification (random weights), "
        f"batch {args.batch} x {args.seq_len} tokens, {precision}, rank {args.rank}, KD-LoRA student "
        f"{args.student_layers} of {layers} layers. Median of {args.rounds} steps per condition after "
        f"{args.warmup} warm-up rounds, conditions interleaved.",
        f"Machine: {machine_line(info)}.",
        f"Command: `{command_line()}`.",
        f"FLOPs per step counted with FlopCounterMode over forward + backward; MFU against "
        f"{peak / 1e12:.0f} TFLOP/s dense bf16." if peak else
        "FLOPs per step counted with FlopCounterMode over forward + backward; no GPU peak, so no MFU.",
        "",
        "| method | ms/step | examples/s | ratio to FFT time | TFLOP/step | achieved TFLOP/s | MFU | peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "n/a"
        mem = f"{r['peak_gpu_bytes'] / 2**20:.0f}" if r["peak_gpu_bytes"] else "n/a"
        lines.append(f"| {name} | {1e3 * r['median']:.1f} | {r['examples_per_s']:.0f} | {r['ratio_to_fft']:.2f} "
                     f"| {r['step_flops'] / 1e12:.3f} | {r['achieved_flops_per_s'] / 1e12:.1f} | {mfu} | {mem} |")
    lines += ["", "2-GPU DDP scaling of one trial: not measured by this script (it needs a 2-GPU machine; "
              "see benchmarks/README.md)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = pick_device(args.device)
    amp = device.type == "cuda"
    torch.set_num_threads(args.threads)
    quiet_transformers()
    info = machine(device)
    base = random_bert(args.arch)
    vocab = base.config.vocab_size
    batches = [{**synthetic_batch(vocab, args.batch, args.seq_len, seed=i),
                "labels": torch.randint(0, 2, (args.batch,), generator=torch.Generator().manual_seed(i)),
                "idx": torch.arange(i * args.batch, (i + 1) * args.batch)} for i in range(4)]
    teacher, logits = cached_teacher(base, batches, device, amp)
    with tempfile.TemporaryDirectory() as work:  # the random model, built again by each method's recipe
        base.save_pretrained(Path(work) / "model")

        def build() -> list:
            spec = method_conditions(Path(work) / "model", rank=args.rank, student_layers=args.student_layers,
                                     kd_weight=args.kd_weight, device=device, teacher=teacher, logits=logits,
                                     work_dir=Path(work))
            return [c for c in spec if args.only is None or any(s in c[0] for s in args.only)]

        spec = build()
        twins = compiled_twins(build(), args.compile_mode) if args.compile else []
    peaks: dict[str, int] = {}
    conditions = {name: make_step(m, fn, device, amp, batches, before, peaks, name)
                  for name, m, fn, before in spec + twins}
    trainable = {name: sum(p.numel() for p in m.parameters() if p.requires_grad) for name, m, _, _ in spec + twins}
    flops = {name: step_flops(conditions[name]) for name, _, _, _ in spec}
    flops.update({name: flops[name.removesuffix(COMPILED)] for name, _, _, _ in twins})
    sync(device)
    times = interleaved(conditions, warmup=args.warmup, rounds=args.rounds, device=device)
    info["load_average_end"] = load_average()
    peak = peak_flops(info.get("gpu"))
    rows = step_rows(args, {name: summary(t) for name, t in times.items()}, flops, trainable, peaks, peak)
    markdown = report(args, info, rows, base.config.num_hidden_layers, peak, amp)
    print(markdown)
    payload = {"benchmark": "throughput", "command": command_line(), "args": vars(args), "machine": info,
               "peak_flops": peak, "steps": {n: {**r, "seconds": times[n]} for n, r in rows.items()}}
    name = "throughput" + (f"_{args.suffix}" if args.suffix else "")
    for p in write(name, payload, markdown, args.out):
        print("wrote", p)


if __name__ == "__main__":
    main()
