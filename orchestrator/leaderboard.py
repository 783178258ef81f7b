"""GLUE, CIFAR and compression leaderboards, gathered from every finished trial under results/.

    python -m orchestrator.leaderboard [--results results/] [--tracking-uri URI]

Reads every sweep's `results/<sweep>/trials.csv`, every single run's `metrics.json` (with the
`config.yaml` beside it, as `orchestrator.train` writes them) and, with --tracking-uri, the finished
runs of an MLflow store; keeps full-budget trials only, and writes `results/leaderboards/`:
`glue.md`, `cifar.md`, `compression.md`, one `<task>.png` per task and a `README.md` that embeds the
plots. Every cell comes from one trial and each table lists where (sweep, trial, date, device,
command). The output depends on the data alone (rows sorted, dates taken from the files) and every
file is written under a temporary name and renamed, so a rerun is byte-identical and a reader never
sees a half-written file. Sweeps call `refresh` when they finish.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from orchestrator import recipes
from orchestrator.cli import run_main
from orchestrator.config import ConfigError
from orchestrator.fs import atomic_path, atomic_write_text, file_lock
from orchestrator.pareto import pareto_mask
from orchestrator.tasks import TASKS, glue_score

LEADERBOARD_DIR = "leaderboards"
LOCK_FILE = ".leaderboards.lock"  # in results/, so two sweeps finishing together take turns
# Folders under results/ that hold no trials of their own: ours, KD-LoRA teachers (fine-tuned
# helpers, not baselines), MLflow's copies of metrics.json, Ray's experiment and checkpoint folders.
SKIP_TOP = {LEADERBOARD_DIR, "teachers", "mlartifacts", "mlruns"}
SKIP_ANY = {"tune", "ray", "model", "__pycache__"}
NOT_RECORDED = "not recorded"
# Provenance columns every gathered row carries, then the columns the tables need.
PROVENANCE = ("sweep", "trial_id", "date", "device", "command", "source")
REQUIRED = ("task", "model", "method.name", "metric", "params", "base_params", "flops", "base_flops")
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
GLUE_TASKS = tuple(t for t in TASKS if t.startswith("glue/"))


# ------------------------------------------------------------------------------------------- gathering


def _date(mtime: float) -> str:
    return datetime.fromtimestamp(mtime, tz=timezone.utc).strftime("%Y-%m-%d")


def _here(path: Path) -> Path:
    """`path` relative to where the command runs when it lies below it: committed tables name no home folder."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _sweep_command(results_dir: Path, sweep: str) -> str:
    return f"python -m orchestrator.sweep --config {_here(results_dir / sweep / 'sweep.yaml')}"


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "1.0")


def _device(value: Any) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return NOT_RECORDED  # trials.csv written before the loop recorded its device
    return str(value)


def _flatten(config: dict[str, Any]) -> dict[str, Any]:
    """config.yaml as the dotted scalar keys trials.csv uses."""
    from orchestrator.config import flat_scalars

    return flat_scalars(config)


def _missing(row: dict[str, Any]) -> list[str]:
    return [k for k in REQUIRED if row.get(k) is None or (isinstance(row.get(k), float) and math.isnan(row[k]))]


