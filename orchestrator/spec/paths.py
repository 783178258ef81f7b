"""A config's local paths: made absolute for Ray's workers (whose working directory differs), and given back
as the user wrote them for sweep.yaml (issue 32 item 3)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.config.schema import Config

# What the user wrote for each local path `resolve_paths` made absolute, by key: sweep.yaml records the user's form
# (by key, not by path alone: a model written as a symlink and a student written plainly may lead to one folder).
_WRITTEN: dict[tuple[str, str], str] = {}
PATH_KEYS = ("model", "method.teacher", "method.student")  # model references, in the space too


def _map_paths(cfg: Config, fn: Callable[[str, Any], Any]) -> Config:
    """`cfg` with `fn(key, value)` applied to every local path it holds (model references, data_dir, results_dir)."""
    method = dataclasses.replace(cfg.method, teacher=fn("method.teacher", cfg.method.teacher),
                                 student=fn("method.student", cfg.method.student))
    space = {}
    for key, spec in cfg.space.items():
        if key in PATH_KEYS and isinstance(spec, dict):
            spec = {kind: [fn(key, v) if isinstance(v, str) else v for v in vals] if isinstance(vals, list) else vals
                    for kind, vals in spec.items()}
        space[key] = spec
    return dataclasses.replace(cfg, model=fn("model", cfg.model), data_dir=fn("data_dir", cfg.data_dir),
                               results_dir=fn("results_dir", cfg.results_dir), method=method, space=space)


def resolve_paths(cfg: Config) -> Config:
    """Local paths made absolute, so that Ray workers (whose working directory differs) find them."""
    from orchestrator.spec.validation import is_local_ref

    def absolute(key: str, ref: str | None) -> str | None:
        if not ref or not (is_local_ref(ref) or ref in (cfg.data_dir, cfg.results_dir)):
            return ref
        full = str(Path(ref).expanduser().resolve())
        _WRITTEN.setdefault((key, full), ref)
        return full

    return _map_paths(cfg, absolute)


def as_written(cfg: Config) -> Config:
    """`cfg` with the paths `resolve_paths` made absolute back as the user wrote them, for sweep.yaml: a record of
    the user's config, not of where symlinks led on this machine (Ray's workers get the absolute ones)."""
    return _map_paths(cfg, lambda key, ref: _WRITTEN.get((key, ref), ref) if isinstance(ref, str) else ref)
