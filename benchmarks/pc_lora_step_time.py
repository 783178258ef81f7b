"""Training-step time of a PC-LoRA model while λ > 0 and after λ reaches 0 (W x + b skipped).

    python benchmarks/pc_lora_step_time.py [--model DIR] [--rank 32] [--batch 16] [--seq-len 128]

One step = forward, backward and AdamW update of the adapters and head, on the CPU. The
conditions run interleaved, one step each per round, so that drifts of the machine (turbo,
other load) hit all of them alike. With kd_weight > 0 the step also runs the teacher forward
(teacher_forward, the same weights at λ = 1), which still needs W after λ reaches 0, or reads its
outputs from methods/feature_cache.py, as a trial does from its second epoch on (the teacher is
frozen). Prints a markdown table and writes it to benchmarks/results/pc_lora_step_time.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import transformers

from methods import pc_lora, pc_lora_loss
from methods.feature_cache import FeatureCache
from orchestrator.recipes.pc_lora import FeatureTeacher, teacher_outputs

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "minilm-l6-h384"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "pc_lora_step_time.md"
# (λ, kd_weight, teacher outputs from the cache)
CONDITIONS = [(0.5, 0.0, False), (0.0, 0.0, False), (0.5, 0.5, False), (0.0, 0.5, False), (0.5, 0.5, True),
              (0.0, 0.5, True)]


def step(
    model: torch.nn.Module, opt: torch.optim.Optimizer, batch: dict, lam: float, kd_weight: float,
    teacher: FeatureTeacher,
) -> float:
    start = time.perf_counter()
    pc_lora.set_lambda(model, lam)
    idx = torch.arange(len(batch["input_ids"]))
    t_hidden = teacher_outputs(teacher, model, batch, idx)[0] if kd_weight > 0 else ()
    out = model(**batch, output_hidden_states=kd_weight > 0)
    s_hidden = out.hidden_states[1:] if kd_weight > 0 else ()
    loss = pc_lora_loss.loss(out.loss, s_hidden, t_hidden, kd_weight)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - start


def table_rows(args: argparse.Namespace, times: dict[tuple[float, float, bool], list[float]]) -> list[str]:
    median = {c: statistics.median(t) for c, t in times.items()}
    rows = [
        f"PC-LoRA training step of `{args.model.name}`, rank {args.rank}, batch {args.batch} x seq "
        f"{args.seq_len}, CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads); median of {args.rounds} steps per "
        f"condition after {args.warmup} warm-up rounds, conditions interleaved.\n",
        "| kd_weight | λ = 0.5 (s/step) | λ = 0, W skipped (s/step) | ratio λ=0 / λ>0 | min λ>0 | min λ=0 |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for kd, cached in ((0.0, False), (0.5, False), (0.5, True)):
        on, off = times[(0.5, kd, cached)], times[(0.0, kd, cached)]
        rows.append(
            f"| {kd}{', teacher cached' if cached else ''} | {median[(0.5, kd, cached)]:.3f} "
            f"| {median[(0.0, kd, cached)]:.3f} | {median[(0.0, kd, cached)] / median[(0.5, kd, cached)]:.2f} "
            f"| {min(on):.3f} | {min(off):.3f} |"
        )
    for lam in (0.5, 0.0):
        rows.append(f"\nλ = {lam}: the cached teacher's step takes "
                    f"{median[(lam, 0.5, True)] / median[(lam, 0.5, False)]:.2f} of the computed teacher's.")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch threads; default: torch's choice")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    model = transformers.AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
    pc_lora.attach(model, args.rank)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    vocab = model.config.vocab_size
    ids = torch.randint(1000, vocab, (args.batch, args.seq_len))
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": torch.randint(0, 2, (args.batch,)),
    }

    # The recipe's own teacher path; a cache of no bytes keeps nothing, so that teacher runs every step.
    cached_teacher = FeatureTeacher(None, FeatureCache(max_bytes=2**30))  # filled by its first (warm-up) step
    live_teacher = FeatureTeacher(None, FeatureCache(max_bytes=0))
    times: dict[tuple[float, float, bool], list[float]] = {c: [] for c in CONDITIONS}
    for round_ in range(args.warmup + args.rounds):
        for lam, kd, cached in CONDITIONS:
            seconds = step(model, opt, batch, lam, kd, cached_teacher if cached else live_teacher)
            if round_ >= args.warmup:
                times[(lam, kd, cached)].append(seconds)

    rows = table_rows(args, times)
    table = "\n".join(rows) + "\n"
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)


if __name__ == "__main__":
    main()
