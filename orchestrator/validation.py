"""Validation of what a config points at: its search space (every value a dimension can take passes the
same checks as a fixed one) and its resources (task, metrics, model and data folders, results folder).

Split from orchestrator/config.py, which holds the dataclasses, their ranges and loading.
"""

from __future__ import annotations

from typing import Any

from orchestrator.config import (
    MAX_GRID_POINTS,
    METHODS,
    OBJECTIVE_METRICS,
    SPACE_KINDS,
    UNSEARCHABLE_KEYS,
    UNSEARCHABLE_PREFIXES,
    Config,
    _expand,
    _is,
    _range_problems,
    _results_dir_problem,
    _with_value,
    field_type,
    model_problem,
    objective_pairs,
    scalar_keys,
)
from orchestrator.typed import _closest, _coerce, _key_text, _show, _type_name, _why


def _check_value(cfg: Config, dotted: str, value: Any) -> list[str]:
    """Problems of `cfg` with `dotted` set to `value` (a candidate of a searched dimension)."""
    if not (value is None or isinstance(value, (str, int, float, bool))):
        return ["each value must be a single string, number, true/false or null (what Optuna can "
                "suggest)"]
    ok, converted = _coerce(value, field_type(dotted))
    if not ok:
        return [f"expected {_type_name(field_type(dotted))}, got {_show(value)}{_why(value)}"]
    trial = _with_value(cfg, dotted, converted)
    head = dotted + ":"
    return [msg[len(head):].strip() for msg in _range_problems(trial) if msg.startswith(head)]


def validate_space(cfg: Config) -> list[str]:
    """Each `space` entry is {kind: args} with kind in SPACE_KINDS, over a known scalar key, and every
    value it can take passes the same checks as a fixed value."""
    p: list[str] = []
    known = set(scalar_keys()) - {"name", "results_dir"}
    grid_size = 1
    for key, spec in cfg.space.items():
        where = f"space.{_key_text(key)}"
        if key not in known:
            close = _closest(key, sorted(known))
            p.append(f"{where}: not a configuration key" + (f"; did you mean '{close}'?" if close else ""))
            continue
        if key.startswith(UNSEARCHABLE_PREFIXES) or key in UNSEARCHABLE_KEYS:
            p.append(f"{where}: {key} cannot be searched; set it as a fixed value instead")
            continue
        if not isinstance(spec, dict) or len(spec) != 1:
            p.append(f"{where}: write exactly one of {', '.join(SPACE_KINDS)}, e.g. {{choice: [8, 16, 32]}}")
            continue
        ((kind, args),) = spec.items()
        if kind == "per_method":
            if not isinstance(args, dict) or not args:
                p.append(f"{where}.per_method: give a mapping of method to a dimension, "
                         "e.g. {fft: {loguniform: [2.0e-5, 1.0e-4]}, pc_lora: {choice: [2.0e-3, 4.0e-3]}}")
                continue
            size = 0
            for method, inner in args.items():
                if method not in METHODS:
                    p.append(f"{where}.per_method: unknown method {_show(method)}; choose from {', '.join(METHODS)}")
                elif not isinstance(inner, dict) or len(inner) != 1 or next(iter(inner)) == "per_method":
                    p.append(f"{where}.per_method.{method}: write exactly one of {', '.join(SPACE_KINDS[:-1])}")
                else:
                    ((inner_kind, inner_args),) = inner.items()
                    problems, n = _dimension_problems(cfg, key, f"{where}.per_method.{method}", inner_kind, inner_args)
                    p.extend(problems)
                    size += n
            grid_size *= max(size, 1)
            continue
        problems, n = _dimension_problems(cfg, key, where, kind, args)
        p.extend(problems)
        grid_size *= max(n, 1)
    if cfg.search.sampler == "grid":
        bad = [_key_text(k) for k, s in cfg.space.items()
               if isinstance(s, dict) and not _is_discrete(s)]
        if bad:
            p.append(f"search.sampler: 'grid' needs grid or choice dimensions; {', '.join(bad)} are ranges")
        elif grid_size * len(cfg.search.seeds or [0]) > MAX_GRID_POINTS:
            p.append(f"search.sampler: the grid has up to {grid_size * len(cfg.search.seeds or [0]):,} points "
                     f"(more than {MAX_GRID_POINTS:,}); use fewer values, or sampler: nsga2 / tpe / random")
    return p


