"""Validation of a built config: its values' ranges, its search space (every value a dimension can take passes
the same checks as a fixed one) and what it points at (task, metrics, model and data folders, results folder).

Split from orchestrator/config/schema.py, which holds the dataclasses and loading; `config.validate` calls these.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import stat
from pathlib import Path
from typing import Any

from orchestrator.base.choices import unknown_choice
from orchestrator.base.rungs import max_brackets
from orchestrator.base.typed import _closest, _coerce, _key_text, _show, _type_name, _why
from orchestrator.config.constraints import parse as parse_constraint
from orchestrator.config.schema import (
    MAX_GRID_POINTS,
    MAX_NAME,
    OBJECTIVE_METRICS,
    SAMPLERS,
    SCHEDULERS,
    SPACE_KINDS,
    UNSEARCHABLE_KEYS,
    UNSEARCHABLE_PREFIXES,
    Config,
    SearchConfig,
    _with_value,
    field_type,
    is_safe_name,
    objective_pairs,
    scalar_keys,
)
from orchestrator.config.settings import METHODS, method_problems
from orchestrator.recipes import applies


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
    return [msg[len(head):].strip() for msg in range_problems(trial) if msg.startswith(head)]


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
                    p.append(unknown_choice(f"{where}.per_method", "method", method, METHODS))
                elif not isinstance(inner, dict) or len(inner) != 1 or next(iter(inner)) == "per_method":
                    p.append(f"{where}.per_method.{method}: write exactly one of {', '.join(SPACE_KINDS[:-1])}")
                else:
                    ((inner_kind, inner_args),) = inner.items()
                    # checked as that method's trials will be: by its settings alone
                    own = dataclasses.replace(_with_value(cfg, "method.name", method), space={})
                    problems, n = _dimension_problems(own, key, f"{where}.per_method.{method}", inner_kind, inner_args)
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
        return [unknown_choice(where, "kind", kind, SPACE_KINDS)], 0
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
                p.append(unknown_choice("search.objectives", f"{cfg.task} metric", metric, sorted(known_metrics)))
    refs = [("model", cfg.model)]
    # a teacher or student is checked when a method the config can run reads it (PC-LoRA ignores the student)
    running = [cfg.method.name, *_space_methods(cfg)]
    refs += [(k, v) for k, v in (("method.teacher", cfg.method.teacher), ("method.student", cfg.method.student))
             if v and any(applies(k, m) for m in running)]
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
        problem = path_problem(root, want="folder", shown=cfg.data_dir)
        if problem:
            p.append(f"data_dir: {problem}; point it at local copies of the datasets (e.g. ../shared/data) or "
                     "set data_dir: null to use the hub")
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


def _space_methods(cfg: Config) -> list[str]:
    """The methods a sweep's `method.name` dimension may draw (none when it is not searched or malformed)."""
    spec = cfg.space.get("method.name")
    values = next((v for v in spec.values() if isinstance(v, list)), []) if isinstance(spec, dict) else []
    return [v for v in values if isinstance(v, str)]


def range_problems(cfg: Config) -> list[str]:
    """Values out of range; every message names the key and says what fits."""
    p: list[str] = []
    m, t = cfg.method, cfg.train

    def need(cond: bool, msg: str) -> None:
        if not cond:
            p.append(msg)

    # The name becomes a folder under results_dir and an MLflow experiment: no '/', '..', or empty name.
    need(is_safe_name(cfg.name),
         f"name: {_show(cfg.name)} is not a safe folder name; use 1 to {MAX_NAME} letters, digits, '.', '_' "
         "and '-', starting with a letter or digit (no '/', no '..'), e.g. name: sst2-pc-lora")
    # each method the config can run checks its own keys (orchestrator/config/settings/)
    p.extend(method_problems(m, _space_methods(cfg)))
    need(t.epochs >= 1, f"train.epochs: must be at least 1, got {t.epochs}")
    need(t.batch_size >= 1, f"train.batch_size: must be at least 1, got {t.batch_size}")
    need(t.lr is None or t.lr > 0, f"train.lr: must be positive (or null: the method's own), got {t.lr}")
    need(t.weight_decay >= 0, f"train.weight_decay: must be >= 0, got {t.weight_decay}")
    need(0 <= t.warmup_ratio < 1, f"train.warmup_ratio: must lie in [0, 1), got {t.warmup_ratio}")
    need(t.max_grad_norm > 0, f"train.max_grad_norm: must be positive, got {t.max_grad_norm}")
    need(t.max_length >= 8, f"train.max_length: must be at least 8 tokens, got {t.max_length}")
    need(t.max_examples is None or t.max_examples >= 2,
         f"train.max_examples: must be at least 2 (or null for the full split), got {t.max_examples}")
    need(cfg.eval.max_examples is None or cfg.eval.max_examples >= 2,
         f"eval.max_examples: must be at least 2 (or null for the full split), got {cfg.eval.max_examples}")
    need(cfg.eval.batch_size >= 1, f"eval.batch_size: must be at least 1, got {cfg.eval.batch_size}")
    r = cfg.resources
    need(r.workers >= 1, f"resources.workers: must be at least 1, got {r.workers}")
    need(r.cpus_per_worker >= 1, f"resources.cpus_per_worker: must be at least 1, got {r.cpus_per_worker}")
    need(0 < r.gpus_per_worker <= 8, f"resources.gpus_per_worker: must lie in (0, 8], got {r.gpus_per_worker}")
    need(r.trainer != "trial" or r.workers == 1,
         f"resources.trainer: trial trains in the Tune trial's own process, one worker, but resources.workers is "
         f"{r.workers}; set resources.trainer: torch_trainer (or auto) for DDP over several workers")
    p.extend(_search_problems(cfg.search))
    p.extend(_bracket_problems(cfg.search, t.epochs))
    return p


