"""ASHA's stopping rule, applied inside each trial instead of by killing it.

Tune's ASHAScheduler stops a trial by terminating its actor. With Ray Train V2 (Ray 2.60) that leaves
the trial's worker group placement group reserved, and the next trials wait for its CPUs for ever
(ray-project/ray#54305; reproduced here on 2 cores). So each trial applies the same rule itself at
the end of an epoch and, when told to stop, ends its run normally, which releases its workers.

The rule is Ray's AsyncHyperBand with one bracket: rungs at grace_period · η^k epochs below max_t; a
trial reaching a rung is stopped when its metric is below the (1 − 1/η) quantile of the metrics that
earlier trials recorded at that rung (the first trial at a rung always goes on). Rung records live
in the sweep folder, so every trial of a sweep (on any node that sees the storage) shares them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from orchestrator.fs import file_lock


def rung_epochs(grace_period: int, max_epochs: int, reduction_factor: float) -> list[int]:
    """Epochs at which a trial is compared with the others (never the last one: it finishes anyway)."""
    rungs, k = [], 0
    while True:
        epoch = int(grace_period * reduction_factor**k)
        if epoch >= max_epochs:
            return rungs
        if not rungs or epoch > rungs[-1]:
            rungs.append(epoch)
        k += 1


def should_stop(earlier: list[float], value: float, reduction_factor: float) -> bool:
    """ASHA's cutoff: stop when `value` is below the top 1/η of the values recorded before it."""
    recorded = [v for v in earlier if not math.isnan(v)]
    if not recorded:
        return False
    cutoff = np.nanpercentile(recorded, (1 - 1 / reduction_factor) * 100)
    return bool(value < cutoff)


def record_and_decide(rung_dir: Path, rung: int, trial_id: str, value: float, reduction_factor: float) -> bool:
    """Record `value` at `rung` for `trial_id` (once: a resumed trial keeps its first record) and decide."""
    path = rung_dir / f"rung_{rung}.jsonl"
    with file_lock(path.with_suffix(".lock")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
        mine = [r for r in rows if r["trial_id"] == trial_id]
        if mine:
            return bool(mine[0]["stopped"])
        stop = should_stop([r["value"] for r in rows], value, reduction_factor)
        with open(path, "a") as handle:
            handle.write(json.dumps({"trial_id": trial_id, "value": value, "stopped": stop}) + "\n")
    return stop
