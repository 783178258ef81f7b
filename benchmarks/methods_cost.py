"""Training cost per method on the same model and the same batches: FFT, LoRA, PC-LoRA, KD-LoRA.

    python -m benchmarks.methods_cost [--model minilm-l6-h384] [--rank 8] [--batch 32] [--max-length 64]
                                      [--threads 2] [--warmup 3] [--rounds 15] [--device auto]

One step = what orchestrator/engine/loop.py's train_step does per batch: the batch to the device, the
method's recipe loss (orchestrator/recipes: `Recipe.loss`), zero_grad, backward, clip_grad_norm_ to 1.0,
AdamW step, and `loss.item()`. bf16 autocast on a GPU, float32 on the CPU, as in the loop. Each model,
its teacher side and PC-LoRA's λ come from the method's recipe (`build_model`, `prepare`, `before_step`;
benchmarks/_common.py method_conditions), so the benchmark times what training runs; the KD-LoRA
teacher logits (kd_lora.TeacherLogits) are read back by KD-LoRA's own `prepare`. The batches are real
SST-2 text from the quickstart's 1,000-example subset, tokenised with the model's tokenizer to at most
`--max-length` tokens and padded per batch, as the loop does; the same batch goes to every condition in a
round. Conditions run interleaved, one step each per round; the table gives the median s/step and its
ratio to FFT's median. Writes benchmarks/results/methods_cost{,_<suffix>}.json and .md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import (
    command_line,
    common_args,
    interleaved,
    load_average,
    machine,
    machine_line,
    make_step,
    method_conditions,
    model_dir,
    pick_device,
    quiet_transformers,
    sst2_batches,
    summary,
    sync,
    write,
)
from methods import kd_lora
from orchestrator.tasks import get_task, load_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6-h384", help="folder name under ../shared/models")
    parser.add_argument("--rank", type=int, default=8, help="LoRA / PC-LoRA / KD-LoRA rank (quickstart: 8)")
    parser.add_argument("--student-layers", type=int, default=3)
    parser.add_argument("--kd-weight", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--n-batches", type=int, default=8, help="distinct batches, cycled over the rounds")
    common_args(parser, rounds=15, warmup=3)
    return parser.parse_args(argv)


def teacher_logits(teacher: torch.nn.Module, dataset: Any, collate: Any, device: torch.device,
                   amp: bool) -> tuple[torch.Tensor, float]:
    """Teacher logits once per training example, as the teacher's run computes them (orchestrator/engine/loop.py),
    and the seconds that took."""
    from torch.utils.data import DataLoader

    sync(device)
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        logits = kd_lora.TeacherLogits.compute(teacher, DataLoader(dataset, batch_size=64, collate_fn=collate),
                                               device).to(device)
    sync(device)
    return logits, time.perf_counter() - start


def report(args: argparse.Namespace, info: dict[str, Any], stats: dict[str, dict[str, float]],
           trainable: dict[str, int], peaks: dict[str, int], seq_lens: list[int], logits_seconds: float,
           amp: bool) -> str:
    fft_median = stats["fft"]["median"]
    data_line = (f"real SST-2 text (quickstart subset, {args.n_batches} batches cycled), batch {args.batch}, "
                 f"tokenised to <= {args.max_length} tokens and padded per batch (padded lengths {seq_lens})")
    lines = [
        f"Training step of `{args.model}` (num_labels 2) per method, rank {args.rank}, {data_line}; "
        f"{'bf16 autocast' if amp else 'float32'}. Median of {args.rounds} steps per condition after "
        f"{args.warmup} warm-up rounds, conditions interleaved (one step each per round).",
        f"Machine: {machine_line(info)}.",
        f"Command: `{command_line()}`.",
        f"KD-LoRA teacher logits for the 1,000 training examples computed once in {logits_seconds:.2f} s "
        f"(= {logits_seconds / fft_median:.1f} FFT steps); the student is the teacher cut to "
        f"{args.student_layers} layers (kd_lora.cut_layers) + LoRA, kd_weight {args.kd_weight}, T 2.",
        "",
        "| method | s/step (median) | IQR | ratio to FFT | trainable params |"
        + (" peak GPU MiB |" if peaks else ""),
        "|---|---:|---:|---:|---:|" + ("---:|" if peaks else ""),
    ]
    for name, s in stats.items():
        row = (f"| {name} | {s['median']:.4f} | {s['q1']:.4f}-{s['q3']:.4f} | {s['median'] / fft_median:.2f} "
               f"| {trainable[name]:,} |")
        lines.append(row + (f" {peaks[name] / 2**20:.0f} |" if peaks else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = pick_device(args.device)
    amp = device.type == "cuda"
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    quiet_transformers()
    info = machine(device)
    path = model_dir(args.model)
    batches, dataset, collate = sst2_batches(path, batch_size=args.batch, max_length=args.max_length,
                                             n_batches=args.n_batches)
    seq_lens = [b["input_ids"].shape[1] for b in batches]
    # The KD-LoRA teacher: the model itself (fine-tuned in a real run; the values do not change the time).
    teacher = load_model(str(path), get_task("glue/sst2")).to(device).eval().requires_grad_(False)
    logits, logits_seconds = teacher_logits(teacher, dataset, collate, device, amp)

    peaks: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as work:  # the teacher logits, read back by KD-LoRA's own prepare()
        spec = method_conditions(path, rank=args.rank, student_layers=args.student_layers, kd_weight=args.kd_weight,
                                 device=device, teacher=teacher, logits=logits, work_dir=Path(work))
    trainable = {name: sum(p.numel() for p in m.parameters() if p.requires_grad) for name, m, _, _ in spec}
    conditions = {name: make_step(m, fn, device, amp, batches, before, peaks, name) for name, m, fn, before in spec}
    times = interleaved(conditions, warmup=args.warmup, rounds=args.rounds, device=device)
    info["load_average_end"] = load_average()

    stats = {name: summary(t) for name, t in times.items()}
    markdown = report(args, info, stats, trainable, peaks, seq_lens, logits_seconds, amp)
    print(markdown)
    fft_median = stats["fft"]["median"]
    payload = {"benchmark": "methods_cost", "command": command_line(), "args": vars(args), "machine": info,
               "padded_seq_lens": seq_lens, "teacher_logits_seconds": logits_seconds, "trainable_params": trainable,
               "peak_gpu_bytes": peaks or None,
               "steps": {name: {**stats[name], "ratio_to_fft": stats[name]["median"] / fft_median,
                                "seconds": times[name]} for name in stats}}
    name = "methods_cost" + (f"_{args.suffix}" if args.suffix else "")
    for p in write(name, payload, markdown, args.out):
        print("wrote", p)


if __name__ == "__main__":
    main()
