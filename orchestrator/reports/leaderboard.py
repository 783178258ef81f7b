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

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from orchestrator.base.fs import atomic_path, atomic_write_text, file_lock
from orchestrator.base.sweep_folder import TRIALS, SweepFolder
from orchestrator.config.records import TrialFiles
from orchestrator.config.schema import ConfigError
from orchestrator.reports.compression_page import compression_markdown
from orchestrator.reports.leaderboard_rows import (
    LEADERBOARD_DIR,
    PROVENANCE,
    REQUIRED,
    SKIP_TOP,
    metrics_files,
    mlflow_rows,
    run_row,
    sweep_rows,
    trial_folder_rows,
)
from orchestrator.reports.leaderboard_scales import scaled_page, split_scales
from orchestrator.reports.plots import plot_task
from orchestrator.reports.report import (  # noqa: F401 - the leaderboards' tables and plots, re-exported
    BUDGETS,
    CIFAR_COLUMNS,
    GLUE_COLUMNS,
    GLUE_TASKS,
    METHOD_ORDER,
    _num,
    _pct,
    _short,
    _task_order,
    best_per_task,
    cifar_markdown,
    config_label,
    glue_markdown,
    task_slug,
    text_markdown,
    under_budget,
)
from orchestrator.tasks import TASKS

MANIFEST = "manifest.yaml"  # in results/leaderboards/: the sweeps the tables are built from
LOCK_FILE = ".leaderboards.lock"  # in results/, so two sweeps finishing together take turns

# ------------------------------------------------------------------------------------------- gathering


@dataclass(frozen=True)
class Manifest:
    """results/leaderboards/manifest.yaml: the sweeps (folders under results/, e.g. gpu/fidelity/fidelity-mrpc)
    the leaderboards are built from. With a manifest, nothing else (the quickstart, smoke runs, ad-hoc
    sweeps) reaches the tables, and a finishing sweep refreshes them only when it is listed."""

    path: Path
    sweeps: tuple[str, ...]


def read_manifest(results_dir: Path) -> Manifest | None:
    path = Path(results_dir) / LEADERBOARD_DIR / MANIFEST
    if not path.is_file():
        return None
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc}); write `sweeps: [name, ...]`"]) from None
    sweeps = raw.get("sweeps") if isinstance(raw, dict) else None
    if not isinstance(sweeps, list) or not all(isinstance(s, str) and s and ".." not in s for s in sweeps):
        raise ConfigError([f"{path}: `sweeps` must be a list of sweep folders under {results_dir} "
                           "(e.g. gpu/fidelity/fidelity-mrpc), without '..'"])
    return Manifest(path, tuple(sweeps))


def _key(row: dict[str, Any]) -> tuple[str, ...]:
    """The same trial seen twice (trials.csv and MLflow): its id, task, method and model."""
    return (str(row["trial_id"]), str(row["task"]), str(row["method.name"]), Path(str(row["model"])).name)


