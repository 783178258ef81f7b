"""PC-LoRA's λ schedules: pure Python, so that config validation can name them without importing torch."""

from __future__ import annotations

import math

SCHEDULES = ("linear", "sine", "cosine")


def schedule_errors(schedule: str, decay_end: float) -> list[str]:
    """Why ``schedule`` / ``decay_end`` are invalid (an empty list when they are fine)."""
    errors = []
    if schedule not in SCHEDULES:
        errors.append(f"method.decay_schedule={schedule!r} is unknown; choose one of {', '.join(SCHEDULES)}")
    if isinstance(decay_end, bool) or not isinstance(decay_end, (int, float)) or not 0 < decay_end <= 1:
        errors.append(f"method.decay_end={decay_end!r} must be in (0, 1] (a fraction of the training steps)")
    return errors


def decay_factor(step: int, total_steps: int, schedule: str, decay_end: float) -> float:
    """λ before optimizer step ``step`` (0 … total_steps − 1): 1 at step 0, exactly 0.0 from step q on.

    q = decay_end·(total_steps − 1), not decay_end·total_steps: the last step a loop runs is
    total_steps − 1, and with decay_end = 1 the old q left λ > 0 on it (1/96 at step 95 of 96,
    linear), so no step ever trained the model that compress() ships (λ = 0). With this q every
    decay_end in (0, 1] gives λ = 0 on the last step; a single step (q = 0) runs at λ = 0.
    With n' = min(step / q, 1): ``linear`` 1 − n', ``sine`` 1 − sin(π/2·n'), ``cosine`` cos(π/2·n');
    all three are non-increasing in ``step``.
    """
    errors = schedule_errors(schedule, decay_end)
    if total_steps < 1:
        errors.append(f"total_steps={total_steps} must be >= 1")
    if errors:
        raise ValueError("; ".join(errors))
    q = decay_end * (total_steps - 1)
    if abs(q - round(q)) < 1e-9:
        # 0.28·25 is 7.000000000000001 in floats: without this, λ at step 7 would be ~1e-16, not 0.
        q = float(round(q))
    if step >= q:
        return 0.0  # cos(π/2) is 6e-17, not 0: the early path in forward needs an exact 0
    n = max(step, 0) / q
    if schedule == "linear":
        return 1.0 - n
    if schedule == "sine":
        return 1.0 - math.sin(math.pi / 2 * n)
    return math.cos(math.pi / 2 * n)
