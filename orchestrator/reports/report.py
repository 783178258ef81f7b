"""Every table and plot: one sweep's Pareto front (pareto.md, pareto.png) and ablation tables, and the
leaderboards' GLUE / CIFAR / compression tables and per-task plots.

Pure functions of a trials table (one row per trial, as trials.csv holds it, or the leaderboards'
gathered frame): no Ray, no MLflow, so reports can be rebuilt from committed files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orchestrator import recipes
from orchestrator.base.pareto import pareto_mask
from orchestrator.config.budgets import budget_text  # noqa: F401 - titles; re-exported for report_html
from orchestrator.config.budgets import number as _num
from orchestrator.config.constraints import KEPT_PCT
from orchestrator.config.schema import Config, objective_pairs
from orchestrator.reports.marks import mark_notes, quality_mark
from orchestrator.tasks import TASKS, glue_score

METHOD_ORDER = recipes.METHODS  # baselines first, as the papers lay tables out
BUDGETS = (50, 25, 10, 5)  # compression.md: best metric at or under this % of the base model
# (header, task, column): the GLUE columns as the papers report them. MNLI-mm is filled when a
# trial reports `accuracy_mm` (the mismatched validation split); the loop evaluates matched only.
GLUE_COLUMNS = (
    ("CoLA (MCC)", "glue/cola", "mcc"),
    ("SST-2 (acc)", "glue/sst2", "accuracy"),
    ("MRPC (acc)", "glue/mrpc", "accuracy"),
    ("MRPC (F1)", "glue/mrpc", "f1"),
    ("STS-B (P)", "glue/stsb", "pearson"),
    ("STS-B (S)", "glue/stsb", "spearman"),
    ("QQP (acc)", "glue/qqp", "accuracy"),
    ("QQP (F1)", "glue/qqp", "f1"),
    ("MNLI-m", "glue/mnli", "accuracy"),
    ("MNLI-mm", "glue/mnli", "accuracy_mm"),
    ("QNLI (acc)", "glue/qnli", "accuracy"),
    ("RTE (acc)", "glue/rte", "accuracy"),
    ("WNLI (acc)", "glue/wnli", "accuracy"),
)
CIFAR_COLUMNS = (
    ("CIFAR-10 (acc)", "cifar10", "accuracy"),
    ("CIFAR-100 (acc)", "cifar100", "accuracy"),
)
TEXT_COLUMNS = (("IMDb (acc)", "imdb", "accuracy"),)
GLUE_TASKS = tuple(t for t in TASKS if t.startswith("glue/"))


def counted(cfg: Config, trials: pd.DataFrame) -> pd.DataFrame:
    """The trials a front is drawn from: full budget, and within `search.constraints` (recomputed from the
    row, so a report rebuilt from trials.csv agrees with the sweep)."""
    from orchestrator.config.constraints import is_feasible, parse_all

    if not len(trials):
        return trials
    done = trials[trials["full_budget"].astype(bool)]
    constraints = parse_all(cfg.search.constraints)
    if constraints and len(done):
        done = done[[is_feasible(constraints, row) for _, row in done.iterrows()]]
    return done


def front_of(cfg: Config, trials: pd.DataFrame) -> pd.DataFrame:
    """The non-dominated full-budget trials under the sweep's objectives (and within its constraints)."""
    pairs = objective_pairs(cfg)
    names = [m for m, _ in pairs]
    done = counted(cfg, trials)
    done = done.dropna(subset=[n for n in names if n in done.columns])
    if len(done) == 0 or any(n not in done.columns for n in names):
        return done.iloc[0:0]
    mask = pareto_mask(done[names].to_numpy(dtype=float), [d for _, d in pairs])
    return done[mask].sort_values(names[0], ascending=pairs[0][1] == "min")


