"""The search space of a sweep: the YAML `space` section turned into trial points.

Two ways in, one meaning. Optuna samplers (NSGA-II, TPE, random) use a define-by-run function, so
conditional dimensions come for free: the method is drawn first and keys that do not apply to it
(the decay schedule for KD-LoRA, the student for PC-LoRA) are never drawn; a `per_method` dimension
(say, the learning rate) draws from the drawn method's own range. A grid is expanded here into the
explicit list of points, with the same pruning and without duplicates, times the seeds.
"""

from __future__ import annotations

import itertools
from typing import Any

from orchestrator.base.rungs import rung_epochs
from orchestrator.config.records import SpaceDimension
from orchestrator.config.schema import Config
from orchestrator.recipes import applies, method_specific_keys

# Drawn first: it decides which other dimensions exist.
METHOD_KEY = "method.name"


def dimensions(cfg: Config) -> list[SpaceDimension]:
    """The searched dimensions, the method first."""
    dims = [SpaceDimension.of(k, v) for k, v in cfg.space.items()]
    return sorted(dims, key=lambda d: d.key != METHOD_KEY)


def methods_of(cfg: Config) -> list[str]:
    """Every method a sweep can draw, in the space's order (the config's own when not searched)."""
    return list(SpaceDimension.of(METHOD_KEY, cfg.space[METHOD_KEY]).values) if METHOD_KEY in cfg.space \
        else [cfg.method.name]


def trial_point(config: dict[str, Any] | None) -> dict[str, Any]:
    """The point of a Tune trial's config, keyed by dotted config keys.

    A grid trial's config is {"point": {...}}. Ray's OptunaSearch merges the values Optuna captured under
    its own parameter names into what `sample_point` returns, so a per-method dimension also arrives as
    `train.lr[pc_lora]`; those names are not config keys and are dropped (the same value is under `train.lr`).
    """
    if not config:
        return {}
    point = config.get("point", config)
    return {k: v for k, v in point.items() if "[" not in k}


def sample_point(trial: Any, cfg: Config) -> dict[str, Any]:
    """Define-by-run space for Optuna: draws one point, a dict of dotted keys to values."""
    point: dict[str, Any] = {}
    for dim in dimensions(cfg):
        method = point.get(METHOD_KEY, cfg.method.name)
        own = dim.for_method(method)
        if not applies(dim.key, method) or own is None:
            continue
        name = dim.optuna_name(method)
        if own.discrete:
            value = trial.suggest_categorical(name, own.values)
        elif own.kind == "int":
            value = trial.suggest_int(name, *own.args)
        else:
            low, high = own.args
            value = trial.suggest_float(name, float(low), float(high), log=own.kind == "loguniform")
        point[dim.key] = value
    return point


def grid_points(cfg: Config) -> list[dict[str, Any]]:
    """Every combination of the choice/grid dimensions, pruned by method, once each, times the seeds."""
    points: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    others = [d for d in dimensions(cfg) if d.key != METHOD_KEY]
    for method in methods_of(cfg):
        own = [d.for_method(method) for d in others if applies(d.key, method)]
        own = [d for d in own if d is not None]
        for combo in itertools.product(*(d.values for d in own)):
            point = {METHOD_KEY: method} if METHOD_KEY in cfg.space else {}
            point.update(zip([d.key for d in own], combo, strict=True))
            signature = tuple(sorted(point.items(), key=lambda kv: kv[0]))
            if signature not in seen:
                seen.add(signature)
                points.append(point)
    return with_seeds(points, cfg)


def with_seeds(points: list[dict[str, Any]], cfg: Config) -> list[dict[str, Any]]:
    if not cfg.search.seeds:
        return points
    return [{**p, "train.seed": s} for p in points for s in cfg.search.seeds]


def describe_space(cfg: Config) -> list[str]:
    """Human-readable lines for --dry-run."""
    if not cfg.space:
        return ["(no searched dimensions: every trial runs the fixed configuration)"]
    lines = []
    owners, drawn = method_specific_keys(), methods_of(cfg)
    for dim in dimensions(cfg):
        only = [m for m in owners.get(dim.key, ()) if m in drawn]  # among the methods this sweep draws
        cond = f"   (only for {', '.join(only)})" if only and METHOD_KEY in cfg.space else ""
        lines.append(f"{dim.key}: {dim.kind} {dim.args}{cond}")
    if cfg.search.sampler == "grid":
        lines.append(f"grid: {len(grid_points(cfg))} points"
                     + (f" ({len(cfg.search.seeds)} seeds each)" if cfg.search.seeds else ""))
    return lines


def budget_line(cfg: Config) -> str:
    """What a sweep will cost, for --dry-run: trials x epochs, and what early stopping may save."""
    trials = len(grid_points(cfg)) if cfg.search.sampler == "grid" else cfg.search.num_samples
    epochs = cfg.train.epochs
    line = f"{trials} trials x {epochs} epochs = at most {trials * epochs} trial-epochs"
    s = cfg.search
    if s.scheduler != "none" and s.grace_period < epochs:
        line += (f"; {s.scheduler} may stop a trial from epoch {s.grace_period} on "
                 f"(about 1/{s.reduction_factor:g} of the trials go on at each rung)")
        if s.brackets > 1:
            rungs = rung_epochs(s.grace_period, epochs, s.reduction_factor)  # bracket b starts at rungs[b]
            firsts = [f"epoch {rungs[b]}" if b < len(rungs) else "never" for b in range(s.brackets)]
            line += f"; {s.brackets} brackets, whose trials are first compared at {', '.join(firsts)}"
    return line
