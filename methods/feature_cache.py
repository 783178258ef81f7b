"""A frozen teacher's outputs per training example, computed once and looked up in later epochs.

Feature distillation from a frozen teacher (PC-LoRA's pre-trained model at λ = 1, or a fine-tuned one)
runs the same forward pass on the same example every epoch: a third of a PC-LoRA step on a CPU. The
cache keeps each example's hidden states at its real tokens only (padding differs from batch to batch)
and its logits, within a byte budget; a batch with any example not yet kept is computed and kept.

Exact only where the teacher's output for an example does not depend on the batch around it: text with
right padding (padding masked out of attention, positions unchanged). A batch padded on the left, or
without an attention mask (images, which may also be augmented), is never cached.

    cache = FeatureCache(max_bytes=512 * 2**20)
    hit = cache.get(idx, mask)
    if hit is None:
        out = teacher(**inputs, output_hidden_states=True)
        hit = (out.hidden_states[1:], out.logits)
        cache.put(idx, mask, *hit)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class FeatureCache:
    """Per-example (hidden states at the unpadded tokens, logits), keyed by the example's index."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.full = False  # the budget was reached: nothing more is kept, kept examples are still served
        self._hidden: dict[int, Tensor] = {}  # idx -> (layers, tokens, hidden)
        self._logits: dict[int, Tensor] = {}  # idx -> (labels,)

    def __len__(self) -> int:
        return len(self._hidden)

    @staticmethod
    def cacheable(mask: Tensor | None) -> bool:
        """Right-padded text: every row starts with a real token."""
        return mask is not None and bool(mask[:, 0].all())

    def get(self, idx: Tensor, mask: Tensor | None) -> tuple[tuple[Tensor, ...], Tensor] | None:
        """(hidden states per layer, padded like `mask`; logits) of the batch, or None if any example is missing."""
        keys = idx.tolist()
        if not self.cacheable(mask) or not all(k in self._hidden for k in keys):
            return None
        first = self._hidden[keys[0]]
        hidden = first.new_zeros((first.shape[0], len(keys), mask.shape[1], first.shape[-1]))
        for row, key in enumerate(keys):
            hidden[:, row, mask[row].bool()] = self._hidden[key]
        logits = torch.stack([self._logits[k] for k in keys])
        return tuple(hidden.unbind(0)), logits

    def put(self, idx: Tensor, mask: Tensor | None, hidden_states: Sequence[Tensor], logits: Tensor) -> None:
        """Keep the batch's examples not kept yet, until the budget is spent."""
        if self.full or not self.cacheable(mask):
            return
        stacked = torch.stack(tuple(hidden_states)).detach()  # (layers, batch, tokens, hidden)
        for row, key in enumerate(idx.tolist()):
            if key in self._hidden:
                continue
            hidden = stacked[:, row, mask[row].bool()].clone()
            size = (hidden.numel() + logits[row].numel()) * hidden.element_size()
            if self.bytes + size > self.max_bytes:
                self.full = True
                return
            self._hidden[key], self._logits[key] = hidden, logits[row].detach().clone()
            self.bytes += size
