"""Pareto fronts and hypervolume: pure numpy, no Ray, no MLflow.

Objectives are (name, "max" | "min") pairs; maximised columns are negated so that everything is
minimised (optuna's convention). A point is dominated when another is at least as good in every
objective and strictly better in one; duplicates of a non-dominated point are all kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_minimisation(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(directions):
        raise ValueError(f"expected an (n_points, {len(directions)}) matrix, got shape {values.shape}")
    if np.isnan(values).any():
        rows = sorted({int(i) for i in np.argwhere(np.isnan(values))[:, 0]})
        raise ValueError(f"rows {rows} hold NaN objective values; drop them before computing a front")
    bad = [d for d in directions if d not in ("max", "min")]
    if bad:
        raise ValueError(f"directions must be 'max' or 'min', got {bad}")
    signs = np.array([-1.0 if d == "max" else 1.0 for d in directions])
    return values * signs


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `values` (n_points × n_objectives)."""
    v = _as_minimisation(values, directions)
    n = len(v)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        no_worse = (v <= v[i]).all(axis=1)
        better = (v < v[i]).any(axis=1)
        if (no_worse & better).any():
            mask[i] = False
    return mask


def hypervolume(values: np.ndarray, directions: Sequence[str], reference: Sequence[float]) -> float:
    """Exact hypervolume dominated by `values` up to `reference` (given in the objectives' own units),
    for 2 or 3 objectives. Points that do not dominate the reference contribute nothing."""
    v = _as_minimisation(values, directions)
    ref = _as_minimisation(np.asarray([reference], dtype=float), directions)[0]
    if v.shape[1] not in (2, 3):
        raise ValueError(f"exact hypervolume is implemented for 2 or 3 objectives, got {v.shape[1]}")
    v = v[(v < ref).all(axis=1)]
    if len(v) == 0:
        return 0.0
    v = v[pareto_mask(v, ["min"] * v.shape[1])]
    return _hv2(v, ref) if v.shape[1] == 2 else _hv3(v, ref)


def _hv2(v: np.ndarray, ref: np.ndarray) -> float:
    v = v[np.lexsort((v[:, 1], v[:, 0]))]
    area, best_y = 0.0, ref[1]
    for x, y in v:
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return float(area)


def _hv3(v: np.ndarray, ref: np.ndarray) -> float:
    """Slice along the third objective: each slab is a 2-D hypervolume of the points below it."""
    v = v[np.argsort(v[:, 2])]
    zs = list(v[:, 2]) + [ref[2]]
    volume = 0.0
    for i in range(len(v)):
        depth = zs[i + 1] - zs[i]
        if depth > 0:
            volume += _hv2(v[: i + 1, :2], ref[:2]) * depth
    return float(volume)


def nondominated_ranks(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Each row's front number by non-dominated sorting: 0 for the Pareto front, 1 for the front of what
    remains without it, and so on (NSGA-II's ranks; O(n² · fronts), ample for rung tables)."""
    v = _as_minimisation(values, directions)
    ranks = np.full(len(v), -1)
    left = np.arange(len(v))
    front = 0
    while len(left):
        mask = pareto_mask(v[left], ["min"] * v.shape[1])
        ranks[left[mask]] = front
        left, front = left[~mask], front + 1
    return ranks


def crowding_distance(values: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each row within its set: the sum over objectives of the normalised gap
    between its two neighbours; the extremes of each objective get infinity (they are kept first)."""
    v = np.asarray(values, dtype=float)
    n, k = v.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(k):
        order = np.argsort(v[:, j], kind="stable")
        span = v[order[-1], j] - v[order[0], j]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (v[order[2:], j] - v[order[:-2], j]) / span
    return distance


def nondominated_order(values: np.ndarray, directions: Sequence[str]) -> list[int]:
    """Row indices best first: by non-dominated rank, then by crowding distance within a front (larger
    first: a point in a sparse part of the front is kept before one among many), then by row (earlier first)."""
    ranks = nondominated_ranks(values, directions)
    crowding = np.zeros(len(ranks))
    for front in np.unique(ranks):
        members = np.flatnonzero(ranks == front)
        crowding[members] = crowding_distance(np.asarray(values, dtype=float)[members])
    return sorted(range(len(ranks)), key=lambda i: (ranks[i], -crowding[i], i))
