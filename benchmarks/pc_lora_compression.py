"""Parameters and forward FLOPs of a model before and after PC-LoRA compression, per rank.

    python benchmarks/pc_lora_compression.py [--model DIR] [--ranks 8 16 32 64] [--seq-len 128]

Prints a markdown table and writes it to benchmarks/results/pc_lora_compression.md. Counts come
from methods.accounting, the same functions that fill `params`, `params_no_embeddings` and `flops`
in every run's metrics.json. The weights' values do not matter: only the shapes are counted.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import transformers

from methods import pc_lora
from methods.accounting import count_flops, count_params, example_inputs

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "minilm-l6-h384"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "pc_lora_compression.md"


def reduction(before: int, after: int) -> str:
    return f"{100 * (1 - after / before):.2f} %"


def measure(model_dir: Path, ranks: list[int], seq_len: int) -> str:
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # the fresh classifier head is expected
    base = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    inputs = example_inputs(base, seq_len=seq_len)
    before = count_params(base)
    before_flops = count_flops(base, inputs)
    rows = [
        "| rank | params | params reduction | params w/o embeddings | reduction w/o embeddings "
        "| FLOPs (seq 128) | FLOPs reduction |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| original | {before['params']:,} | | {before['params_no_embeddings']:,} | | {before_flops:,} | |",
    ]
    for rank in ranks:
        model = copy.deepcopy(base)
        pc_lora.attach(model, rank)
        pc_lora.compress(model)
        after = count_params(model)
        flops = count_flops(model, inputs)
        rows.append(
            f"| {rank} | {after['params']:,} | {reduction(before['params'], after['params'])} "
            f"| {after['params_no_embeddings']:,} "
            f"| {reduction(before['params_no_embeddings'], after['params_no_embeddings'])} "
            f"| {flops:,} | {reduction(before_flops, flops)} |"
        )
    header = (
        f"PC-LoRA compression of `{model_dir.name}` ({type(base).__name__}, num_labels=2): deployable "
        f"model after `compress()`; FLOPs of one example at seq_len {seq_len} "
        "(FlopCounterMode, 1 multiply-add = 2 FLOPs).\n\n"
    )
    return header + "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--ranks", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    table = measure(args.model, args.ranks, args.seq_len)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)


if __name__ == "__main__":
    main()
