"""Each method's settings, and the config's `method:` section composed from them.

A method's settings are a dataclass of its own keys (fields with defaults, a comment each, and `problems()`,
which checks them), in one module here named after the method; the settings several methods share
(orchestrator/config/settings/shared.py) are defined once and composed. `SETTINGS` below is the one table of
methods: orchestrator/recipes/ imports the recipe of each name from orchestrator/recipes/<name>.py, and a
recipe's keys are its settings' fields. A new method: its settings module here, its recipe module there, and
one line in SETTINGS.

The YAML and the CLI stay flat (`method: {name: pc_lora, rank: 8, ...}`, `--set method.rank=16`,
trials.csv's `method.*` columns): `MethodConfig` holds `name` and every method's fields, each once.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from typing import Any

from orchestrator.base.choices import unknown_choice
from orchestrator.config.settings.distil_compress import DistilCompressSettings
from orchestrator.config.settings.kd_lora import KDLoRASettings
from orchestrator.config.settings.pc_lora import PCLoRASettings
from orchestrator.config.settings.shared import AdapterSettings, MethodSettings, TeacherSettings

# Baselines first, as the papers lay tables out.
SETTINGS: dict[str, type[MethodSettings]] = {
    "fft": MethodSettings,
    "lora": AdapterSettings,
    "pc_lora": PCLoRASettings,
    "kd_lora": KDLoRASettings,
    "distil_compress": DistilCompressSettings,
}
METHODS: tuple[str, ...] = tuple(SETTINGS)
DEFAULT_METHOD = "pc_lora"


def _compose(settings: dict[str, type[MethodSettings]]) -> type:
    """One flat dataclass: `name`, then every settings class's fields in SETTINGS order, each once. A field two
    classes share must be the same definition (inherited from a shared class), never a copy."""
    owner: dict[str, tuple[str, dataclasses.Field[Any]]] = {}
    fields: list[tuple[str, Any, Any]] = [("name", str, dataclasses.field(default=DEFAULT_METHOD))]
    for method, cls in settings.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in owner:
                if owner[f.name][1] is not f:
                    raise TypeError(f"method.{f.name} is defined by both {owner[f.name][0]} and {method}; define "
                                    "it once (orchestrator/config/settings/shared.py) and compose it")
                continue
            owner[f.name] = (method, f)
            fields.append((f.name, hints[f.name], dataclasses.field(default=f.default,
                                                                   default_factory=f.default_factory)))
    composed = dataclasses.make_dataclass("MethodConfig", fields)
    composed.__module__ = __name__  # pickled by name (Ray ships configs): orchestrator.config.settings.MethodConfig
    composed.__doc__ = ("The `method:` section: `name` (one of METHODS) and every method's settings, flat; "
                        "a method reads its own (`Settings.of(cfg.method)`, `method_problems`).")
    return composed


MethodConfig = _compose(SETTINGS)


def method_problems(method: Any, methods: Iterable[str] = ()) -> list[str]:
    """Every problem of a `method:` section, each once: an unknown name, and the settings of each method the
    config can run checked (`method.name` and `methods`, those a sweep's space may draw): a key means what
    its method says, so a value is checked by the methods that read it, not by one that ignores it."""
    problems = [] if method.name in SETTINGS else [unknown_choice("method.name", "method", method.name, METHODS)]
    for name in dict.fromkeys((method.name, *methods)):
        if name in SETTINGS:
            problems += [p for p in SETTINGS[name].of(method).problems() if p not in problems]
    return problems


__all__ = ["METHODS", "SETTINGS", "AdapterSettings", "KDLoRASettings", "MethodConfig", "MethodSettings",
           "PCLoRASettings", "TeacherSettings", "method_problems"]
