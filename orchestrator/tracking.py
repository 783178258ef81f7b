"""MLflow tracking: one experiment per sweep, a parent run per sweep, a nested child run per trial.

Logged with the MLflow client from our own code, not Ray's MLflowLoggerCallback, which turns strings
that parse as numbers into metrics and has no nesting (../shared/notes/STACK.md). The embedded
default is an sqlite database under results/; any URI an MLflow client takes works (`tracking.uri`
or MLFLOW_TRACKING_URI), e.g. a tracking server.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from orchestrator.config import Config
from orchestrator.redact import redact_uri

DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"

# MLflow prints "View run ... at: <server URL>" when a run on a tracking server ends, credentials and all,
# to stdout and into Ray's worker logs; this tool prints its own, redacted, "MLflow UI" line instead.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def tracking_uri(cfg: Config) -> str:
    """The URI to connect with; it may hold a password or token: print `printable_uri` instead."""
    if cfg.tracking.uri:
        return cfg.tracking.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(cfg.results_dir).resolve() / DB_FILE}"


def printable_uri(cfg: Config) -> str:
    """tracking_uri with passwords and tokens replaced by *** (for messages and logs)."""
    return redact_uri(tracking_uri(cfg)) or ""


def client(cfg: Config) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri(cfg))


def experiment_id(cfg: Config, name: str | None = None) -> str:
    """The experiment named after the sweep (created on first use)."""
    name = name or cfg.name
    c = client(cfg)
    found = c.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if tracking_uri(cfg).startswith("sqlite:"):  # keep artifacts beside the database, not in the cwd
        location = (Path(cfg.results_dir).resolve() / ARTIFACTS_DIR).as_uri()
    try:
        return c.create_experiment(name, artifact_location=location)
    except Exception:  # another trial created it first
        return c.get_experiment_by_name(name).experiment_id


def flat_params(cfg: Config) -> dict[str, str]:
    """Every fixed or searched key of a config as an MLflow param (dotted names, each once), secrets redacted."""
    from orchestrator.config import flat_scalars

    return {k: "null" if v is None else str(v) for k, v in flat_scalars(cfg.to_dict()).items()}


def numeric(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}


def start_run(cfg: Config, *, run_name: str, parent_run_id: str | None = None,
              tags: dict[str, str] | None = None) -> str:
    from mlflow.entities import Param

    c = client(cfg)
    all_tags = {"task": cfg.task, "method": cfg.method.name, **(tags or {})}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = c.create_run(experiment_id(cfg), run_name=run_name, tags=all_tags)
    params = [Param(k, v[:6000]) for k, v in flat_params(cfg).items()]
    for i in range(0, len(params), 100):
        c.log_batch(run.info.run_id, params=params[i:i + 100])
    return run.info.run_id


def log_metrics(cfg: Config, run_id: str, metrics: dict[str, Any], step: int | None = None) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k, v, now, step or 0) for k, v in numeric(metrics).items()]
    if batch:
        client(cfg).log_batch(run_id, metrics=batch)


def set_tags(cfg: Config, run_id: str, tags: dict[str, Any]) -> None:
    c = client(cfg)
    for k, v in tags.items():
        c.set_tag(run_id, k, str(v))


def finish_run(cfg: Config, run_id: str, status: str = "FINISHED") -> None:
    client(cfg).set_terminated(run_id, status=status)


def log_artifacts(cfg: Config, run_id: str, paths: Iterable[Path], artifact_path: str | None = None) -> None:
    c = client(cfg)
    for path in paths:
        if path.is_dir():
            c.log_artifacts(run_id, str(path), artifact_path=artifact_path or path.name)
        elif path.is_file():
            c.log_artifact(run_id, str(path), artifact_path=artifact_path)


def find_run(cfg: Config, tag: str, value: str) -> str | None:
    """A run of the sweep's experiment carrying tag=value (e.g. the parent run when resuming)."""
    c = client(cfg)
    exp = c.get_experiment_by_name(cfg.name)
    if exp is None:
        return None
    runs = c.search_runs([exp.experiment_id], filter_string=f"tags.{tag} = '{value}'", max_results=1)
    return runs[0].info.run_id if runs else None


def child_runs(cfg: Config, parent_run_id: str) -> list[Any]:
    c = client(cfg)
    exp = c.get_experiment_by_name(cfg.name)
    return c.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'",
                         max_results=10_000)


def close_trial_run(cfg: Config, trial_id: str, metrics: dict[str, Any]) -> None:
    """Record a trial that finished while nobody was listening (the driver died) and close its run."""
    run_id = find_run(cfg, "trial_id", trial_id)
    if run_id is None:
        return
    log_metrics(cfg, run_id, metrics, step=int(metrics.get("epoch", 0)))
    set_tags(cfg, run_id, {"full_budget": str(bool(metrics.get("full_budget"))).lower(),
                           "stopped_early": str(bool(metrics.get("stopped_early"))).lower()})
    finish_run(cfg, run_id)


def reopen_or_start_run(cfg: Config, *, run_name: str, parent_run_id: str | None, tags: dict[str, str]) -> str:
    """A sweep trial restarted after the driver was lost keeps its one child run. A run without a parent
    (the KD-LoRA teacher, `orchestrator.train`) left RUNNING by a killed process is taken over too, so it
    does not stay RUNNING for ever beside the new attempt; a finished one is kept and a new run starts."""
    run_id = find_run(cfg, "trial_id", run_name)
    if run_id is not None and (parent_run_id or client(cfg).get_run(run_id).info.status == "RUNNING"):
        client(cfg).update_run(run_id, status="RUNNING")
        return run_id
    return start_run(cfg, run_name=run_name, parent_run_id=parent_run_id, tags=tags)
