"""The training loop of every method, run once per Ray Train worker (DDP over gloo or NCCL), or in a
Tune trial's own process (one worker): orchestrator/engine/session.py says where.

One readable loop for every method: the method's recipe (orchestrator/recipes/) decides how the
model is built, what the loss is, what happens before each optimizer step (PC-LoRA's λ) and what
the deployable model is; everything else (data sharding, AdamW with warmup and decay, clipping,
exact evaluation, a checkpoint per epoch, resumption after a worker dies, divergence) is shared.

Batch size: `train.batch_size` is the global batch; each of the N workers takes batch_size / N, so a
configuration means the same optimisation whatever the number of workers.
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from transformers import get_linear_schedule_with_warmup

from methods import kd_lora
from orchestrator.config.records import EarlyStopSpec, LoopConfig, RunMetrics, TrialFiles
from orchestrator.config.schema import Config, config_from_dict
from orchestrator.engine import asha, console, faults
from orchestrator.engine.measure import (  # noqa: F401 - evaluate and to_device are part of the loop's API
    evaluate,
    initial_accounting,
    longest_first,
    model_accounting,
    saved_tensor_elements,
    to_device,
)
from orchestrator.engine.session import Session, tune_result
from orchestrator.recipes import Recipe, StepInputs, get_recipe
from orchestrator.tasks import TaskSpec, build_dataset, compute_metrics, get_task, load_processor
from orchestrator.tasks.data import LengthGroupedSampler
from orchestrator.tracking import runs as tracking


def build_model(cfg: Config, task: TaskSpec, teacher_dir: str | None) -> nn.Module:
    """The network to train, with the method attached (adapters trainable, the rest as the method says)."""
    return get_recipe(cfg.method.name).build_model(cfg, task, teacher_dir)


def deployable_model(cfg: Config, raw_model: nn.Module) -> nn.Module:
    """What a user ships: PC-LoRA without W and b, LoRA merged into the weights, FFT as trained."""
    return get_recipe(cfg.method.name).deployable(cfg, raw_model)


# ---------------------------------------------------------------------------------------------
# Shared pieces


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def early_stop_decision(early_stop: EarlyStopSpec | None, epoch: int, report: dict[str, Any], rank: int,
                        world: int) -> bool:
    """ASHA's or MO-ASHA's rule at a rung epoch (see orchestrator/engine/asha.py) on the epoch's report (the
    sizes included); rank 0 decides, every rank follows."""
    if early_stop is None or epoch not in early_stop.rungs:
        return False
    decision = [False]
    if rank == 0:
        decision[0] = asha.record_and_decide(Path(early_stop.rung_dir), epoch, early_stop.trial_id,
                                             early_stop.rung_value(report), early_stop.reduction_factor,
                                             list(early_stop.directions) or None)
    if world > 1:
        dist.broadcast_object_list(decision, src=0)
    return bool(decision[0])


# ---------------------------------------------------------------------------------------------
# The loop


@dataclass
class StepState:
    """What one optimizer step needs; the benchmarks build one without Ray to time the same step."""

    cfg: Config
    recipe: Recipe
    raw_model: nn.Module
    model: nn.Module  # raw_model, DDP-wrapped on several workers
    aux: Any  # the recipe's teacher side (logits, a frozen model) or None
    optimizer: torch.optim.Optimizer
    scheduler: Any
    trainable: list[nn.Parameter]
    device: torch.device
    amp: bool  # bf16 autocast on GPUs; float32 on CPUs
    world: int
    regression: bool


def adamw(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW, fused on a GPU: one kernel for every parameter's update instead of a dozen per tensor."""
    fused = bool(params) and all(p.is_cuda for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)


def make_optimizer(cfg: Config, raw_model: nn.Module, total_steps: int) -> tuple[Any, Any, list[nn.Parameter]]:
    """AdamW over the trainable parameters, linear warm-up then linear decay to 0 at `total_steps`."""
    trainable = [p for p in raw_model.parameters() if p.requires_grad]
    optimizer = adamw(trainable, cfg.train.lr, cfg.train.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.train.warmup_ratio * total_steps), total_steps)
    return optimizer, scheduler, trainable


@dataclass
class Worker:
    """One worker's run: its rank, the task and data, and the step state."""

    task: TaskSpec
    rank: int
    data: dict[str, Any]  # train_set, train_collate, eval_set, eval_collate
    loader: DataLoader
    sampler: Any  # DistributedSampler or LengthGroupedSampler: set_epoch, this rank's share
    total_steps: int
    s: StepState
    session: Session

    @property
    def cfg(self) -> Config:
        return self.s.cfg


