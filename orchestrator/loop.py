"""The training loop of every method, run once per Ray Train worker (DDP over gloo or NCCL).

One readable loop for pc_lora, kd_lora, lora and fft: the method decides how the model is built
(`build_model`), what the loss is (`method_loss`) and what the deployable model is
(`deployable_model`); everything else (data sharding, AdamW with warmup and decay, clipping, exact
evaluation, a checkpoint per epoch, resumption after a worker dies) is shared.

Batch size: `train.batch_size` is the global batch; each of the N workers takes batch_size / N, so a
configuration means the same optimisation whatever the number of workers.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from transformers import get_linear_schedule_with_warmup

from methods import accounting, baselines, kd_lora, pc_lora
from orchestrator import asha, tracking
from orchestrator.config import Config, config_from_dict
from orchestrator.tasks import TaskSpec, build_dataset, compute_metrics, get_task, load_model, load_processor

TEACHER_LOGITS_FILE = "train_logits.safetensors"
STATE_FILE = "state.pt"
EPOCHS_FILE = "epochs.jsonl"  # one line per finished epoch, appended by rank 0: where and when it ran


# ---------------------------------------------------------------------------------------------
# What each method changes


def student_reference(cfg: Config) -> str:
    """The model whose tokenizer/processor feeds the trained network (a cut teacher keeps the teacher's)."""
    if cfg.method.name == "kd_lora" and cfg.method.student:
        return cfg.method.student
    if cfg.method.name == "kd_lora":
        return cfg.method.teacher or cfg.model
    return cfg.model


def build_model(cfg: Config, task: TaskSpec, teacher_dir: str | None) -> nn.Module:
    """The network to train, with the method attached (adapters trainable, the rest as the method says)."""
    m = cfg.method
    if m.name == "fft":
        return baselines.prepare_fft(load_model(cfg.model, task, trust_remote_code=cfg.trust_remote_code))
    if m.name == "lora":
        return baselines.attach_lora(load_model(cfg.model, task, trust_remote_code=cfg.trust_remote_code), m.rank, alpha=m.alpha, targets=m.target_modules)
    if m.name == "pc_lora":
        model = load_model(cfg.model, task, trust_remote_code=cfg.trust_remote_code)
        pc_lora.attach(model, m.rank, alpha=m.alpha, target_patterns=m.target_modules)
        return model
    # KD-LoRA: the student is another checkpoint, or the fine-tuned teacher cut to k evenly spaced
    # layers (DistilBERT's recipe; starting from the fine-tuned teacher keeps its task head).
    if m.student:
        student = load_model(m.student, task, trust_remote_code=cfg.trust_remote_code)
    else:
        teacher = load_model(str(Path(teacher_dir) / "model"), task, trust_remote_code=cfg.trust_remote_code)
        layers = m.student_layers or max(1, teacher.config.num_hidden_layers // 2)
        student = kd_lora.cut_layers(teacher, layers)
    return baselines.attach_lora(student, m.rank, alpha=m.alpha, targets=m.target_modules)


def build_feature_teacher(cfg: Config, task: TaskSpec, device: torch.device) -> nn.Module | None:
    """PC-LoRA's teacher when it is a separate fine-tuned copy; None = the model itself at λ = 1."""
    if cfg.method.name != "pc_lora" or cfg.method.kd_weight == 0 or not cfg.method.teacher:
        return None
    teacher = load_model(cfg.method.teacher, task, trust_remote_code=cfg.trust_remote_code).to(device).eval()
    teacher.requires_grad_(False)
    return teacher


def method_loss(cfg: Config, model: nn.Module, raw_model: nn.Module, batch: dict[str, torch.Tensor],
                teacher_logits: kd_lora.TeacherLogits | None, feature_teacher: nn.Module | None,
                regression: bool) -> torch.Tensor:
    m = cfg.method
    idx = batch.pop("idx")
    if m.name == "kd_lora":
        labels = batch.pop("labels")
        logits = model(**batch).logits
        return kd_lora.kd_loss(logits, teacher_logits.lookup(idx), labels, kd_weight=m.kd_weight,
                               temperature=m.temperature, regression=regression)
    if m.name == "pc_lora" and m.kd_weight > 0:
        out = model(**batch, output_hidden_states=True)
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        if feature_teacher is not None:
            with torch.no_grad():
                teacher_out = feature_teacher(**inputs, output_hidden_states=True)
        else:
            teacher_out = pc_lora.teacher_forward(raw_model, **inputs)
        return pc_lora.loss(out.loss, out.hidden_states[1:], teacher_out.hidden_states[1:], m.kd_weight)
    return model(**batch).loss


def deployable_model(cfg: Config, raw_model: nn.Module) -> nn.Module:
    """What a user ships: PC-LoRA without W and b, LoRA merged into the weights, FFT as trained."""
    if cfg.method.name == "pc_lora":
        return pc_lora.compress(raw_model)
    if cfg.method.name in ("lora", "kd_lora"):
        return baselines.merge_lora(raw_model)
    return raw_model


def save_deployable(cfg: Config, model: nn.Module, path: Path) -> None:
    if cfg.method.name == "pc_lora":
        pc_lora.save_compressed(model, path)
    else:
        baselines.save_model(model, path)


# ---------------------------------------------------------------------------------------------
# Shared pieces


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def input_size(cfg: Config, task: TaskSpec, model: nn.Module) -> dict[str, int]:
    """The size of one example for FLOPs: max_length tokens, or the processor's image size."""
    if task.kind == "text":
        return {"seq_len": cfg.train.max_length}
    size = getattr(model.config, "image_size", 224)
    return {"image_size": 224 if size > 224 else size}


def saved_tensor_elements(path: Path) -> int:
    """Sum of the tensor sizes stored in a model folder's safetensors files."""
    from safetensors import safe_open

    total = 0
    for file in sorted(path.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                total += math.prod(f.get_slice(key).get_shape())
    return total


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Any, collate: Any, batch_size: int, device: torch.device,
             rank: int, world: int, amp: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """Predictions over the whole split, each example exactly once whatever the number of workers.

    Each rank takes a strided shard (no sampler padding, so nothing is counted twice); rank 0
    gathers the shards and returns (predictions, labels) ordered by example index; other ranks get None.
    """
    model.eval()
    shard = Subset(dataset, list(range(rank, len(dataset), world)))
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False, collate_fn=collate)
    idx_parts, pred_parts, label_parts = [], [], []
    for batch in loader:
        batch = to_device(batch, device)
        idx_parts.append(batch.pop("idx").cpu())
        label_parts.append(batch.pop("labels").cpu())
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(**batch).logits
        pred_parts.append(logits.float().cpu())
    local = (torch.cat(idx_parts) if idx_parts else torch.empty(0, dtype=torch.long),
             torch.cat(pred_parts) if pred_parts else torch.empty(0),
             torch.cat(label_parts) if label_parts else torch.empty(0))
    model.train()
    parts = [local]
    if world > 1:
        parts = [None] * world
        dist.all_gather_object(parts, local)
    if rank != 0:
        return None
    idx = torch.cat([p[0] for p in parts])
    order = torch.argsort(idx)
    assert torch.equal(idx[order], torch.arange(len(dataset))), "evaluation lost or repeated examples"
    preds = torch.cat([p[1] for p in parts if len(p[1])])[order].numpy()
    labels = torch.cat([p[2] for p in parts if len(p[2])])[order].numpy()
    return preds, labels


def early_stop_decision(early_stop: dict[str, Any] | None, epoch: int, metric: float | None, rank: int,
                        world: int) -> bool:
    """ASHA's rule at a rung epoch (see orchestrator/asha.py); rank 0 decides, every rank follows."""
    if not early_stop or epoch not in early_stop["rungs"]:
        return False
    decision = [False]
    if rank == 0:
        decision[0] = asha.record_and_decide(Path(early_stop["rung_dir"]), epoch, early_stop["trial_id"],
                                             float(metric), early_stop["reduction_factor"])
    if world > 1:
        dist.broadcast_object_list(decision, src=0)
    return bool(decision[0])


def _maybe_die_for_test(rank: int, epoch: int) -> None:
    """Fault injection for the resume test: rank 0 records its pid once, then waits to be killed."""
    pid_file = os.environ.get("ORCH_TEST_PID_FILE")
    if not pid_file or rank != 0 or epoch != 1 or Path(pid_file).exists():
        return
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("ORCH_TEST_PAUSE", "60")))


