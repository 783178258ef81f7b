"""What compression buys at inference: latency and throughput of the deployable models (issue 10, item 3).

    python -m benchmarks.inference [--model minilm-l6-h384 | --arch bert-base] [--ranks 8 32]
                                   [--student-layers 3] [--seq-len 128] [--throughput-batch 32]

Models, each in eval mode, as `orchestrator.loop.deployable_model` ships them:
- the uncompressed model (what FFT and merged LoRA deploy: same shapes);
- PC-LoRA after `pc_lora.compress` (W and b deleted; each target layer is B(A x) + C), per rank;
- KD-LoRA's student: the model cut to k layers (`kd_lora.cut_layers`) with LoRA merged
  (`baselines.merge_lora`), i.e. a plain k-layer model.
Adapter values are random (time does not depend on them). Latency: batch 1; throughput: batch
`--throughput-batch`; both at `--seq-len` tokens (full attention mask), under torch.inference_mode,
bf16 autocast on a GPU (as the loop's evaluate) and float32 on a CPU. Conditions interleaved, one call
each per round. Next to each time: the forward-FLOPs ratio (methods.accounting.count_flops, the
`flops` of metrics.json) and the share of the FLOPs reduction that turns into time,
(1 − t/t_base) / (1 − flops/flops_base).

Runtimes per model (`--runtimes`), measured side by side: `eager` (float32 weights, bf16 autocast on a
GPU: what the training loop's evaluation runs), `served` (methods.serving.prepare with the second round's
options off, the first round's path: bf16 weights, PC-LoRA's layers folded and its feed-forward blocks fused,
one CUDA graph per shape; on a CPU float32 weights, folded, no graphs), `fast` (served + issue 34's fused q/k/v
attention and the all-ones mask dropped: prepare()'s defaults since they were measured fastest) and
`compiled` (fast + torch.compile under the CUDA graphs; only for the models named by `--compile-models`,
since each compile takes a minute of the device call). Every option applies to the uncompressed model too
(fused q/k/v only finds PC-LoRA blocks), so the summary compares each model's best runtime with the
uncompressed model's best.
"""

from __future__ import annotations

import argparse
import copy

import torch

from benchmarks._common import (
    command_line,
    common_args,
    interleaved,
    load_average,
    machine,
    machine_line,
    model_dir,
    pick_device,
    quiet_transformers,
    random_bert,
    summary,
    synthetic_batch,
    write,
)
from methods import accounting, baselines, kd_lora, pc_lora, serving


def load_base(args: argparse.Namespace) -> torch.nn.Module:
    if args.arch:
        return random_bert(args.arch)
    import transformers

    return transformers.AutoModelForSequenceClassification.from_pretrained(str(model_dir(args.model)), num_labels=2)


def compressed_pc_lora(base: torch.nn.Module, rank: int) -> torch.nn.Module:
    """A copy of ``base`` with PC-LoRA at ``rank`` attached and compressed (random adapters)."""
    pc = copy.deepcopy(base)
    pc_lora.attach(pc, rank)
    for _, layer in pc_lora.pc_lora_layers(pc):  # trained adapters are not zero; the time is the same
        torch.nn.init.normal_(layer.lora_B, std=0.02)
    return pc_lora.compress(pc).eval()