def load_data(cfg: Config, recipe: Recipe, task: TaskSpec, device: torch.device) -> dict[str, Any]:
    cache_dir = str(Path(cfg.results_dir) / ".cache" / "data")
    # Images are resized on the GPU when there is one (the host's PIL resize would starve it).
    common = {"data_dir": cfg.data_dir, "max_length": cfg.train.max_length, "seed": cfg.train.seed,
              "cache_dir": cache_dir, "model_name_or_path": recipe.data_reference(cfg),
              "trust_remote_code": cfg.trust_remote_code,
              "pixels_on": device if device.type == "cuda" else None}
    train_set, train_collate = build_dataset(task, "train", max_examples=cfg.train.max_examples, train=True,
                                             augment=cfg.train.augment, **common)
    eval_set, eval_collate = build_dataset(task, task.eval_split, max_examples=cfg.eval.max_examples,
                                           train=False, **common)
    return {"train_set": train_set, "train_collate": train_collate, "eval_set": eval_set,
            "eval_collate": eval_collate}


def train_sampler(cfg: Config, train_set: Any, world: int, rank: int) -> Any:
    """This rank's share of each epoch's shuffle; batches of like lengths with `train.group_by_length`
    (text: an image dataset has no lengths and gets the plain shuffle)."""
    lengths = getattr(train_set, "lengths", None)
    if cfg.train.group_by_length and lengths is not None:
        return LengthGroupedSampler(lengths, cfg.train.batch_size, world, rank, cfg.train.seed)
    return DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.train.seed)


