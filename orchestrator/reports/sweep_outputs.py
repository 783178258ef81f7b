"""What a sweep writes once its trials are done: trials.csv (one row per trial, read back from each trial's own
record where Tune's is stale), the front (pareto.csv, .md, .png), its references (references.json) and ablation.md. Split from orchestrator/search/tune.py."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.base.fs import atomic_path, atomic_write_text
from orchestrator.base.sweep_folder import SweepFolder
from orchestrator.config.records import DIVERGED, METRIC_COLUMNS, read_epochs, read_metrics
from orchestrator.config.schema import Config, flat_scalars, with_values
from orchestrator.reports.plots import plot_front
from orchestrator.reports.references import references_of, write_record
from orchestrator.reports.report import ablation_markdown, front_of, pareto_markdown
from orchestrator.spec.space import applies, trial_point


def finished_metrics(trial_dir: Path) -> dict[str, Any] | None:
    """metrics.json of a trial that ended (full budget, stopped by ASHA, or diverged), else None. It is
    written last and atomically, so its presence means the trial needs no more training."""
    metrics = read_metrics(trial_dir)
    if metrics is None:
        return None
    return metrics if metrics.get("full_budget") or metrics.get("stopped_early") or metrics.get("diverged") else None


def trial_nodes(trial_dir: Path) -> list[str]:
    """The nodes a trial's rank 0 trained on, in order (more than one when it resumed after losing a node)."""
    nodes: list[str] = []
    for record in read_epochs(trial_dir):
        node = record.get("node")
        if node and (not nodes or nodes[-1] != node):
            nodes.append(node)
    return nodes


def trial_status(metrics: dict[str, Any], error: Any, full: bool) -> str:
    """complete | stopped (ASHA) | diverged (non-finite loss) | error | incomplete (e.g. an interrupted sweep)."""
    if error is not None:
        return "error"
    if metrics.get("diverged"):
        return DIVERGED
    if full:
        return "complete"
    return "stopped" if metrics.get("stopped_early") else "incomplete"


def collect_rows(cfg: Config, grid: Any) -> pd.DataFrame:
    """One row per trial: id, status, full budget or not, every key of its config, every metric, and
    whether it meets `search.constraints`."""
    from orchestrator.config.constraints import KEPT_PCT, is_feasible, parse_all, value_of

    constraints = parse_all(cfg.search.constraints)
    rows = []
    for result in grid:
        metrics = dict(result.metrics or {})
        point = trial_point(result.config or {})
        trial_cfg = with_values(cfg, point)
        trial_id = metrics.get("trial_id") or Path(result.path).name
        trial_dir = SweepFolder.under(cfg.results_dir, cfg.name).trial(trial_id)
        on_disk = finished_metrics(trial_dir)
        if on_disk is not None:  # the trial's own record wins over what Tune last saw (driver lost)
            metrics.update(on_disk)
        nodes = trial_nodes(trial_dir)
        if nodes:
            metrics["nodes"] = " ".join(nodes)
        full = bool(metrics.get("full_budget")) and result.error is None
        row: dict[str, Any] = {"trial_id": trial_id, "status": trial_status(metrics, result.error, full),
                               "full_budget": full}
        for key, value in flat_scalars(trial_cfg.to_dict()).items():
            # A key that does not apply to the trial's method (the decay schedule of a KD-LoRA trial) had no effect.
            row[key] = value if applies(key, trial_cfg.method.name) else None
        row["searched"] = ",".join(sorted(point))
        row["feasible"] = is_feasible(constraints, metrics)
        row["task"] = cfg.task
        for key, value in metrics.items():
            if key in METRIC_COLUMNS or (isinstance(value, (int, float)) and key in _task_metric_names(cfg)):
                row[key] = value
        # The kept-% the console, the report and MLflow show, on both parameter bases and for FLOPs.
        row.update({key: value_of(metrics, key) for key in KEPT_PCT})
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.sort_values("trial_id").reset_index(drop=True) if len(frame) else frame


@functools.cache
def _task_metric_names_of(task: str) -> tuple[str, ...]:
    from orchestrator.tasks import get_task

    spec = get_task(task)
    return tuple(spec.metric_names) + (spec.primary_metric,)


def _task_metric_names(cfg: Config) -> tuple[str, ...]:
    return _task_metric_names_of(cfg.task)


def write_outputs(cfg: Config, sweep_dir: Path, trials: pd.DataFrame) -> None:
    folder = SweepFolder(sweep_dir)
    folder.root.mkdir(parents=True, exist_ok=True)
    _atomic_csv(trials, folder.trials_csv)
    front = front_of(cfg, trials)
    _atomic_csv(front, folder.pareto_csv)
    references = references_of(cfg, trials)
    write_record(sweep_dir, references)
    atomic_write_text(folder.pareto_md, pareto_markdown(cfg, front, trials, references))
    if len(trials):
        plot_front(cfg, trials, front, folder.pareto_png, references)  # and pareto.svg beside it
    if cfg.search.seeds and len(trials):
        atomic_write_text(folder.ablation_md, ablation_markdown(cfg, trials))


def _atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
