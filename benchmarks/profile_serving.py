"""Where a served forward spends its device time, per kernel family (issue 34, item 1).

    python -m benchmarks.profile_serving [--arch bert-base] [--ranks 32 8] [--batches 1 256] [--seq-len 128]
                                         [--runtimes served fast] [--device cuda] [--suffix h200]

Models as `benchmarks.inference` builds them (random weights: time does not depend on them): the
uncompressed model and PC-LoRA compressed at each rank, each through `methods.serving.prepare` with the
options of the runtime (`inference.PREPARE`: served, fast, compiled). For each model, runtime and batch:
`--warmup` calls, then `--steps` calls under torch.profiler; the time of every device kernel (on a GPU:
CUDA kernels, memcpy and memset, inside CUDA graphs too) or of every aten op's own CPU time (on a CPU,
where the same tool runs at small sizes so that a test can check it) is summed per family:

| family | name contains (case-insensitive), first match wins, in this order |
|---|---|
| attention | flash, fmha, attention, sdpa, mha, softmax |
| fused feed-forward | low_rank_mlp (the Triton kernel, methods/_triton_mlp.py, and its custom op) |
| GEMMs (low-rank and dense projections) | gemm, gemv, nvjet, xmma, cutlass, cublas, matmul, triton_tem, splitk, aten::mm, aten::addmm, aten::bmm, aten::baddbmm, aten::linear |
| copies | memcpy, memset, copy, clone, contiguous, transpose, permute, aten::cat (CUDA's dtype and layout copies are `elementwise_kernel<..., direct_copy_kernel_cuda ...>`: copies, hence before the next row) |
| norms + residual / elementwise | layer_norm, layernorm, elementwise, triton_poi, triton_per, triton_red, add, mul, gelu, erf, tanh, div, where, masked_fill |
| other | everything else (embedding gathers, reductions, ...) |

Inductor names its fused kernels after the ops they hold (`triton_per_fused_add_native_layer_norm_0`):
they land under norms + elementwise. Output: results/profile_serving[_suffix].{md,json} with the
device, the commit and the command; the json has every kernel's time.
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import time
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks._common import (
    ROOT,
    command_line,
    common_args,
    machine,
    machine_line,
    pick_device,
    quiet_transformers,
    random_bert,
    sync,
    synthetic_batch,
    write,
)
from benchmarks.inference import PREPARE, compressed_pc_lora
from methods import serving

FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("attention", ("flash", "fmha", "attention", "sdpa", "mha", "softmax")),
    ("fused feed-forward", ("low_rank_mlp",)),
    ("GEMMs", ("gemm", "gemv", "nvjet", "xmma", "cutlass", "cublas", "matmul", "triton_tem", "splitk",
               "aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::linear")),
    ("copies", ("memcpy", "memset", "copy", "clone", "contiguous", "transpose", "permute", "aten::cat")),
    ("norms + elementwise", ("layer_norm", "layernorm", "elementwise", "triton_poi", "triton_per", "triton_red",
                             "add", "mul", "gelu", "erf", "tanh", "div", "where", "masked_fill")),
)
OTHER = "other"
FAMILY_NAMES = [name for name, _ in FAMILIES] + [OTHER]


def family(kernel: str) -> str:
    """The family of a kernel or op name, by the table in the module docstring."""
    low = kernel.lower()
    for name, needles in FAMILIES:
        if any(n in low for n in needles):
            return name
    return OTHER


def kernel_times(prof: Any, device: torch.device) -> dict[str, float]:
    """Seconds per kernel name summed over the profile: device kernels on a GPU, aten ops' own CPU time on a CPU."""
    out: dict[str, float] = {}
    for evt in prof.key_averages():
        if device.type == "cuda":
            if evt.device_type != torch.autograd.DeviceType.CUDA or evt.self_device_time_total <= 0:
                continue
            us = evt.self_device_time_total
        else:
            if not evt.key.startswith("aten::") or evt.self_cpu_time_total <= 0:
                continue
            us = evt.self_cpu_time_total
        out[evt.key] = out.get(evt.key, 0.0) + us * 1e-6
    return out


def by_family(kernels: dict[str, float]) -> dict[str, float]:
    sums = dict.fromkeys(FAMILY_NAMES, 0.0)
    for name, seconds in kernels.items():
        sums[family(name)] += seconds
    return sums


