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
from methods import accounting, baselines, kd_lora, pc_lora


def load_base(args: argparse.Namespace) -> torch.nn.Module:
    if args.arch:
        return random_bert(args.arch)
    import transformers

    return transformers.AutoModelForSequenceClassification.from_pretrained(str(model_dir(args.model)), num_labels=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6-h384", help="folder under ../shared/models (real weights)")
    parser.add_argument("--arch", default=None, help="bert-base | minilm-l6 | tiny: random weights instead of --model")
    parser.add_argument("--ranks", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--student-layers", type=int, default=None, help="default: half the layers")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--throughput-batch", type=int, default=32)
    common_args(parser, rounds=20, warmup=3)
    args = parser.parse_args()

    device = pick_device(args.device)
    amp = device.type == "cuda"
    torch.set_num_threads(args.threads)
    quiet_transformers()
    info = machine(device)
    base = load_base(args).eval()
    layers = base.config.num_hidden_layers
    k = args.student_layers or max(1, layers // 2)

    models: dict[str, torch.nn.Module] = {"uncompressed (FFT / merged LoRA)": base}
    for r in args.ranks:
        pc = copy.deepcopy(base)
        pc_lora.attach(pc, r)
        for _, layer in pc_lora.pc_lora_layers(pc):  # trained adapters are not zero; the time is the same
            torch.nn.init.normal_(layer.lora_B, std=0.02)
        models[f"pc_lora r{r} compressed"] = pc_lora.compress(pc).eval()
    student = baselines.attach_lora(kd_lora.cut_layers(base, k), args.ranks[0])
    models[f"kd_lora student {k}/{layers} layers, merged"] = baselines.merge_lora(student).eval()

    flops, params = {}, {}
    for name, m in models.items():
        flops[name] = accounting.count_flops(m, accounting.example_inputs(m, seq_len=args.seq_len))
        params[name] = accounting.count_params(m)
    models = {name: m.to(device) for name, m in models.items()}
    vocab = base.config.vocab_size
    one = {k_: v.to(device) for k_, v in synthetic_batch(vocab, 1, args.seq_len).items()}
    many = {k_: v.to(device) for k_, v in synthetic_batch(vocab, args.throughput_batch, args.seq_len).items()}

    def call(model: torch.nn.Module, batch: dict) -> callable:
        def fn(_: int) -> None:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                model(**batch).logits.float().cpu()  # the result reaches the host, as a server would need it
        return fn

    latency = interleaved({n: call(m, one) for n, m in models.items()}, warmup=args.warmup, rounds=args.rounds,
                          device=device)
    throughput = interleaved({n: call(m, many) for n, m in models.items()}, warmup=args.warmup,
                             rounds=max(5, args.rounds // 2), device=device)
    info["load_average_end"] = load_average()

    base_name = next(iter(models))
    lat = {n: summary(t) for n, t in latency.items()}
    thr = {n: summary(t) for n, t in throughput.items()}
    def share(time_ratio: float, flops_ratio: float) -> float | None:
        return (1 - time_ratio) / (1 - flops_ratio) if flops_ratio < 0.999 else None

    rows = {}
    for n in models:
        f_ratio = flops[n] / flops[base_name]
        l_ratio = lat[n]["median"] / lat[base_name]["median"]
        t_ratio = thr[n]["median"] / thr[base_name]["median"]
        rows[n] = {"flops": flops[n], "flops_ratio": f_ratio, **{f"params_{k_}": v for k_, v in params[n].items()},
                   "latency_s": lat[n], "latency_ratio": l_ratio, "latency_share_of_flops_cut": share(l_ratio, f_ratio),
                   "throughput_batch_s": thr[n],
                   "throughput_examples_per_s": args.throughput_batch / thr[n]["median"],
                   "throughput_time_ratio": t_ratio, "throughput_share_of_flops_cut": share(t_ratio, f_ratio)}

    src = f"`{args.arch}`-shaped BERT, random weights" if args.arch else f"`{args.model}` (local weights)"
    lines = [
        f"Inference of the deployable models, {src}, {args.seq_len} tokens, "
        f"{'bf16 autocast' if amp else 'float32'}, torch.inference_mode. Latency: batch 1, median of "
        f"{args.rounds}; throughput: batch {args.throughput_batch}, median of {max(5, args.rounds // 2)}; "
        f"conditions interleaved after {args.warmup} warm-up rounds.",
        f"Machine: {machine_line(info)}.",
        f"Command: `{command_line()}`.",
        "'share' = how much of the FLOPs reduction turns into time: (1 − time ratio) / (1 − FLOPs ratio).",
        "",
        "| model | params | FLOPs/example | FLOPs ratio | latency ms (b=1) | latency ratio | share | "
        f"examples/s (b={args.throughput_batch}) | time ratio | share |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def pct(x: float | None) -> str:
        return "" if x is None else f"{100 * x:.0f} %"

    for n, r in rows.items():
        lines.append(f"| {n} | {r['params_params']:,} | {r['flops'] / 1e9:.2f} G | {r['flops_ratio']:.3f} "
                     f"| {1e3 * r['latency_s']['median']:.2f} | {r['latency_ratio']:.3f} "
                     f"| {pct(r['latency_share_of_flops_cut'])} | {r['throughput_examples_per_s']:.0f} "
                     f"| {r['throughput_time_ratio']:.3f} | {pct(r['throughput_share_of_flops_cut'])} |")
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    payload = {"benchmark": "inference", "command": command_line(), "args": vars(args), "machine": info,
               "models": rows, "latency_seconds": latency, "throughput_seconds": throughput}
    name = "inference" + (f"_{args.suffix}" if args.suffix else "")
    for p in write(name, payload, markdown, args.out):
        print("wrote", p)


if __name__ == "__main__":
    main()
