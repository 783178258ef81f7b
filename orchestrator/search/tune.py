"""The sweep: Ray Tune + Optuna (multi-objective) + ASHA.

Each Tune trial is a plain function. On a local Ray a one-worker trial trains in that function's own
process, which Tune reuses for the next trial (tokenised data and processors stay in memory); otherwise
(`resources.trainer`, orchestrator/engine/run.py's resolve_trainer) it fits one TorchTrainer and forwards its
workers' reports to Tune with TuneReportCallback, the Ray 2.60 (Train V2) pattern
(../shared/notes/STACK.md). Trial folders are named by trial id, never timestamps, so `--resume`
finds them again.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.base.fs import LockHeld, atomic_write_text, held_lock
from orchestrator.base.pareto import hypervolume
from orchestrator.base.redact import redact
from orchestrator.base.rungs import trial_rungs
from orchestrator.base.sweep_folder import SweepFolder
from orchestrator.config.records import EarlyStopSpec
from orchestrator.config.schema import Config, config_from_dict, dump_yaml, objective_pairs, with_values
from orchestrator.engine import asha, console
from orchestrator.reports.report import ablation_markdown, ablation_table, counted, front_of  # noqa: F401
from orchestrator.reports.sweep_outputs import collect_rows, finished_metrics, write_outputs
from orchestrator.search import sweep_console
from orchestrator.search.sweep_console import ConsoleCallback
from orchestrator.spec.load import with_method_defaults
from orchestrator.spec.paths import as_written
from orchestrator.spec.space import (
    METHOD_KEY,
    applies,
    describe_space,
    dimensions,
    grid_points,
    methods_of,
    sample_point,
    trial_point,
)
from orchestrator.tracking import runs as tracking

STATE_PERIOD_S = 2  # how often Tune's experiment state reaches tune/ (see make_tuner)
# Pins each trial's function (and so its Train controller, which Ray places beside it) to the head node:
# it holds no CPU, and a worker node lost mid-trial then costs only the trial's workers, which Ray Train
# restarts elsewhere from the last checkpoint. Losing the head ends the job anyway.
HEAD_RESOURCE = "node:__internal_head__"


def smoke_config(cfg: Config) -> Config:
    """A few dozen examples, one epoch, one trial per method: the whole system in a few minutes on CPU."""
    return with_values(cfg, {"name": f"{cfg.name}-smoke", "train.epochs": 1, "train.max_examples": 48,
                             "eval.max_examples": 48, "train.max_length": min(cfg.train.max_length, 32),
                             "method.teacher_epochs": 1, "search.scheduler": "none"})


def first_points(cfg: Config, *, prefer_config: bool) -> list[dict[str, Any]]:
    """One point per method the sweep can draw. Each dimension takes the config's own value when the
    dimension allows it (`prefer_config`), else its first choice or lower bound."""
    points = []
    for method in methods_of(cfg):
        point: dict[str, Any] = {METHOD_KEY: method} if METHOD_KEY in cfg.space else {}
        own_cfg = with_method_defaults(with_values(cfg, {METHOD_KEY: method}))  # train.lr: null = the method's
        for dim in dimensions(cfg):
            own = dim.for_method(method)
            if dim.key == METHOD_KEY or not applies(dim.key, method) or own is None:
                continue
            value = own_cfg.get(dim.key)
            if own.discrete:
                point[dim.key] = value if prefer_config and value in own.values else own.values[0]
            else:
                low, high = own.args
                inside = isinstance(value, (int, float)) and low <= value <= high
                point[dim.key] = value if prefer_config and inside else low
                point[dim.key] = int(point[dim.key]) if own.kind == "int" else float(point[dim.key])
        points.append(point)
    return points


def run_trial(config: dict[str, Any], base: dict[str, Any], parent_run_id: str | None = None) -> None:
    """One Tune trial: the sweep's config with this trial's point, fitted by one TorchTrainer."""
    from ray import tune

    from orchestrator.engine.run import fit

    point = trial_point(config)
    cfg = with_values(config_from_dict(base), point)
    trial_id = tune.get_context().get_trial_id()
    folder = SweepFolder.under(cfg.results_dir, cfg.name)
    trial_dir = folder.trial(trial_id)
    done = finished_metrics(trial_dir)
    if done is not None:
        # Finished before the driver was lost (--resume): report what it wrote instead of training again.
        from orchestrator.engine.session import tune_result

        tracking.close_trial_run(cfg, trial_id, done)
        tune.report(tune_result(done, cfg.search.objectives))  # a diverged one's metric is null
        return
    fit(cfg, trial_dir, in_tune=True, in_trial=cfg.resources.trainer == "trial", parent_run_id=parent_run_id,
        early_stop=early_stop_spec(cfg, folder, trial_id))


def early_stop_spec(cfg: Config, folder: SweepFolder, trial_id: str) -> EarlyStopSpec | None:
    """How the trial stops itself early (orchestrator/engine/asha.py): its bracket's rungs and rung records; None
    when the sweep has no scheduler or its bracket no rung."""
    s = cfg.search
    bracket, rungs = trial_rungs(trial_id, s.grace_period, cfg.train.epochs, s.reduction_factor, s.brackets)
    if s.scheduler == "none" or not rungs:
        return None
    pairs = objective_pairs(cfg) if s.scheduler == "mo_asha" else []
    return EarlyStopSpec(rung_dir=str(asha.bracket_dir(folder.rung_dir(s.scheduler), bracket)), trial_id=trial_id,
                         rungs=tuple(rungs), reduction_factor=s.reduction_factor,
                         objectives=tuple(m for m, _ in pairs), directions=tuple(d for _, d in pairs))


def max_concurrent(cfg: Config, gpu: bool) -> int:
    import ray

    if cfg.search.max_concurrent_trials:
        return cfg.search.max_concurrent_trials
    resources = ray.cluster_resources()
    r = cfg.resources
    if gpu:
        return max(1, math.floor(resources.get("GPU", 0) / (r.workers * r.gpus_per_worker)))
    return max(1, math.floor(resources.get("CPU", 1) / (r.workers * r.cpus_per_worker)))


def make_searcher(cfg: Config, storage: str | None = None) -> Any:
    """The sweep's Optuna searcher; its study in the database at `storage` (an SQLAlchemy URL), or in memory."""
    import optuna

    from orchestrator.config.constraints import parse_all
    from orchestrator.search.optuna_search import FullBudgetOptunaSearch, rdb_storage

    pairs = objective_pairs(cfg)
    seed = cfg.train.seed
    n = cfg.search.num_samples
    constraints = tuple(parse_all(cfg.search.constraints))
    # Optuna's defaults (50 random individuals before NSGA-II evolves, 10 random trials before TPE
    # models) would make a small sweep pure random search; scale them to the budget.
    population, startup = min(50, max(4, n // 3)), min(10, max(2, n // 3))
    if cfg.search.sampler == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    elif cfg.search.sampler == "nsga3":
        sampler = optuna.samplers.NSGAIIISampler(seed=seed, population_size=population)
    elif cfg.search.sampler == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    elif cfg.search.sampler == "gp":  # per-method dimensions (own names) fall to its independent random sampler
        sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    else:
        sampler = optuna.samplers.RandomSampler(seed=seed)
    metrics, modes = [m for m, _ in pairs], [d for _, d in pairs]
    # Every method of the space is tried first (at the config's own values), so a small sweep cannot
    # leave a method off the front by the luck of the draw.
    seeds = first_points(cfg, prefer_config=True) if METHOD_KEY in cfg.space else None
    return FullBudgetOptunaSearch(space=functools.partial(sample_point, cfg=cfg),
                                  metric=metrics if len(pairs) > 1 else metrics[0],
                                  mode=modes if len(pairs) > 1 else modes[0], sampler=sampler,
                                  points_to_evaluate=seeds, study_name=cfg.name,
                                  storage=rdb_storage(storage) if storage else None, constraints=constraints)


def run_sweep(cfg: Config, *, resume: bool = False, smoke: bool = False) -> int:
    from orchestrator.engine.run import preflight, resolve_trainer

    if smoke:
        cfg = smoke_config(cfg)
    cfg = resolve_trainer(cfg)
    preflight(cfg)
    remember_config(cfg)  # what a restored ParentRunCallback logs with (it pickles no config)
    sweep_dir = SweepFolder.under(cfg.results_dir, cfg.name).root
    made = [d for d in (sweep_dir, *sweep_dir.parents) if not d.exists()]
    sweep_dir.mkdir(parents=True, exist_ok=True)
    try:
        # One driver per sweep name for the sweep's whole life: the check below and every write after it happen
        # under this lock, so two starts of one name (or a --resume beside a running sweep) cannot both run.
        with held_lock(SweepFolder(sweep_dir).lock):
            problem = fate_problem(sweep_dir, resume=resume)
            if problem:  # decided before anything is written: no sweep.yaml overwritten, no orphan MLflow run
                print(f"error: {problem}", file=sys.stderr)
                return 2
            return _run_locked(cfg, sweep_dir, resume=resume, smoke=smoke)
    except LockHeld as held:
        print(f"error: a sweep named {cfg.name!r} is already running (pid {held.holder or '?'}, holding {held.path}); "
              "wait for it to end, or choose another name (--set name=...)", file=sys.stderr)
        return 2
    finally:
        for folder in made:  # a refused sweep leaves no folder behind (each goes only if empty)
            with contextlib.suppress(OSError):
                folder.rmdir()


def _run_locked(cfg: Config, sweep_dir: Path, *, resume: bool, smoke: bool) -> int:
    """The sweep itself, its lock held: Ray, the parent run and sweep.yaml, Tune, then the outputs."""
    from orchestrator.engine.run import ensure_ray, use_gpu

    public = tracking.portable(cfg)  # what trials and Tune's pickles get: before Ray starts (its workers inherit)
    ensure_ray(cfg, log_to_driver=console.verbose())  # worker output only with --verbose (console.py)
    parent_run_id = tracking.find_run(cfg, "sweep_role", "parent") if resume else None
    if parent_run_id is not None:  # closed FAILED when the last driver raised: running again until it ends
        tracking.client(cfg).update_run(parent_run_id, status="RUNNING")
    else:
        parent_run_id = tracking.start_parent_run(cfg)
        write_sweep_yaml(cfg, SweepFolder(sweep_dir))
        tracking.log_artifacts(cfg, parent_run_id, [SweepFolder(sweep_dir).sweep_yaml])
    try:
        grid = make_tuner(cfg, public, sweep_dir, parent_run_id, resume=resume, smoke=smoke, gpu=use_gpu(cfg)).fit()
        if resume and not cfg.search.storage:  # its own study (a shared one may hold another driver's trials)
            from orchestrator.search.optuna_search import fail_abandoned, storage_url

            if SweepFolder(sweep_dir).optuna_db.is_file():
                fail_abandoned(storage_url(None, sweep_dir), cfg.name)
        rows = collect_rows(cfg, grid)
        write_outputs(cfg, sweep_dir, rows)
        close_parent_run(cfg, parent_run_id, sweep_dir, rows)
    except BaseException:  # the parent run does not stay RUNNING for ever; --resume reopens it
        with contextlib.suppress(Exception):  # the sweep's own error is the one to show
            tracking.finish_run(cfg, parent_run_id, "FAILED")
        raise
    if not smoke:  # smoke trials are full-budget too, but on a few dozen examples: keep them off the boards
        from orchestrator.reports.leaderboard import refresh

        refresh(Path(cfg.results_dir), sweep=cfg.name)  # only when results/leaderboards/manifest.yaml lists it
    for line in sweep_console.summary(cfg, rows, front_of(cfg, rows) if len(rows) else rows, sweep_dir,
                                tracking.local_view_url(cfg)):
        print(f"[{cfg.name}] {line}")
    return 0


def write_sweep_yaml(cfg: Config, folder: SweepFolder) -> None:
    """sweep.yaml: the config as the user wrote it, then the search space as comments. Written atomically: the
    report and --resume's checks read it back, and a driver killed mid-write must not leave half of it."""
    atomic_write_text(folder.sweep_yaml, dump_yaml(as_written(cfg)) + "\n# search space\n"
                      + "".join(f"# {redact(line)}\n" for line in describe_space(cfg)))


def make_tuner(cfg: Config, public: Config, sweep_dir: Path, parent_run_id: str, *, resume: bool, smoke: bool,
               gpu: bool) -> Any:
    """The sweep's Tuner, new or restored. Trials and the searcher get `public` (no tracking password: Tune
    pickles both into tune/ and Ray's session folder); the callbacks, which run in this driver, the real config."""
    from ray import tune

    from orchestrator.base.redact import STORAGE_URL_VAR, conceal_uri
    from orchestrator.search.optuna_search import storage_url

    in_trial = cfg.resources.trainer == "trial"
    # Tune saves its experiment state (trials, searcher) every 10 s or more, and copies it from Ray's session folder
    # to tune/ every 300 s or at a trial's checkpoint: a driver killed before its one running trial's first
    # checkpoint left a state without that trial, and --resume started a new one beside its leftovers.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", str(STATE_PERIOD_S))
    storage = storage_url(cfg.search.storage, sweep_dir)
    conceal_uri(storage, STORAGE_URL_VAR)  # where a restored searcher finds its password (optuna_search.py)
    trainable = tune.with_resources(tune.with_parameters(run_trial, base=public.to_dict(), parent_run_id=parent_run_id),
                                    trial_resources(cfg, gpu))
    experiment = SweepFolder(sweep_dir).tune_dir
    if resume:
        return tune.Tuner.restore(str(experiment), trainable=trainable, resume_unfinished=True, restart_errored=True)
    explicit = first_points(cfg, prefer_config=False) if smoke else grid_points(cfg) if cfg.search.sampler == "grid" else None
    if explicit is not None:
        param_space, search_alg, num_samples = {"point": tune.grid_search(explicit)}, None, 1
    else:
        param_space, search_alg, num_samples = {}, make_searcher(public, storage), cfg.search.num_samples
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=search_alg, num_samples=num_samples,
                                    max_concurrent_trials=max_concurrent(cfg, gpu), reuse_actors=in_trial,
                                    trial_dirname_creator=lambda trial: trial.trial_id,
                                    trial_name_creator=lambda trial: trial.trial_id),
        run_config=tune.RunConfig(
            name=experiment.name, storage_path=str(experiment.parent), verbose=1 if console.verbose() else 0,
            # A trial training in its own process is restarted by Tune from its last checkpoint (as Ray
            # Train restarts a TorchTrainer's lost workers); only the latest checkpoint is kept.
            failure_config=tune.FailureConfig(max_failures=2 if in_trial else 0),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            sync_config=tune.SyncConfig(sync_period=STATE_PERIOD_S),
            callbacks=[ParentRunCallback(cfg, parent_run_id),
                       *([] if console.verbose() else [ConsoleCallback(cfg, num_samples * len(explicit or [0]))])]),
    )


