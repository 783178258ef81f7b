"""`python -m orchestrator.train --config FILE --out DIR`: one training run with Ray Train."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from orchestrator.base.shell import prog
from orchestrator.cli import add_config_options, config_from_args, run_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("orchestrator.train"),
        description="Train one configuration (PC-LoRA, KD-LoRA, LoRA or full fine-tuning) with "
                    "resources.workers DDP workers; write DIR/config.yaml, DIR/metrics.json and DIR/model/.")
    add_config_options(parser)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for config.yaml (resolved), metrics.json and model/ (the deployable model)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from orchestrator.config.schema import ConfigError
    from orchestrator.spec.validation import out_dir_problem

    # Before Ray starts: a folder under /proc failed only after Ray was up, with a traceback. With the config's
    # own problems, all at once.
    out_problems = [p for p in [out_dir_problem(args.out)] if p]
    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        raise ConfigError(out_problems + exc.problems, args.config) from None
    if out_problems:
        raise ConfigError(out_problems)
    from orchestrator.engine import console
    from orchestrator.engine.run import fit, preflight

    preflight(cfg)  # refuses a bad rank before Ray starts or anything is written
    with console.EpochFollower(args.out, cfg.name, cfg.train.epochs):
        metrics = fit(cfg, Path(args.out), log_to_driver=console.verbose())
    keys = ("task", "method", "metric_name", "metric", "params", "base_params", "flops", "base_flops",
            "train_seconds")
    print(json.dumps({k: metrics[k] for k in keys if k in metrics}, indent=2))
    return 0


if __name__ == "__main__":
    run_main(main)