def ablation_table(cfg: Config, trials: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std (over seeds) of every objective, per cell of the searched keys, full-budget trials only."""
    keys = [k for k in cfg.space if k in trials.columns]
    done = trials[trials["full_budget"].astype(bool)]
    metrics = [m for m, _ in objective_pairs(cfg) if m in done.columns]
    grouped = done.groupby(keys, dropna=False)[metrics]
    table = grouped.agg(["mean", "std", "count"])
    table.columns = [f"{m}_{stat}" for m, stat in table.columns]
    return table.reset_index()


def ablation_markdown(cfg: Config, trials: pd.DataFrame) -> str:
    table = ablation_table(cfg, trials)
    keys = [k for k in cfg.space if k in table.columns]
    metrics = [m for m, _ in objective_pairs(cfg) if f"{m}_mean" in table.columns]
    lines = [f"# Ablation: {cfg.name}", "",
             f"Task {cfg.task}, model {Path(cfg.model).name}; mean ± std over seeds {cfg.search.seeds} "
             "(full-budget trials; n = trials per cell).", "",
             "| " + " | ".join(keys + metrics + ["n"]) + " |", "|" + "---|" * (len(keys) + len(metrics) + 1)]
    for _, row in table.iterrows():
        cells = [str(row[k]) for k in keys]
        for m in metrics:
            std = row[f"{m}_std"]
            cells.append(f"{row[f'{m}_mean']:.4g} ± {0.0 if pd.isna(std) else std:.2g}")
        cells.append(str(int(row[f"{metrics[0]}_count"])) if metrics else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pareto_markdown(cfg: Config, front: pd.DataFrame, trials: pd.DataFrame, references: list | None = None) -> str:
    """The front as a table; then the reference rows (orchestrator/reports/references.py) it is judged against, or
    that there are none (`references=None`: no such section)."""
    pairs = objective_pairs(cfg)
    lines = [f"# Pareto front: {cfg.name}", "",
             f"Task {cfg.task}, model {Path(cfg.model).name}; objectives "
             + ", ".join(f"{m} ({d})" for m, d in pairs)
             + f". {len(front)} of {int(trials['full_budget'].sum()) if len(trials) else 0} full-budget trials "
             f"({len(trials)} in all) are non-dominated"
             + (f" among the {len(counted(cfg, trials))} within the constraints "
                f"({', '.join(cfg.search.constraints)}); the others are infeasible" if cfg.search.constraints else "")
             + ".", ""]
    searched = sorted({k for s in trials.get("searched", pd.Series(dtype=str)).dropna() for k in s.split(",") if k})
    cols = ["trial_id", "method.name"] + [k for k in searched if k != "method.name"]
    # Sizes on both bases: the whole model, and the encoder without embeddings (the papers' basis).
    cols += ["metric", "params", "params_kept_pct", "encoder_params_kept_pct", "flops", "flops_kept_pct"]
    kept = KEPT_PCT
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for _, row in front.iterrows():
        cells = []
        for c in cols:
            if c in kept:
                part, whole = kept[c]
                value = 100 * row[part] / row[whole] if part in row and whole in row else float("nan")
            else:
                value = row.get(c, "")
            if isinstance(value, float) and not np.isnan(value):
                value = f"{value:.4g}" if c not in kept else f"{value:.1f}"
            elif isinstance(value, float):
                value = ""
            cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    if references is not None:
        lines += ["", *_reference_markdown(front, trials, references)]
    return "\n".join(lines) + "\n"


def _reference_markdown(front: pd.DataFrame, trials: pd.DataFrame, references: list) -> list[str]:
    from orchestrator.reports.references import judged_best, kept_pct, missing_note

    if not references:
        return [f"Reference: {missing_note(trials)}."]
    rows = []
    for ref in references:
        kept = kept_pct(ref, trials)
        share = ref.share(judged_best(ref, trials, front)[0])  # a student's ceiling judges that student's best
        rows.append([ref.name, f"{ref.metric:.4g}", *("" if v is None else f"{v:.1f}" for v in kept.values()),
                     "" if share is None else f"{share:.1f}", ref.source])
    return ["References (what the front is judged against; sizes as % of the sweep's uncompressed model):", "",
            *_md_table(["reference", "metric", *KEPT_PCT, "best judged (front's; a ceiling: its student's), % of it", "record"], rows)]


# ------------------------------------------------------------------------------------------- leaderboards: selection


def _method_rank(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def best_per_task(frame: pd.DataFrame) -> pd.DataFrame:
    """The best trial per (model, method, task) by the task's primary metric; ties go to the smaller
    model, then fewer FLOPs, then the sweep and trial id, so the choice never depends on file order."""
    if len(frame) == 0:
        return frame
    ordered = frame.sort_values(["metric", "params", "flops", "sweep", "trial_id"],
                                ascending=[False, True, True, True, True], kind="mergesort")
    return ordered.drop_duplicates(["model_name", "method.name", "task"]).reset_index(drop=True)


def _short(value: Any) -> str:
    v = _num(value)
    if v is None:
        return str(value)
    return str(int(v)) if v.is_integer() else f"{v:.2g}"


def config_label(row: pd.Series | dict[str, Any]) -> str:
    """The key settings of a trial's method (its recipe's label): rank, PC-LoRA's schedule, KD-LoRA's student."""
    return recipes.label(row)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _cell(row: pd.Series, column: str, task: str) -> float | None:
    value = _num(row.get(column))
    if value is None and column == TASKS[task].primary_metric:
        value = _num(row.get("metric"))
    return value


def _kept(rows: pd.DataFrame, cost: str) -> str:
    """% of the base model kept, over a row's best configurations: one value, or the range."""
    values = sorted({f"{100 * r[cost] / r['base_' + cost]:.1f}" for _, r in rows.iterrows()}, key=float)
    if not values:
        return "–"
    return values[0] if len(values) == 1 else f"{values[0]}–{values[-1]}"


