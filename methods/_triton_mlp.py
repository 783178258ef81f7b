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
def _kernel(z_ptr, b1_ptr, c1_ptr, a2_ptr, out_ptr, n_rows, hidden,
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


def _padded(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


class _Padded:
    """The weights padded to power-of-two ranks ≥ 16 once per weight tensor (zeros add nothing)."""

    cache: dict[tuple[int, int, int], tuple[Tensor, Tensor, Tensor]] = {}

    @classmethod
    def of(cls, b1: Tensor, c1: Tensor, a2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        key = (b1.data_ptr(), c1.data_ptr(), a2.data_ptr())
        if key not in cls.cache:
            hidden, r_in = b1.shape
            r_out = a2.shape[0]
            pb1 = b1.new_zeros(hidden, _padded(r_in))
            pb1[:, :r_in] = b1
            pa2 = a2.new_zeros(_padded(r_out), hidden)
            pa2[:r_out] = a2
            cls.cache[key] = (pb1.contiguous(), c1.contiguous(), pa2.contiguous())
        return cls.cache[key]


def low_rank_mlp(z: Tensor, b1: Tensor, c1: Tensor, a2: Tensor) -> Tensor:
    lead, r_in = z.shape[:-1], z.shape[-1]
    r_out, hidden = a2.shape
    pb1, pc1, pa2 = _Padded.of(b1, c1, a2)
    rows = z.reshape(-1, r_in)
    if pb1.shape[1] != r_in:
        rows = torch.nn.functional.pad(rows, (0, pb1.shape[1] - r_in))
    rows = rows.contiguous()
    out = torch.empty(rows.shape[0], pa2.shape[0], device=z.device, dtype=z.dtype)
    block_n, block_h = 64, 64
    _kernel[(triton.cdiv(rows.shape[0], block_n),)](
        rows, pb1, pc1, pa2, out, rows.shape[0], hidden,
        R_IN=pb1.shape[1], R_OUT=pa2.shape[0], BLOCK_N=block_n, BLOCK_H=block_h, num_warps=4)
    return out[:, :r_out].reshape(*lead, r_out)
