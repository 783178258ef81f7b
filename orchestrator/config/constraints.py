"""`search.constraints`: bounds a trial must meet to count, e.g. `params_kept_pct <= 10` or `metric >= 0.8`.

    search:
      constraints: ["encoder_params_kept_pct <= 10", "flops_kept_pct <= 50"]

A bound is on a number a trial reports (metric, params, params_no_embeddings, flops, any task metric) or on
a kept-% of the uncompressed model on either parameter basis (params_kept_pct, encoder_params_kept_pct,
flops_kept_pct). The searcher sets each bound's violation on the Optuna trial (`Trial.set_constraint`,
≤ 0 feasible) before telling it, so NSGA-II's and TPE's constrained dominance sample towards feasible
trials; the front, pareto.md and the report leave infeasible trials out and trials.csv marks each trial
`feasible`. Pure: no Ray, no Optuna.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

# kept-% name -> (size, size of the uncompressed model)
KEPT_PCT = {"params_kept_pct": ("params", "base_params"),
            "encoder_params_kept_pct": ("params_no_embeddings", "base_params_no_embeddings"),
            "flops_kept_pct": ("flops", "base_flops")}
_FORM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=)\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*$")


@dataclass(frozen=True)
class Constraint:
    key: str
    op: str      # "<=" or ">="
    bound: float

    def violation(self, row: Any) -> float:
        """How far `row` (a trial's report or trials.csv row) is outside the bound; ≤ 0 when it meets it,
        +inf when it lacks the number (a trial that cannot be checked is not feasible)."""
        value = value_of(row, self.key)
        if value is None or math.isnan(value):
            return math.inf
        return value - self.bound if self.op == "<=" else self.bound - value

    def __str__(self) -> str:
        return f"{self.key} {self.op} {self.bound:g}"


def parse(text: str) -> Constraint:
    """'params_kept_pct <= 10' -> Constraint; ValueError saying the form otherwise."""
    match = _FORM.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a bound; write 'KEY <= NUMBER' or 'KEY >= NUMBER', "
                         "e.g. 'params_kept_pct <= 10'")
    return Constraint(match.group(1), match.group(2), float(match.group(3)))


def parse_all(texts: list[str]) -> list[Constraint]:
    """`search.constraints` as Constraints (the config has refused malformed ones already)."""
    return [parse(text) for text in texts]


def value_of(row: Any, key: str) -> float | None:
    def number(name: str) -> float | None:
        value = row.get(name) if hasattr(row, "get") else None
        try:
            return None if value is None else float(value)
        except (TypeError, ValueError):
            return None

    if key in KEPT_PCT:
        size, base = (number(k) for k in KEPT_PCT[key])
        return 100.0 * size / base if size is not None and base else None
    return number(key)


def violations(constraints: list[Constraint], row: Any) -> list[float]:
    return [c.violation(row) for c in constraints]


def is_feasible(constraints: list[Constraint], row: Any) -> bool:
    return all(v <= 0 for v in violations(constraints, row))
