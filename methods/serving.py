"""Serving a deployable model fast: bf16 weights on the GPU, PC-LoRA's low-rank layers folded and its
feed-forward blocks fused, and one CUDA graph per input shape.

    model = serving.prepare(pc_lora.load_compressed("run/model"), device="cuda")
    logits = model(input_ids=ids, attention_mask=mask).logits   # valid until the next call: copy it

Why each step pays (benchmarks/inference.py measures them, benchmarks/README.md has the figures):
- A compressed PC-LoRA layer is two thin matmuls plus a bias add; folding the scaling into B and
  dropping λ's bookkeeping leaves exactly ``F.linear(F.linear(x, A), B, C)``.
- A feed-forward block is ``A₂·gelu(B₁(A₁ x) + C₁)`` up to its last factor. Unfused, the 4×-wide
  activation of every token is written and read three times; the fused kernel (Triton, GPU) keeps it
  in registers, reading the rank-r input and writing the rank-r output only.
- At batch 1 the model is launch-bound: a CUDA graph replays every kernel with no Python per layer.
Off the GPU (tests, CPU serving) the same structure runs in plain torch; ``prepare`` checks the fused
kernel against it once and falls back to it if the kernel is missing or disagrees.

Options of ``prepare`` for the second round (issue 34), each checked against its torch reference before
use, with the path above as the fallback. ``fuse_qkv`` and ``drop_full_mask`` are on by default: on an H100
(benchmarks/results/h100_round3/) they were the fastest runtime for the base, PC-LoRA r32 and the KD-LoRA student
at batch 1 and 256; ``compile`` stays off until it is re-measured at batch 256 with the mask fix.
- ``fuse_qkv``: the query/key/value projections as two GEMMs and one SDPA call
  (methods/serving_attention.py);
- ``compile``: torch.compile (Inductor) over the served model, which fuses the residual adds, bias adds
  and layer norms into single kernels; CUDA graphs on top (methods/serving_runtime.py);
- ``drop_full_mask``: an all-ones attention mask is not passed, so that SDPA can take its flash kernel
  under CUDA graphs and compile.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from methods import serving_attention
from methods.pc_lora import PCLoRALinear
from methods.serving_runtime import (
    CheckedCompile,
    DropFullMask,
    GraphedModel,
    relative_error,
    serve_unpadded_attention,
)

__all__ = ["GraphedModel", "LowRankLinear", "LowRankMLP", "fold", "prepare"]


class LowRankLinear(nn.Module):
    """``B (A x) + C``: a compressed PC-LoRA layer with its scaling folded into B."""

    def __init__(self, layer: PCLoRALinear) -> None:
        super().__init__()
        if layer.base is not None:
            raise ValueError("LowRankLinear takes a compressed layer; call pc_lora.compress(model) first")
        self.a = nn.Parameter(layer.lora_A.detach().clone(), requires_grad=False)
        self.b = nn.Parameter(layer.lora_B.detach() * layer.scaling, requires_grad=False)
        self.c = nn.Parameter(layer.lora_C.detach().clone(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(F.linear(x, self.a), self.b, self.c)


def low_rank_mlp_reference(z: Tensor, b1: Tensor, c1: Tensor, a2: Tensor) -> Tensor:
    """``gelu(z B₁ᵀ + C₁) A₂ᵀ``, the fused kernel's definition (exact, erf GELU)."""
    return F.linear(F.gelu(F.linear(z, b1, c1)), a2)


# Below this many tokens the fused kernel (one program per 64 tokens, each walking the hidden width in
# series) cannot fill the GPU: on the H200 a 128-token call took 2.4 ms served against 0.91 ms for the
# uncompressed model, while the unfused layers under CUDA graphs took 0.82 ms at r8 in the probe.
FUSED_MIN_TOKENS = 4096


class LowRankMLP(nn.Module):
    """A feed-forward block between two compressed layers, up to the down-projection's B:
    x -> A₂·gelu(B₁(A₁ x) + C₁), rank r in and out. The caller applies B₂ and C₂. A BERT/ViT-style
    `intermediate` (dense + activation) is replaced by it as it is."""

    def __init__(self, up: PCLoRALinear, down: PCLoRALinear) -> None:
        super().__init__()
        self.up = LowRankLinear(up)
        self.a2 = nn.Parameter(down.lora_A.detach().clone(), requires_grad=False)
        # The kernel's copies of B₁ and A₂ with the ranks padded (use_kernel); None = the torch path.
        self.padded: tuple[Tensor, Tensor] | None = None

    def use_kernel(self) -> None:
        """Make the padded weights the Triton kernel reads, from the weights as they are now (call it after
        the last .to(): the copies do not follow the module)."""
        self.padded = pad_ranks(self.up.b.detach(), self.a2.detach())

    def forward(self, x: Tensor) -> Tensor:
        z = F.linear(x, self.up.a)
        if self.padded is not None and z.numel() // z.shape[-1] >= FUSED_MIN_TOKENS:
            return self.fused(z)
        return low_rank_mlp_reference(z, self.up.b, self.up.c, self.a2)

    def fused(self, z: Tensor) -> Tensor:
        """The Triton kernel over (tokens, r) -> (tokens, r); needs use_kernel() first."""
        assert self.padded is not None
        return torch.ops.pc_lora_serving.low_rank_mlp(z, self.padded[0], self.up.c, self.padded[1], self.a2.shape[0])


