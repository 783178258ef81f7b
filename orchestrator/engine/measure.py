"""What a run measures besides its loss: exact evaluation over a split, and the model's size and FLOPs.

Evaluation covers every example exactly once whatever the number of workers; sizes are counted on
the deployable model and checked against what was saved, so metrics.json describes the shipped model.
"""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Subset

from methods import accounting
from orchestrator.config.schema import Config
from orchestrator.recipes import get_recipe
from orchestrator.tasks import TaskSpec, load_model


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def input_size(max_length: int, task: TaskSpec, model: nn.Module) -> dict[str, int]:
    """The size of one example for FLOPs: max_length tokens, or the processor's image size."""
    if task.kind == "text":
        return {"seq_len": max_length}
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


def longest_first(dataset: Any, indices: list[int]) -> list[int]:
    """`indices` by decreasing length when the dataset knows its rows' lengths (text). A batch is padded to
    its longest row, so batches of like lengths cost what their tokens cost: about half of a shuffled
    SST-2 evaluation was padding. The order changes no result (predictions go back in example order),
    and the longest batch comes first, so one that does not fit in memory fails at once."""
    lengths = getattr(dataset, "lengths", None)
    if lengths is None:
        return indices
    return sorted(indices, key=lambda i: -int(lengths[i]))


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Any, collate: Any, batch_size: int, device: torch.device,
             rank: int, world: int, amp: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """Predictions over the whole split, each example exactly once whatever the number of workers.

    Each rank takes a strided shard (no sampler padding, so nothing is counted twice); rank 0
    gathers the shards and returns (predictions, labels) ordered by example index; other ranks get None.
    """
    model.eval()
    shard = Subset(dataset, longest_first(dataset, list(range(rank, len(dataset), world))))
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


def model_accounting(cfg: Config, task: TaskSpec, model: nn.Module) -> dict[str, int]:
    """params, params_no_embeddings and flops of a (deployable) model at the task's input size."""
    return _counts(task, model, cfg.train.max_length)


def _counts(task: TaskSpec, model: nn.Module, max_length: int) -> dict[str, int]:
    counts = accounting.count_params(model)
    size = input_size(max_length, task, model)
    flops = accounting.count_flops(model, accounting.example_inputs(model, **size))
    return {"params": counts["params"], "params_no_embeddings": counts["params_no_embeddings"], "flops": flops}


@functools.lru_cache(maxsize=8)
def _base_accounting(model_ref: str, task_name: str, max_length: int, trust_remote_code: bool) -> tuple:
    """The uncompressed model's counts, loaded once per process: a Tune trial process that trains trial
    after trial (orchestrator/engine/session.py) reads the base model's weights for this once, not per trial."""
    from orchestrator.tasks import get_task

    task = get_task(task_name)
    base = load_model(model_ref, task, trust_remote_code=trust_remote_code)
    return tuple(_counts(task, base, max_length).items())


def initial_accounting(cfg: Config, task: TaskSpec, raw_model: nn.Module) -> dict[str, Any]:
    """The uncompressed model's size and what the deployable model will be, known before training.

    Reported with every epoch, so a trial that ASHA stops early still has its place on the
    params/FLOPs axes; the final numbers are measured again on the saved model.
    """
    base_counts = dict(_base_accounting(cfg.model, cfg.task, cfg.train.max_length, cfg.trust_remote_code))
    projected = model_accounting(cfg, task, get_recipe(cfg.method.name).deployable(cfg, copy.deepcopy(raw_model).cpu()))
    return {**projected, "base_params": base_counts["params"],
            "base_params_no_embeddings": base_counts["params_no_embeddings"], "base_flops": base_counts["flops"],
            "trainable_params": sum(p.numel() for p in raw_model.parameters() if p.requires_grad)}