def _bracket_problems(s: SearchConfig, epochs: int) -> list[str]:
    """search.brackets against the scheduler and the rungs the training budget has (orchestrator/base/rungs.py)."""
    if s.brackets < 1:
        return [f"search.brackets: must be at least 1, got {s.brackets}"]
    if s.brackets == 1:
        return []
    if s.scheduler == "none":
        return [f"search.brackets: {s.brackets} brackets need a scheduler that compares trials at rungs; set "
                "search.scheduler: mo_asha (or asha), or search.brackets: 1"]
    if s.grace_period < 1 or s.reduction_factor <= 1:
        return []  # reported by _search_problems; no rung can be counted
    most = max_brackets(s.grace_period, epochs, s.reduction_factor)
    if s.brackets <= most:
        return []
    return [f"search.brackets: at most {most} with grace_period {s.grace_period}, reduction_factor "
            f"{s.reduction_factor:g} and {epochs} train.epochs (bracket s first compares a trial at the first "
            f"bracket's (s+1)-th rung; the last of the {most} never does), got {s.brackets}"]


def _search_problems(s: SearchConfig) -> list[str]:
    """search.*: counts and names in range, objectives NAME:max or NAME:min each metric once, constraints that
    parse. Split from range_problems to keep it short."""
    p: list[str] = []

    def need(cond: bool, msg: str) -> None:
        if not cond:
            p.append(msg)

    need(s.num_samples >= 1, f"search.num_samples: must be at least 1, got {s.num_samples}")
    need(s.sampler in SAMPLERS, unknown_choice("search.sampler", "sampler", s.sampler, SAMPLERS))
    need(s.scheduler in SCHEDULERS, unknown_choice("search.scheduler", "scheduler", s.scheduler, SCHEDULERS))
    need(s.grace_period >= 1, f"search.grace_period: must be at least 1 epoch, got {s.grace_period}")
    need(s.reduction_factor > 1, f"search.reduction_factor: must be greater than 1, got {s.reduction_factor}")
    need(s.max_concurrent_trials is None or s.max_concurrent_trials >= 1,
         f"search.max_concurrent_trials: must be at least 1 (or null: from the cluster), got {s.max_concurrent_trials}")
    need(s.seeds is None or len(s.seeds) > 0, "search.seeds: give at least one seed, or null")
    need(len(s.objectives) > 0, "search.objectives: give at least one, e.g. [metric:max, params:min]")
    for obj in s.objectives:
        metric, _, mode = obj.partition(":")
        need(bool(metric) and mode in ("max", "min"),
             f"search.objectives: {obj!r} must read NAME:max or NAME:min, e.g. metric:max")
    names = [obj.partition(":")[0] for obj in s.objectives]
    twice = sorted({n for n in names if n and names.count(n) > 1})
    need(not twice, f"search.objectives: {', '.join(map(repr, twice))} given more than once ({s.objectives}); "
                    "give each metric once, e.g. [metric:max, params:min]")
    for text in s.constraints:
        try:
            parse_constraint(text)
        except ValueError as err:
            need(False, f"search.constraints: {err}")
    return p


SYSTEM_DIRS = ("/etc", "/usr", "/bin", "/sbin", "/boot", "/dev", "/proc", "/sys", "/lib", "/lib32", "/lib64")


def _expand(ref: str) -> Path | None:
    """`ref` as a path with ~ expanded; None when it cannot be one (~unknown-user, a NUL character)."""
    try:
        path = Path(ref).expanduser()
        os.fspath(path).encode()
    except (RuntimeError, ValueError, OSError, UnicodeError):
        return None
    return None if "\x00" in str(path) else path


