"""Fitting one configuration with a Ray Train TorchTrainer; shared by `orchestrator.train` and sweep trials.

Also the two things that must happen before workers start: a preflight that refuses a rank the model
cannot take (before Ray starts), and the auxiliary models the recipe declares (the KD-LoRA teacher, a
student's own FFT ceiling: orchestrator/recipes/auxiliary.py), each fine-tuned once per (task, model,
settings, seed) and cached under results/<role's folder>/ for every later run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from orchestrator.base.fs import atomic_write_text, file_lock
from orchestrator.config.records import EarlyStopSpec, LoopConfig, TrialFiles
from orchestrator.config.schema import Config, ConfigError, dump_yaml, with_values
from orchestrator.engine import reaper
from orchestrator.recipes.auxiliary import FOLDERS, TEACHER, AuxModel, fft_key, teacher_config
from orchestrator.spec.load import with_method_defaults
from orchestrator.spec.validation import is_local_ref

TEACHERS_DIR = FOLDERS[TEACHER]  # results/teachers/<teacher_key>/: where teachers have always been cached


def _meta_model(ref: str, task_name: str, trust_remote_code: bool = False) -> Any:
    """The architecture of `ref` with the task's head, on the meta device (no weights read)."""
    import torch
    import transformers

    from orchestrator.tasks import get_task

    task = get_task(task_name)
    config = transformers.AutoConfig.from_pretrained(ref, num_labels=task.num_labels,
                                                     trust_remote_code=trust_remote_code)
    auto = (transformers.AutoModelForImageClassification if task.kind == "image"
            else transformers.AutoModelForSequenceClassification)
    with torch.device("meta"):
        return auto.from_config(config)


def preflight(cfg: Config, *, hub: bool = True) -> None:
    """Refuse, before Ray starts or anything is written: a rank larger than a target layer allows (every rank
    the space can draw), a local model folder without a usable tokenizer / image processor, and local data
    whose training or evaluation split is missing or malformed (DataError, exit 2). `hub=False` (--dry-run)
    checks local model folders only: a hub id would need the network."""
    from orchestrator.engine import console

    console.quiet_libraries()
    from orchestrator.config.records import SpaceDimension
    from orchestrator.recipes import get_recipe
    from orchestrator.spec.space import methods_of

    ranks = {cfg.method.rank}
    if "method.rank" in cfg.space:
        dim = SpaceDimension.of("method.rank", cfg.space["method.rank"])
        for method in methods_of(cfg):
            own = dim.for_method(method)
            if own is not None:
                ranks.update(own.values if own.discrete else [own.args[1]])
    problems: list[str] = []
    for method in methods_of(cfg):
        recipe = get_recipe(method)
        for ref in recipe.model_references(cfg):
            if not hub and not is_local_ref(ref):
                continue
            for msg in recipe.rank_problems(cfg, _meta_model(ref, cfg.task, cfg.trust_remote_code), max(ranks)):
                if msg not in problems:
                    problems.append(msg)
        problems += [p for p in _processor_problems(cfg, recipe.data_reference(cfg)) if p not in problems]
    if hub:  # a real run, not --dry-run: the tracking server must answer before Ray starts
        from orchestrator.tracking.runs import server_problem

        problems += [p for p in [server_problem(cfg)] if p]
    if problems:
        raise ConfigError(problems)
    _check_local_data(cfg)


