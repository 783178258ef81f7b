"""Parameter and FLOP accounting shared by every method (the `params*` and `flops` metrics)."""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

# Everything under a module named `embeddings` (word/position/token-type embeddings, their
# LayerNorm, the ViT/Dinov2 patch-embedding conv, cls token, mask token, position embeddings).
_EMBEDDINGS = re.compile(r"(^|\.)embeddings(\.|$)")

aten = torch.ops.aten


def count_params(model: nn.Module) -> dict[str, int]:
    """``params``, ``params_no_embeddings`` and ``trainable_params`` of ``model``.

    Parameters only (no buffers), each counted once even when tied. ``params_no_embeddings`` leaves
    out every parameter under a module named ``embeddings`` and every other ``nn.Embedding`` (e.g.
    DeBERTa's relative-position table).
    """
    params = dict(model.named_parameters())  # named_parameters() already yields a tied tensor once
    embedding_ids = {id(p) for n, p in params.items() if _EMBEDDINGS.search(n)}
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            embedding_ids.update(id(p) for p in m.parameters())
    return {
        "params": sum(p.numel() for p in params.values()),
        "params_no_embeddings": sum(p.numel() for p in params.values() if id(p) not in embedding_ids),
        "trainable_params": sum(p.numel() for p in params.values() if p.requires_grad),
    }


def _sdpa_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
    """Q·Kᵀ and P·V of scaled-dot-product attention, 2 FLOPs per multiply-add."""
    b, h, s_q, d_qk = query_shape
    s_k, d_v = key_shape[-2], value_shape[-1]
    return 2 * b * h * s_q * s_k * d_qk + 2 * b * h * s_q * s_k * d_v


# FlopCounterMode counts the CUDA attention kernels but not the CPU one that
# F.scaled_dot_product_attention dispatches to on the CPU (torch 2.13), so without this the same
# model would have fewer FLOPs on a CPU worker than on a GPU worker.
_EXTRA_FORMULAS = (
    {aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu")
    else {}
)


def count_flops(model: nn.Module, inputs: dict[str, Tensor]) -> int:
    """Forward FLOPs of ``model`` on ``inputs`` (1 multiply-add = 2 FLOPs), counted by
    ``torch.utils.flop_counter.FlopCounterMode`` in eval mode under ``no_grad``.

    Counts matrix products, convolutions and attention; norms, activations and softmax are not
    counted. The model's train/eval mode is restored afterwards.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS) as counter:
            model(**inputs)
    finally:
        for m, training in modes:
            m.training = training
    return int(counter.get_total_flops())


def example_inputs(
    model: nn.Module, *, seq_len: int | None = None, image_size: int | None = None
) -> dict[str, Tensor]:
    """One example (batch 1) at the task's input size, on the model's device.

    Vision models (config has ``image_size``): ``pixel_values`` 1×C×S×S with S = ``image_size`` or
    ``config.image_size``. Text models: ``input_ids`` and ``attention_mask`` of length ``seq_len``
    (required), plus ``token_type_ids`` when the config has token types. FLOPs do not depend on the
    values, so they are fixed, not random.
    """
    config = model.config
    param = next(model.parameters())
    if hasattr(config, "image_size"):
        size = image_size or config.image_size
        size = size[0] if isinstance(size, (list, tuple)) else size
        channels = getattr(config, "num_channels", 3)
        return {"pixel_values": torch.zeros(1, channels, size, size, dtype=param.dtype, device=param.device)}
    if seq_len is None:
        raise ValueError(
            f"{type(model).__name__} is a text model: pass seq_len (the task's train.max_length)"
        )
    ids = torch.arange(seq_len, device=param.device).remainder(config.vocab_size).unsqueeze(0)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if getattr(config, "type_vocab_size", 0):
        inputs["token_type_ids"] = torch.zeros_like(ids)
    return inputs
