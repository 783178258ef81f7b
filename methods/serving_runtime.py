"""How a served model is run: torch.compile checked against eager, CUDA graphs, an all-ones mask dropped.

Each is a wrapper around the model that methods/serving.py's ``prepare`` stacks as asked, outermost first:
``DropFullMask(GraphedModel(CheckedCompile(model)))``. They take and pass keyword inputs
(``input_ids=..., attention_mask=...``) as transformers models do.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def _key(inputs: dict[str, Tensor]) -> tuple:
    return tuple(sorted((k, tuple(v.shape), v.dtype) for k, v in inputs.items()))


def _first(out: Any) -> Tensor:
    """The first tensor of a model output (logits, or the last hidden state): what the checks compare."""
    return out[0] if not isinstance(out, Tensor) else out


def relative_error(got: Tensor, want: Tensor) -> float:
    got, want = got.float(), want.float()
    return ((got - want).norm() / want.norm().clamp_min(1e-12)).item()


class CheckedCompile(nn.Module):
    """``torch.compile(model)`` (Inductor, static shapes: one graph per input shape), with the eager model as
    its reference and fallback: the first call of each input shape runs both and compares the first output
    (relative error under ``tol``); on an error or a mismatch every later call runs eager. What happened is
    written into ``report['compile']`` (a dict shared with the caller)."""

    def __init__(self, model: nn.Module, report: dict[str, Any], tol: float, mode: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.report = report
        self.tol = tol
        # Not a registered submodule: the compiled wrapper holds the same parameters.
        object.__setattr__(self, "_compiled", torch.compile(model, dynamic=False, mode=mode))
        self._checked: dict[tuple, float] = {}
        self.failed: str | None = None
        report["compile"] = "compiled, not yet called"

    def forward(self, **inputs: Tensor) -> Any:
        if self.failed is not None:
            return self.model(**inputs)
        key = _key(inputs)
        if key in self._checked:
            return self._compiled(**inputs)
        try:
            got = self._compiled(**inputs)
            err = relative_error(_first(got), _first(self.model(**inputs)))
        except Exception as error:  # an unsupported op, no compiler: serve eager rather than not at all
            return self._fall_back(f"{type(error).__name__}: {str(error)[:200]}", inputs)
        if not err < self.tol:
            return self._fall_back(f"relative error {err:.3g} ≥ {self.tol}", inputs)
        self._checked[key] = err
        self.report["compile"] = (f"inductor, checked against eager on {len(self._checked)} input shapes "
                                  f"(largest relative error {max(self._checked.values()):.2g})")
        return got

    def _fall_back(self, why: str, inputs: dict[str, Tensor]) -> Any:
        self.failed = why
        self.report["compile"] = f"eager (compile failed: {why})"
        return self.model(**inputs)


class GraphedModel(nn.Module):
    """Replays one CUDA graph per set of input shapes: every kernel of a forward in one launch.

    The output tensors are the graph's own: the next call overwrites them (copy what you keep).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self._graphs: dict[tuple, tuple[Any, dict[str, Tensor], Any]] = {}

    def forward(self, **inputs: Tensor) -> Any:
        key = _key(inputs)
        if key not in self._graphs:
            self._graphs[key] = self._capture(inputs)
        graph, static_inputs, static_output = self._graphs[key]
        for k, v in inputs.items():
            static_inputs[k].copy_(v)
        graph.replay()
        return static_output

    @torch.inference_mode()
    def _capture(self, inputs: dict[str, Tensor]) -> tuple[Any, dict[str, Tensor], Any]:
        static = {k: v.clone() for k, v in inputs.items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capture: cuBLAS workspaces, Triton's JIT, compilation
            for _ in range(3):
                self.model(**static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = self.model(**static)
        return graph, static, output


class DropFullMask(nn.Module):
    """Calls the model without ``attention_mask`` when every entry is 1 (the same function: transformers
    reads a missing mask as all ones). Why: under CUDA graph capture and torch.compile, transformers cannot
    look at the mask's values, so it materialises it and SDPA cannot take its flash kernel; without a mask
    it can (with :func:`serve_unpadded_attention`, also on transformers releases that materialise a missing
    mask while capturing). Costs one host sync per call when the mask is on the GPU (none when it comes
    from the host)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, **inputs: Tensor) -> Any:
        mask = inputs.get("attention_mask")
        if mask is not None and bool(mask.all()):
            inputs = {k: v for k, v in inputs.items() if k != "attention_mask"}
        return self.model(**inputs)


UNPADDED_SDPA = "sdpa_unpadded"


def _unpadded_sdpa_mask(*args: Any, attention_mask: Tensor | None = None,
                        allow_is_bidirectional_skip: bool = False, **kwargs: Any) -> Tensor | None:
    """transformers' SDPA mask, except that no padding mask on a bidirectional layer means no mask at all.
    transformers up to 5.17 skips the mask only when it is not tracing, and counts CUDA graph capture as
    tracing: under GraphedModel it built an all-True 4D mask, with which SDPA left its fused kernels for
    the float32 math path (on the H200: fp32 GEMMs and casts, 2.5x slower at batch 256). 5.23 skips it."""
    from transformers.masking_utils import sdpa_mask

    if attention_mask is None and allow_is_bidirectional_skip and kwargs.get("local_size") is None:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask,
                     allow_is_bidirectional_skip=allow_is_bidirectional_skip, **kwargs)


def serve_unpadded_attention(model: nn.Module) -> str:
    """Switch a transformers model that attends with SDPA to :data:`UNPADDED_SDPA` (the same attention, the
    mask rule of :func:`_unpadded_sdpa_mask`); what was done, for prepare()'s report."""
    implementation = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if implementation != "sdpa":
        return f"kept ({implementation or 'not a transformers model'})"
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    AttentionInterface.register(UNPADDED_SDPA, sdpa_attention_forward)
    AttentionMaskInterface.register(UNPADDED_SDPA, _unpadded_sdpa_mask)
    model.set_attn_implementation(UNPADDED_SDPA)
    return UNPADDED_SDPA if model.config._attn_implementation == UNPADDED_SDPA else "kept (sdpa: not settable)"
