"""One recipe per method (fft, lora, pc_lora, kd_lora): the only place that knows a method by name.

Adding a method: its settings (orchestrator/config/settings/<name>.py, one line in its SETTINGS table, which
orders the methods), and one new file here, <name>.py, that defines `RECIPE` (see base.py) with those settings.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from orchestrator.base.choices import unknown_choice
from orchestrator.config.settings import SETTINGS
from orchestrator.recipes.base import Recipe, StepInputs

RECIPES: dict[str, Recipe] = {}
for _name, _settings in SETTINGS.items():  # baselines first, as the papers lay tables out
    _recipe = importlib.import_module(f"orchestrator.recipes.{_name}").RECIPE
    if (_recipe.name, _recipe.settings) != (_name, _settings):
        raise TypeError(f"orchestrator/recipes/{_name}.py: RECIPE must be named {_name!r} and use "
                        f"{_settings.__name__}, the settings SETTINGS gives it")
    RECIPES[_name] = _recipe

METHODS: tuple[str, ...] = tuple(RECIPES)
BASELINES: tuple[str, ...] = tuple(n for n, r in RECIPES.items() if r.is_baseline)


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(unknown_choice("method.name", "method", name, METHODS)) from None


@functools.cache  # the recipes are fixed at import; applies() asks for every key of every trial
def method_specific_keys() -> dict[str, tuple[str, ...]]:
    """dotted key -> the methods it applies to, for every key some recipe claims (others apply to all)."""
    owners: dict[str, list[str]] = {}
    for recipe in RECIPES.values():
        for key in recipe.keys:
            owners.setdefault(key, []).append(recipe.name)
    return {k: tuple(v) for k, v in owners.items()}


def applies(key: str, method: str) -> bool:
    """Whether a dotted key means something for `method` (conditional dimensions)."""
    owners = method_specific_keys().get(key)
    return owners is None or method in owners


def label(row: Any) -> str:
    """A trials.csv row's method settings as tables print them."""
    recipe = RECIPES.get(row.get("method.name"))
    return recipe.label(row) if recipe else "–"


__all__ = ["BASELINES", "METHODS", "RECIPES", "Recipe", "StepInputs", "applies", "get_recipe",
           "label", "method_specific_keys"]