# The kernel as a custom op: torch.compile keeps it as one opaque call (Dynamo does not trace into the
# launcher) and CUDA graphs capture it like any other kernel. Off the GPU it computes the same thing in
# torch, so the op's plumbing (padding, shapes, compile) is testable on a CPU.
@torch.library.custom_op("pc_lora_serving::low_rank_mlp", mutates_args=())
def _low_rank_mlp_op(z: Tensor, b1: Tensor, c1: Tensor, a2: Tensor, r_out: int) -> Tensor:
    if z.is_cuda:
        from methods import _triton_mlp  # imports triton: only on a GPU

        return _triton_mlp.low_rank_mlp(z, b1, c1, a2, r_out).contiguous()
    padded = F.pad(z, (0, b1.shape[1] - z.shape[-1]))
    return low_rank_mlp_reference(padded, b1, c1, a2)[..., :r_out].contiguous()


@_low_rank_mlp_op.register_fake
def _(z: Tensor, b1: Tensor, c1: Tensor, a2: Tensor, r_out: int) -> Tensor:
    return z.new_empty(*z.shape[:-1], r_out)


def pad_ranks(b1: Tensor, a2: Tensor) -> tuple[Tensor, Tensor]:
    """B₁ (hidden, r₁) and A₂ (r₂, hidden) with zero columns / rows up to power-of-two ranks ≥ 16, what the
    kernel's tl.dot needs; the zeros add nothing to the product."""
    def size(r: int) -> int:
        return max(16, 1 << (r - 1).bit_length())

    pb1 = b1.new_zeros(b1.shape[0], size(b1.shape[1]))
    pb1[:, : b1.shape[1]] = b1
    pa2 = a2.new_zeros(size(a2.shape[0]), a2.shape[1])
    pa2[: a2.shape[0]] = a2
    return pb1, pa2


class _FusedMLP(nn.Module):
    """Dinov2-style ``mlp`` (fc1, activation, fc2; `activation_fn` in newer transformers) as LowRankMLP
    then B₂, C₂."""

    def __init__(self, mlp: LowRankMLP, down: PCLoRALinear) -> None:
        super().__init__()
        self.mlp = mlp
        self.down = _rank_to_out(down)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.down(self.mlp(hidden_states))


def _exact_gelu(act: Any) -> bool:
    if isinstance(act, nn.GELU):
        return act.approximate == "none"
    # transformers' ACT2FN["gelu"]: GELUActivation, torch's exact GELU unless use_gelu_python.
    return type(act).__name__ == "GELUActivation" and getattr(act, "act", None) is F.gelu


def _compressed(m: Any) -> bool:
    return isinstance(m, PCLoRALinear) and m.base is None


def fold(model: nn.Module) -> dict[str, int]:
    """Replace compressed PC-LoRA layers in place: feed-forward pairs by a LowRankMLP, the rest by a
    LowRankLinear. Returns how many of each were made."""
    fused = 0
    for module in list(model.modules()):
        inter, out = getattr(module, "intermediate", None), getattr(module, "output", None)
        if (inter is not None and out is not None and _compressed(getattr(inter, "dense", None))
                and _compressed(getattr(out, "dense", None)) and _exact_gelu(getattr(inter, "intermediate_act_fn", None))):
            down = out.dense
            module.intermediate = LowRankMLP(inter.dense, down)
            out.dense = _rank_to_out(down)
            fused += 1
        mlp = getattr(module, "mlp", None)
        if (mlp is not None and _compressed(getattr(mlp, "fc1", None)) and _compressed(getattr(mlp, "fc2", None))
                and _exact_gelu(getattr(mlp, "activation", getattr(mlp, "activation_fn", None)))):
            module.mlp = _FusedMLP(LowRankMLP(mlp.fc1, mlp.fc2), mlp.fc2)
            fused += 1
    linear = 0
    for name, m in list(model.named_modules()):
        if _compressed(m):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, LowRankLinear(m))
            linear += 1
    return {"fused_mlps": fused, "low_rank_linears": linear}


