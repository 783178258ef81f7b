"""A compressed self-attention block in fewer kernels and fewer bytes (issue 34, item 2a).

Folded one by one (methods/serving.py's LowRankLinear), the query, key and value projections of a
compressed PC-LoRA block are six GEMMs that read the 768-wide hidden state three times. Here:
- one GEMM over ``[A_q; A_k; A_v]`` (3r × hidden) reads the hidden state once;
- the three up-projections are one more product: a GEMM over the block-diagonal ``diag(B_q, B_k, B_v)``
  with ``[C_q; C_k; C_v]`` as its bias (``up="blockdiag"``: any ranks; 3× the up-projection's FLOPs,
  which at r ≤ 32 are a small share of a memory-bound layer, and cuBLAS adds the bias in its
  epilogue), or a batched product over the stacked B's (``up="bmm"``: equal ranks, no wasted FLOPs,
  the bias added by baddbmm);
- attention is ``F.scaled_dot_product_attention`` on views of that output (no copies before it).

Serving only: eval mode (no dropout), no attention weights returned, encoder (bidirectional)
self-attention only. Exactness: the masks given by transformers are passed to SDPA as the model's own
sdpa/eager attention would use them (a bool mask: True = attend; a float mask: added to the scores),
and MPNet's relative position bias is added to the scores as in MPNetSelfAttention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods.pc_lora import PCLoRALinear
from methods.serving_runtime import UNPADDED_SDPA

UP_MODES = ("blockdiag", "bmm")
# The attention classes whose forward this module reproduces (read in transformers 5.17 and 5.23).
# RoBERTa's and XLM-R's are copies of BERT's.
BERT_LIKE = ("BertSelfAttention", "RobertaSelfAttention", "XLMRobertaSelfAttention")
MPNET = ("MPNetSelfAttention",)


def _compressed(m: Any) -> bool:
    return isinstance(m, PCLoRALinear) and m.base is None


class LowRankQKV(nn.Module):
    """``(q, k, v)`` with ``y_i = s_i·B_i(A_i x) + C_i`` for three compressed layers sharing their input x."""

    def __init__(self, layers: Sequence[PCLoRALinear], up: str = "blockdiag") -> None:
        super().__init__()
        if up not in UP_MODES:
            raise ValueError(f"up={up!r}: choose one of {', '.join(UP_MODES)}")
        ranks = [layer.rank for layer in layers]
        self.up = "bmm" if up == "bmm" and len(set(ranks)) == 1 else "blockdiag"
        self.out = layers[0].out_features
        frozen = lambda t: nn.Parameter(t.detach().clone(), requires_grad=False)  # noqa: E731
        self.a = frozen(torch.cat([layer.lora_A for layer in layers]))  # (Σr, hidden)
        bs = [layer.lora_B.detach() * layer.scaling for layer in layers]
        if self.up == "bmm":
            self.b = frozen(torch.stack([b.T for b in bs]))  # (3, r, out)
            self.c = frozen(torch.stack([layer.lora_C for layer in layers])[:, None, :])  # (3, 1, out)
        else:
            self.b = frozen(torch.block_diag(*bs))  # (3·out, Σr)
            self.c = frozen(torch.cat([layer.lora_C for layer in layers]))  # (3·out,)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = F.linear(x, self.a)  # x read once
        if self.up == "bmm":
            lead = h.shape[:-1]
            hs = h.reshape(-1, 3, h.shape[-1] // 3).transpose(0, 1)  # (3, tokens, r), a view
            y = torch.baddbmm(self.c, hs, self.b)  # (3, tokens, out)
            return tuple(y[i].view(*lead, self.out) for i in range(3))  # type: ignore[return-value]
        y = F.linear(h, self.b, self.c)  # (..., 3·out); q, k, v are column slices (views)
        return tuple(y[..., i * self.out:(i + 1) * self.out] for i in range(3))  # type: ignore[return-value]


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, heads: int, scale: float) -> Tensor:
    """SDPA over (batch, seq, heads·d) projections; returns (batch, seq, heads·d)."""
    lead = q.shape[:-1]
    split = lambda t: t.unflatten(-1, (heads, -1)).transpose(-3, -2)  # noqa: E731 - (batch, heads, seq, d)
    out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask, scale=scale)
    return out.transpose(-3, -2).reshape(*lead, -1)


class ServedSelfAttention(nn.Module):
    """BertSelfAttention (and its RoBERTa copies) for a compressed encoder block: returns (output, None)."""

    mpnet = False

    def __init__(self, attn: nn.Module, up: str) -> None:
        super().__init__()
        self.qkv = LowRankQKV([attn.query, attn.key, attn.value], up)
        self.heads = attn.num_attention_heads
        self.scale = float(attn.scaling)

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None, **_: Any) -> tuple[Tensor, None]:
        return attend(*self.qkv(hidden_states), attention_mask, self.heads, self.scale), None


class ServedMPNetSelfAttention(nn.Module):
    """MPNetSelfAttention for a compressed block: scores + relative position bias + mask, then ``o``."""

    mpnet = True

    def __init__(self, attn: nn.Module, up: str) -> None:
        super().__init__()
        self.qkv = LowRankQKV([attn.q, attn.k, attn.v], up)
        self.o = attn.o  # folded by serving.fold like any other compressed layer
        self.heads = attn.num_attention_heads
        self.scale = float(attn.attention_head_size) ** -0.5

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None, position_bias: Tensor | None = None,
                output_attentions: bool = False, **_: Any) -> tuple[Tensor]:
        if output_attentions:
            raise NotImplementedError("the served attention does not return attention weights")
        mask = _with_bias(position_bias, attention_mask)
        return (self.o(attend(*self.qkv(hidden_states), mask, self.heads, self.scale)),)


def _with_bias(bias: Tensor | None, mask: Tensor | None) -> Tensor | None:
    """One additive mask: MPNet's position bias plus the padding mask (bool: True = attend, or additive)."""
    if bias is None or mask is None:
        return bias if mask is None else mask
    if mask.dtype == torch.bool:
        return bias.masked_fill(~mask, torch.finfo(bias.dtype).min)
    return bias + mask


def _replaceable(attn: nn.Module, config: Any) -> str | None:
    """'bert' or 'mpnet' when ``attn`` is an encoder self-attention with compressed q, k, v; else None."""
    name = type(attn).__name__
    impl = getattr(config, "_attn_implementation", "eager")
    if impl not in ("sdpa", UNPADDED_SDPA, "eager", None) or getattr(config, "is_decoder", False):
        return None
    if name in BERT_LIKE and not getattr(attn, "is_causal", False) and all(
            _compressed(getattr(attn, n, None)) for n in ("query", "key", "value")):
        return "bert"
    if name in MPNET and all(_compressed(getattr(attn, n, None)) for n in ("q", "k", "v")):
        return "mpnet"
    return None


def fuse_attention(model: nn.Module, up: str = "blockdiag") -> dict[str, nn.Module]:
    """Replace, in place, every replaceable self-attention by its served version; returns the replaced
    modules by name (to check against, or to put back). Run before serving.fold (it reads the compressed
    PC-LoRA layers)."""
    config = getattr(model, "config", None)
    originals: dict[str, nn.Module] = {}
    for name, module in list(model.named_modules()):
        kind = _replaceable(module, config)
        if kind is None:
            continue
        served = ServedSelfAttention(module, up) if kind == "bert" else ServedMPNetSelfAttention(module, up)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, served)
        originals[name] = module
    return originals