def set_up(loop: LoopConfig, session: Session) -> Worker:
    console.quiet_libraries()  # transformers' load reports and progress bars, unless --verbose
    cfg = config_from_dict(loop.config)
    recipe = get_recipe(cfg.method.name)
    rank, world, device = session.rank, session.world, session.device
    torch.set_num_threads(max(1, cfg.resources.cpus_per_worker))
    task = get_task(cfg.task)
    seed_everything(cfg.train.seed)
    data = load_data(cfg, recipe, task, device)
    raw_model = recipe.build_model(cfg, task, loop.teacher_dir).to(device)
    aux = recipe.prepare(cfg, task, device, loop.teacher_dir, len(data["train_set"]))
    sampler = train_sampler(cfg, data["train_set"], world, rank)
    loader = DataLoader(data["train_set"], batch_size=max(1, cfg.train.batch_size // world), sampler=sampler,
                        collate_fn=data["train_collate"], drop_last=False)
    total_steps = len(loader) * cfg.train.epochs
    optimizer, scheduler, trainable = make_optimizer(cfg, raw_model, total_steps)
    state = StepState(cfg, recipe, raw_model, session.wrap_model(raw_model), aux, optimizer, scheduler, trainable,
                      device, device.type == "cuda", world, task.is_regression)
    return Worker(task, rank, data, loader, sampler, total_steps, state, session)


def train_step(s: StepState, batch: dict[str, torch.Tensor]) -> tuple[float, bool]:
    """One optimizer step on `batch` (on the device): (loss, finite). A non-finite step skips the update.

    The gradient norm is the same on every rank (DDP averages gradients), so every rank agrees on
    divergence; the loss is checked too for a single worker, where no all-reduce would spread it.
    """
    with torch.autocast(s.device.type, dtype=torch.bfloat16, enabled=s.amp):
        loss = s.recipe.loss(StepInputs(s.cfg, s.model, s.raw_model, batch, s.aux, s.regression))
    s.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = float(torch.nn.utils.clip_grad_norm_(s.trainable, s.cfg.train.max_grad_norm))
    value = loss.item()
    finite = math.isfinite(grad_norm) and (s.world > 1 or math.isfinite(value))
    if finite:
        s.optimizer.step()
        s.scheduler.step()
    return value, finite


def restore(w: Worker) -> tuple[int, int]:
    """(first epoch, step) after the checkpoint Ray hands a restarted worker; (0, 0) on a fresh run."""
    checkpoint = w.session.checkpoint
    if not checkpoint:
        return 0, 0
    with checkpoint.as_directory() as ckpt_dir:
        state = torch.load(Path(ckpt_dir) / TrialFiles.STATE, map_location=w.s.device, weights_only=True)
    w.s.raw_model.load_state_dict(state["model"])
    w.s.optimizer.load_state_dict(state["optimizer"])
    w.s.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"].cpu())
    if w.rank == 0:
        print(f"[{w.cfg.name}] resumed from the checkpoint of epoch {state['epoch'] + 1}", flush=True)
    return state["epoch"] + 1, state["step"]


def train_epoch(w: Worker, epoch: int, step: int, timing: dict[str, float]) -> dict[str, Any]:
    """One pass over this worker's shard; stops at the first non-finite step (`diverged`)."""
    w.sampler.set_epoch(epoch)
    start = step_start = time.perf_counter()
    seen, loss_sum, batches, step_times, state, diverged = 0, 0.0, 0, [], {}, False
    for batch in w.loader:
        timing.setdefault("first_step_unix", time.time())
        state = w.s.recipe.before_step(w.cfg, w.s.raw_model, step, w.total_steps)
        batch = to_device(batch, w.s.device)
        seen += len(batch["idx"])
        value, finite = train_step(w.s, batch)
        if not finite:
            diverged = True
            break
        step, loss_sum, batches = step + 1, loss_sum + value, batches + 1
        now = time.perf_counter()
        step_times.append(now - step_start)  # data loading included, as in examples_per_s
        step_start = now
    seconds = time.perf_counter() - start
    timing["train_loop_seconds"] += seconds
    return {"epoch": epoch + 1, "step": step, "loss": loss_sum / max(1, batches) if not diverged else math.nan,
            "examples_per_s": seen * w.s.world / max(seconds, 1e-9), "world_size": w.s.world,
            "step_seconds_median": statistics.median(step_times) if step_times else 0.0, "diverged": diverged,
            **state}


def evaluate_into(w: Worker, model: nn.Module, metrics: dict[str, Any], rank: int, world: int) -> None:
    """The task's metrics of `model` on the evaluation split, into `metrics` (on rank 0)."""
    result = evaluate(model, w.data["eval_set"], w.data["eval_collate"], w.cfg.eval.batch_size, w.s.device,
                      rank, world, w.s.amp)
    if rank == 0:
        metrics.update(compute_metrics(w.task, *result))
        metrics["metric_name"] = w.task.primary_metric
        metrics["metric"] = metrics[w.task.primary_metric]


def train_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: `loop_config` is a `LoopConfig` as a dict."""
    from orchestrator.engine.session import ray_train_session

    run_loop(LoopConfig.from_dict(loop_config), ray_train_session())


def run_loop(loop: LoopConfig, session: Session) -> None:
    """Train, evaluate, checkpoint and report every epoch of `loop`, then save the deployable model."""
    start_time = time.perf_counter()
    # Timings for benchmarks/overhead.py: wall-clock stamps (comparable with the driver's) and seconds
    # spent in the training steps and in evaluation, reported with every epoch.
    timing: dict[str, float] = {"worker_start_unix": time.time(), "train_loop_seconds": 0.0, "eval_seconds": 0.0}
    w = set_up(loop, session)
    cfg = w.cfg
    start_epoch, step = restore(w)
    faults.before_training(w.rank)
    sizes = initial_accounting(cfg, w.task, w.s.raw_model) if w.rank == 0 else {}
    node = session.node  # rank 0's node: it changes when a lost node's trial resumes elsewhere
    w.s.model.train()
    for epoch in range(start_epoch, cfg.train.epochs):
        metrics = {**train_epoch(w, epoch, step, timing), "node": node, "resumed_from_epoch": start_epoch}
        step = metrics["step"]
        diverged = metrics["diverged"]
        if not diverged:
            eval_start = time.perf_counter()
            evaluate_into(w, w.s.model, metrics, w.rank, w.s.world)
            timing["eval_seconds"] += time.perf_counter() - eval_start
        metrics.update(timing)
        if w.rank == 0:
            print_epoch(cfg, metrics)
        last = epoch + 1 == cfg.train.epochs and not diverged
        stop = not last and not diverged and early_stop_decision(loop.early_stop, epoch + 1, {**sizes, **metrics},
                                                                 w.rank, w.s.world)
        report_epoch(w, loop, metrics, sizes, epoch, step, last=last, stop=stop, start_time=start_time)
        if stop or diverged:
            if w.rank == 0:
                print(f"[{cfg.name}] " + ("stopped early at a rung" if stop else "diverged") + f" after epoch {epoch + 1}",
                      flush=True)
            break
        faults.after_epoch(w.rank, epoch)


def print_epoch(cfg: Config, m: dict[str, Any]) -> None:
    if m["diverged"]:
        print(f"[{cfg.name}] epoch {m['epoch']}/{cfg.train.epochs}: non-finite loss at step {m['step']} "
              f"(train.lr={cfg.train.lr}); the run is stopped as diverged", flush=True)
        return
    print(f"[{cfg.name}] epoch {m['epoch']}/{cfg.train.epochs} loss {m['loss']:.4f} {m['metric_name']} "
          f"{m['metric']:.4f}" + (f" λ {m['lambda']:.3f}" if "lambda" in m else "")
          + f" {m['examples_per_s']:.1f} ex/s", flush=True)


def report_epoch(w: Worker, loop: LoopConfig, metrics: dict[str, Any], sizes: dict[str, Any], epoch: int,
                 step: int, *, last: bool, stop: bool, start_time: float) -> None:
    """Checkpoint and report the epoch; at the end, the deployable model and metrics.json (rank 0)."""
    cfg, out_dir = w.cfg, Path(loop.out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = None
        if w.rank == 0:
            torch.save({"model": w.s.raw_model.state_dict(), "optimizer": w.s.optimizer.state_dict(),
                        "scheduler": w.s.scheduler.state_dict(), "rng": torch.get_rng_state(),
                        "epoch": epoch, "step": step}, Path(tmp) / TrialFiles.STATE)
            ckpt = w.session.make_checkpoint(tmp)
            metrics.update(sizes)
            if last:
                metrics["metric_trained"] = metrics.get("metric")  # before export (PC-LoRA: W still present)
                metrics.update(finish(w, out_dir, loop.emit_train_logits))
            if last or stop or metrics["diverged"]:
                metrics.update({"task": cfg.task, "method": cfg.method.name, "full_budget": last,
                                "stopped_early": stop, "train_seconds": time.perf_counter() - start_time})
                if metrics["diverged"]:
                    metrics.update({"metric": None, "metric_name": w.task.primary_metric,
                                    "status_message": f"diverged: non-finite loss at step {step} with "
                                                      f"train.lr={cfg.train.lr}; lower the learning rate"})
                write_metrics(out_dir, metrics, w.task)
        w.session.report(tune_result(metrics, cfg.search.objectives), ckpt)
    if w.rank == 0:
        append_epoch(out_dir, metrics)
        if loop.mlflow_run_id:
            tracking.log_metrics(cfg, loop.mlflow_run_id, tracking.epoch_metrics(metrics), step=epoch + 1)


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    """No None and no NaN: an epochs.jsonl line of strict JSON."""
    return {k: v for k, v in metrics.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}


def finish(w: Worker, out_dir: Path, emit_train_logits: bool) -> dict[str, Any]:
    """Rank 0 after the last epoch: the deployable model evaluated, saved, and measured from what was saved.

    The metric reported is the deployable model's (PC-LoRA without W, LoRA merged), measured here
    on the whole evaluation split, not the training-time network's.
    """
    cfg, task, recipe, device = w.cfg, w.task, w.s.recipe, w.s.device
    w.s.raw_model.eval()
    if emit_train_logits:  # a KD-LoRA teacher: its logits, once per training example, by index
        train_set = w.data["train_set"]
        loader = DataLoader(Subset(train_set, longest_first(train_set, list(range(len(train_set))))),
                            batch_size=cfg.eval.batch_size, shuffle=False, collate_fn=w.data["train_collate"])
        kd_lora.TeacherLogits.compute(w.s.raw_model, loader, device).save(out_dir / TrialFiles.TEACHER_LOGITS)
    deployable = recipe.deployable(cfg, w.s.raw_model)
    metrics: dict[str, Any] = {}
    evaluate_into(w, deployable, metrics, rank=0, world=1)
    deployable = deployable.cpu().float()
    model_dir = out_dir / TrialFiles.MODEL
    recipe.save(deployable, model_dir)
    # The folder loads on its own (from_pretrained), tokenizer or image processor included.
    load_processor(recipe.data_reference(cfg), task, trust_remote_code=cfg.trust_remote_code).save_pretrained(model_dir)
    measured = model_accounting(cfg, task, deployable)
    stored = saved_tensor_elements(model_dir)
    if stored != measured["params"]:
        raise RuntimeError(f"{model_dir} stores {stored} tensor elements but the model has {measured['params']} "
                           "parameters; the saved model would not match metrics.json")
    # The leaderboards quote this string as the trial's hardware: on a CPU the size of the host matters.
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"cpu ({len(os.sched_getaffinity(0))}-core host, {torch.get_num_threads()} thread/worker)")
    return {**metrics, **measured, "device": device_name}


def append_epoch(out_dir: Path, metrics: dict[str, Any]) -> None:
    """One line of the epochs file: the epoch's node, time and result, written after its checkpoint was reported."""
    keys = ("epoch", "node", "resumed_from_epoch", "loss", "metric_name", "metric", "lambda", "diverged")
    line = {"time": time.time(), **{k: metrics[k] for k in keys if k in metrics}}
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / TrialFiles.EPOCHS, "a") as handle:
        handle.write(json.dumps(_finite(line)) + "\n")


def write_metrics(out_dir: Path, metrics: dict[str, Any], task: TaskSpec) -> None:
    """metrics.json through its record (a missing key fails here, not in a report), strict JSON, atomically."""
    names = tuple(task.metric_names) + (task.primary_metric,)
    RunMetrics.from_json(metrics, names).write(out_dir)
