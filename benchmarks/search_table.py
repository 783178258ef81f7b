"""The recorded table of the search replay (benchmarks/search_replay.py): sweep folders read back as a lookup from
a point of the space to its per-epoch curve, each epoch's seconds and its final objectives.

A table is one or more sweep folders (trials.csv and each trial's epochs.jsonl) recorded with every trial run to
the end (`scheduler: none`) over a grid, and the config whose space they cover. The replay turns that space's
grid dimensions into choices, so the project's Optuna samplers draw only points the table holds; `methods`
narrows both to some methods (a table may hold FFT and LoRA as references that a compression search leaves out).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks._common import ROOT
from orchestrator.base.pareto import hypervolume
from orchestrator.base.sweep_folder import SweepFolder
from orchestrator.config.records import TrialFiles
from orchestrator.config.schema import Config, objective_pairs, with_values
from orchestrator.spec.load import load_config
from orchestrator.spec.space import METHOD_KEY, grid_points

GRID_DIR = ROOT / "results" / "gpu" / "search-grid" / "results" / "search-grid-stsb"
GRID_CONFIG = ROOT / "search_spaces" / "search-grid-gpu.yaml"
GRID_SOURCE = "results/gpu/search-grid/ (STS-B, recorded on one H200 at commit 79cad6d)"


def describe(sweep_dirs: Sequence[Path]) -> str:
    """How the outputs name a table: the default grid by its provenance, others by their folders."""
    if [Path(p).resolve() for p in sweep_dirs] == [GRID_DIR.resolve()]:
        return GRID_SOURCE
    shown = [Path(p).resolve() for p in sweep_dirs]
    return ", ".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in shown)


@dataclass(frozen=True)
class Record:
    """One recorded point: its metric after each epoch, each epoch's seconds, its final objectives."""

    metrics: tuple[float, ...]
    seconds: tuple[float, ...]
    final: tuple[float, ...] | None  # the objectives at the full budget; None: diverged (no full-budget point)
    sizes: tuple[float, ...]         # the minimised objectives (params, FLOPs), known when the trial starts


@dataclass(frozen=True)
class Table:
    """A recorded table and what every replay of it shares: objectives, reference point, compute, best front."""

    records: dict[tuple, Record]
    objectives: tuple[str, ...]  # the metric first, then the sizes
    directions: tuple[str, ...]
    epochs: int
    reference: tuple[float, ...]  # metric 0 and the uncompressed model's sizes (the sweeps' reference)
    compute: float                # seconds of every epoch of every point: what the grid costs
    best: float                   # the hypervolume of every point at its full budget
    source: str                   # where it was recorded, for the outputs

    def __len__(self) -> int:
        return len(self.records)


def canonical(key: str, value: Any) -> Any:
    """A drawn value as the table's key holds it: ranks and layer counts as ints, floats rounded, and model paths by
    their folder name (the GPU machine's copies live elsewhere than ../shared/models)."""
    if key in ("method.rank", "method.student_layers") and not (isinstance(value, float) and math.isnan(value)):
        return int(value)
    if isinstance(value, str):
        return Path(value).name if "/" in value else value
    return round(float(value), 12) if isinstance(value, (int, float)) else value


def point_key(point: dict[str, Any]) -> tuple:
    """A trial's drawn values (the keys that apply to its method), as the table's key."""
    return tuple(sorted((k, canonical(k, v)) for k, v in point.items()))


def read_records(sweep_dir: Path, objectives: Sequence[str]) -> tuple[dict[tuple, Record], list[float]]:
    """Every finished trial of one sweep folder, and the uncompressed model's size for each size objective."""
    folder = SweepFolder(sweep_dir)
    trials = folder.read_trials()
    records: dict[tuple, Record] = {}
    base = [float(trials[f"base_{name}"].max()) for name in objectives[1:]]
    for _, row in trials.iterrows():
        if row["status"] not in ("complete", "diverged"):
            continue  # errored or cut off: not a point of the table (load_table says which are missing)
        point = {k: row[k] for k in row["searched"].split(",")}  # the keys drawn for this trial
        epochs = [json.loads(line) for line in (folder.trial(row["trial_id"]) / TrialFiles.EPOCHS)
                  .read_text().splitlines() if line.strip()]
        times = [e["time"] for e in epochs]
        first = float(row["train_seconds"]) - (times[-1] - times[0])  # set-up and the first epoch
        seconds = (first, *(b - a for a, b in zip(times, times[1:], strict=False)))
        metrics = tuple(float(e.get("metric", float("nan"))) for e in epochs)
        # A diverged trial has no deployable size: the uncompressed model's (it earns no hypervolume anyway)
        sizes = tuple(float(row[n]) if pd.notna(row[n]) else float(row[f"base_{n}"]) for n in objectives[1:])
        final = None if row["status"] == "diverged" else (float(row["metric"]), *sizes)
        records[point_key(point)] = Record(metrics, seconds, final, sizes)
    return records, base


