"""When a trial is compared with the others: ASHA's rung epochs and Hyperband's brackets, pure arithmetic (used by
the trial's own rule, orchestrator/engine/asha.py, the sweep that sets it up, the dry run and the search replay).

Bracket s has its rungs at grace_period · η^(s+k) epochs below the last (Li et al. 2018; Ray's AsyncHyperBand): a
later bracket judges a trial later, on a longer curve, and the last may judge it never. A trial's bracket is
drawn as Ray draws it, by a softmax over the brackets' numbers of rungs (the most eager bracket most often), but
from a hash of the trial's id instead of a random number, so that a restarted trial keeps its bracket.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np


def rung_epochs(grace_period: int, max_epochs: int, reduction_factor: float, bracket: int = 0) -> list[int]:
    """Epochs at which a trial of `bracket` is compared with the others (never the last one: it finishes anyway):
    the distinct int(grace_period · η^k) below `max_epochs`, the first `bracket` of them left out. Bracket s thus
    has one rung fewer than bracket s − 1, as in Ray, also where η < 2 makes two powers fall on one epoch."""
    rungs, k = [], 0
    while True:
        epoch = int(grace_period * reduction_factor**k)
        if epoch >= max_epochs:
            return rungs[bracket:]
        if not rungs or epoch > rungs[-1]:
            rungs.append(epoch)
        # straight to the first power past this epoch: an η just above 1 would otherwise take millions of steps
        k = max(k + 1, math.ceil(math.log((epoch + 1) / grace_period, reduction_factor)))


def bracket_of(trial_id: str, rung_counts: list[int]) -> int:
    """The bracket `trial_id` runs in, given each bracket's number of rungs: Ray's softmax draw over those counts,
    with the uniform number taken from a hash of the id (the same bracket every time the trial starts)."""
    if len(rung_counts) == 1:
        return 0
    weights = np.exp(np.asarray(rung_counts, dtype=float) - max(rung_counts))
    uniform = int(hashlib.sha256(trial_id.encode()).hexdigest()[:13], 16) / 16**13
    return min(int(np.searchsorted(np.cumsum(weights / weights.sum()), uniform, side="right")),
               len(rung_counts) - 1)


def trial_rungs(trial_id: str, grace_period: int, max_epochs: int, reduction_factor: float,
                brackets: int = 1) -> tuple[int, list[int]]:
    """(bracket, rung epochs) of one trial of a sweep with `brackets` brackets."""
    rungs = rung_epochs(grace_period, max_epochs, reduction_factor)  # bracket s: these from the (s+1)-th on
    bracket = bracket_of(trial_id, [max(0, len(rungs) - s) for s in range(brackets)])
    return bracket, rungs[bracket:]


def max_brackets(grace_period: int, max_epochs: int, reduction_factor: float) -> int:
    """How many brackets differ: one per rung of the first, and the last with none (its trials run to the end)."""
    return len(rung_epochs(grace_period, max_epochs, reduction_factor)) + 1