# ---------------------------------------------------------------------------------------------
# The loop


def train_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point: `loop_config` holds the resolved config, out_dir and teacher_dir."""
    cfg = config_from_dict(loop_config["config"])
    out_dir = Path(loop_config["out_dir"])
    teacher_dir = loop_config.get("teacher_dir")
    emit_train_logits = loop_config.get("emit_train_logits", False)
    run_id = loop_config.get("mlflow_run_id")
    early_stop = loop_config.get("early_stop")
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    amp = device.type == "cuda"  # bf16 autocast on GPUs; float32 on CPUs
    torch.set_num_threads(max(1, cfg.resources.cpus_per_worker))
    task = get_task(cfg.task)
    seed_everything(cfg.train.seed)
    start_time = time.perf_counter()
    # Timings for benchmarks/overhead.py: wall-clock stamps (comparable with the driver's) and seconds
    # spent in the training steps and in evaluation, reported with every epoch.
    timing: dict[str, float] = {"worker_start_unix": time.time(), "train_loop_seconds": 0.0, "eval_seconds": 0.0}

    data_ref = student_reference(cfg)
    cache_dir = str(Path(cfg.results_dir) / ".cache" / "data")
    common = {"data_dir": cfg.data_dir, "max_length": cfg.train.max_length, "seed": cfg.train.seed,
              "cache_dir": cache_dir, "model_name_or_path": data_ref, "trust_remote_code": cfg.trust_remote_code}
    train_set, train_collate = build_dataset(task, "train", max_examples=cfg.train.max_examples, train=True,
                                             augment=cfg.train.augment, **common)
    eval_set, eval_collate = build_dataset(task, task.eval_split, max_examples=cfg.eval.max_examples,
                                           train=False, **common)

    raw_model = build_model(cfg, task, teacher_dir).to(device)
    feature_teacher = build_feature_teacher(cfg, task, device)
    teacher_logits = None
    if cfg.method.name == "kd_lora":
        teacher_logits = kd_lora.TeacherLogits.load(Path(teacher_dir) / TEACHER_LOGITS_FILE).to(device)
        if len(teacher_logits) != len(train_set):
            raise RuntimeError(f"teacher logits cover {len(teacher_logits)} examples, the training set has "
                               f"{len(train_set)}; delete {teacher_dir} to recompute them")

    per_worker_batch = max(1, cfg.train.batch_size // world)
    sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.train.seed)
    loader = DataLoader(train_set, batch_size=per_worker_batch, sampler=sampler, collate_fn=train_collate,
                        drop_last=False)
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * cfg.train.epochs
    trainable = [p for p in raw_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.train.warmup_ratio * total_steps), total_steps)

    start_epoch, step = 0, 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as ckpt_dir:
            state = torch.load(Path(ckpt_dir) / STATE_FILE, map_location=device, weights_only=True)
        raw_model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"].cpu())
        start_epoch, step = state["epoch"] + 1, state["step"]
        if rank == 0:
            print(f"[{cfg.name}] resumed from the checkpoint of epoch {state['epoch'] + 1}", flush=True)

    sizes = initial_accounting(cfg, task, raw_model) if rank == 0 else {}
    # Where rank 0 runs (on a cluster, the node; it changes when a lost node's trial resumes elsewhere).
    node = ray.util.get_node_ip_address()
    model = ray.train.torch.prepare_model(raw_model, move_to_device=False) if world > 1 else raw_model
    model.train()
    lam = 1.0
    for epoch in range(start_epoch, cfg.train.epochs):
        sampler.set_epoch(epoch)
        epoch_start, seen, loss_sum, batches = time.perf_counter(), 0, 0.0, 0
        step_times, step_start = [], epoch_start
        for batch in loader:
            if "first_step_unix" not in timing:
                timing["first_step_unix"] = time.time()
            if cfg.method.name == "pc_lora":
                lam = pc_lora.decay_factor(step, total_steps, cfg.method.decay_schedule, cfg.method.decay_end)
                pc_lora.set_lambda(raw_model, lam)
            batch = to_device(batch, device)
            seen += len(batch["idx"])
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = method_loss(cfg, model, raw_model, batch, teacher_logits, feature_teacher,
                                   task.is_regression)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, cfg.train.max_grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            loss_sum += loss.item()
            batches += 1
            step_end = time.perf_counter()
            step_times.append(step_end - step_start)  # data loading included, as in examples_per_s
            step_start = step_end
        seconds = time.perf_counter() - epoch_start
        timing["train_loop_seconds"] += seconds
        eval_start = time.perf_counter()
        result = evaluate(model, eval_set, eval_collate, cfg.eval.batch_size, device, rank, world, amp)
        timing["eval_seconds"] += time.perf_counter() - eval_start

        metrics: dict[str, Any] = {"epoch": epoch + 1, "step": step, "loss": loss_sum / max(1, batches),
                                   "examples_per_s": seen * world / max(seconds, 1e-9), "world_size": world,
                                   "step_seconds_median": statistics.median(step_times) if step_times else 0.0,
                                   **timing}
        metrics.update({"node": node, "resumed_from_epoch": start_epoch})
        if cfg.method.name == "pc_lora":
            metrics["lambda"] = lam
        if rank == 0:
            metrics.update(compute_metrics(task, *result))
            metrics["metric_name"] = task.primary_metric
            metrics["metric"] = metrics[task.primary_metric]
            print(f"[{cfg.name}] epoch {epoch + 1}/{cfg.train.epochs} loss {metrics['loss']:.4f} "
                  f"{task.primary_metric} {metrics['metric']:.4f}"
                  + (f" λ {lam:.3f}" if "lambda" in metrics else "")
                  + f" {metrics['examples_per_s']:.1f} ex/s", flush=True)
        last = epoch + 1 == cfg.train.epochs
        stop = not last and early_stop_decision(early_stop, epoch + 1, metrics.get("metric"), rank, world)
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if rank == 0:
                torch.save({"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(),
                            "epoch": epoch, "step": step}, Path(tmp) / STATE_FILE)
                ckpt = ray.train.Checkpoint.from_directory(tmp)
                metrics.update(sizes)
                if last:
                    metrics.update(finish(cfg, task, raw_model, out_dir, train_set, train_collate, device,
                                          emit_train_logits))
                if last or stop:
                    metrics.update({"task": cfg.task, "method": cfg.method.name, "full_budget": last,
                                    "stopped_early": stop, "train_seconds": time.perf_counter() - start_time})
                    write_metrics(out_dir, metrics)
            ray.train.report(metrics, checkpoint=ckpt)
        if rank == 0:
            append_epoch(out_dir, metrics)
        if rank == 0 and run_id:
            tracking.log_metrics(cfg, run_id, metrics, step=epoch + 1)
        if stop:
            if rank == 0:
                print(f"[{cfg.name}] stopped early by ASHA after epoch {epoch + 1}", flush=True)
            break
        _maybe_die_for_test(rank, epoch)


def model_accounting(cfg: Config, task: TaskSpec, model: nn.Module) -> dict[str, int]:
    """params, params_no_embeddings and flops of a (deployable) model at the task's input size."""
    counts = accounting.count_params(model)
    size = input_size(cfg, task, model)
    flops = accounting.count_flops(model, accounting.example_inputs(model, **size))
    return {"params": counts["params"], "params_no_embeddings": counts["params_no_embeddings"], "flops": flops}


