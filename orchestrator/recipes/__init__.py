"""One recipe per method (fft, lora, pc_lora, kd_lora): the only place that knows a method by name.

Adding a method is one new file here that defines `RECIPE` (see base.py) and one line in `_MODULES`.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from orchestrator.recipes.base import Recipe, StepInputs

# Baselines first, as the papers lay tables out.
_MODULES = ("fft", "lora", "pc_lora", "kd_lora")
RECIPES: dict[str, Recipe] = {}
for _module in _MODULES:
    _recipe = importlib.import_module(f"orchestrator.recipes.{_module}").RECIPE
    RECIPES[_recipe.name] = _recipe

METHODS: tuple[str, ...] = tuple(RECIPES)
BASELINES: tuple[str, ...] = tuple(n for n, r in RECIPES.items() if r.is_baseline)


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"method.name: unknown method {name!r}; choose one of {', '.join(METHODS)}") from None


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