def _processor_problems(cfg: Config, ref: str) -> list[str]:
    """A local model folder must hold its tokenizer or image processor (a hub id is checked when loaded)."""
    from orchestrator.tasks import get_task, load_processor

    if not is_local_ref(ref):
        return []
    try:
        load_processor(ref, get_task(cfg.task), trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as err:
        text = str(err).splitlines()[0]
        return [text if text.startswith("model:") else f"model: {ref!r}: no usable tokenizer or image processor "
                f"({text}); save it in that folder (tokenizer.save_pretrained / processor.save_pretrained)"]
    return []


def _check_local_data(cfg: Config) -> None:
    """Load the training and evaluation splits of a local copy (a few seconds): a bad file is a DataError here,
    before Ray, rather than a traceback after Ray Train's retries."""
    if cfg.data_dir is None:
        return
    from orchestrator.tasks import DataError, get_task, load_split

    task = get_task(cfg.task)
    for split in dict.fromkeys(("train", task.eval_split)):
        try:
            load_split(task, split, cfg.data_dir)
        except OSError as err:  # unreadable (permissions, a folder where a file belongs): bad data, not a crash
            raise DataError(f"data_dir: {cfg.data_dir}: the {split} split of {task.name} cannot be read "
                            f"({err.strerror or type(err).__name__}: {err.filename or ''})") from None


def teacher_key(cfg: Config) -> str:
    """The cache key of a run's teacher (results/teachers/<key>/), as it has always been computed."""
    return fft_key(teacher_config(cfg))


def ensure_aux(aux: AuxModel, results_dir: str | Path, name: str, parent_run_id: str | None = None, *,
               in_trial: bool = False) -> Path:
    """The auxiliary model's folder (model/, metrics.json, train logits where declared), training it only if
    absent: results_dir/<its role's folder>/<key of its FFT config>/.

    Trials running at the same time wait on a file lock (one per FFT run, whatever its role), so it is trained
    once. Its MLflow run sits in the
    run's or sweep's experiment (a child of the sweep, tagged sweep_role=<role>, named by its role), not in an
    experiment of its own. `in_trial`: trained in this process, a Tune trial's (orchestrator/engine/session.py)."""
    folder = aux.folder(results_dir)
    with file_lock(aux.lock(results_dir)):
        cached = aux.cached(results_dir)
        if cached is not None:
            return cached
        print(f"[{name}] fine-tuning {aux.title} once: {folder}", flush=True)
        fit(aux.config, folder, emit_train_logits=aux.emit_train_logits, parent_run_id=parent_run_id, role=aux.role,
            in_trial=in_trial)
    return folder


def ensure_auxiliary(cfg: Config, parent_run_id: str | None = None, *, in_trial: bool = False) -> dict[str, Path]:
    """Every auxiliary model the run's recipe declares (orchestrator/recipes/auxiliary.py), by role, each built
    once and cached (`ensure_aux`), in the order declared."""
    from orchestrator.recipes import get_recipe

    return {aux.role: ensure_aux(aux, cfg.results_dir, cfg.name, parent_run_id, in_trial=in_trial)
            for aux in get_recipe(cfg.method.name).auxiliary_models(cfg)}


LOCAL_RAY_START_ATTEMPTS = 3


def ensure_ray(cfg: Config, *, log_to_driver: bool = True) -> None:
    """Ray for this process: the cluster RAY_ADDRESS names, else a local one. `log_to_driver=False` keeps
    workers' output (and Ray's own warnings) in Ray's log files instead of this console."""
    import ray

    if ray.is_initialized():
        return
    # Ray's own INFO/WARNING lines ("Started a local Ray instance", the token notice) only with --verbose.
    quiet = {} if log_to_driver else {"logging_level": logging.ERROR}
    if os.environ.get("RAY_ADDRESS"):  # under `ray job submit`, or a user pointing at a cluster
        # Workers on other nodes do not inherit this environment: the concealed tracking URI goes with the job.
        from orchestrator.base.redact import TRACKING_URI_VAR

        secret = {k: os.environ[k] for k in (TRACKING_URI_VAR,) if k in os.environ}
        ray.init(log_to_driver=log_to_driver, **quiet, **({"runtime_env": {"env_vars": secret}} if secret else {}))
        return
    # A local Ray for this process; the dashboard is not needed for a local sweep. Its raylet must
    # register within a fixed window that a heavily loaded machine can miss ("timed out during
    # startup"); a second start then succeeds, so try again before giving up.
    _keep_token_auth(cfg)
    for attempt in range(LOCAL_RAY_START_ATTEMPTS):
        try:
            ray.init(include_dashboard=False, log_to_driver=log_to_driver, **quiet)
            reaper.watch(os.getpid())
            return
        except Exception as exc:
            if "timed out during startup" not in str(exc) or attempt + 1 == LOCAL_RAY_START_ATTEMPTS:
                raise
            print(f"[{cfg.name}] local Ray did not start in time (a loaded machine?); starting it again",
                  flush=True)
            ray.shutdown()


def _keep_token_auth(cfg: Config) -> None:
    """Token authentication on for the local Ray this process starts, whatever RAY_AUTH_MODE says.

    Ray 2.60's gRPC servers (GCS, raylet, workers) listen on every interface and cannot be told otherwise:
    `ray.init(_node_ip_address="127.0.0.1")` is rewritten to the host's address. The token is then all that
    keeps other machines out, and a local sweep never needs it off (a cluster's RAY_ADDRESS path does not
    come here)."""
    from ray._private.authentication.authentication_token_setup import _enable_token_auth

    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None and mode.lower() != "token":
        print(f"[{cfg.name}] RAY_AUTH_MODE={mode} ignored for the local Ray this command starts: its servers "
              "listen on every interface, so token authentication stays on", flush=True)
    _enable_token_auth()


def resolve_trainer(cfg: Config) -> Config:
    """`resources.trainer: auto` decided on the driver (a trial's process cannot tell a local Ray from a
    cluster): the trial's own process for one worker on a local Ray, else a TorchTrainer."""
    if cfg.resources.trainer != "auto":
        return cfg
    local = not os.environ.get("RAY_ADDRESS")
    return with_values(cfg, {"resources.trainer": "trial" if cfg.resources.workers == 1 and local else "torch_trainer"})


def use_gpu(cfg: Config) -> bool:
    import ray

    if cfg.resources.use_gpu == "auto":
        return ray.cluster_resources().get("GPU", 0) > 0
    return bool(cfg.resources.use_gpu)


def fit(cfg: Config, out_dir: Path, *, in_tune: bool = False, in_trial: bool = False,
        emit_train_logits: bool = False, parent_run_id: str | None = None, early_stop: EarlyStopSpec | None = None,
        role: str = "", log_to_driver: bool = True) -> dict[str, Any]:
    """Train `cfg`; writes out_dir/{config.yaml, metrics.json, model/} and returns metrics.json.

    With `resources.workers` Ray Train workers, or (`in_trial`) in this process, a Tune trial's
    (orchestrator/engine/session.py). Inside a Tune trial (`in_tune`) every epoch's report goes to Tune.
    The run is logged to MLflow (a child of `parent_run_id` when given): params, per-epoch curves
    (from rank 0), the final metrics and, with tracking.log_models, the deployable model.
    `log_to_driver=False` keeps the workers' output in Ray's logs when this starts a local Ray.
    """
    from orchestrator.tracking import runs as tracking

    # train.lr: null = the method's own, written into config.yaml; the tracking password stays out of what Ray
    # Train pickles (the loop's config), before Ray starts so that its workers inherit where it is kept.
    cfg = tracking.portable(with_method_defaults(cfg))
    ensure_ray(cfg, log_to_driver=log_to_driver)  # a no-op inside a sweep, whose Ray is up
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / TrialFiles.CONFIG, dump_yaml(cfg))  # the leaderboard and the report read it back
    auxiliary = ensure_auxiliary(cfg, parent_run_id, in_trial=in_trial)
    teacher_dir = str(auxiliary[TEACHER]) if TEACHER in auxiliary else None
    run_id = tracking.reopen_or_start_run(cfg, trial_id=out_dir.name, run_name=tracking.run_name(cfg, out_dir.name, role),
                                          parent_run_id=parent_run_id,
                                          tags={"full_budget": "false", "sweep_role": role or "trial"})
    loop = LoopConfig(config=cfg.to_dict(), out_dir=str(out_dir), teacher_dir=teacher_dir,
                      emit_train_logits=emit_train_logits, mlflow_run_id=run_id, early_stop=early_stop)
    started = time.perf_counter()
    try:
        if in_trial:
            from orchestrator.engine.loop import run_loop
            from orchestrator.engine.session import trial_session

            run_loop(loop, trial_session(report=in_tune))
        else:
            torch_trainer(cfg, loop, out_dir, in_tune).fit()
    except BaseException:
        tracking.finish_run(cfg, run_id, "FAILED")
        raise
    metrics = json.loads((out_dir / TrialFiles.METRICS).read_text())
    metrics["wall_seconds"] = time.perf_counter() - started
    record_run(cfg, run_id, out_dir, metrics)
    return metrics