def initial_accounting(cfg: Config, task: TaskSpec, raw_model: nn.Module) -> dict[str, Any]:
    """The uncompressed model's size and what the deployable model will be, known before training.

    Reported with every epoch, so a trial that ASHA stops early still has its place on the
    params/FLOPs axes; the final numbers are measured again on the saved model.
    """
    base = load_model(cfg.model, task, trust_remote_code=cfg.trust_remote_code)
    base_counts = model_accounting(cfg, task, base)
    del base
    projected = model_accounting(cfg, task, deployable_model(cfg, copy.deepcopy(raw_model).cpu()))
    return {**projected, "base_params": base_counts["params"],
            "base_params_no_embeddings": base_counts["params_no_embeddings"], "base_flops": base_counts["flops"],
            "trainable_params": sum(p.numel() for p in raw_model.parameters() if p.requires_grad)}


def finish(cfg: Config, task: TaskSpec, raw_model: nn.Module, out_dir: Path, train_set: Any,
           train_collate: Any, device: torch.device, emit_train_logits: bool) -> dict[str, Any]:
    """Rank 0 after the last epoch: the deployable model saved, and measured again from what was saved."""
    raw_model.eval()
    if emit_train_logits:  # a KD-LoRA teacher: its logits, once per training example, by index
        loader = DataLoader(train_set, batch_size=cfg.eval.batch_size, shuffle=False, collate_fn=train_collate)
        kd_lora.TeacherLogits.compute(raw_model, loader, device).save(out_dir / TEACHER_LOGITS_FILE)
    deployable = deployable_model(cfg, raw_model).cpu().float()
    model_dir = out_dir / "model"
    save_deployable(cfg, deployable, model_dir)
    # The folder loads on its own (from_pretrained), tokenizer or image processor included.
    load_processor(student_reference(cfg), task, trust_remote_code=cfg.trust_remote_code).save_pretrained(model_dir)
    measured = model_accounting(cfg, task, deployable)
    stored = saved_tensor_elements(model_dir)
    if stored != measured["params"]:
        raise RuntimeError(f"{model_dir} stores {stored} tensor elements but the model has {measured['params']} "
                           "parameters; the saved model would not match metrics.json")
    # The leaderboards quote this string as the trial's hardware: on a CPU the size of the host matters.
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"cpu ({len(os.sched_getaffinity(0))}-core host, {torch.get_num_threads()} thread/worker)")
    return {**measured, "device": device_name}


def append_epoch(out_dir: Path, metrics: dict[str, Any]) -> None:
    """One line of EPOCHS_FILE: the epoch's node, time and result, written after its checkpoint was reported."""
    keys = ("epoch", "node", "resumed_from_epoch", "loss", "metric")
    line = {"time": time.time(), **{k: metrics[k] for k in keys if k in metrics}}
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / EPOCHS_FILE, "a") as handle:
        handle.write(json.dumps(line) + "\n")


def write_metrics(out_dir: Path, metrics: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    tmp.replace(out_dir / "metrics.json")