def trial_resources(cfg: Config, gpu: bool) -> dict[str, float]:
    """What one trial's function asks Ray for."""
    r = cfg.resources
    if r.trainer == "trial":  # it trains itself: one worker's CPUs (and GPU)
        return {"cpu": r.cpus_per_worker, "gpu": r.gpus_per_worker if gpu else 0}
    # The function only drives its TorchTrainer, whose workers hold the CPUs/GPUs; a trial taking 1 CPU of
    # its own would deadlock a 2-core machine (STACK.md).
    return {"cpu": 0, "memory": 1, HEAD_RESOURCE: 0.001}


def fate_problem(sweep_dir: Path, *, resume: bool) -> str | None:
    """Why this sweep may not start (or resume) in `sweep_dir`; None when it may. Checked before any write."""
    from ray import tune

    experiment = SweepFolder(sweep_dir).tune_dir
    restorable = tune.Tuner.can_restore(str(experiment))
    if resume and not restorable:
        return f"--resume: no sweep to resume at {experiment}; run without --resume to start it"
    if not resume and (restorable or SweepFolder(sweep_dir).is_sweep()):
        return (f"{sweep_dir} already holds a sweep named {sweep_dir.name!r}; pass --resume to continue it, "
                "or choose another name (--set name=...)")
    return None


