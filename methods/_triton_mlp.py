"""The fused low-rank feed-forward kernel of methods/serving.py (GPU only: imports Triton).

out[n] = A₂ · gelu(B₁ z[n] + C₁) for z (tokens, r₁), B₁ (hidden, r₁), C₁ (hidden), A₂ (r₂, hidden).
Each program takes BLOCK_N tokens and walks the hidden width in BLOCK_H slices: the slice of the
4×-wide activation lives in registers only, so the kernel reads z and writes out (rank-r each)
instead of writing and re-reading tokens × hidden values three times.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor


@triton.jit
def low_rank_mlp_kernel(z_ptr, b1_ptr, c1_ptr, a2_ptr, out_ptr, n_rows, hidden,
            R_IN: tl.constexpr, R_OUT: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_H: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n_rows
    r_in = tl.arange(0, R_IN)
    r_out = tl.arange(0, R_OUT)
    z = tl.load(z_ptr + rows[:, None] * R_IN + r_in[None, :], mask=row_ok[:, None], other=0.0)
    acc = tl.zeros((BLOCK_N, R_OUT), dtype=tl.float32)
    for h0 in range(0, hidden, BLOCK_H):
        cols = h0 + tl.arange(0, BLOCK_H)
        col_ok = cols < hidden
        b1t = tl.load(b1_ptr + cols[None, :] * R_IN + r_in[:, None], mask=col_ok[None, :], other=0.0)
        c1 = tl.load(c1_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)
        t = tl.dot(z, b1t) + c1[None, :]
        g = 0.5 * t * (1.0 + tl.erf(t * 0.7071067811865476))  # exact GELU: 1/√2
        a2t = tl.load(a2_ptr + r_out[None, :] * hidden + cols[:, None], mask=col_ok[:, None], other=0.0)
        acc += tl.dot(g.to(a2t.dtype), a2t)
    tl.store(out_ptr + rows[:, None] * R_OUT + r_out[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=row_ok[:, None])


def low_rank_mlp(z: Tensor, b1: Tensor, c1: Tensor, a2: Tensor, r_out: int) -> Tensor:
    """z (..., r₁) -> (..., r_out); b1 and a2 padded to power-of-two ranks ≥ 16 (serving.pad_ranks)."""
    lead, r_in = z.shape[:-1], z.shape[-1]
    rows = z.reshape(-1, r_in)
    if b1.shape[1] != r_in:
        rows = torch.nn.functional.pad(rows, (0, b1.shape[1] - r_in))
    rows = rows.contiguous()
    out = torch.empty(rows.shape[0], a2.shape[0], device=z.device, dtype=z.dtype)
    block_n, block_h = 64, 64
    low_rank_mlp_kernel[(triton.cdiv(rows.shape[0], block_n),)](
        rows, b1, c1, a2, out, rows.shape[0], a2.shape[1],
        R_IN=b1.shape[1], R_OUT=a2.shape[0], BLOCK_N=block_n, BLOCK_H=block_h, num_warps=4)
    return out[:, :r_out].reshape(*lead, r_out)
