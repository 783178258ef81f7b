"""LoRA compression orchestrator: PC-LoRA and KD-LoRA sweeps on Ray.

Layers, lowest first; a module imports only from its own layer and those below it (tests/test_layers.py):

    base/      files, typed construction, redaction, shell commands, the Pareto front
    tasks/     the task table, data loading, metrics, models
    config/    the config dataclasses, constraints, budgets, the records a run writes
    recipes/   one recipe per method
    spec/      a config meets the recipes: loading, validation, paths, the search space
    tracking/  MLflow runs
    engine/    one trial or run: preflight, the training loop, Ray Train, ASHA inside the trial
    reports/   fronts, pages, plots, references, leaderboards from finished trials
    search/    the sweep: Ray Tune, the Optuna searcher, the sweep's console
    *.py       the commands (`python -m orchestrator COMMAND`, `python -m orchestrator.sweep`, ...)
"""