def reference_point(cfg: Config, trials: pd.DataFrame) -> list[float]:
    """Hypervolume reference: 0 for a maximised metric (chance-level scores sit above it for every
    task but CoLA/STS-B correlations, which are clipped there); the uncompressed model's size for
    params/FLOPs (a model no smaller than the original earns nothing); else 1.1 x the worst value."""
    ref = []
    for metric, direction in objective_pairs(cfg):
        if direction == "max":
            ref.append(0.0)
        elif f"base_{metric}" in trials.columns and trials[f"base_{metric}"].notna().any():
            ref.append(float(trials[f"base_{metric}"].max()))
        else:
            ref.append(1.1 * float(trials[metric].max()))
    return ref


def front_summary(cfg: Config, trials: pd.DataFrame) -> dict[str, float]:
    """Over full-budget trials: each objective's best (`max_metric`, `min_params`: values, not settings), and
    the front's hypervolume (2-3 objectives) as a share of the box between the reference point and the
    ideal one (metric 1, size 0), so sweeps of models of any size compare: 1.0 would be a perfect model
    of no size."""
    done = counted(cfg, trials)
    pairs = objective_pairs(cfg)
    names = [m for m, _ in pairs]
    if len(done) == 0 or any(n not in done.columns for n in names):
        return {}
    done = done.dropna(subset=names)
    out = {f"{d}_{m}": float(done[m].max() if d == "max" else done[m].min()) for m, d in pairs}
    if len(pairs) in (2, 3) and len(done):
        ref = reference_point(cfg, done)
        ideal = [max(1.0, float(done[m].max())) if d == "max" else 0.0 for m, d in pairs]
        box = math.prod(abs(i - r) for i, r in zip(ideal, ref, strict=True))
        hv = hypervolume(done[names].to_numpy(float), [d for _, d in pairs], ref)
        out["hypervolume"] = hv / box if box > 0 else 0.0
    out["full_budget_trials"] = float(len(done))
    return out