def replay_config(config: Path = GRID_CONFIG, methods: Sequence[str] | None = None) -> Config:
    """The table's config with its grid dimensions as choices, so Optuna's samplers can search it; with
    `methods`, only those methods are drawn."""
    cfg = load_config(config, ["tracking.uri=null"])

    def as_choice(spec: dict[str, Any]) -> dict[str, Any]:
        if "per_method" in spec:
            return {"per_method": {m: as_choice(s) for m, s in spec["per_method"].items()
                                   if not methods or m in methods}}
        return {"choice": spec.get("grid", spec.get("choice"))}

    space = {k: as_choice(v) for k, v in cfg.space.items()}
    if methods:
        if METHOD_KEY not in cfg.space:
            raise ValueError(f"--methods: {config} does not search {METHOD_KEY}")
        space[METHOD_KEY] = {"choice": [m for m in space[METHOD_KEY]["choice"] if m in methods]}
        space = {k: v for k, v in space.items() if v.get("per_method", True)}  # no method of it left
    return with_values(cfg, {"space": space})


def load_table(cfg: Config, sweep_dirs: Sequence[Path], source: str) -> Table:
    """The points of `cfg`'s grid (its space as `replay_config` made it) recorded in `sweep_dirs`; every one of
    them must be there (a searcher may draw any)."""
    pairs = objective_pairs(cfg)
    objectives, directions = tuple(m for m, _ in pairs), tuple(d for _, d in pairs)
    if objectives[0] != "metric" or directions[0] != "max" or any(d != "min" for d in directions[1:]):
        raise ValueError(f"the replay reads metric:max then sizes to minimise, got {cfg.search.objectives}")
    records: dict[tuple, Record] = {}
    bases: list[list[float]] = []
    for sweep_dir in sweep_dirs:
        found, base = read_records(Path(sweep_dir), objectives)
        records.update(found)
        bases.append(base)
    wanted = {point_key(p) for p in grid_points(cfg)}
    missing = wanted - set(records)
    if missing:
        raise ValueError(f"{len(missing)} of the space's {len(wanted)} points are not in the table, e.g. "
                         f"{dict(sorted(missing)[0])}")
    records = {k: r for k, r in records.items() if k in wanted}
    reference = (0.0, *(max(b[i] for b in bases) for i in range(len(objectives) - 1)))
    finals = [r.final for r in records.values() if r.final]
    best = hypervolume(finals, list(directions), list(reference)) if finals else 0.0
    return Table(records, objectives, directions, cfg.train.epochs, reference,
                 sum(sum(r.seconds) for r in records.values()), best, source)


def grid_order(cfg: Config, seed: int | None) -> list[dict[str, Any]]:
    """The grid's points in the order a grid sweep would run them: the config's own (seed None) or shuffled."""
    points = grid_points(cfg)
    if seed is not None:
        random.Random(seed).shuffle(points)
    return points


def contributions(table: Table) -> list[tuple[float, tuple]]:
    """Each full-budget point's exclusive share of the table's hypervolume (how much smaller it is without that
    point), largest first, zeros left out. A point holding more than 1 − t of it must itself be found before a
    searcher can reach the share t: on a table where one point holds 4 %, reaching 95 % is finding that point."""
    if table.best <= 0:  # no point beats the reference: there is no hypervolume to share
        return []
    finals = {key: r.final for key, r in table.records.items() if r.final}
    shares = []
    for key in finals:
        rest = [final for other, final in finals.items() if other != key]
        without = hypervolume(rest, list(table.directions), list(table.reference)) if rest else 0.0
        shares.append((1 - without / table.best, key))
    return sorted(((s, k) for s, k in shares if s > 1e-12), key=lambda sk: -sk[0])
