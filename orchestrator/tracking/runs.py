"""MLflow tracking: one experiment per sweep, a parent run per sweep, a nested child run per trial.

Logged with the MLflow client from our own code, not Ray's MLflowLoggerCallback, which turns strings
that parse as numbers into metrics and has no nesting (../shared/notes/STACK.md). The embedded
default is an sqlite database under results/; any URI an MLflow client takes works (`tracking.uri`
or MLFLOW_TRACKING_URI), e.g. a tracking server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from orchestrator.base.numbers import is_finite_number
from orchestrator.base.redact import conceal_uri, redact, redact_uri, reveal_uri
from orchestrator.base.sweep_folder import MLFLOW_DB
from orchestrator.config.constraints import KEPT_PCT, value_of
from orchestrator.config.schema import Config

DB_FILE = MLFLOW_DB
ARTIFACTS_DIR = "mlartifacts"

# MLflow prints "View run ... at: <server URL>" when a run on a tracking server ends, credentials and all,
# to stdout and into Ray's worker logs; this tool prints its own, redacted, "MLflow UI" line instead.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


# The experiment's runs page as this tool opens it (`view_url`): trials sorted by metric, with the
# settings and the kept-% on both parameter bases in view, children listed flat, the KD-LoRA teacher
# (an FFT run at 100 %) filtered out. MLflow keeps a view shared by its "Share" button as an experiment
# tag under this key.
VIEW_KEY = "orchestrator-trials"
# Only the trials (`tags.sweep_role = "trial"`): the parent run and the teacher are not points of the front.
DEFAULT_VIEW = {"orderByKey": "metrics.`metric`", "orderByAsc": False, "searchFilter": 'tags.sweep_role = "trial"',
                "selectedColumns": ["params.`method.name`", "params.`method.rank`", "params.`train.lr`",
                                    "metrics.`metric`", "metrics.`params_kept_pct`",
                                    "metrics.`encoder_params_kept_pct`", "metrics.`flops_kept_pct`"]}
# The same page's chart view (`chart_view`): every visible trial as a point of metric against kept-%, one
# panel per parameter base and one for FLOPs, the comparison the front is drawn from, with no axis to pick.
FRONT_SECTION = "orchestrator-front"
# One chart per row (`columns`, MLflow's default 3): three side by side leave each too narrow for its axis
# title (`params_kept_` shown for params_kept_pct).
DEFAULT_VIEW["compareRunSections"] = [{"uuid": FRONT_SECTION, "name": "Metric against size", "display": True,
                                       "isReordered": False, "deleted": False, "isGenerated": False,
                                       "columns": 1, "cardHeight": 280}]
DEFAULT_VIEW["compareRunCharts"] = [
    {"uuid": f"{FRONT_SECTION}-{size}", "type": "SCATTER", "metricSectionId": FRONT_SECTION, "deleted": False,
     "isGenerated": False, "runsCountToCompare": 100,
     "xaxis": {"key": size, "type": "METRIC"}, "yaxis": {"key": "metric", "type": "METRIC"}}
    for size in ("params_kept_pct", "encoder_params_kept_pct", "flops_kept_pct")]
# Without this tag MLflow 3 guesses the experiment's kind and may open its GenAI (traces) view.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

# Keys of an epoch's report that do not change within a run: logged once at the end, never as flat curves.
RUN_CONSTANTS = ("world_size", "worker_start_unix", "resumed_from_epoch")
SIZE_KEYS = ("params", "params_no_embeddings", "base_params", "base_params_no_embeddings", "flops", "base_flops",
             "trainable_params")


def tracking_uri(cfg: Config) -> str:
    """The URI to connect with; it may hold a password or token: print `printable_uri` instead."""
    if cfg.tracking.uri:
        return reveal_uri(cfg.tracking.uri) or ""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return default_uri(cfg)


def default_uri(cfg: Config) -> str:
    """The embedded default: the sqlite database under results_dir."""
    return f"sqlite:///{Path(cfg.results_dir).resolve() / DB_FILE}"


def portable(cfg: Config) -> Config:
    """`cfg` as it may travel to trials and into Tune's files: its tracking URI without a password or token
    (`tracking_uri` finds the real one again, orchestrator/base/redact.py's conceal_uri). Call it before Ray starts."""
    from orchestrator.config.schema import with_values

    shown = conceal_uri(cfg.tracking.uri)
    storage = redact_uri(cfg.search.storage)  # the searcher's own database: trials never connect to it
    if (shown, storage) == (cfg.tracking.uri, cfg.search.storage):
        return cfg
    return with_values(cfg, {"tracking.uri": shown, "search.storage": storage})


CONNECT_TIMEOUT_S = 5.0


def server_problem(cfg: Config) -> str | None:
    """Why the tracking server of an http(s) URI cannot be used, checked in seconds before a run starts (an
    unreachable one cost 267 s of retries and a 112-line traceback); None when it answers or is not a server."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(tracking_uri(cfg))
    if parts.scheme not in ("http", "https"):
        return None
    key = "tracking.uri" if cfg.tracking.uri else "MLFLOW_TRACKING_URI"
    try:
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is not a number
        return f"{key}: {printable_uri(cfg)} has no valid port"
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        return (f"{key}: cannot reach the MLflow tracking server at {host}:{port} ({exc.strerror or exc}); "
                f"start it (mlflow server --host {host} --port {port}) or fix {key}")
    return None


def printable_uri(cfg: Config) -> str:
    """tracking_uri with passwords and tokens replaced by *** (for messages and logs)."""
    return redact_uri(tracking_uri(cfg)) or ""


_MIGRATED: set[str] = set()  # sqlite databases this process has opened (and MLflow migrated) once


def client(cfg: Config) -> Any:
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(cfg)
    if not uri.startswith("sqlite:///") or uri in _MIGRATED:
        return MlflowClient(uri)
    # The first client of a database creates or upgrades its schema; two processes doing it at once on one new
    # file failed with "duplicate column name: step". One at a time, under a lock beside the database.
    from orchestrator.base.fs import file_lock

    with file_lock(Path(uri[len("sqlite:///"):].split("?")[0] + ".lock")):
        made = MlflowClient(uri)
    _MIGRATED.add(uri)
    return made


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
    tags = {**EXPERIMENT_KIND, f"mlflow.sharedViewState.{VIEW_KEY}": json.dumps(DEFAULT_VIEW),
            "mlflow.note.content": f"Trials of `{name}` (task {cfg.task}): `python -m orchestrator sweep` or "
                                   "`train`; the parent run holds the search space and the front."}
    try:
        return c.create_experiment(name, artifact_location=location, tags=tags)
    except Exception:  # another trial created it first
        return c.get_experiment_by_name(name).experiment_id


LOCAL_UI = "http://127.0.0.1:5000"  # where `python -m orchestrator ui` serves by default


def local_view_url(cfg: Config) -> str:
    """The sweep's runs page on `orchestrator ui` when it logs to the local default database, else ''."""
    if tracking_uri(cfg) != default_uri(cfg):
        return ""
    return view_url(LOCAL_UI, experiment_id(cfg))


def view_url(base_url: str, experiment: str) -> str:
    """The runs page of `experiment` in the default view (DEFAULT_VIEW), on a UI served at base_url."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment}/runs?viewStateShareKey={VIEW_KEY}"


def chart_view(url: str) -> str:
    """A view_url page in its chart view: the trials compared as metric against kept-% (DEFAULT_VIEW's charts)."""
    return f"{url}&compareRunsMode=CHART"


def run_name(cfg: Config, trial_id: str, role: str = "") -> str:
    """`pc_lora-r8-712f8bfa_00003`: the method, its rank where it has one, the trial; `teacher-...` for a teacher."""
    from orchestrator.recipes import applies
    from orchestrator.recipes.base import short_number

    parts = [role] if role else []
    parts.append(cfg.method.name)
    if applies("method.rank", cfg.method.name) and cfg.method.rank is not None:
        parts.append(f"r{short_number(cfg.method.rank)}")
    return "-".join([*parts, trial_id])


def flat_params(cfg: Config) -> dict[str, str]:
    """The keys of a config that apply to its method, as MLflow params (dotted names), secrets redacted.
    A KD-LoRA run carries no PC-LoRA schedule and FFT no rank: trials.csv blanks them the same way."""
    from orchestrator.config.schema import flat_scalars
    from orchestrator.recipes import applies

    return {k: "null" if v is None else str(v) for k, v in flat_scalars(cfg.to_dict()).items()
            if applies(k, cfg.method.name)}


def numeric(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if is_finite_number(v)}


def epoch_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """What one epoch adds to a run's curves: the numbers that change from epoch to epoch."""
    return {k: v for k, v in numeric(metrics).items() if k not in RUN_CONSTANTS + SIZE_KEYS + ("epoch",)}


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """A finished run's numbers: the last epoch's, the sizes, and the kept-% on each basis."""
    final = {k: v for k, v in numeric(metrics).items() if k not in RUN_CONSTANTS}
    kept = {name: value_of(final, name) for name in KEPT_PCT}
    return {**final, **{name: pct for name, pct in kept.items() if pct is not None}}


def log_constants(cfg: Config, run_id: str, metrics: dict[str, Any]) -> None:
    """A run's constants as params, logged once (the epoch a run resumed from is a tag: it may change)."""
    if "world_size" in metrics:
        log_params(client(cfg), run_id, {"world_size": metrics["world_size"]})


def log_params(c: Any, run_id: str, params: dict[str, Any]) -> None:
    """Params as MLflow takes them: strings of at most 6,000 characters, 100 to a batch."""
    from mlflow.entities import Param

    batch = [Param(k, ("null" if v is None else str(v))[:6000]) for k, v in params.items()]
    for i in range(0, len(batch), 100):
        c.log_batch(run_id, params=batch[i:i + 100])


def start_run(cfg: Config, *, run_name: str, parent_run_id: str | None = None,
              tags: dict[str, str] | None = None) -> str:
    c = client(cfg)
    all_tags = {"task": cfg.task, "method": cfg.method.name, **(tags or {})}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = c.create_run(experiment_id(cfg), run_name=run_name, tags=all_tags)
    log_params(c, run.info.run_id, flat_params(cfg))
    return run.info.run_id


def start_parent_run(cfg: Config) -> str:
    """A sweep's parent run: the methods it compares (a tag), the search space and the search as params,
    the fixed settings every trial shares (task, model, budget) as params too."""
    from orchestrator.config.schema import flat_scalars
    from orchestrator.recipes import applies
    from orchestrator.spec.space import describe_space, methods_of

    methods = methods_of(cfg)
    c = client(cfg)
    run = c.create_run(experiment_id(cfg), run_name=f"sweep-{cfg.name}",
                       tags={"task": cfg.task, "methods": ",".join(methods), "sweep_role": "parent",
                             "mlflow.note.content": "Search space:\n\n" + "\n".join(
                                 f"- {line}" for line in describe_space(cfg))})
    searched = set(cfg.space)
    fixed = {k: v for k, v in flat_scalars(cfg.to_dict()).items()
             if k not in searched and (not k.startswith("method.") or any(applies(k, m) for m in methods))}
    space = {f"space.{k}": redact(str(v)) for k, v in cfg.space.items()}
    search = {f"search.{k}": redact(str(v)) for k, v in cfg.to_dict()["search"].items()}  # storage: a URL
    log_params(c, run.info.run_id, {**fixed, **space, **search})
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


def status_tags(metrics: dict[str, Any]) -> dict[str, Any]:
    """How a run ended, as tags: the leaderboards and the UI filter on them."""
    return {"full_budget": str(bool(metrics.get("full_budget"))).lower(),
            "stopped_early": str(bool(metrics.get("stopped_early"))).lower(),
            "diverged": str(bool(metrics.get("diverged"))).lower(),
            "resumed_from_epoch": metrics.get("resumed_from_epoch", 0),
            "device": metrics.get("device", ""), "node": metrics.get("node", "")}


def record_final(cfg: Config, run_id: str, metrics: dict[str, Any]) -> None:
    """A finished run's final numbers, constants and status tags (artifacts and closing are the caller's)."""
    log_metrics(cfg, run_id, final_metrics(metrics), step=int(metrics.get("epoch", 0)))
    log_constants(cfg, run_id, metrics)
    set_tags(cfg, run_id, status_tags(metrics))


def close_trial_run(cfg: Config, trial_id: str, metrics: dict[str, Any]) -> None:
    """Record a trial that finished while nobody was listening (the driver died) and close its run; a run
    its trial already closed is left as it is (its final numbers are logged once)."""
    run_id = find_run(cfg, "trial_id", trial_id)
    if run_id is None or client(cfg).get_run(run_id).info.status == "FINISHED":
        return
    record_final(cfg, run_id, metrics)
    finish_run(cfg, run_id)


def reopen_or_start_run(cfg: Config, *, trial_id: str, run_name: str, parent_run_id: str | None,
                        tags: dict[str, str]) -> str:
    """A sweep trial restarted after the driver was lost keeps its one child run. A run without a parent
    (the KD-LoRA teacher, `orchestrator.train`) left RUNNING by a killed process is taken over too, so it
    does not stay RUNNING for ever beside the new attempt; a finished one is kept and a new run starts."""
    run_id = find_run(cfg, "trial_id", trial_id)
    if run_id is not None and (parent_run_id or client(cfg).get_run(run_id).info.status == "RUNNING"):
        client(cfg).update_run(run_id, status="RUNNING")
        return run_id
    return start_run(cfg, run_name=run_name, parent_run_id=parent_run_id, tags={"trial_id": trial_id, **tags})