def _is_discrete(spec: dict[str, Any]) -> bool:
    """A grid can expand it: choice/grid values, or per-method choice/grid values."""
    kind, args = next(iter(spec.items()), (None, None))
    if kind == "per_method" and isinstance(args, dict):
        return all(isinstance(v, dict) and next(iter(v), None) in ("grid", "choice") for v in args.values())
    return kind in ("grid", "choice")


def _dimension_problems(cfg: Config, key: str, where: str, kind: Any, args: Any) -> tuple[list[str], int]:
    """Problems of one `{kind: args}` over `key`, and how many grid points it has (0 for a range)."""
    if kind not in SPACE_KINDS:
        return [f"{where}: unknown kind {_show(kind)}; use one of {', '.join(SPACE_KINDS)}"], 0
    if kind in ("choice", "grid"):
        if not isinstance(args, list) or not args:
            return [f"{where}.{kind}: give a non-empty list of values, e.g. [8, 16, 32]"], 0
        candidates, size = args, len(args)
    else:
        if (not isinstance(args, list) or len(args) != 2
                or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)):
            return [f"{where}.{kind}: give [low, high], two numbers, e.g. [1.0e-4, 1.0e-3]"], 0
        low, high = args
        if kind == "int" and not all(isinstance(a, int) for a in args):
            return [f"{where}.int: bounds must be integers, got {_show(args)}"], 0
        if not low < high:
            return [f"{where}.{kind}: the range [{_show(low)}, {_show(high)}] is empty or reversed; write "
                    "[low, high] with low < high"], 0
        if kind == "loguniform" and low <= 0:
            return [f"{where}.loguniform: bounds must be positive, got {_show(args)}"], 0
        candidates, size = [low, high], 0
    problems = [f"{where}: value {_show(value)}: {msg}" for value in candidates for msg in _check_value(cfg, key, value)]
    return problems, size


def resource_problems(cfg: Config) -> list[str]:
    from orchestrator.tasks import TASKS

    p: list[str] = []
    if cfg.task not in TASKS:
        close = _closest(cfg.task, list(TASKS))
        p.append(f"task: unknown task {_show(cfg.task)}" + (f"; did you mean {close!r}?" if close else "")
                 + f" (tasks: {', '.join(TASKS)})")
    else:
        task_metrics = set(TASKS[cfg.task].metric_names) | {TASKS[cfg.task].primary_metric}
        known_metrics = (set(OBJECTIVE_METRICS) - {"accuracy", "f1", "mcc", "pearson", "spearman"}) | task_metrics
        for metric, _ in objective_pairs(cfg):
            if metric and metric not in known_metrics:
                p.append(f"search.objectives: {metric!r} is not a metric of {cfg.task}; choose from "
                         f"{', '.join(sorted(known_metrics))}")
    refs = [("model", cfg.model)]
    refs += [(k, v) for k, v in (("method.teacher", cfg.method.teacher), ("method.student", cfg.method.student)) if v]
    for spec_key in ("method.teacher", "method.student", "model"):
        spec = cfg.space.get(spec_key)
        if isinstance(spec, dict) and isinstance(spec.get("choice", spec.get("grid")), list):
            refs += [(f"space.{spec_key}", v) for v in spec.get("choice", spec.get("grid")) if isinstance(v, str)]
    for key, ref in refs:
        msg = model_problem(ref, key)
        if msg:
            p.append(msg)
    if cfg.data_dir is not None:
        root = _expand(cfg.data_dir)
        if not _is("is_dir", root):
            p.append(f"data_dir: folder {_show(cfg.data_dir)} does not exist; point it at local copies of the "
                     "datasets (e.g. ../shared/data) or set data_dir: null to use the hub")
        elif cfg.task in TASKS:
            local = root / TASKS[cfg.task].local_dir
            if not _is("is_dir", local):
                p.append(f"data_dir: {_show(cfg.data_dir)} has no folder {TASKS[cfg.task].local_dir!r} for task "
                         f"{cfg.task!r}; add the data there or set data_dir: null to use the hub")
    problem = _results_dir_problem(cfg.results_dir)
    if problem:
        p.append(problem)
    if cfg.tracking.uri and "***" in cfg.tracking.uri:  # copied from a config.yaml / sweep.yaml we wrote
        p.append(f"tracking.uri: {_show(cfg.tracking.uri)} holds a redacted secret (***); give the real URI with "
                 "--set tracking.uri=..., or leave the password out of it and set MLFLOW_TRACKING_USERNAME / "
                 "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)")
    return p