def gather(results_dir: Path, tracking_uri: str | None = None, manifest: Manifest | None = None) -> pd.DataFrame:
    """Every finished full-budget trial under `results_dir` (and in MLflow at `tracking_uri`), one row each,
    with its provenance columns (sweep, trial_id, date, device, command, source); sorted, deduplicated.

    Raises ConfigError naming every unreadable or malformed file at once.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        from orchestrator.base.shell import (
            module_command,  # the running interpreter: works pasted, no venv active
        )

        raise ConfigError([f"--results: {results_dir} is not a folder; run a sweep first "
                           f"({module_command('orchestrator', 'sweep')} --config FILE) or point --results at the "
                           "folder that holds <sweep>/trials.csv"])
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    if manifest is not None:  # the listed sweeps only: nothing else under results/ reaches the tables
        for sweep in manifest.sweeps:
            folder = SweepFolder.under(results_dir, sweep)
            csv_path = folder.trials_csv
            if not csv_path.is_file() and any(folder.trials_dir.glob(f"*/{TrialFiles.METRICS}")):
                rows += trial_folder_rows(results_dir / sweep, results_dir, problems)  # cut off: no trials.csv
                continue
            if not csv_path.is_file():
                problems.append(f"{manifest.path}: sweep {sweep!r} has no {csv_path}; run it, or remove it from "
                                "the manifest")
                continue
            rows += sweep_rows(csv_path, results_dir, problems)
        return _frame(rows, problems, tracking_uri)
    with_csv = set()
    written = (SweepFolder(d).trials_csv for d in sorted(results_dir.iterdir()) if d.is_dir())
    for csv_path in (path for path in written if path.is_file()):
        sweep = csv_path.parent.name
        if sweep.startswith(".") or sweep in SKIP_TOP:
            continue
        with_csv.add(sweep)
        rows += sweep_rows(csv_path, results_dir, problems)
    seen_paths = set()
    for path in metrics_files(results_dir):
        rel = path.parent.relative_to(results_dir).parts
        if len(rel) == 3 and rel[1] == TRIALS and rel[0] in with_csv:
            continue  # this trial is a row of its sweep's trials.csv
        if path.resolve() in seen_paths:  # a symlinked folder
            continue
        seen_paths.add(path.resolve())
        row = run_row(path, results_dir, problems)
        if row is not None:
            rows.append(row)
    return _frame(rows, problems, tracking_uri)


def _frame(rows: list[dict[str, Any]], problems: list[str], tracking_uri: str | None) -> pd.DataFrame:
    """The gathered rows (plus MLflow's, once each) as one sorted, deduplicated frame; every problem at once."""
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


# ------------------------------------------------------------------------------------------- writing


_atomic = atomic_path




def _readme(tasks: list[str], left_out: list[str]) -> str:
    lines = ["# Leaderboards", "",
             "Written by `python -m orchestrator.leaderboard` (and by every sweep when it finishes) from all "
             "finished trials under results/.", "",
             "- [GLUE](glue.md)", "- [IMDb](imdb.md)", "- [CIFAR](cifar.md)",
             "- [Compression: best metric at 50 / 25 / 10 / 5 % of the parameters and FLOPs](compression.md)",
             "- [All of it as one sortable page, with links to each trial](index.html)", ""]
    if left_out:  # a cell compares methods at one budget; trials of another one would not be comparable
        lines += ["Left out (one training budget per task):", "", *(f"- {line}" for line in left_out), ""]
    for task in tasks:
        lines += [f"## {task}", "", f"![{task}: metric against parameters and FLOPs]({task_slug(task)}.png)", ""]
    return "\n".join(lines)


def write_leaderboards(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write glue.md, cifar.md, compression.md, <task>.png per task and README.md into `out_dir`;
    return the paths written, sorted."""
    out_dir = Path(out_dir)
    scales, left_out = split_scales(frame)
    if scales:  # one budget per task within each scale; the reference rows placed and the shares noted
        frame = pd.concat([s.frame for s in scales], ignore_index=True)
    written = []
    for name, text in (("glue.md", scaled_page("GLUE leaderboard", GLUE_TASKS, scales, glue_markdown)),
                       ("imdb.md", scaled_page("IMDb leaderboard", ("imdb",), scales, text_markdown)),
                       ("cifar.md", scaled_page("CIFAR leaderboard", ("cifar10", "cifar100"), scales,
                                                cifar_markdown)),
                       ("compression.md", compression_markdown(frame))):
        atomic_write_text(out_dir / name, text)
        written.append(out_dir / name)
    tasks = _task_order(frame["task"]) if len(frame) else []
    for task in tasks:
        plot_task(frame, task, out_dir / f"{task_slug(task)}.png")
        written += [out_dir / f"{task_slug(task)}.png", out_dir / f"{task_slug(task)}.svg"]
    from orchestrator.reports.report_html import write_page

    written.append(write_page(frame, out_dir.parent, out_dir))  # results/leaderboards -> results/
    atomic_write_text(out_dir / "README.md", _readme(tasks, left_out))
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
        frame = gather(results_dir, tracking_uri, read_manifest(results_dir))
        return write_leaderboards(frame, results_dir / LEADERBOARD_DIR)


def refresh(results_dir: Path | str, sweep: str | None = None) -> list[Path]:
    """What a sweep calls when it finishes: rebuild the leaderboards if the manifest lists `sweep` (None:
    rebuild regardless); never fails the sweep. Without a manifest a sweep changes no leaderboard file."""
    try:
        if sweep is not None:
            manifest = read_manifest(Path(results_dir))
            if manifest is None or sweep not in manifest.sweeps:
                return []
        return build(Path(results_dir))
    except Exception as exc:  # the sweep's own results are already written; a leaderboard must not undo that
        from orchestrator.base.shell import module_command, relative_path

        print(f"warning: leaderboards not refreshed ({exc}); fix that and run "
              f"{module_command('orchestrator.leaderboard', '--results', relative_path(results_dir))}", file=sys.stderr)
        return []