def profile_one(model: torch.nn.Module, batch: dict[str, torch.Tensor], device: torch.device, warmup: int,
                steps: int) -> dict[str, Any]:
    """Per forward: wall seconds (timed apart from the profile), kernel seconds per family and per kernel."""
    def forward() -> None:
        with torch.inference_mode():
            model(**batch)

    for _ in range(warmup):
        forward()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        forward()
    sync(device)
    wall = (time.perf_counter() - start) / steps
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            forward()
        sync(device)
    kernels = {k: v / steps for k, v in kernel_times(prof, device).items()}
    return {"wall_s": wall, "kernel_s": sum(kernels.values()), "families_s": by_family(kernels),
            "kernels_s": dict(sorted(kernels.items(), key=lambda kv: -kv[1]))}


def commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


def run(args: argparse.Namespace, device: torch.device) -> dict[str, dict[str, Any]]:
    base = random_bert(args.arch).eval()
    models = {"uncompressed": base, **{f"pc_lora r{r}": compressed_pc_lora(base, r) for r in args.ranks}}
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    results: dict[str, dict[str, Any]] = {}
    for name, m in models.items():
        for rt in args.runtimes:
            served = serving.prepare(copy.deepcopy(m), device=device, dtype=dtype, cuda_graphs=args.graphs,
                                     **PREPARE[rt])
            for b in args.batches:
                batch = {k: v.to(device) for k, v in synthetic_batch(base.config.vocab_size, b, args.seq_len).items()}
                res = profile_one(served, batch, device, args.warmup, args.steps)
                res["serving"] = dict(served.serving)
                results[f"{name} · {rt} · b={b}"] = res
            del served
    return results


def render(results: dict[str, dict[str, Any]], args: argparse.Namespace, info: dict, head: str) -> str:
    unit = "device kernel time" if info["device"].startswith("cuda") else "aten ops' own CPU time"
    lines = [
        f"Served forward per kernel family, `{args.arch}`-shaped BERT (random weights), {args.seq_len} tokens, "
        f"{unit} per forward (mean of {args.steps} profiled calls after {args.warmup} warm-up calls), "
        f"CUDA graphs: {args.graphs if args.graphs is not None else 'on a GPU'}.",
        f"Machine: {machine_line(info)}. Commit: {head}.",
        f"Command: `{command_line()}`.",
        "Families by kernel name (benchmarks/profile_serving.py's docstring has the rule). 'wall' is timed apart "
        "from the profile; 'kernels' is the sum of the families (launch gaps are the difference).",
        "",
        "| model · runtime · batch | wall ms | kernels ms | " + " | ".join(FAMILY_NAMES) + " |",
        "|---|---:|---:|" + "---:|" * len(FAMILY_NAMES),
    ]
    for key, r in results.items():
        total = r["kernel_s"] or 1.0
        cells = [f"{1e3 * r['families_s'][f]:.3f} ({100 * r['families_s'][f] / total:.0f} %)" for f in FAMILY_NAMES]
        lines.append(f"| {key} | {1e3 * r['wall_s']:.3f} | {1e3 * r['kernel_s']:.3f} | " + " | ".join(cells) + " |")
    lines += ["", f"Top {args.top} kernels per condition (ms per forward, family):", ""]
    for key, r in results.items():
        top = list(r["kernels_s"].items())[: args.top]
        lines.append(f"- {key}: " + "; ".join(f"`{k[:80]}` {1e3 * v:.3f} ({family(k)})" for k, v in top))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="bert-base", help="bert-base | minilm-l6 | tiny")
    parser.add_argument("--ranks", type=int, nargs="+", default=[32, 8])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--runtimes", nargs="+", default=["served"], choices=list(PREPARE))
    parser.add_argument("--steps", type=int, default=10, help="profiled forward calls per condition")
    parser.add_argument("--top", type=int, default=6)
    parser.add_argument("--graphs", action=argparse.BooleanOptionalAction, default=None,
                        help="CUDA graphs (default: on a GPU, as prepare() does)")
    common_args(parser, rounds=0, warmup=5)
    args = parser.parse_args()

    device = pick_device(args.device)
    torch.set_num_threads(args.threads)
    quiet_transformers()
    info = machine(device)
    head = commit()
    results = run(args, device)
    markdown = render(results, args, info, head)
    print(markdown)
    payload = {"benchmark": "profile_serving", "command": command_line(), "commit": head, "args": vars(args),
               "machine": info, "families": FAMILY_NAMES, "conditions": results}
    name = "profile_serving" + (f"_{args.suffix}" if args.suffix else "")
    for p in write(name, payload, markdown, args.out):
        print("wrote", p)


if __name__ == "__main__":
    main()