# The running sweeps' configs, by name. Tune pickles its callbacks into tune/tuner.pkl on the sweep's
# (shared) storage; the tracking URI may hold a password, so a callback keeps the sweep's name and finds
# its config here, set by run_sweep in this driver process for a new sweep and for a resumed one alike.
_LIVE_CONFIGS: dict[str, Config] = {}


def remember_config(cfg: Config) -> None:
    _LIVE_CONFIGS[cfg.name] = cfg


def live_config(sweep: str) -> Config:
    # A module-level function: cloudpickle pickles it by reference, so the dict never travels by value.
    return _LIVE_CONFIGS[sweep]


class ParentRunCallback:
    """Updates the sweep's parent MLflow run as trials finish: best objectives and hypervolume grow."""

    def __new__(cls, *args: Any, **kwargs: Any):  # subclass ray's Callback lazily (Ray imported late)
        from ray.tune import Callback

        class _Callback(Callback):
            def __init__(self, cfg: Config, parent_run_id: str) -> None:
                self.sweep, self.parent_run_id = cfg.name, parent_run_id
                remember_config(cfg)

            @property
            def cfg(self) -> Config:
                return live_config(self.sweep)

            def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                rows = [{**(t.last_result or {}), "full_budget": bool((t.last_result or {}).get("full_budget"))}
                        for t in trials if t.status == "TERMINATED" or t is trial]
                summary = front_summary(self.cfg, pd.DataFrame(rows))
                if summary:
                    tracking.log_metrics(self.cfg, self.parent_run_id, summary, step=len(rows))

        return _Callback(*args, **kwargs)


def close_parent_run(cfg: Config, parent_run_id: str, sweep_dir: Path, trials: pd.DataFrame) -> None:
    """Final front metrics and files on the parent run; child runs that ASHA stopped are closed as KILLED."""
    summary = front_summary(cfg, trials)
    if summary:
        tracking.log_metrics(cfg, parent_run_id, summary, step=len(trials))
    tracking.log_artifacts(cfg, parent_run_id, SweepFolder(sweep_dir).outputs())
    for run in tracking.child_runs(cfg, parent_run_id):
        if run.info.status == "RUNNING":
            tracking.set_tags(cfg, run.info.run_id, {"full_budget": "false", "stopped_early": "true"})
            tracking.finish_run(cfg, run.info.run_id, "KILLED")
    tracking.finish_run(cfg, parent_run_id)
