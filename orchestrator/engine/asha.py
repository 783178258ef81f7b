"""ASHA's stopping rule, applied inside each trial instead of by killing it.

Tune's ASHAScheduler stops a trial by terminating its actor. With Ray Train V2 (Ray 2.60) that leaves
the trial's worker group placement group reserved, and the next trials wait for its CPUs for ever
(ray-project/ray#54305; reproduced here on 2 cores). So each trial applies the same rule itself at
the end of an epoch and, when told to stop, ends its run normally, which releases its workers.

The rule is Ray's AsyncHyperBand with one bracket: rungs at grace_period · η^k epochs below max_t; a
trial reaching a rung is stopped when its metric is below the (1 − 1/η) quantile of the metrics that
earlier trials recorded at that rung (the first trial at a rung always goes on). Rung records live
in the sweep folder, so every trial of a sweep (on any node that sees the storage) shares them.

Brackets (`search.brackets`, Hyperband's): each bracket has its own rungs (orchestrator/base/rungs.py) and its
own rung records (`bracket_dir`); one bracket, the default, is the rule above.

MO-ASHA (`search.scheduler: mo_asha`; Schmucker et al. 2021, "Multi-objective Asynchronous Successive
Halving"): the same rungs and records, but a trial's record is its vector of the sweep's objectives at
the rung (the metric so far, and the params/FLOPs of the model it will deploy, known from the start).
The trials recorded at a rung are ordered by non-dominated rank, ties within a front broken by crowding
distance (NSGA-II's; larger first), then by arrival; a trial goes on when it is among the first
⌈n/η⌉ of the n recorded there, itself included, or when none of them dominates it (on the rung's front).
So a small PC-LoRA rank with a modest metric, on the low-cost end of the front, is not stopped for the
metric alone, as plain ASHA stops it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from orchestrator.base.fs import file_lock
from orchestrator.base.pareto import nondominated_order, nondominated_ranks


def bracket_dir(rung_dir: Path, bracket: int) -> Path:
    """Where a bracket's rung records live: the scheduler's folder for the first (as before brackets), a
    subfolder for each later one."""
    return Path(rung_dir) if bracket == 0 else Path(rung_dir) / f"bracket_{bracket}"


def should_stop(earlier: list[float], value: float, reduction_factor: float) -> bool:
    """ASHA's cutoff: stop when `value` is below the top 1/η of the values recorded before it."""
    recorded = [v for v in earlier if not math.isnan(v)]
    if not recorded:
        return False
    cutoff = np.nanpercentile(recorded, (1 - 1 / reduction_factor) * 100)
    return bool(value < cutoff)


def mo_should_stop(earlier: list[list[float]], value: list[float], directions: list[str],
                   reduction_factor: float) -> bool:
    """MO-ASHA's cutoff: stop unless `value` is among the first ⌈n/η⌉ of the n vectors recorded at the
    rung (itself included) in non-dominated order, or no vector recorded there dominates it; vectors holding
    NaN are left out of the ranking."""
    if any(math.isnan(x) for x in value):
        return True  # no metric to rank (the trial cannot be compared): it does not go on
    recorded = [v for v in earlier if not any(math.isnan(x) for x in v)]
    points = np.asarray([*recorded, value], dtype=float)
    # On the rung's front it goes on: ⌈n/η⌉ alone, with ties on the front broken by arrival, stopped the quickstart's
    # KD-LoRA trial with the best metric at its rung because one smaller PC-LoRA trial had got there first.
    if nondominated_ranks(points, directions)[-1] == 0:
        return False
    keep = max(1, math.ceil(len(points) / reduction_factor))
    return nondominated_order(points, directions).index(len(points) - 1) >= keep


def record_and_decide(rung_dir: Path, rung: int, trial_id: str, value: float | list[float], reduction_factor: float,
                      directions: list[str] | None = None) -> bool:
    """Record `value` at `rung` for `trial_id` (once: a resumed trial keeps its first record) and decide:
    ASHA on a scalar, MO-ASHA on a vector of objectives with their `directions`."""
    path = rung_dir / f"rung_{rung}.jsonl"
    with file_lock(path.with_suffix(".lock")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
        mine = [r for r in rows if r["trial_id"] == trial_id]
        if mine:
            return bool(mine[0]["stopped"])
        earlier = [r["value"] for r in rows]
        stop = (mo_should_stop(earlier, list(value), directions, reduction_factor) if directions
                else should_stop(earlier, float(value), reduction_factor))
        with open(path, "a") as handle:
            handle.write(json.dumps({"trial_id": trial_id, "value": value, "stopped": stop}) + "\n")
    return stop
