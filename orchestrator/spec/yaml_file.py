"""Reading a config file: YAML by safe_load only, no key given twice, a size limit; every refusal a ConfigError
naming the file. Split from orchestrator/config/schema.py (the dataclasses and loading)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from orchestrator.base.typed import _show
from orchestrator.config.schema import Config, ConfigError, _build, apply_overrides
from orchestrator.spec.validation import path_problem

MAX_CONFIG_BYTES = 10 * 2**20


def _duplicate_key(node: yaml.Node | None) -> str | None:
    """The first key given twice in one mapping of a composed YAML document, as a message; None if none.

    YAML's last-one-wins would silently drop the first (a second `train:` section turning a
    1,000-example run into a full-data one), so a config may not repeat a key.
    """
    stack = [node] if node is not None else []
    visited: set[int] = set()  # aliases share nodes, and may be recursive (&a [*a])
    while stack:
        current = stack.pop()
        if id(current) in visited:
            continue
        visited.add(id(current))
        if isinstance(current, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key_node, value_node in current.value:
                if isinstance(key_node, yaml.ScalarNode):
                    key = (key_node.tag, key_node.value)
                    line = key_node.start_mark.line + 1
                    if key in seen:
                        return (f"key {_show(key_node.value)} appears twice in one section (lines {seen[key]} and "
                                f"{line}); the second would replace the first: keep one")
                    seen[key] = line
                stack.append(value_node)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return None


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The YAML file as a dict. safe_load: tags that build Python objects (!!python/object/apply:...)
    are refused with a ConfigError, never run."""
    path = Path(path)
    problem = path_problem(path, want="file")
    if problem:
        raise ConfigError([f"--config: {problem}; give the path of a YAML config, e.g. search_spaces/quickstart.yaml"])
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError([f"{path}: {path.stat().st_size:,} bytes is too large for a config "
                               f"(at most {MAX_CONFIG_BYTES:,}); is it the right file?"])
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot be read ({exc.strerror or exc.__class__.__name__})"]) from None
    try:
        duplicate = _duplicate_key(yaml.compose(data, Loader=yaml.SafeLoader))
        # bytes: PyYAML detects UTF-8/16 and refuses undecodable input
        raw = None if duplicate else yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: not valid YAML: nested too deeply"]) from None
    except ValueError as exc:  # a date like 2001-02-30, an integer of more than 4300 digits
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    if duplicate:  # raised outside the try: a ConfigError is a ValueError, which would wrap it twice
        raise ConfigError([f"{path}: {duplicate}"])
    if raw is None or raw == {}:  # every key at its default would mean the hub's bert-base-uncased on SST-2
        raise ConfigError([f"{path}: the file is empty; a config names at least task: and model: "
                           "(start from search_spaces/quickstart.yaml)"])
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys (name:, task:, model:, ...)"])
    return raw


def load_recorded(path: str | os.PathLike[str], overrides: list[str] | None = None) -> Config:
    """A config a sweep recorded (sweep.yaml), for reports: its values checked, but not the model, data and
    results folders it names, which a report needs none of (results copied to a laptop, a moved ../shared)."""
    from orchestrator.spec.validation import range_problems, validate_space

    problems: list[str] = []
    raw = apply_overrides(read_yaml(path), list(overrides or []), problems)
    cfg = _build(Config, raw, "", problems)
    problems += [p for p in range_problems(cfg) + validate_space(cfg) if p not in problems]
    if problems:
        raise ConfigError(problems, str(path))
    return cfg
