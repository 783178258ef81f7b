"""The leaderboards' rows, read from where trials leave them: a sweep's trials.csv, a single run's metrics.json
and config.yaml, or the finished runs of an MLflow store; each row carrying its provenance (sweep, trial, date,
device, command). Split from orchestrator/leaderboard.py, which keeps the manifest, the tables and the files."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from orchestrator.base.numbers import is_missing
from orchestrator.base.sweep_folder import TRIALS, SweepFolder
from orchestrator.config.budgets import number
from orchestrator.config.records import TrialFiles, read_epochs, read_metrics
from orchestrator.recipes.auxiliary import FOLDERS as AUXILIARY_FOLDERS
from orchestrator.reports.references import read_record
from orchestrator.tasks import TASKS

LEADERBOARD_DIR = "leaderboards"
# Folders under results/ that hold no trials of their own: ours, the auxiliary models' caches (KD-LoRA teachers,
# students' FFT ceilings: fine-tuned helpers, not trials), MLflow's copies of metrics.json, Ray's experiment and
# checkpoint folders.
SKIP_TOP = {LEADERBOARD_DIR, *AUXILIARY_FOLDERS.values(), "mlartifacts", "mlruns"}
SKIP_ANY = {"tune", "ray", "model", "__pycache__"}
NOT_RECORDED = "not recorded"
# Provenance columns every gathered row carries, then the columns the tables need.
PROVENANCE = ("sweep", "trial_id", "date", "device", "command", "source")
REQUIRED = ("task", "model", "method.name", "metric", "params", "base_params", "flops", "base_flops")


def _date(unix: float) -> str:
    return datetime.fromtimestamp(unix, tz=timezone.utc).strftime("%Y-%m-%d")


def trial_date(run_dir: Path, metrics: dict[str, Any] | None = None,
               epochs: list[dict[str, Any]] | None = None) -> str:
    """The day a trial ran, from its own record: the last line of its epochs file (`epochs`, when already read),
    else the worker's start stamp in metrics.json; never a file's modification time, which a fresh clone resets."""
    for record in reversed(read_epochs(run_dir) if epochs is None else epochs):
        if isinstance(record.get("time"), (int, float)):
            return _date(float(record["time"]))
    if metrics is None:
        metrics = read_metrics(run_dir) or {}
    stamp = metrics.get("worker_start_unix") if isinstance(metrics, dict) else None
    return _date(float(stamp)) if isinstance(stamp, (int, float)) else NOT_RECORDED


def best_epoch_metric(epochs: list[dict[str, Any]]) -> float | None:
    """The best primary metric a trial reached after any epoch (None without an epochs file): what a run that
    ends far below it had learned, then lost (orchestrator.tasks.collapsed)."""
    finite = [v for v in (number(r.get("metric")) for r in epochs) if v is not None]
    return max(finite) if finite else None


def _trial_record(run_dir: Path, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a row reads from the trial's own folder (its epochs file read once): its date and its best epoch."""
    epochs = read_epochs(run_dir)
    return {"date": trial_date(run_dir, metrics, epochs), "best_epoch_metric": best_epoch_metric(epochs)}


