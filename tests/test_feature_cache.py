"""methods/feature_cache.py: a frozen teacher's outputs kept per example at the real tokens, re-padded."""

from __future__ import annotations

import torch

from methods.feature_cache import FeatureCache


def batch_outputs(lengths: list[int], width: int, layers: int = 2, hidden: int = 3):
    """A right-padded batch's mask and made-up teacher outputs (values at padding set to garbage)."""
    mask = torch.tensor([[1] * n + [0] * (width - n) for n in lengths])
    states = [torch.randn(len(lengths), width, hidden) for _ in range(layers)]
    logits = torch.randn(len(lengths), 2)
    return mask, states, logits


def test_a_kept_example_comes_back_at_its_tokens_in_any_batch_and_padding() -> None:
    cache = FeatureCache(max_bytes=2**20)
    mask, states, logits = batch_outputs([4, 2], width=4)
    assert cache.get(torch.tensor([7, 9]), mask) is None  # nothing kept yet
    cache.put(torch.tensor([7, 9]), mask, states, logits)
    assert len(cache) == 2
    # the same two examples, the other way round, padded to 6 tokens
    later_mask = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0]])
    hidden, later_logits = cache.get(torch.tensor([9, 7]), later_mask)
    assert len(hidden) == 2 and hidden[0].shape == (2, 6, 3)
    for layer in range(2):
        assert torch.equal(hidden[layer][0, :2], states[layer][1, :2])
        assert torch.equal(hidden[layer][1, :4], states[layer][0, :4])
        assert not hidden[layer][0, 2:].any() and not hidden[layer][1, 4:].any()  # zeros at the padding
    assert torch.equal(later_logits, logits.flip(0))
    assert cache.get(torch.tensor([7, 8]), mask) is None  # one example missing: the batch is computed


def test_left_padding_and_images_are_never_kept() -> None:
    cache = FeatureCache(max_bytes=2**20)
    _, states, logits = batch_outputs([4, 2], width=4)
    left = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    cache.put(torch.tensor([0, 1]), left, states, logits)
    cache.put(torch.tensor([0, 1]), None, states, logits)  # no attention mask: pixels, maybe augmented
    assert len(cache) == 0 and cache.get(torch.tensor([0, 1]), left) is None


def test_the_budget_stops_keeping_but_kept_examples_are_still_served() -> None:
    mask, states, logits = batch_outputs([4, 4], width=4)
    one_example = (2 * 4 * 3 + 2) * 4  # two layers of 4 tokens × 3 floats, two logits, float32
    cache = FeatureCache(max_bytes=one_example)
    cache.put(torch.tensor([0, 1]), mask, states, logits)
    assert len(cache) == 1 and cache.full and cache.bytes == one_example
    assert cache.get(torch.tensor([0]), mask[:1]) is not None and cache.get(torch.tensor([1]), mask[1:]) is None