def _rank_to_out(down: PCLoRALinear) -> nn.Linear:
    """``B₂ u + C₂`` over the rank-r output of a LowRankMLP (scaling folded into B₂)."""
    layer = nn.Linear(down.rank, down.out_features, device=down.lora_B.device, dtype=down.lora_B.dtype)
    with torch.no_grad():
        layer.weight.copy_(down.lora_B * down.scaling)
        layer.bias.copy_(down.lora_C)
    return layer.requires_grad_(False)


def prepare(model: nn.Module, device: torch.device | str = "cuda", dtype: torch.dtype = torch.bfloat16,
            cuda_graphs: bool | None = None, *, fuse_qkv: bool = True, qkv_up: str = "blockdiag",
            compile: bool = False, drop_full_mask: bool = True) -> nn.Module:
    """The model ready to serve: eval mode, ``dtype`` weights on ``device``, PC-LoRA folded and fused
    (:func:`fold`), wrapped in :class:`GraphedModel` on a GPU (``cuda_graphs`` None = when on CUDA).
    The options: module docstring. What was done is in ``model.serving`` (a dict).
    Works on any transformers model; a model without PC-LoRA layers only changes dtype, device, graphs,
    compile and the mask."""
    device = torch.device(device)
    model = model.eval().to(device=device, dtype=dtype).requires_grad_(False)
    # Before any wrapper: the attention implementation is set on the transformers model itself.
    attention = serve_unpadded_attention(model) if drop_full_mask else "kept"
    report: dict[str, Any] = {"fused_attention": _fuse_attention(model, qkv_up, device, dtype) if fuse_qkv else "off"}
    report.update(fold(model))
    mlps = [m for m in model.modules() if isinstance(m, LowRankMLP)]
    report["fused_kernel"] = _enable_kernel(mlps[0], device, dtype) if mlps else "no feed-forward pair"
    for m in mlps:
        if report["fused_kernel"] == "triton":
            m.use_kernel()
        else:
            m.padded = None
    report["compile"] = "off"
    if compile:
        model = CheckedCompile(model, report, tol=_tolerance(dtype))
    if cuda_graphs if cuda_graphs is not None else device.type == "cuda":
        model = GraphedModel(model)
    report["cuda_graphs"] = isinstance(model, GraphedModel)
    report["drop_full_mask"] = drop_full_mask
    report["attention_implementation"] = attention
    if drop_full_mask:
        model = DropFullMask(model)
    model.serving = report
    return model


def _tolerance(dtype: torch.dtype) -> float:
    """Relative error allowed between a fast path and its reference: bf16/fp16 rounding, or float32's."""
    return 2e-2 if dtype in (torch.bfloat16, torch.float16) else 1e-4


def _fuse_attention(model: nn.Module, up: str, device: torch.device, dtype: torch.dtype) -> str:
    """serving_attention.fuse_attention, checked on one block against the module it replaces (random
    input, no mask; MPNet with a random position bias); undone if it disagrees."""
    originals = serving_attention.fuse_attention(model, up)
    if not originals:
        return "no compressed self-attention"
    name, original = next(iter(originals.items()))
    served = model.get_submodule(name)
    x = torch.randn(2, 16, served.qkv.a.shape[1], device=device, dtype=dtype)
    bias = torch.randn(2, served.heads, 16, 16, device=device, dtype=dtype)
    args = {"position_bias": bias} if served.mpnet else {}
    with torch.inference_mode():
        err = relative_error(served(x, None, **args)[0], original(x, None, **args)[0])
    if err < _tolerance(dtype):
        return f"{len(originals)} blocks, up-projection {served.qkv.up} (relative error {err:.2g} on a check)"
    for name, original in originals.items():
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, original)
    return f"off (check failed: relative error {err:.3g})"


def _enable_kernel(mlp: LowRankMLP, device: torch.device, dtype: torch.dtype) -> str:
    """'triton' when the kernel runs here and matches the reference; else why not (torch path used)."""
    if device.type != "cuda":
        return "torch (no GPU)"
    try:
        mlp.use_kernel()
        z = torch.randn(300, mlp.up.a.shape[0], device=device, dtype=dtype)
        got = mlp.fused(z).float()
        want = low_rank_mlp_reference(z.float(), mlp.up.b.float(), mlp.up.c.float(), mlp.a2.float())
    except Exception as err:  # no Triton, an unsupported GPU: serve unfused rather than not at all
        return f"torch (kernel failed: {type(err).__name__}: {str(err)[:200]})"
    err = relative_error(got, want)
    return "triton" if err < 2e-2 else f"torch (kernel relative error {err:.3g})"
