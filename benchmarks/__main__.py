"""`python -m benchmarks`: run the performance suite (issue 10) and write benchmarks/results/.

    python -m benchmarks                      # every benchmark, full size (long on 2 CPU cores: the sweep, the 3-seed search)
    python -m benchmarks --quick              # every benchmark, tiny sizes (a few minutes; results/quick/)
    python -m benchmarks --only overhead,methods_cost
    python -m benchmarks --list

Each benchmark runs as its own process (`python -m benchmarks.<name> ...`), so one failing does not stop
the others; the exit status is non-zero if any failed. On a machine with a CUDA GPU the training
throughput / MFU benchmark runs on the BERT-base shape in bf16 and the inference benchmark too; on a
CPU they run on the MiniLM-L6 shape. Arguments after `--` go to every benchmark that is run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from benchmarks._common import RESULTS, ROOT


def plan(quick: bool, gpu: bool) -> dict[str, list[str]]:
    """Each benchmark's arguments, full or quick, on this machine."""
    if quick:
        return {
            "methods_cost": ["--rounds", "3", "--warmup", "1", "--n-batches", "2"],
            "inference": ["--rounds", "4", "--warmup", "1", "--arch", "tiny", "--seq-len", "32",
                          "--throughput-batch", "8"],
            "throughput": ["--arch", "tiny", "--student-layers", "2", "--batch", "4", "--seq-len", "16",
                           "--rounds", "3", "--warmup", "1"],
            "overhead": ["--reps", "1", "--max-examples", "64", "--epochs", "2", "--eval-examples", "32",
                         "--skip-sweep"],
            "search_efficiency": ["--seeds", "0", "--train-examples", "32", "--eval-examples", "32"],
        }
    if gpu:
        return {
            "methods_cost": ["--suffix", "gpu"],
            "inference": ["--arch", "bert-base", "--throughput-batch", "256", "--rounds", "50", "--warmup", "10",
                          "--suffix", "gpu"],
            "throughput": ["--arch", "bert-base", "--batch", "128", "--suffix", "gpu"],
            "overhead": ["--suffix", "gpu"],
            "search_efficiency": ["--suffix", "gpu"],
        }
    return {
        "methods_cost": [],
        "inference": [],
        "throughput": ["--arch", "minilm-l6", "--batch", "16", "--seq-len", "64", "--student-layers", "3",
                       "--rank", "8", "--rounds", "10", "--warmup", "2", "--suffix", "cpu"],
        "overhead": [],
        "search_efficiency": [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated benchmark names to leave out")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, written to benchmarks/results/quick/")
    parser.add_argument("--list", action="store_true", help="print the benchmarks and their arguments, then exit")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: arguments for every benchmark run")
    args = parser.parse_args()

    import torch

    gpu = torch.cuda.is_available()
    steps = plan(args.quick, gpu)
    only = [n for n in args.only.split(",") if n]
    skip = {n for n in args.skip.split(",") if n}
    unknown = [n for n in [*only, *skip] if n not in steps]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(steps)}")
    names = [n for n in (only or steps) if n not in skip]
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    out = ["--out", str(RESULTS / "quick")] if args.quick else []
    failed = []
    for name in names:
        cmd = [sys.executable, "-m", f"benchmarks.{name}", *steps[name], *out, *extra]
        print(f"== {' '.join(cmd[1:])}", flush=True)
        if args.list:
            continue
        start = time.perf_counter()
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        print(f"== {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.perf_counter() - start:.0f} s",
              flush=True)
        if rc:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
