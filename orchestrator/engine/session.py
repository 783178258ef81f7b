"""Where a training loop runs: a Ray Train worker group, or the Tune trial's own process.

The loop (orchestrator/engine/loop.py) needs from around it: its rank and the world size, its device, the
checkpoint to resume from, a way to make and report an epoch's checkpoint, the DDP wrapper and its
node's address. A `Session` carries them, so one loop serves both places:

- `ray_train_session()`: a worker of a `TorchTrainer` (any number of workers, DDP; Ray Train restarts
  lost workers from the last checkpoint). What `orchestrator train` and sweeps on a cluster use.
- `trial_session()`: the Tune trial's own process, one worker. A local sweep's one-worker trials train
  here: no Train controller, worker group or extra processes per trial (about half of a 2-core
  quickstart's wall time went there), and Tune restarts a lost trial from its last checkpoint.
- `trial_session(report=False)`: the same process for a run whose epochs are not the trial's results
  (the KD-LoRA teacher a trial fine-tunes first).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

Report = Callable[[dict[str, Any], Any], None]  # (metrics, checkpoint or None)


@dataclass(frozen=True)
class Session:
    rank: int
    world: int
    device: torch.device
    checkpoint: Any  # the checkpoint to resume from (ray.train or ray.tune Checkpoint), or None
    report: Report
    make_checkpoint: Callable[[str], Any]  # a folder -> the checkpoint object `report` takes
    wrap_model: Callable[[nn.Module], nn.Module]  # DDP over several workers, else the model itself
    node: str  # this process's node address (a lost node's trial resumes elsewhere)


# What an objective the trial could not measure reports: the worst value for its direction. Tune refuses a result
# without every metric its searcher names (a diverged trial's metric is None), which ended the whole sweep; the
# searcher (orchestrator/search/optuna_search.py) tells a trial without `full_budget` as FAIL or PRUNED, never with
# these values, and trials.csv and the front read metrics.json, where the metric stays null.
WORST = {"max": -math.inf, "min": math.inf}


def tune_result(metrics: dict[str, Any], objectives: list[str]) -> dict[str, Any]:
    """An epoch's report as Tune takes it: no None or NaN (Tune would keep an older value of that key), and every
    objective (`metric:max`) present, the worst value standing in for one the epoch did not measure."""
    result = {k: v for k, v in metrics.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
    for objective in objectives:
        name, _, mode = objective.partition(":")
        result.setdefault(name, WORST[mode])
    return result


def ray_train_session() -> Session:
    import ray
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    world = ctx.get_world_size()

    def wrap(model: nn.Module) -> nn.Module:
        return ray.train.torch.prepare_model(model, move_to_device=False) if world > 1 else model

    return Session(rank=ctx.get_world_rank(), world=world, device=ray.train.torch.get_device(),
                   checkpoint=ray.train.get_checkpoint(),
                   report=lambda metrics, ckpt: ray.train.report(metrics, checkpoint=ckpt),
                   make_checkpoint=ray.train.Checkpoint.from_directory, wrap_model=wrap,
                   node=ray.util.get_node_ip_address())


def trial_session(*, report: bool = True) -> Session:
    """One worker in this Tune trial's process, on the GPU Ray gave the trial if it has one."""
    import ray
    from ray import tune

    device = torch.device("cuda", 0) if _has_gpu() else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not report:
        return Session(rank=0, world=1, device=device, checkpoint=None, report=lambda metrics, ckpt: None,
                       make_checkpoint=lambda folder: None, wrap_model=lambda model: model,
                       node=ray.util.get_node_ip_address())
    return Session(rank=0, world=1, device=device, checkpoint=tune.get_checkpoint(),
                   report=lambda metrics, ckpt: tune.report(metrics, checkpoint=ckpt),
                   make_checkpoint=tune.Checkpoint.from_directory, wrap_model=lambda model: model,
                   node=ray.util.get_node_ip_address())


def _has_gpu() -> bool:
    # Ray sets CUDA_VISIBLE_DEVICES to the trial's GPUs ("" for a trial that asked for none).
    return torch.cuda.is_available() and os.environ.get("CUDA_VISIBLE_DEVICES", "") != ""