def _is(test: str, path: Path | None) -> bool:
    """path.exists() / is_dir() / is_file() that says False instead of raising (name too long, ...)."""
    try:
        return path is not None and bool(getattr(path, test)())
    except (OSError, ValueError):
        return False


def path_problem(path: Path | None, *, want: str, shown: str | None = None) -> str | None:
    """Why `path` is not the existing `want` ("file" or "folder"), in words: missing, a symlink loop, the other
    kind, unreadable; None when it is. `shown` is how the message names it (default: the path)."""
    name = _show(shown if shown is not None else str(path))
    if path is None:
        return f"{name} is not a usable path"
    try:
        st = os.stat(path)  # follows links: ELOOP for a link that points back at itself
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{name} is a symlink loop (a link that leads back to itself)"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return f"{want} {name} does not exist"
        return f"{name} cannot be read ({exc.strerror or exc.__class__.__name__})"
    except ValueError:  # a NUL character
        return f"{name} is not a usable path"
    if want == "file" and stat.S_ISDIR(st.st_mode):
        return f"{name} is a folder, not a file"
    if want == "folder" and not stat.S_ISDIR(st.st_mode):
        return f"{name} is a file, not a folder"
    return None


def is_local_ref(ref: str) -> bool:
    """A model reference names a local folder when it looks like a path or exists on disk."""
    return ref.startswith((".", "/", "~")) or ref.count("/") > 1 or _is("exists", _expand(ref))


def model_problem(ref: str, key: str) -> str | None:
    """A model reference is a local folder with a config.json, or a hub id (`org/name`)."""
    if is_local_ref(ref):
        path = _expand(ref)
        problem = path_problem(path, want="folder", shown=ref)
        if problem:
            return f"{key}: model {problem}; give a folder with config.json or a hub id"
        if not _is("is_file", path / "config.json"):
            return f"{key}: {_show(ref)} has no config.json; give a Hugging Face model folder or a hub id"
        return None
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", ref, flags=re.ASCII) or len(ref) > MAX_NAME:
        return (f"{key}: {_show(ref)} is neither a local folder nor a hub id like 'bert-base-uncased' or "
                "'org/name'")
    return None


def out_dir_problem(ref: str, key: str = "--out") -> str | None:
    """An output folder (`train --out`) that can hold the run: an existing folder or one that can be created
    under a writable one, not a file, not a system folder (/proc refuses files only once Ray has started)."""
    path = _expand(ref) if ref.strip() else None
    if path is None:
        return f"{key}: {_show(ref)} is not a usable folder path; give a folder such as runs/sst2"
    if os.path.lexists(path):
        problem = path_problem(path, want="folder", shown=ref)
        if problem:
            return f"{key}: {problem}; give a new folder or an existing one for the run's files"
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:
        return f"{key}: {_show(ref)} cannot be resolved ({exc.__class__.__name__}); give another folder"
    if resolved == Path("/") or any(resolved == Path(d) or Path(d) in resolved.parents for d in SYSTEM_DIRS):
        return f"{key}: {_show(ref)} is in a system folder ({resolved}); give a folder of your own, such as runs/sst2"
    parent = next(p for p in (resolved, *resolved.parents) if os.path.lexists(p))
    if not (_is("is_dir", parent) and os.access(parent, os.W_OK | os.X_OK)):
        return f"{key}: {_show(ref)} cannot be created: {_show(str(parent))} is not a writable folder"
    return None


def _results_dir_problem(ref: str) -> str | None:
    """results_dir: a folder we can create (or an existing one) under which everything is written."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", ref):
        return (f"results_dir: {_show(ref)} is a URI; object stores are not supported (the sweep writes plain "
                "files and takes file locks): give a POSIX folder every node mounts, e.g. /shared/results")
    path = _expand(ref) if ref.strip() else None
    if path is None:
        return (f"results_dir: {_show(ref)} is not a usable folder path; give a folder such as results "
                "(~user must name an existing user)")
    try:
        path.resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        return f"results_dir: {_show(ref)} cannot be resolved ({exc.__class__.__name__}); give another folder"
    if _is("exists", path) and not _is("is_dir", path):
        return f"results_dir: {_show(ref)} exists and is not a folder; give a folder such as results"
    resolved = path.resolve()
    if resolved == Path("/") or any(resolved == Path(d) or Path(d) in resolved.parents for d in SYSTEM_DIRS):
        return (f"results_dir: {_show(ref)} is a system folder ({resolved}); a sweep writes and deletes files "
                "there: give a folder of your own, such as results")
    return None
