"""The marks a report puts on a metric cell that is no model to ship: † no better than a constant prediction,
‡ collapsed (above it, but the run lost most of what it had learned on the way); and their legend."""

from __future__ import annotations

from typing import Any

import pandas as pd

from orchestrator.config.budgets import number
from orchestrator.tasks import at_chance, collapsed

CHANCE_MARK = " †"  # a cell no better than a constant prediction
COLLAPSE_MARK = " ‡"  # a cell above it, from a run that lost most of what it had learned on the way


def quality_mark(task: str, row: pd.Series | dict[str, Any]) -> str:
    """† for a trial no better than a constant prediction, ‡ for one above it that collapsed on the way (kept
    under half of its best epoch's gain over it), '' otherwise."""
    metric = number(row.get("metric"))
    if at_chance(task, metric):
        return CHANCE_MARK
    return COLLAPSE_MARK if collapsed(task, metric, number(row.get("best_epoch_metric"))) else ""


def mark_notes(rows: list[list[str]]) -> list[str]:
    """The legend of the marks the table's cells carry, one line each."""
    cells = [cell for row in rows for cell in row]
    notes = []
    if any(CHANCE_MARK in cell for cell in cells):
        notes.append(f"{CHANCE_MARK.strip()} at or below the best constant prediction on that split (the majority "
                     "class, or chance): the trial learned nothing.")
    if any(COLLAPSE_MARK in cell for cell in cells):
        notes.append(f"{COLLAPSE_MARK.strip()} collapsed: above the constant prediction, but the run ended with less "
                     "than half of the gain over it that it had after its best epoch; not a model to ship.")
    return ["", *notes] if notes else []