def build_models(args: argparse.Namespace, base: torch.nn.Module) -> dict[str, torch.nn.Module]:
    layers = base.config.num_hidden_layers
    k = args.student_layers or max(1, layers // 2)
    models: dict[str, torch.nn.Module] = {"uncompressed (FFT / merged LoRA)": base}
    for r in args.ranks:
        models[f"pc_lora r{r} compressed"] = compressed_pc_lora(base, r)
    student = baselines.attach_lora(kd_lora.cut_layers(base, k), args.ranks[0])
    models[f"kd_lora student {k}/{layers} layers, merged"] = baselines.merge_lora(student).eval()
    return models


RUNTIMES = ("eager", "served", "fast", "compiled")
# prepare()'s options per runtime (eager is the model as trained, not prepared).
PREPARE = {"served": {"fuse_qkv": False, "drop_full_mask": False}, "fast": {"fuse_qkv": True, "drop_full_mask": True},
           "compiled": {"fuse_qkv": True, "drop_full_mask": True, "compile": True}}


def runtimes(models: dict[str, torch.nn.Module], device: torch.device,
             args: argparse.Namespace) -> tuple[dict, dict]:
    """(name, runtime) -> callable model, and (name, runtime) -> what prepare() did, for each runtime asked."""
    out, reports = {}, {}
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    for name, m in models.items():
        for rt in args.runtimes:
            if rt == "eager":
                continue
            if rt == "compiled" and not any(pat in name for pat in args.compile_models):
                continue
            served = serving.prepare(copy.deepcopy(m), device=device, dtype=dtype, qkv_up=args.qkv_up,
                                     **PREPARE[rt])
            reports[(name, rt)] = served.serving
            out[(name, rt)] = served
        if "eager" in args.runtimes:
            out[(name, "eager")] = m.to(device)
    return out, reports


def measure(conditions: dict, args: argparse.Namespace, device: torch.device) -> tuple[dict, dict]:
    amp = device.type == "cuda"
    one = {k_: v.to(device) for k_, v in synthetic_batch(args.vocab, 1, args.seq_len).items()}
    many = {k_: v.to(device) for k_, v in synthetic_batch(args.vocab, args.throughput_batch, args.seq_len).items()}

    def call(key: tuple[str, str], model: torch.nn.Module, batch: dict) -> callable:
        eager = key[1] == "eager"
        def fn(_: int) -> None:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and eager):
                model(**batch).logits.float().cpu()  # the result reaches the host, as a server would need it
        return fn

    label = lambda key: f"{key[0]} · {key[1]}"  # noqa: E731
    latency = interleaved({label(k): call(k, m, one) for k, m in conditions.items()}, warmup=args.warmup,
                          rounds=args.rounds, device=device)
    throughput = interleaved({label(k): call(k, m, many) for k, m in conditions.items()}, warmup=args.warmup,
                             rounds=max(5, args.rounds // 2), device=device)
    return latency, throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6-h384", help="folder under ../shared/models (real weights)")
    parser.add_argument("--arch", default=None, help="bert-base | minilm-l6 | tiny: random weights instead of --model")
    parser.add_argument("--ranks", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--student-layers", type=int, default=None, help="default: half the layers")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--throughput-batch", type=int, default=32)
    parser.add_argument("--runtimes", nargs="+", default=["eager", "served"], choices=RUNTIMES)
    parser.add_argument("--compile-models", nargs="+", default=[""],
                        help="substrings of the model names that get the `compiled` runtime (default: all)")
    parser.add_argument("--qkv-up", default="blockdiag", choices=("blockdiag", "bmm"),
                        help="the fused q/k/v up-projection (fast, compiled)")
    common_args(parser, rounds=20, warmup=3)
    args = parser.parse_args()

    device = pick_device(args.device)
    torch.set_num_threads(args.threads)
    quiet_transformers()
    info = machine(device)
    base = load_base(args).eval()
    args.vocab = base.config.vocab_size
    models = build_models(args, base)
    flops = {n: accounting.count_flops(m, accounting.example_inputs(m, seq_len=args.seq_len)) for n, m in models.items()}
    params = {n: accounting.count_params(m) for n, m in models.items()}
    conditions, reports = runtimes(models, device, args)
    latency, throughput = measure(conditions, args, device)
    info["load_average_end"] = load_average()
    rows = table_rows(models, flops, params, latency, throughput, args, conditions)
    markdown = render(rows, reports, args, info, device)
    print(markdown)
    payload = {"benchmark": "inference", "command": command_line(), "args": vars(args), "machine": info,
               "models": rows, "serving": {f"{n} · {rt}": r for (n, rt), r in reports.items()}, "latency_seconds": latency, "throughput_seconds": throughput}
    name = "inference" + (f"_{args.suffix}" if args.suffix else "")
    for p in write(name, payload, markdown, args.out):
        print("wrote", p)


def _share(time_ratio: float, flops_ratio: float) -> float | None:
    return (1 - time_ratio) / (1 - flops_ratio) if flops_ratio < 0.999 else None


def table_rows(models: dict, flops: dict, params: dict, latency: dict, throughput: dict,
               args: argparse.Namespace, conditions: dict) -> dict[str, dict]:
    """Per model: each runtime's latency and throughput against the uncompressed model's in the same runtime
    (when it has it), and the model's best runtime against the uncompressed model's best."""
    base_name = next(iter(models))
    med = lambda d, n, rt: summary(d[f"{n} · {rt}"])["median"]  # noqa: E731
    have = lambda n: [rt for rt in RUNTIMES if (n, rt) in conditions]  # noqa: E731
    best = lambda d, n: min(med(d, n, rt) for rt in have(n))  # noqa: E731
    rows = {}
    for n in models:
        f_ratio = flops[n] / flops[base_name]
        row: dict = {"flops": flops[n], "flops_ratio": f_ratio, **{f"params_{k}": v for k, v in params[n].items()}}
        for rt in have(n):
            same = (base_name, rt) in conditions
            lat_r = med(latency, n, rt) / med(latency, base_name, rt) if same else None
            thr_r = med(throughput, n, rt) / med(throughput, base_name, rt) if same else None
            row[rt] = {"latency_s": summary(latency[f"{n} · {rt}"]), "latency_ratio": lat_r,
                       "latency_share_of_flops_cut": _share(lat_r, f_ratio) if same else None,
                       "throughput_batch_s": summary(throughput[f"{n} · {rt}"]),
                       "throughput_examples_per_s": args.throughput_batch / med(throughput, n, rt),
                       "throughput_time_ratio": thr_r,
                       "throughput_share_of_flops_cut": _share(thr_r, f_ratio) if same else None}
        row["best_latency_ratio"] = best(latency, n) / best(latency, base_name)
        row["best_throughput_speedup"] = best(throughput, base_name) / best(throughput, n)
        row["best_throughput_share_of_flops_cut"] = _share(1 / row["best_throughput_speedup"], f_ratio)
        row["best_latency_runtime"] = min(have(n), key=lambda rt: med(latency, n, rt))
        row["best_throughput_runtime"] = min(have(n), key=lambda rt: med(throughput, n, rt))
        rows[n] = row
    return rows


def render(rows: dict, reports: dict, args: argparse.Namespace, info: dict, device: torch.device) -> str:
    src = f"`{args.arch}`-shaped BERT, random weights" if args.arch else f"`{args.model}` (local weights)"
    served = "bf16 weights, folded + fused, CUDA graphs" if device.type == "cuda" else "float32, folded + fused"
    lines = [
        f"Inference of the deployable models, {src}, {args.seq_len} tokens, torch.inference_mode. Runtimes: "
        f"eager ({'bf16 autocast' if device.type == 'cuda' else 'float32'}), served ({served}; methods/serving.py)"
        f"{', fast (served + fused q/k/v attention, up-projection ' + args.qkv_up + ', all-ones mask dropped)' if 'fast' in args.runtimes else ''}"
        f"{', compiled (fast + torch.compile)' if 'compiled' in args.runtimes else ''}. "
        f"Latency: batch 1, median of {args.rounds}; throughput: batch {args.throughput_batch}, median of "
        f"{max(5, args.rounds // 2)}; all conditions interleaved after {args.warmup} warm-up rounds.",
        f"Machine: {machine_line(info)}.",
        f"Command: `{command_line()}`.",
        "Ratios are against the uncompressed model in the same runtime; 'best' compares each model's fastest runtime "
        "with the uncompressed model's fastest. 'share' = (1 − time ratio) / (1 − FLOPs ratio).",
        "",
        f"| model | params | FLOPs ratio | runtime | latency ms (b=1) | latency ratio | examples/s (b={args.throughput_batch}) "
        "| time ratio | share |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    pct = lambda x: "" if x is None else f"{100 * x:.0f} %"  # noqa: E731
    ratio = lambda x: "" if x is None else f"{x:.3f}"  # noqa: E731
    for n, r in rows.items():
        for rt in RUNTIMES:
            if rt not in r:
                continue
            m = r[rt]
            lines.append(f"| {n} | {r['params_params']:,} | {r['flops_ratio']:.3f} | {rt} "
                         f"| {1e3 * m['latency_s']['median']:.2f} | {ratio(m['latency_ratio'])} "
                         f"| {m['throughput_examples_per_s']:.0f} | {ratio(m['throughput_time_ratio'])} "
                         f"| {pct(m['throughput_share_of_flops_cut'])} |")
    lines += ["", f"| model | best b=1 latency vs uncompressed | best b={args.throughput_batch} throughput speed-up "
              "| share of FLOPs cut | best runtimes (b=1, b=" f"{args.throughput_batch}) |", "|---|---:|---:|---:|---|"]
    for n, r in rows.items():
        lines.append(f"| {n} | {r['best_latency_ratio']:.3f}× | {r['best_throughput_speedup']:.2f}× "
                     f"| {pct(r['best_throughput_share_of_flops_cut'])} "
                     f"| {r['best_latency_runtime']}, {r['best_throughput_runtime']} |")
    lines += ["", "| model · runtime | what prepare() did |", "|---|---|"]
    for (n, rt), rep in reports.items():
        lines.append(f"| {n} · {rt} | {describe(rep)} |")
    return "\n".join(lines) + "\n"


def describe(rep: dict) -> str:
    """One line of a served model's report (methods.serving.prepare)."""
    return (f"{rep['fused_mlps']} fused MLPs, {rep['low_rank_linears']} low-rank linears, kernel: {rep['fused_kernel']}, "
            f"attention: {rep.get('fused_attention', 'off')}, compile: {rep.get('compile', 'off')}, "
            f"graphs: {rep['cuda_graphs']}, mask dropped when full: {rep.get('drop_full_mask', False)}, "
            f"attention implementation: {rep.get('attention_implementation', 'kept')}")


if __name__ == "__main__":
    main()