def _sweep_rows(csv_path: Path, results_dir: Path, problems: list[str]) -> list[dict[str, Any]]:
    try:
        trials = pd.read_csv(csv_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        problems.append(f"{csv_path}: not a readable CSV ({exc}); rerun the sweep with --resume to rewrite it")
        return []
    absent = [c for c in ("trial_id", "full_budget", *REQUIRED) if c not in trials.columns]
    if absent:
        problems.append(f"{csv_path}: missing column(s) {', '.join(absent)}; it is not a trials.csv written by "
                        "orchestrator.sweep (rerun the sweep with --resume, or move the file out of results/)")
        return []
    done = trials["full_budget"].map(_truthy)
    if "status" in trials.columns:
        done &= trials["status"].astype(str) == "complete"
    sweep = csv_path.parent.name
    provenance = {"sweep": sweep, "date": _date(csv_path.stat().st_mtime),
                  "command": _sweep_command(results_dir, sweep), "source": "trials.csv"}
    rows = []
    for record in trials[done].to_dict("records"):
        row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
        row.update(provenance, trial_id=str(row["trial_id"]), device=_device(row.get("device")))
        if _missing(row):
            problems.append(f"{csv_path}: full-budget trial {row['trial_id']} has no {', '.join(_missing(row))}")
            continue
        rows.append(row)
    return rows


def _metrics_files(results_dir: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(results_dir):
        top = Path(root) == results_dir
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_ANY
                         and not (top and d in SKIP_TOP))
        if "metrics.json" in files:
            yield Path(root) / "metrics.json"


def _run_row(path: Path, results_dir: Path, problems: list[str]) -> dict[str, Any] | None:
    """A single run's (or a sweep trial's) metrics.json and config.yaml; None when it is not finished."""
    try:
        metrics = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: not valid JSON ({exc}); delete the run folder or rerun it")
        return None
    if not isinstance(metrics, dict) or not metrics.get("full_budget"):
        return None
    config_path = path.with_name("config.yaml")
    if not config_path.is_file():
        problems.append(f"{path}: no config.yaml beside it, so its model and method are unknown; "
                        "rerun it with python -m orchestrator.train --config FILE --out DIR")
        return None
    config = yaml.safe_load(config_path.read_text()) or {}
    row: dict[str, Any] = {**_flatten(config), **{k: v for k, v in metrics.items() if k not in ("task", "method")}}
    row["task"] = config.get("task", metrics.get("task"))
    row["method.name"] = (config.get("method") or {}).get("name", metrics.get("method"))
    rel = path.parent.relative_to(results_dir)
    if len(rel.parts) == 3 and rel.parts[1] == "trials":  # a sweep trial whose trials.csv is not written yet
        sweep, trial_id, command = rel.parts[0], rel.parts[2], _sweep_command(results_dir, rel.parts[0])
    else:
        run_dir = path.parent
        sweep, trial_id = rel.as_posix(), run_dir.name
        command = f"python -m orchestrator.train --config {_here(config_path)} --out {_here(run_dir)}"
    row.update(sweep=sweep, trial_id=trial_id, date=_date(path.stat().st_mtime), device=_device(metrics.get("device")),
               command=command, source="metrics.json", status="complete", full_budget=True)
    if _missing(row):
        problems.append(f"{path}: a finished run without {', '.join(_missing(row))}")
        return None
    return row


def _param(value: str) -> Any:
    """An MLflow param (always a string) back to the type trials.csv would hold."""
    if value in ("null", "None", ""):
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def mlflow_rows(client: Any) -> list[dict[str, Any]]:
    """Finished full-budget runs of every experiment an MLflow client sees (KD-LoRA teachers left out)."""
    rows = []
    for exp in sorted(client.search_experiments(), key=lambda e: e.name):
        if exp.name.startswith("teacher-"):
            continue
        token = None
        while True:
            page = client.search_runs([exp.experiment_id], filter_string="tags.full_budget = 'true'",
                                      max_results=1000, page_token=token)
            for run in page:
                if run.info.status != "FINISHED":
                    continue
                params, tags = run.data.params, run.data.tags
                row: dict[str, Any] = {k: _param(v) for k, v in params.items()}
                row.update(run.data.metrics)
                row["task"] = params.get("task", tags.get("task"))
                row["method.name"] = params.get("method.name", tags.get("method"))
                if row["task"] in TASKS:
                    row.setdefault("metric_name", TASKS[row["task"]].primary_metric)
                if "mlflow.parentRunId" in tags:
                    command = f"python -m orchestrator.sweep --config {params.get('results_dir', 'results')}/" \
                              f"{exp.name}/sweep.yaml"
                else:
                    command = f"python -m orchestrator.train (config.yaml: artifact of MLflow run {run.info.run_id})"
                row.update(sweep=exp.name, trial_id=tags.get("trial_id", run.info.run_id),
                           date=_date((run.info.end_time or run.info.start_time) / 1000),
                           device=_device(tags.get("device")), command=command, source="mlflow",
                           status="complete", full_budget=True)
                if not _missing(row):
                    rows.append(row)
            token = getattr(page, "token", None)
            if not token:
                break
    return rows


def _key(row: dict[str, Any]) -> tuple[str, ...]:
    """The same trial seen twice (trials.csv and MLflow): its id, task, method and model."""
    return (str(row["trial_id"]), str(row["task"]), str(row["method.name"]), Path(str(row["model"])).name)


def gather(results_dir: Path, tracking_uri: str | None = None) -> pd.DataFrame:
    """Every finished full-budget trial under `results_dir` (and in MLflow at `tracking_uri`), one row each,
    with its provenance columns (sweep, trial_id, date, device, command, source); sorted, deduplicated.

    Raises ConfigError naming every unreadable or malformed file at once.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ConfigError([f"--results: {results_dir} is not a folder; run a sweep first "
                           "(python -m orchestrator.sweep --config FILE) or point --results at the folder "
                           "that holds <sweep>/trials.csv"])
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    with_csv = set()
    for csv_path in sorted(results_dir.glob("*/trials.csv")):
        sweep = csv_path.parent.name
        if sweep.startswith(".") or sweep in SKIP_TOP:
            continue
        with_csv.add(sweep)
        rows += _sweep_rows(csv_path, results_dir, problems)
    seen_paths = set()
    for path in _metrics_files(results_dir):
        rel = path.parent.relative_to(results_dir).parts
        if len(rel) == 3 and rel[1] == "trials" and rel[0] in with_csv:
            continue  # this trial is a row of its sweep's trials.csv
        if path.resolve() in seen_paths:  # a symlinked folder
            continue
        seen_paths.add(path.resolve())
        row = _run_row(path, results_dir, problems)
        if row is not None:
            rows.append(row)
    if tracking_uri:
        from mlflow.tracking import MlflowClient

        known = {_key(r) for r in rows}
        rows += [r for r in mlflow_rows(MlflowClient(tracking_uri)) if _key(r) not in known]
    if problems:
        raise ConfigError(problems)
    unknown = sorted({str(r["task"]) for r in rows if r["task"] not in TASKS})
    if unknown:
        raise ConfigError([f"trials of unknown task(s) {', '.join(unknown)}; tasks are {', '.join(TASKS)}"])
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys([*PROVENANCE, *REQUIRED,
                                                            *(k for r in rows for k in r)])))
    if len(frame):
        frame = frame.drop_duplicates(subset=["sweep", "trial_id", "task", "method.name"])
        frame = frame.sort_values(["task", "sweep", "trial_id"]).reset_index(drop=True)
        for col in ("metric", "params", "base_params", "flops", "base_flops"):
            frame[col] = frame[col].astype(float)
    frame["model_name"] = [Path(str(m)).name for m in frame["model"]]
    return frame


# ------------------------------------------------------------------------------------------- selection


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


def _num(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


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
    return [f"# {title}", "",
            f"Generated by `python -m orchestrator.leaderboard` from {len(mine)} finished full-budget trial(s) "
            f"in {n_sweeps} sweep(s) or run(s); rerun it (sweeps do so when they finish) to refresh.", ""]


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
        for _, task, column in columns:
            cells.append(_pct(_cell(by_task[task], column, task)) if task in by_task else "–")
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
    return _md_table(header, rows) + _sources(best)


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


def cifar_markdown(frame: pd.DataFrame) -> str:
    lines = _header("CIFAR leaderboard", frame, ("cifar10", "cifar100"))
    lines += ["Test-set accuracy ×100. For each model and method, each column holds its best configuration by "
              "accuracy. Params and FLOPs kept: the deployable model against the uncompressed one (forward "
              "FLOPs of one image), over the row's best configurations (a range when they differ).", ""]
    return "\n".join(lines + _method_table(frame, CIFAR_COLUMNS, score=False)) + "\n"


def under_budget(rows: pd.DataFrame, cost: str, budget_pct: float) -> pd.Series | None:
    """The best trial (by metric; ties: smaller cost, then sweep/trial id) whose `cost` is at most
    `budget_pct` % of its base model's, or None."""
    if len(rows) == 0:
        return None
    ratio = rows[cost] / rows[f"base_{cost}"]
    fit = rows[ratio <= budget_pct / 100]
    if len(fit) == 0:
        return None
    ordered = fit.sort_values(["metric", cost, "sweep", "trial_id"], ascending=[False, True, True, True],
                              kind="mergesort")
    return ordered.iloc[0]


def _task_order(tasks: Any) -> list[str]:
    names = list(TASKS)
    return sorted(set(tasks), key=names.index)


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
            lines += [f"## {task} — {model}", "",
                      f"Base model: {base['base_params'] / 1e6:.2f} M parameters, "
                      f"{base['base_flops'] / 1e9:.3g} GFLOPs per example; metric: {metric_name}."]
            refs = []
            for method in recipes.BASELINES:
                ref = under_budget(rows[rows["method.name"] == method], "params", math.inf)
                refs.append(f"{recipes.get_recipe(method).display_name} "
                            + ("–" if ref is None else f"{100 * ref['metric']:.1f} ({ref['sweep']}/{ref['trial_id']})"))
                if ref is not None:
                    used.append(ref)
            lines += ["References: " + "; ".join(refs) + ".", ""]
            for cost, label in (("params", "parameters"), ("flops", "FLOPs")):
                table = []
                for budget in BUDGETS:
                    best = under_budget(rows, cost, budget)
                    if best is None:
                        table.append([f"≤ {budget} %", "–", "–", "–", "–", "–", "–"])
                        continue
                    used.append(best)
                    table.append([f"≤ {budget} %", f"{100 * best['metric']:.1f}", str(best["method.name"]),
                                  config_label(best), _pct(best[cost] / best[f"base_{cost}"]),
                                  f"{best['sweep']}/{best['trial_id']}", str(best["date"])])
                lines += [f"By {label}:", ""]
                lines += _md_table(["budget", metric_name, "method", "configuration", f"{label} kept %",
                                    "sweep/trial", "date"], table)
                lines.append("")
    if used:
        picked = pd.DataFrame(used)
        lines += ["## Sources", "", "Devices and commands of the trials above:", ""]
        for (sweep, command), group in sorted(picked.groupby(["sweep", "command"])):
            devices = ", ".join(sorted(set(map(str, group["device"]))))
            lines.append(f"- `{sweep}` ({devices}): `{command}`")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- plots


def task_slug(task: str) -> str:
    return task.replace("/", "-")


def plot_task(frame: pd.DataFrame, task: str, path: Path) -> None:
    """metric against parameters and against FLOPs for every method of one task; the Pareto front of
    all methods (metric max, cost min) drawn; FFT and LoRA of each model as horizontal reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = frame[frame["task"] == task]
    metric_name = rows["metric_name"].dropna().iloc[0] if rows["metric_name"].notna().any() else "metric"
    models = sorted(rows["model_name"].unique())
    methods = sorted(rows["method.name"].unique(), key=_method_rank)
    colours = {m: f"C{i}" for i, m in enumerate(methods)}
    markers = dict(zip(models, "osD^vP*X", strict=False))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, cost in zip(axes, ("params", "flops"), strict=True):
        for method in methods:
            for model in models:
                g = rows[(rows["method.name"] == method) & (rows["model_name"] == model)]
                if len(g):
                    label = method if len(models) == 1 else f"{method} ({model})"
                    ax.scatter(g[cost], 100 * g["metric"], color=colours[method], marker=markers.get(model, "o"),
                               s=36, alpha=0.7, label=label)
        values = rows[["metric", cost]].to_numpy(float)
        front = rows[pareto_mask(values, ["max", "min"])].sort_values([cost, "metric"])
        ax.step(front[cost], 100 * front["metric"], where="post", color="k", lw=1, ls="--")
        ax.scatter(front[cost], 100 * front["metric"], facecolors="none", edgecolors="k", s=100,
                   label="Pareto front (all methods)")
        for method, ls in zip(recipes.BASELINES, ("-", ":", "-.", "--"), strict=False):
            for model in models:
                ref = under_budget(rows[(rows["method.name"] == method) & (rows["model_name"] == model)],
                                   "params", math.inf)
                if ref is not None:
                    name = recipes.get_recipe(method).display_name
                    ax.axhline(100 * ref["metric"], color=colours[method], ls=ls, lw=1,
                               label=f"{name} {model}" if len(models) > 1 else name)
        for model in models:
            base = rows.loc[rows["model_name"] == model, f"base_{cost}"].iloc[0]
            ax.axvline(base, color="grey", lw=0.8, ls=":",
                       label="uncompressed" + (f" {model}" if len(models) > 1 else ""))
        spread = rows[cost].max() / max(rows[cost].min(), 1)
        if spread >= 10:  # a log axis only when the costs span a decade; else its labels collide
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter())
        ax.set_xlabel("parameters (deployable model)" if cost == "params" else "FLOPs (forward, one example)")
        ax.set_ylabel(f"{task} {metric_name} ×100")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{task}: metric against parameters and FLOPs ({len(rows)} trials)")
    fig.tight_layout()
    with _atomic(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    plt.close(fig)


# ------------------------------------------------------------------------------------------- writing


_atomic = atomic_path


_write_text = atomic_write_text


def _readme(tasks: list[str]) -> str:
    lines = ["# Leaderboards", "",
             "Written by `python -m orchestrator.leaderboard` (and by every sweep when it finishes) from all "
             "finished trials under results/.", "",
             "- [GLUE](glue.md)", "- [CIFAR](cifar.md)",
             "- [Compression: best metric at 50 / 25 / 10 / 5 % of the parameters and FLOPs](compression.md)", ""]
    for task in tasks:
        lines += [f"## {task}", "", f"![{task}: metric against parameters and FLOPs]({task_slug(task)}.png)", ""]
    return "\n".join(lines)


def write_leaderboards(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write glue.md, cifar.md, compression.md, <task>.png per task and README.md into `out_dir`;
    return the paths written, sorted."""
    out_dir = Path(out_dir)
    written = []
    for name, text in (("glue.md", glue_markdown(frame)), ("cifar.md", cifar_markdown(frame)),
                       ("compression.md", compression_markdown(frame))):
        _write_text(out_dir / name, text)
        written.append(out_dir / name)
    tasks = _task_order(frame["task"]) if len(frame) else []
    for task in tasks:
        plot_task(frame, task, out_dir / f"{task_slug(task)}.png")
        written.append(out_dir / f"{task_slug(task)}.png")
    _write_text(out_dir / "README.md", _readme(tasks))
    written.append(out_dir / "README.md")
    return sorted(written)


def _locked(results_dir: Path) -> contextlib.AbstractContextManager[None]:
    return file_lock(results_dir / LOCK_FILE)


def build(results_dir: Path, tracking_uri: str | None = None) -> list[Path]:
    """gather + write_leaderboards into results_dir/leaderboards, one writer at a time."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():  # refused before the lock file would create anything
        return write_leaderboards(gather(results_dir, tracking_uri), results_dir / LEADERBOARD_DIR)
    with _locked(results_dir):  # gathered under the lock: a sweep finishing meanwhile waits, then rewrites
        return write_leaderboards(gather(results_dir, tracking_uri), results_dir / LEADERBOARD_DIR)


def refresh(results_dir: Path | str) -> list[Path]:
    """What a sweep calls when it finishes: rebuild the leaderboards; never fails the sweep."""
    try:
        return build(Path(results_dir))
    except Exception as exc:  # the sweep's own results are already written; a leaderboard must not undo that
        print(f"warning: leaderboards not refreshed ({exc}); fix that and run "
              f"python -m orchestrator.leaderboard --results {results_dir}", file=sys.stderr)
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.leaderboard",
        description="Gather every finished full-budget trial under --results (and MLflow, with --tracking-uri) "
                    "and write <results>/leaderboards/: glue.md, cifar.md, compression.md, <task>.png, README.md.")
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="the results folder sweeps and runs write into (default: results)")
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="also read finished runs from this MLflow store (e.g. sqlite:///results/mlflow.db "
                             "or http://host:5000); trials already in a trials.csv are counted once")
    args = parser.parse_args(argv)
    results_dir = Path(args.results)
    written = build(results_dir, args.tracking_uri)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_main(main)