def _groups(best: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    keys = sorted({(m, meth) for m, meth in zip(best["model_name"], best["method.name"], strict=True)},
                  key=lambda k: (k[0], _method_rank(k[1])))
    return [(m, meth, best[(best["model_name"] == m) & (best["method.name"] == meth)]) for m, meth in keys]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _sources(best: pd.DataFrame) -> list[str]:
    """Where each cell came from: one line per (model, method, task), then each sweep's command."""
    if len(best) == 0:
        return []
    order = sorted(best.index, key=lambda i: (best.at[i, "model_name"], _method_rank(best.at[i, "method.name"]),
                                              best.at[i, "task"]))
    rows = []
    for i in order:
        r = best.loc[i]
        max_examples = _num(r.get("train.max_examples"))
        rows.append([r["model_name"], r["method.name"], r["task"], f"{100 * r['metric']:.1f} ({r.get('metric_name')})",
                     config_label(r), _pct(r["params"] / r["base_params"]), _pct(r["flops"] / r["base_flops"]),
                     _short(r.get("train.epochs")) if _num(r.get("train.epochs")) is not None else "–",
                     "all" if max_examples is None else str(int(max_examples)),
                     str(r["sweep"]), str(r["trial_id"]), str(r["date"]), str(r["device"])])
    lines = ["", "## Sources", "",
             "Each cell above is the best full-budget trial of its (model, method, task); that trial is listed "
             "here (train examples: the training subset, `train.max_examples`; results on a subset are not "
             "comparable with the papers).", ""]
    lines += _md_table(["model", "method", "task", "metric ×100", "configuration", "params kept %",
                        "FLOPs kept %", "epochs", "train examples", "sweep", "trial", "date", "device"], rows)
    commands = sorted({(str(r["sweep"]), str(r["command"])) for _, r in best.iterrows()})
    lines += ["", "Commands:", ""] + [f"- `{sweep}`: `{command}`" for sweep, command in commands]
    return lines


def _header(title: str, frame: pd.DataFrame, tasks: tuple[str, ...]) -> list[str]:
    mine = frame[frame["task"].isin(tasks)] if len(frame) else frame
    n_sweeps = mine["sweep"].nunique() if len(mine) else 0
    return [f"# {title} ({budget_text(mine)})", "",
            f"Generated by `python -m orchestrator.leaderboard` from {len(mine)} finished full-budget trial(s) "
            f"in {n_sweeps} sweep(s) or run(s) listed in results/leaderboards/manifest.yaml (or, without one, "
            "every sweep under results/).", ""]


def _method_table(frame: pd.DataFrame, columns: tuple[tuple[str, str, str], ...], *, score: bool) -> list[str]:
    tasks = tuple(dict.fromkeys(t for _, t, _ in columns))
    best = best_per_task(frame[frame["task"].isin(tasks)]) if len(frame) else frame
    if len(best) == 0:
        return ["No finished full-budget trial of these tasks yet."]
    header = ["model", "method"] + [h for h, _, _ in columns]
    header += (["GLUE score", "tasks"] if score else []) + ["params kept %", "FLOPs kept %", "configuration"]
    rows = []
    for model, method, group in _groups(best):
        by_task = {r["task"]: r for _, r in group.iterrows()}
        cells = [model, method]
        noted: set[str] = set()
        for _, task, column in columns:
            if task not in by_task:
                cells.append("–")
                continue
            mark = quality_mark(task, by_task[task])
            # the leaderboard's share of its references (reference_note), once per task: on its first column
            note = by_task[task].get("reference_note") if task not in noted else None
            noted.add(task)
            cells.append(_pct(_cell(by_task[task], column, task)) + mark + (f" ({note})" if isinstance(note, str) else ""))
        if score:
            primaries: dict[str, float] = {}
            for task, r in by_task.items():
                mm = _num(r.get("accuracy_mm"))
                if task == "glue/mnli" and mm is not None:
                    primaries.update({"mnli-m": r["metric"], "mnli-mm": mm})
                else:
                    primaries[task] = r["metric"]
            cells += [_pct(glue_score(primaries)), f"{len(by_task)}/{len(GLUE_TASKS)}"]
        labels = {config_label(r) for r in by_task.values()}
        cells += [_kept(group, "params"), _kept(group, "flops"),
                  labels.pop() if len(labels) == 1 else "per task, see Sources"]
        rows.append(cells)
    return _md_table(header, rows) + mark_notes(rows) + _sources(best)


def glue_markdown(frame: pd.DataFrame) -> str:
    lines = _header("GLUE leaderboard", frame, GLUE_TASKS)
    lines += ["Validation-set scores ×100, as the GLUE papers report them (CoLA: Matthews correlation; STS-B: "
              "Pearson / Spearman; MRPC, QQP: accuracy / F1). For each model and method, each task's column "
              "holds its best configuration by the task's primary metric. GLUE score: the mean of the primary "
              "metrics (MRPC, QQP: mean of accuracy and F1; STS-B: mean of Pearson and Spearman; MNLI: matched, "
              "or the mean of m and mm when both are reported) over the tasks present in the row only — "
              "`tasks` says how many of the nine; rows with different tasks are not comparable. Params and "
              "FLOPs kept: the deployable model against the uncompressed one (forward FLOPs of one example), "
              "over the row's best configurations (a range when they differ).", ""]
    return "\n".join(lines + _method_table(frame, GLUE_COLUMNS, score=True)) + "\n"


def _accuracy_page(title: str, frame: pd.DataFrame, columns: tuple[tuple[str, str, str], ...], example: str) -> str:
    """A leaderboard of test-set accuracy columns (CIFAR, text classification): no GLUE score."""
    lines = _header(title, frame, tuple(task for _, task, _ in columns))
    lines += ["Test-set accuracy ×100. For each model and method, each column holds its best configuration by "
              "accuracy. Params and FLOPs kept: the deployable model against the uncompressed one (forward "
              f"FLOPs of one {example}), over the row's best configurations (a range when they differ).", ""]
    return "\n".join(lines + _method_table(frame, columns, score=False)) + "\n"


def cifar_markdown(frame: pd.DataFrame) -> str:
    return _accuracy_page("CIFAR leaderboard", frame, CIFAR_COLUMNS, "image")


def text_markdown(frame: pd.DataFrame) -> str:
    return _accuracy_page("Text classification leaderboard", frame, TEXT_COLUMNS, "example")


def under_budget(rows: pd.DataFrame, cost: str, budget_pct: float) -> pd.Series | None:
    """The best trial (by metric; ties: smaller cost, then sweep/trial id) whose `cost` is at most
    `budget_pct` % of its base model's, or None."""
    if len(rows) == 0:
        return None
    ratio = pd.to_numeric(rows[cost], errors="coerce") / pd.to_numeric(rows[f"base_{cost}"], errors="coerce")
    fit = rows[ratio <= budget_pct / 100]  # a row without the size (NaN) fits no budget
    if len(fit) == 0:
        return None
    ordered = fit.sort_values(["metric", cost, "sweep", "trial_id"], ascending=[False, True, True, True],
                              kind="mergesort")
    return ordered.iloc[0]


def _task_order(tasks: Any) -> list[str]:
    names = list(TASKS)
    return sorted(set(tasks), key=names.index)


# ------------------------------------------------------------------------------------------- plots


def task_slug(task: str) -> str:
    return task.replace("/", "-")
