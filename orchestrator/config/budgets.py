"""Training budgets of leaderboard trials: how titles state them, and one budget per task.

A cell of a leaderboard compares methods, so every trial in it must have had the same data and training
time: the same training examples, epochs and (text) maximum length. `one_budget_per_task` keeps, for
each task, the trials of the budget most of that task's trials share and says what it left out.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from orchestrator.tasks import TASKS

BUDGET_COLUMNS = ("train.max_examples", "train.epochs", "train.max_length")


def number(value: Any) -> float | None:
    """A float, or None for missing / non-numeric / NaN values (CSV cells)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _is_image(task: str) -> bool:
    spec = TASKS.get(task)
    return spec is not None and spec.kind == "image"


def budget_of(row: pd.Series | dict[str, Any]) -> tuple[float | None, ...]:
    """(train examples or None = all, epochs, max length or None for images): equal for comparable trials."""
    examples, epochs, length = (number(row.get(c)) for c in BUDGET_COLUMNS)
    return examples, epochs, None if _is_image(str(row.get("task"))) else length


def budget_text(rows: pd.DataFrame) -> str:
    """The training budget of some trials, as titles state it: examples, epochs, max length (text only)."""
    if not len(rows):
        return "no trials yet"

    def values(column: str, none: str) -> str:
        if column not in rows.columns:
            return none
        found = sorted({none if number(v) is None else str(int(number(v))) for v in rows[column]},
                       key=lambda v: (v == none, float(v) if v != none else 0.0))
        return found[0] if len(found) == 1 else f"{found[0]}–{found[-1]}"

    text = f"training examples: {values('train.max_examples', 'all')}; epochs: {values('train.epochs', '?')}"
    if "task" in rows.columns and all(_is_image(str(t)) for t in rows["task"]):
        return text
    return f"{text}; max length: {values('train.max_length', '?')}"


def one_budget_per_task(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The trials of each task's main budget (the one most of its trials share; a tie goes to the larger
    budget, all examples counting as the largest), and a line per task saying how many trials of other
    budgets were left out."""
    if not len(frame):
        return frame, []
    budgets = frame.apply(budget_of, axis=1)
    keep = pd.Series(False, index=frame.index)
    notes = []
    for task, rows in frame.groupby("task", sort=True):
        counts = budgets[rows.index].value_counts()
        main = max(counts.index, key=lambda b: (counts[b], _rank(b)))
        mine = budgets[rows.index] == main
        keep[rows.index[mine.to_numpy()]] = True
        left = int((~mine).sum())
        if left:
            notes.append(f"{task}: {left} trial(s) of another training budget left out (the table's is "
                         f"{_describe(main)})")
    return frame[keep].reset_index(drop=True), notes


def _rank(budget: tuple[float | None, ...]) -> tuple[float, ...]:
    return tuple(math.inf if v is None else v for v in budget)


def _describe(budget: tuple[float | None, ...]) -> str:
    examples, epochs, length = budget
    text = f"{'all' if examples is None else int(examples)} training examples, {int(epochs or 0)} epochs"
    return text if length is None else f"{text}, max length {int(length)}"
