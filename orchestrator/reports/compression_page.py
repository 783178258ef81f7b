"""compression.md: per task and base model, the best primary metric any method reaches at or under each budget
(BUDGETS: % of the base model's parameters, encoder parameters and FLOPs), below its FFT and LoRA references.
A pure function of the leaderboards' gathered frame, as the other pages in orchestrator/reports/report.py."""

from __future__ import annotations

import math

import pandas as pd

from orchestrator import recipes
from orchestrator.config.budgets import budget_text
from orchestrator.reports.marks import mark_notes, quality_mark
from orchestrator.reports.report import (
    BUDGETS,
    _header,
    _md_table,
    _pct,
    _task_order,
    config_label,
    under_budget,
)
from orchestrator.tasks import TASKS


def compression_markdown(frame: pd.DataFrame) -> str:
    lines = _header("Compression leaderboard", frame, tuple(TASKS))
    lines += ["Per task and base model: the best primary metric (×100) reached by any method at or under "
              f"{', '.join(f'{b} %' for b in BUDGETS)} of the base model's parameters (the deployable model) "
              "and of its forward FLOPs (one example). FFT and LoRA, the uncompressed references, are given "
              "above each table.", ""]
    if len(frame) == 0:
        return "\n".join(lines + ["No finished full-budget trial yet."]) + "\n"
    used = []
    for task in _task_order(frame["task"]):
        for model in sorted(frame.loc[frame["task"] == task, "model_name"].unique()):
            rows = frame[(frame["task"] == task) & (frame["model_name"] == model)]
            base = rows.iloc[0]
            metric_name = rows["metric_name"].dropna().iloc[0] if rows["metric_name"].notna().any() else "metric"
            sizes = (f"{base['base_params'] / 1e6:.2f} M parameters, {base['base_flops'] / 1e9:.3g} GFLOPs per "
                     f"example; metric: {metric_name}.")
            lines += [f"## {task} — {model} ({budget_text(rows)})", ""]  # each section its own budget
            if "ceiling_of" in rows.columns and rows["ceiling_of"].notna().all():
                # a student's own FFT moved beside the teacher it is a student of (leaderboard_scales): a reference
                lines += ["A KD-LoRA student's own full fine-tuning (its ceiling), a reference row, not a compression "
                          f"method; sizes as % of the teacher its KD-LoRA trials distil from: {sizes}", ""]
            else:
                lines += [f"Base model: {sizes}", *_baseline_references(rows, used), ""]
            # Both parameter bases: the whole model, and the encoder without embeddings (the papers' basis).
            bases = [("params", "parameters"), ("params_no_embeddings", "encoder parameters (no embeddings)"),
                     ("flops", "FLOPs")]
            for cost, label in bases:
                if cost not in rows.columns or f"base_{cost}" not in rows.columns:
                    continue
                table = []
                for budget in BUDGETS:
                    best = under_budget(rows, cost, budget)
                    if best is None:
                        table.append([f"≤ {budget} %", "–", "–", "–", "–", "–", "–"])
                        continue
                    used.append(best)
                    mark = quality_mark(task, best)
                    table.append([f"≤ {budget} %", f"{100 * best['metric']:.1f}{mark}", str(best["method.name"]),
                                  config_label(best), _pct(best[cost] / best[f"base_{cost}"]),
                                  f"{best['sweep']}/{best['trial_id']}", str(best["date"])])
                lines += [f"By {label}:", ""]
                lines += _md_table(["budget", metric_name, "method", "configuration", f"{label} kept %",
                                    "sweep/trial", "date"], table) + mark_notes(table)
                lines.append("")
    if used:
        picked = pd.DataFrame(used)
        lines += ["## Sources", "", "Devices and commands of the trials above:", ""]
        for (sweep, command), group in sorted(picked.groupby(["sweep", "command"])):
            devices = ", ".join(sorted(set(map(str, group["device"]))))
            lines.append(f"- `{sweep}` ({devices}): `{command}`")
    return "\n".join(lines) + "\n"


def _baseline_references(rows: pd.DataFrame, used: list) -> list[str]:
    """'References: FFT 59.1 (sweep/trial); LoRA 53.7 (...).': each baseline's best on the section's model (the
    rows it names are appended to `used`, for the Sources)."""
    refs = []
    for method in recipes.BASELINES:
        ref = under_budget(rows[rows["method.name"] == method], "params", math.inf)
        refs.append(f"{recipes.get_recipe(method).display_name} "
                    + ("–" if ref is None else f"{100 * ref['metric']:.1f} ({ref['sweep']}/{ref['trial_id']})"))
        if ref is not None:
            used.append(ref)
    return ["References: " + "; ".join(refs) + "."]
