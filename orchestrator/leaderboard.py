"""`python -m orchestrator.leaderboard [--results DIR]`: rebuild results/leaderboards/ from the sweeps in its
manifest (the tables and plots: orchestrator/reports/leaderboard.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestrator.base.shell import prog
from orchestrator.cli import run_main
from orchestrator.reports.leaderboard import build


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog("orchestrator.leaderboard"),
        description="Gather every finished full-budget trial under --results (and MLflow, with --tracking-uri) "
                    "and write <results>/leaderboards/: glue.md, cifar.md, compression.md, <task>.png, README.md.")
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="the results folder sweeps and runs write into (default: results)")
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="also read finished runs from this MLflow store (e.g. sqlite:///results/mlflow.db "
                             "or http://host:5000); trials already in a trials.csv are counted once")
    args = parser.parse_args(argv)
    results_dir = Path(args.results)
    written = build(results_dir, args.tracking_uri)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_main(main)
