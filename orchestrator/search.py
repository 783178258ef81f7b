"""The search space of a sweep: the YAML `space` section turned into trial points.

Two ways in, one meaning. Optuna samplers (NSGA-II, TPE, random) use a define-by-run function, so
conditional dimensions come for free: the method is drawn first and keys that do not apply to it
(the decay schedule for KD-LoRA, the student for PC-LoRA) are never drawn. A grid is expanded here
into the explicit list of points, with the same pruning and without duplicates, times the seeds.
"""

from __future__ import annotations

import itertools
from typing import Any

from orchestrator.config import METHOD_SPECIFIC_KEYS, Config

# Drawn first: it decides which other dimensions exist.
METHOD_KEY = "method.name"


def _ordered_keys(cfg: Config) -> list[str]:
    keys = list(cfg.space)
    if METHOD_KEY in keys:
        keys.remove(METHOD_KEY)
        keys.insert(0, METHOD_KEY)
    return keys


def applies(key: str, method: str) -> bool:
    """Whether a dimension means something for `method` (conditional dimensions)."""
    return method in METHOD_SPECIFIC_KEYS.get(key, (method,))


def sample_point(trial: Any, cfg: Config) -> dict[str, Any]:
    """Define-by-run space for Optuna: draws one point, a dict of dotted keys to values."""
    point: dict[str, Any] = {}
    method = cfg.method.name
    for key in _ordered_keys(cfg):
        if not applies(key, point.get(METHOD_KEY, method)):
            continue
        ((kind, args),) = cfg.space[key].items()
        if kind in ("choice", "grid"):
            value = trial.suggest_categorical(key, args)
        elif kind == "int":
            value = trial.suggest_int(key, args[0], args[1])
        elif kind == "uniform":
            value = trial.suggest_float(key, float(args[0]), float(args[1]))
        else:  # loguniform
            value = trial.suggest_float(key, float(args[0]), float(args[1]), log=True)
        point[key] = value
    return point


def grid_points(cfg: Config) -> list[dict[str, Any]]:
    """Every combination of the choice/grid dimensions, pruned by method, once each, times the seeds."""
    keys = _ordered_keys(cfg)
    values = [list(next(iter(cfg.space[k].values()))) for k in keys]
    points: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    for combo in itertools.product(*values):
        raw = dict(zip(keys, combo, strict=True))
        method = raw.get(METHOD_KEY, cfg.method.name)
        point = {k: v for k, v in raw.items() if applies(k, method)}
        signature = tuple(sorted(point.items(), key=lambda kv: kv[0]))
        if signature in seen:
            continue
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
    for key in _ordered_keys(cfg):
        ((kind, args),) = cfg.space[key].items()
        only = METHOD_SPECIFIC_KEYS.get(key)
        cond = f"   (only for {', '.join(only)})" if only and METHOD_KEY in cfg.space else ""
        lines.append(f"{key}: {kind} {args}{cond}")
    if cfg.search.sampler == "grid":
        lines.append(f"grid: {len(grid_points(cfg))} points"
                     + (f" ({len(cfg.search.seeds)} seeds each)" if cfg.search.seeds else ""))
    return lines
