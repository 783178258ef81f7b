"""Loading a config: read the YAML, apply `--set` overrides, validate against the recipes, resolve paths.

Above both config/ (the dataclasses) and recipes/ (which read them): the one place the two meet when a
config is loaded, so config/ never imports a recipe.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

from orchestrator.base.typed import _build
from orchestrator.config.schema import Config, ConfigError, apply_overrides, with_values
from orchestrator.recipes import get_recipe
from orchestrator.spec.paths import resolve_paths
from orchestrator.spec.validation import range_problems, resource_problems, validate_space
from orchestrator.spec.yaml_file import read_yaml


def with_method_defaults(cfg: Config) -> Config:
    """`cfg` with the keys it leaves null filled from its method's recipe (train.lr: null = the method's own).

    Applied per run (a sweep over several methods keeps null in its base config, so each trial gets
    its own method's value), before config.yaml is written, so every run folder holds the value used.
    """
    defaults = get_recipe(cfg.method.name).defaults_for(cfg)
    return with_values(cfg, {k: v for k, v in defaults.items() if cfg.get(k) is None})


def validate(cfg: Config) -> list[str]:
    """Every problem of a built config (orchestrator/spec/validation.py): ranges, the search space, the resources it names."""
    return range_problems(cfg) + validate_space(cfg) + resource_problems(cfg)


def load_config(path: str | os.PathLike[str] | None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> Config:
    """Read, override, validate and resolve paths; raises ConfigError listing every problem."""
    raw = read_yaml(path) if path is not None else dict(base or {})
    problems: list[str] = []
    raw = apply_overrides(raw, list(overrides or []), problems)
    cfg = _build(Config, raw, "", problems)
    # Every problem at once: a value of the wrong type was left at its default by _build, so the range
    # and resource checks below see only values that typed correctly and never repeat a type error.
    problems += [p for p in validate(cfg) if p not in problems]
    if problems:
        raise ConfigError(problems, str(path) if path else None)
    if cfg.trust_remote_code:
        warnings.warn("trust_remote_code: true lets the model's hub repository run its own Python code on "
                      "this machine and on every Ray worker; use it only for repositories you trust",
                      UserWarning, stacklevel=2)
    return resolve_paths(cfg)