def _here(path: Path) -> Path:
    """`path` relative to where the command runs when it lies below it: committed tables name no home folder."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _sweep_command(results_dir: Path, sweep: str) -> str:
    return f"python -m orchestrator.sweep --config {_here(SweepFolder.under(results_dir, sweep).sweep_yaml)}"


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "1.0")


def _device(value: Any) -> str:
    if value == "" or is_missing(value):
        return NOT_RECORDED  # trials.csv written before the loop recorded its device
    return str(value)


def _flatten(config: dict[str, Any]) -> dict[str, Any]:
    """config.yaml as the dotted scalar keys trials.csv uses."""
    from orchestrator.config.schema import flat_scalars

    return flat_scalars(config)


def _missing(row: dict[str, Any]) -> list[str]:
    return [k for k in REQUIRED if is_missing(row.get(k))]


def sweep_rows(csv_path: Path, results_dir: Path, problems: list[str]) -> list[dict[str, Any]]:
    try:
        trials = SweepFolder(csv_path.parent).read_trials()
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
    sweep = csv_path.parent.relative_to(results_dir).as_posix()
    provenance = {"sweep": sweep, "command": _sweep_command(results_dir, sweep), "source": "trials.csv",
                  "recorded_ceilings": recorded_ceilings(csv_path.parent)}
    rows = []
    for record in trials[done].to_dict("records"):
        row = {k: (None if is_missing(v) else v) for k, v in record.items()}
        row.update(provenance, trial_id=str(row["trial_id"]), device=_device(row.get("device")),
                   **_trial_record(SweepFolder(csv_path.parent).trial(row["trial_id"])))
        if _missing(row):
            problems.append(f"{csv_path}: full-budget trial {row['trial_id']} has no {', '.join(_missing(row))}")
            continue
        rows.append(row)
    return rows


def recorded_ceilings(sweep_dir: Path) -> str | None:
    """The student ceilings a sweep judged its trials against (its references.json: the students' own FFT, cached
    as auxiliary models, on their teacher's budget), as JSON {student folder name: metric}; None without any.
    A leaderboard falls back on them where no listed sweep has an FFT trial of that student."""
    try:
        references = read_record(sweep_dir) or []
    except (ValueError, TypeError, UnicodeDecodeError):  # not a references.json this code wrote
        return None
    found = {Path(r.judges).name: r.metric for r in references if r.judges and number(r.metric) is not None}
    return json.dumps(found, sort_keys=True) if found else None


def metrics_files(results_dir: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(results_dir):
        top = Path(root) == results_dir
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_ANY
                         and not (top and d in SKIP_TOP))
        if TrialFiles.METRICS in files:
            yield Path(root) / TrialFiles.METRICS


def run_row(path: Path, results_dir: Path, problems: list[str]) -> dict[str, Any] | None:
    """A single run's (or a sweep trial's) metrics.json and config.yaml; None when it is not finished."""
    try:
        metrics = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: not valid JSON ({exc}); delete the run folder or rerun it")
        return None
    if not isinstance(metrics, dict) or not metrics.get("full_budget"):
        return None
    config_path = path.with_name(TrialFiles.CONFIG)
    if not config_path.is_file():
        problems.append(f"{path}: no config.yaml beside it, so its model and method are unknown; "
                        "rerun it with python -m orchestrator.train --config FILE --out DIR")
        return None
    config = yaml.safe_load(config_path.read_text()) or {}
    row: dict[str, Any] = {**_flatten(config), **{k: v for k, v in metrics.items() if k not in ("task", "method")}}
    row["task"] = config.get("task", metrics.get("task"))
    row["method.name"] = (config.get("method") or {}).get("name", metrics.get("method"))
    rel = path.parent.relative_to(results_dir)
    if len(rel.parts) == 3 and rel.parts[1] == TRIALS:  # a sweep trial whose trials.csv is not written yet
        sweep, trial_id, command = rel.parts[0], rel.parts[2], _sweep_command(results_dir, rel.parts[0])
    else:
        run_dir = path.parent
        sweep, trial_id = rel.as_posix(), run_dir.name
        command = f"python -m orchestrator.train --config {_here(config_path)} --out {_here(run_dir)}"
    row.update(sweep=sweep, trial_id=trial_id, **_trial_record(path.parent, metrics), device=_device(metrics.get("device")),
               command=command, source="metrics.json", status="complete", full_budget=True)
    if _missing(row):
        problems.append(f"{path}: a finished run without {', '.join(_missing(row))}")
        return None
    return row


def _grid_size(sweep_yaml: Path) -> int | None:
    """The number of trials a grid sweep planned: orchestrator.spec.space ends sweep.yaml with '# grid: N points'."""
    text = sweep_yaml.read_text() if sweep_yaml.is_file() else ""
    found = re.search(r"^# grid: (\d+) points", text, re.MULTILINE)
    return int(found.group(1)) if found else None


def trial_folder_rows(sweep_dir: Path, results_dir: Path, problems: list[str]) -> list[dict[str, Any]]:
    """A sweep cut off before it wrote trials.csv: its finished trials read from their own folders, each row
    saying so (`cut_off`: N finished), so a table never passes a partial sweep off as a whole one."""
    sweep = sweep_dir.relative_to(results_dir).as_posix()
    rows = []
    for path in sorted(SweepFolder(sweep_dir).trials_dir.glob(f"*/{TrialFiles.METRICS}")):
        row = run_row(path, results_dir, problems)
        if row is not None:  # run_row names a nested sweep by its first folder: the trial's own names instead
            row.update(sweep=sweep, trial_id=path.parent.name, command=_sweep_command(results_dir, sweep),
                       source="trial folders (cut off)")
            rows.append(row)
    planned = _grid_size(SweepFolder(sweep_dir).sweep_yaml)
    if planned and len(rows) >= planned:  # every trial ended; the driver stopped before its summary
        cut_off, state = f"cut off after all {planned} trials finished", "before writing trials.csv"
    else:
        cut_off = f"cut off: {len(rows)} of {planned} trials finished" if planned else f"cut off: {len(rows)} finished"
        state = "no trials.csv"
    for row in rows:
        row["cut_off"] = f"{cut_off}, {state}"
        row["command"] += f" ({cut_off})"
    return rows


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
    """Finished full-budget runs of every experiment an MLflow client sees (auxiliary models left out: tagged
    sweep_role=teacher or student_ceiling, or in the `teacher-*` experiments of databases written before teachers
    joined their sweep)."""
    rows = []
    for exp in sorted(client.search_experiments(), key=lambda e: e.name):
        if exp.name.startswith("teacher-"):
            continue
        token = None
        while True:
            page = client.search_runs([exp.experiment_id], filter_string="tags.full_budget = 'true'",
                                      max_results=1000, page_token=token)
            for run in page:
                if run.info.status != "FINISHED" or run.data.tags.get("sweep_role") in AUXILIARY_FOLDERS:
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
