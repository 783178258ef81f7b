"""PC-LoRA's loss step (Hwang et al., arXiv 2406.09117), apart from the layers (methods/pc_lora.py) as torchtune
keeps a recipe's loss apart from its loop: the teacher pass (the same network at λ = 1, adapters off), feature
KD between block outputs, and the weighted sum with the task loss and an optional logit-KD term.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods import kd_lora
from methods.pc_lora import pc_lora_layers


def teacher_forward(model: nn.Module, **inputs: Any) -> Any:
    """Run ``model`` as the PC-LoRA teacher: the original network, at no extra memory.

    Every PC-LoRA layer computes W x + b alone (λ = 1, adapters off), in eval mode, under
    ``torch.no_grad()``, with ``output_hidden_states=True``. λ, the adapters and each module's
    train/eval mode are restored afterwards, even if the forward raises. Needs the original
    weights: it refuses a model after :func:`compress`. Returns the HF model output.
    """
    layers = [layer for _, layer in pc_lora_layers(model)]
    if not layers:
        raise ValueError("the model has no PC-LoRA layers; call attach() first")
    if any(layer.base is None for layer in layers):
        raise RuntimeError(
            "teacher_forward needs the original weights, but compress()/drop_base() removed them; "
            "run the teacher before compressing (or set method.kd_weight=0 after λ reaches 0)"
        )
    saved_layers = [(layer.lam, layer.adapter_enabled) for layer in layers]
    saved_modes = [(m, m.training) for m in model.modules()]
    try:
        for layer in layers:
            layer.lam, layer.adapter_enabled = 1.0, False
        model.eval()
        with torch.no_grad():
            return model(**{**inputs, "output_hidden_states": True})
    finally:
        for layer, (lam, enabled) in zip(layers, saved_layers, strict=True):
            layer.lam, layer.adapter_enabled = lam, enabled
        for m, training in saved_modes:
            m.training = training


def feature_kd_loss(
    student_hidden: Sequence[Tensor],
    teacher_hidden: Sequence[Tensor],
    attention_mask: Tensor | None = None,
) -> Tensor:
    """Mean over blocks of the MSE between student and teacher block outputs.

    Pass each block's output, i.e. ``outputs.hidden_states[1:]`` of a HF model: entry 0 is the
    embedding output, which is the same for both (the embeddings are frozen) and would only dilute
    the loss. With ``attention_mask`` (batch, seq; 1 = token, 0 = padding) each block's MSE is taken
    over the real tokens only, Σ (s − t)² over them and the hidden size / (n_tokens · hidden): padding
    is not part of the input, and counting it would weight a batch's KD by how much it was padded.
    Padded positions are dropped rather than multiplied by 0, so even inf/nan there cannot leak in.
    ``None`` (images: no padding) is the plain mean over every position.
    """
    if len(student_hidden) != len(teacher_hidden) or not student_hidden:
        raise ValueError(
            f"feature KD needs one teacher block output per student block; got {len(student_hidden)} "
            f"student and {len(teacher_hidden)} teacher hidden states"
        )
    keep: Tensor | None = None
    if attention_mask is not None:
        shape = tuple(student_hidden[0].shape[:-1])
        if tuple(attention_mask.shape) != shape:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, but the hidden states are "
                f"{tuple(student_hidden[0].shape)}: it must be (batch, seq) = {shape}"
            )
        keep = attention_mask.to(student_hidden[0].device) != 0
        if not keep.any():
            raise ValueError("attention_mask marks every position as padding: nothing to average")
    losses = []
    for s, t in zip(student_hidden, teacher_hidden, strict=True):
        t = t.detach()
        if keep is not None:
            s, t = s[keep], t[keep]  # (n_tokens, hidden): the mean is then over real tokens only
        losses.append(F.mse_loss(s, t))
    return torch.stack(losses).mean()


def loss(
    task_loss: Tensor,
    student_hidden: Sequence[Tensor],
    teacher_hidden: Sequence[Tensor],
    kd_weight: float,
    attention_mask: Tensor | None = None,
    *,
    student_logits: Tensor | None = None,
    teacher_logits: Tensor | None = None,
    logit_kd_weight: float = 0.0,
    temperature: float = 2.0,
    regression: bool = False,
) -> Tensor:
    """(1 − kd_weight − logit_kd_weight)·task + kd_weight·feature KD + logit_kd_weight·logit KD.

    Feature KD is the paper's term, :func:`feature_kd_loss` (``attention_mask`` passed through).
    Logit KD is an optional extra, off by default (``logit_kd_weight = 0``: the paper's loss):
    T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) (batchmean), or the MSE of the scores for ``regression``
    (no T²), computed by KD-LoRA's :func:`methods.kd_lora.distillation_loss` so that both methods
    distil logits the same way. Teacher logits from :func:`teacher_forward` pass through the task
    head that is being trained; a fixed teacher needs a separate frozen model.
    A term whose weight is 0 is not computed, so its inputs may then be empty / None.
    """
    for key, weight in (("method.kd_weight", kd_weight), ("method.logit_kd_weight", logit_kd_weight)):
        if not 0 <= weight <= 1:
            raise ValueError(f"{key}={weight!r} must be in [0, 1]")
    if kd_weight + logit_kd_weight > 1:
        raise ValueError(
            f"method.kd_weight + method.logit_kd_weight = {kd_weight} + {logit_kd_weight} must be <= 1 "
            "(the rest is the task loss's weight)"
        )
    if kd_weight == 0 and logit_kd_weight == 0:
        return task_loss
    # 1 − (a + b), not 1 − a − b: 1 − 0.7 − 0.3 is 5.6e-17, a task weight that should be 0.
    total = (1 - (kd_weight + logit_kd_weight)) * task_loss
    if kd_weight > 0:
        total = total + kd_weight * feature_kd_loss(student_hidden, teacher_hidden, attention_mask)
    if logit_kd_weight > 0:
        if student_logits is None or teacher_logits is None:
            raise ValueError(
                f"method.logit_kd_weight={logit_kd_weight} needs student_logits and teacher_logits"
            )
        total = total + logit_kd_weight * kd_lora.distillation_loss(
            student_logits, teacher_logits, temperature=temperature, regression=regression
        )
    return total