def torch_trainer(cfg: Config, loop: LoopConfig, out_dir: Path, in_tune: bool) -> Any:
    """`resources.workers` Ray Train workers running the loop; in a Tune trial their reports go to Tune."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.train.v2.api.config import LoggingConfig

    from orchestrator.engine.loop import train_worker

    gpu = use_gpu(cfg)
    per_worker = {"CPU": cfg.resources.cpus_per_worker}
    if gpu:
        per_worker["GPU"] = cfg.resources.gpus_per_worker
    callbacks = []
    if in_tune:
        from ray.tune.integration.ray_train import TuneReportCallback

        callbacks.append(TuneReportCallback())
    return TorchTrainer(
        train_worker, train_loop_config=loop.to_dict(),
        scaling_config=ScalingConfig(num_workers=cfg.resources.workers, use_gpu=gpu, resources_per_worker=per_worker),
        run_config=RunConfig(name=out_dir.name, storage_path=str(out_dir / "ray"),
                             failure_config=FailureConfig(max_failures=2), callbacks=callbacks,
                             # A restarted worker resumes from the latest; older ones only fill the disk.
                             checkpoint_config=CheckpointConfig(num_to_keep=1),
                             # Ray Train's INFO lines repeat every report's metrics; our epoch line says it.
                             logging_config=LoggingConfig(log_level="WARNING")),
    )


def record_run(cfg: Config, run_id: str, out_dir: Path, metrics: dict[str, Any]) -> None:
    """The finished run in MLflow: final metrics, status tags, config and metrics files, the model if asked."""
    from orchestrator.tracking import runs as tracking

    tracking.record_final(cfg, run_id, metrics)
    tracking.log_artifacts(cfg, run_id, [out_dir / TrialFiles.METRICS, out_dir / TrialFiles.CONFIG])
    if cfg.tracking.log_models and (out_dir / TrialFiles.MODEL).is_dir():
        tracking.log_artifacts(cfg, run_id, [out_dir / TrialFiles.MODEL], artifact_path="model")
    tracking.finish_run(cfg, run_id)
