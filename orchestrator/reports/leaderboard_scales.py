"""The leaderboards by scale, each with its reference rows (issue 36 item 5).

A scale is the uncompressed model every method of a section starts from (all-mpnet-base-v2 at the papers'
110 M, MiniLM-L6 at 23 M): methods compared across scales would compare models, not methods, so every page
has one section per scale, largest first, each with its own training budget in its title.

Reference rows, per section and task: the FFT teacher (an FFT trial of the section's model), and for KD-LoRA
the student's own FFT ceiling: an FFT trial of the KD-LoRA student's model on the same task with the same
budget. A ceiling trial's own model is the student, so it would open a scale of its own; it is moved into its
student's section instead, named `<student> (student ceiling)`, its sizes read against the section's model.
Every KD-LoRA cell then states its share of both (`reference_note`), or that the ceiling was not measured.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator import recipes
from orchestrator.config.budgets import budget_of, number, one_budget_per_task
from orchestrator.reports.references import row_reference
from orchestrator.tasks import at_chance

CEILING = "student ceiling"  # how a ceiling row's model is named in the tables
BASE_COLUMNS = ("base_params", "base_params_no_embeddings", "base_flops")


@dataclass(frozen=True)
class Scale:
    model: str           # the uncompressed model the section's methods start from (model_name)
    size: float | None   # its parameter count
    frame: pd.DataFrame  # its trials and reference rows, one training budget per task, reference_note set

    def title(self) -> str:
        # sizes as the papers quote them: "110 M" (BERT-base's 109.5 M), "23 M"
        if self.size is None:
            return self.model
        millions = self.size / 1e6
        return f"{self.model}, {round(millions, -1 if millions >= 100 else 0):.0f} M parameters"


def _recipe(row: pd.Series) -> recipes.Recipe | None:
    return recipes.RECIPES.get(str(row.get("method.name")))


def _is_fft(row: pd.Series) -> bool:
    recipe = _recipe(row)
    return recipe is not None and recipe.is_full_finetune


def student_name(row: pd.Series) -> str | None:
    """The folder name of the model a trial's deployable network was trained from apart from its own model
    (KD-LoRA's student), or None."""
    recipe = _recipe(row)
    student = recipe.student_model(row) if recipe is not None else None
    return Path(student).name if student else None


def _mark_ceilings(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The trials with FFT trials of a KD-LoRA student (same task and budget) renamed as its ceiling and moved
    to that KD-LoRA trial's scale, and each row's scale. An FFT trial whose model is also a scale of its own (other
    methods start from it on the same task and budget: MiniLM-L6 is the paper scale's student and the MiniLM scale)
    is that scale's FFT teacher as well: it stays there and a copy becomes the ceiling."""
    budgets = frame.apply(budget_of, axis=1)
    teachers: dict[tuple[Any, ...], str] = {}  # (task, budget, student) -> the KD-LoRA trials' model
    compressed: set[tuple[Any, ...]] = set()   # (task, budget, model) some other method starts from
    for i, row in frame.iterrows():
        student = student_name(row)
        if student is not None:
            teachers[(row["task"], budgets[i], student)] = str(row["model_name"])
        if not _is_fft(row):
            compressed.add((row["task"], budgets[i], row["model_name"]))
    frame["ceiling_of"] = None
    ceilings, ceiling_scales, moved = [], [], []
    for i, row in frame.iterrows():
        key = (row["task"], budgets[i], row["model_name"])
        teacher = teachers.get(key)
        if teacher is None or teacher == row["model_name"] or not _is_fft(row):
            continue
        ceilings.append(row.copy())
        ceilings[-1]["ceiling_of"] = row["model_name"]
        ceilings[-1]["model_name"] = f"{row['model_name']} ({CEILING})"
        ceiling_scales.append(teacher)
        if key not in compressed:  # only a ceiling: it leaves its own scale
            moved.append(i)
    kept = frame.drop(index=moved)
    return (pd.concat([kept, pd.DataFrame(ceilings, columns=frame.columns)], ignore_index=True),
            pd.concat([kept["model_name"].astype(str), pd.Series(ceiling_scales, dtype=str)], ignore_index=True))


def _size(rows: pd.DataFrame) -> float | None:
    known = pd.to_numeric(rows["base_params"], errors="coerce").dropna() if "base_params" in rows else []
    return float(known.median()) if len(known) else None


def _on_section_axes(rows: pd.DataFrame, own: pd.DataFrame) -> None:
    """A ceiling reads on the section's axes, as references.kept_pct does: its base sizes become those of the
    section's own trials of the same task (FLOPs depend on the task's input length: IMDb's 256 tokens are not
    GLUE's 128). Edits `rows` in place."""
    ceilings = rows["ceiling_of"].notna()
    for column in BASE_COLUMNS:
        if column not in rows:
            continue
        for task in rows.loc[ceilings, "task"].unique():
            base = pd.to_numeric(own.loc[own["task"] == task, column], errors="coerce").dropna()
            if len(base):
                rows.loc[ceilings & (rows["task"] == task), column] = base.median()


def split_scales(frame: pd.DataFrame) -> tuple[list[Scale], list[str]]:
    """The scales of the gathered trials, largest model first, and what one_budget_per_task left out of each."""
    if not len(frame):
        return [], []
    frame, scale_of = _mark_ceilings(frame.copy())
    scales, left_out = [], []
    for model in scale_of.unique():
        rows, notes = one_budget_per_task(frame[scale_of == model])
        own = rows[rows["ceiling_of"].isna()]
        _on_section_axes(rows, own)
        left_out += [f"{model} scale, {note}" for note in notes]
        scales.append(Scale(str(model), _size(own), annotate(rows)))
    scales.sort(key=lambda s: (-(s.size or 0), s.model))
    return scales, left_out


def _best(rows: pd.DataFrame) -> pd.Series | None:
    return rows.sort_values("metric", ascending=False).iloc[0] if len(rows) else None


CUT_STUDENT = "no ceiling: a student cut from the teacher"  # no checkpoint of its own to fine-tune alone
AT_CHANCE_CEILING = "ceiling at or below the constant prediction"


def annotate(rows: pd.DataFrame) -> pd.DataFrame:
    """`reference_note` on every trial that trains a student: its share of the FFT teacher and of its student's
    ceiling, on the task's primary metric ('95.5 % FFT; 99.1 % ceiling')."""
    rows = rows.reset_index(drop=True)
    rows["reference_note"] = None
    fft = rows.apply(_is_fft, axis=1) if len(rows) else pd.Series(dtype=bool)
    for i, row in rows.iterrows():
        recipe = _recipe(row)
        if recipe is None or not recipe.trains_student:
            continue
        task = rows["task"] == row["task"]
        teacher = _best(rows[task & fft & (rows["model_name"] == row["model_name"])])
        share = None if teacher is None else row_reference("FFT", teacher).share(row["metric"])
        parts = ["FFT not measured" if share is None else f"{share:.1f} % FFT"]
        student = student_name(row)
        parts.append(CUT_STUDENT if student is None else _ceiling_part(row, student, rows[task]))
        rows.at[i, "reference_note"] = "; ".join(parts)
    return rows


def _ceiling_part(row: pd.Series, student: str, task_rows: pd.DataFrame) -> str:
    """'98.1 % ceiling', '99.0 % cached ceiling' (its own sweep's) or 'ceiling not measured'; no share of a ceiling
    that learned nothing (MiniLM-L3 on MRPC scores below the majority class: a share of it reads 107 %)."""
    ceiling = _best(task_rows[task_rows["ceiling_of"] == student])
    if ceiling is not None and at_chance(str(ceiling["task"]), number(ceiling.get("metric"))):
        return AT_CHANCE_CEILING
    share = None if ceiling is None else row_reference("ceiling", ceiling).share(row["metric"])
    if share is not None:
        return f"{share:.1f} % ceiling"
    cached = _share_of_recorded(row, student)
    return "ceiling not measured" if cached is None else f"{cached:.1f} % cached ceiling"


def _share_of_recorded(row: pd.Series, student: str) -> float | None:
    """The row's metric as a % of the ceiling its own sweep recorded for `student` (leaderboard_rows.recorded_ceilings:
    the student's FFT cached as an auxiliary model, on its teacher's budget), where no listed sweep has an FFT trial
    of the student on the row's budget; None when the sweep recorded none."""
    recorded = row.get("recorded_ceilings")
    ceiling = json.loads(recorded).get(student) if isinstance(recorded, str) else None
    metric = number(row.get("metric"))
    return None if ceiling is None or metric is None or not ceiling > 0 else 100 * metric / ceiling


def cut_off_lines(rows: pd.DataFrame) -> list[str]:
    """A line per sweep that was cut off before writing trials.csv (its rows carry `cut_off`)."""
    if "cut_off" not in rows.columns:
        return []
    cut = rows[rows["cut_off"].notna()].drop_duplicates("sweep")
    return [f"- `{r['sweep']}` was {r['cut_off']}: its cells are the best of the trials that finished, "
            "read from their own folders." for _, r in cut.iterrows()]


def _section(markdown: str, scale: Scale, rows: pd.DataFrame) -> list[str]:
    # report's page writers are reused whole, so a section reads exactly as a single-scale page did: its title
    # becomes the section's (scale and budget), its own subsections one level down
    lines = markdown.rstrip("\n").split("\n")
    budget = lines[0][lines[0].find("(") :] if "(" in lines[0] else ""
    body = [("#" + line) if line.startswith("## ") else line for line in lines[1:]]
    cut = cut_off_lines(rows)
    return [f"## {scale.title()} {budget}".rstrip(), *(["", "Cut off:", "", *cut] if cut else []), *body, ""]


def scaled_page(title: str, tasks: tuple[str, ...], scales: list[Scale],
                writer: Callable[[pd.DataFrame], str]) -> str:
    """A leaderboard page (`writer`: report's glue_markdown, text_markdown, cifar_markdown) with one section
    per scale that has trials of `tasks`; the writer's own empty page when none has."""
    mine = [(s, s.frame[s.frame["task"].isin(tasks)]) for s in scales]
    mine = [(s, rows) for s, rows in mine if len(rows)]
    if not mine:
        return writer(scales[0].frame.iloc[0:0] if scales else pd.DataFrame())
    lines = [f"# {title}, by scale", "",
             "One section per scale (the uncompressed model every method starts from, largest first), each with "
             "its own training budget in its title; numbers in different sections are not comparable.",
             "Reference rows: `fft` on the section's model is the FFT teacher (100 %); a `(" + CEILING + ")` row is "
             "the KD-LoRA student fully fine-tuned alone on the same task and budget, its sizes against the "
             "section's model. Each KD-LoRA cell gives its share of both on the task's primary metric (on the "
             "task's first column), or says the ceiling was not measured (or that there is none: a student cut from "
             "the teacher has no checkpoint of its own to fine-tune); a `cached ceiling` is the one the KD-LoRA "
             "trial's own sweep fine-tuned (on its teacher's budget) where no listed sweep has such a row.", ""]
    for scale, rows in mine:
        lines += _section(writer(rows), scale, rows)
    return "\n".join(lines).rstrip("\n") + "\n"
