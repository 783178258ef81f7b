"""`python -m orchestrator.sweep --config FILE`: a Ray Tune + Optuna sweep of one YAML file."""

from __future__ import annotations

import argparse

from orchestrator.base.redact import redact
from orchestrator.base.shell import prog
from orchestrator.cli import add_config_options, config_from_args, run_main
from orchestrator.config.schema import dump_yaml
from orchestrator.spec.space import budget_line, describe_space


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("orchestrator.sweep"),
        description="Run a multi-objective sweep (Ray Tune + Optuna, ASHA) of PC-LoRA / KD-LoRA / "
                    "baseline trials; write results/<name>/trials.csv, pareto.csv|md|png and log to MLflow.")
    add_config_options(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="print the resolved config and the search space, check ranks, the model folder and the "
                             "data files, then exit without starting Ray")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted sweep of the same name: finished trials are kept, "
                             "the Optuna state is restored")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny end-to-end pass: 2 trials, 1 epoch, a few dozen examples")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    if args.dry_run:
        print("# resolved config")
        print(dump_yaml(cfg), end="")
        print("# search space")
        for line in describe_space(cfg):
            print(redact(line))
        print(f"# budget: {budget_line(cfg)}")
        from orchestrator.engine.run import preflight

        preflight(cfg, hub=False)  # ranks, the model folder, the data files: what a real run would refuse
        print("# checks: ranks, local model folders and local data files are usable (hub ids: not checked)")
        return 0
    from orchestrator.search.tune import run_sweep  # Ray is imported only when a sweep really runs

    return run_sweep(cfg, resume=args.resume, smoke=args.smoke)


if __name__ == "__main__":
    run_main(main)
