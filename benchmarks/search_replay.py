"""Search efficiency by replay (issue "Multi-objective early stopping"): searchers and schedulers run
against a recorded grid, with simulated time, through the project's own code.

    python -m benchmarks.search_replay [--seeds 10] [--workers 4]

The table: results/gpu/search-grid/ (search_spaces/search-grid-gpu.yaml on one H200: 48 points of PC-LoRA
and KD-LoRA on STS-B, every trial to its 4th epoch): each point's metric after every epoch, the seconds
each epoch took, and its final objectives (metric:max, params_no_embeddings:min). This is the tabular
benchmark method of HPOBench and Syne Tune's blackbox repository: a searcher's trial is looked up, not
trained, so many seeds of many searchers cost seconds.

The searchers are the sweep's own: `orchestrator.tune.make_searcher` (FullBudgetOptunaSearch with
Optuna's NSGA-II, TPE or random sampler, over the grid's values as choices, its first points one per
method) and, for the grid, `orchestrator.search.grid_points` in a seeded order. The schedulers are the
trials' own rule, `orchestrator.asha.record_and_decide` (ASHA on the metric, MO-ASHA on the objectives,
rungs from `asha.rung_epochs` at grace period 1, η 2), or none. `--workers` trials run at once; a
trial's epochs take their recorded seconds; a stopped trial frees its worker at the rung. Every strategy
gets the grid's compute (the sum of all its epochs' seconds). Hypervolume: `orchestrator.pareto.hypervolume`
of the finished full-budget points against the sweeps' reference (metric 0, the uncompressed encoder),
as a share of the grid's final hypervolume.
"""

from __future__ import annotations

import argparse
import heapq
import json
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks._common import ROOT, command_line, write
from orchestrator.base.pareto import hypervolume
from orchestrator.base.sweep_folder import SweepFolder
from orchestrator.config.records import TrialFiles
from orchestrator.config.schema import Config, with_values
from orchestrator.engine import asha
from orchestrator.spec.load import load_config
from orchestrator.spec.space import grid_points, trial_point

GRID_DIR = ROOT / "results" / "gpu" / "search-grid" / "results" / "search-grid-stsb"
CONFIG = ROOT / "search_spaces" / "search-grid-gpu.yaml"
OBJECTIVES = ("metric", "params_no_embeddings")
DIRECTIONS = ("max", "min")
BUDGETS = [i / 20 for i in range(1, 21)]  # shares of the grid's compute at which the curves are read


@dataclass(frozen=True)
class Record:
    """One recorded point: its metric after each epoch, each epoch's seconds, its final objectives."""

    metrics: tuple[float, ...]
    seconds: tuple[float, ...]
    final: tuple[float, float] | None  # None: diverged (no full-budget point)
    size: float                        # params_no_embeddings of the deployable model, known at the start
    reference_size: float              # the uncompressed encoder's


def point_key(point: dict[str, Any]) -> tuple:
    """A trial's drawn values (the keys that apply to its method), as the table's key."""
    def canonical(key: str, value: Any) -> Any:
        if key == "method.rank":
            return int(value)
        return round(float(value), 12) if isinstance(value, (int, float)) else value

    return tuple(sorted((k, canonical(k, v)) for k, v in point.items()))


def load_table(cfg: Config, grid_dir: Path = GRID_DIR) -> dict[tuple, Record]:
    folder = SweepFolder(grid_dir)
    trials = pd.read_csv(folder.trials_csv)
    table = {}
    for _, row in trials.iterrows():
        point = {k: row[k] for k in row["searched"].split(",")}  # the keys drawn for this trial
        epochs = [json.loads(line) for line in (folder.trial(row["trial_id"]) / TrialFiles.EPOCHS)
                  .read_text().splitlines() if line.strip()]
        times = [e["time"] for e in epochs]
        first = float(row["train_seconds"]) - (times[-1] - times[0])  # set-up and the first epoch
        seconds = (first, *(b - a for a, b in zip(times, times[1:], strict=False)))
        metrics = tuple(float(e.get("metric", float("nan"))) for e in epochs)
        size = float(row["params_no_embeddings"]) if pd.notna(row["params_no_embeddings"]) \
            else float(row["base_params_no_embeddings"])
        final = None if row["status"] == "diverged" else (float(row["metric"]), size)
        table[point_key(point)] = Record(metrics, seconds, final, size, float(row["base_params_no_embeddings"]))
    return table


def replay_config() -> Config:
    """The recorded grid's config with its grid dimensions as choices, so Optuna's samplers can search it."""
    cfg = load_config(CONFIG, ["tracking.uri=null"])

    def as_choice(spec: dict[str, Any]) -> dict[str, Any]:
        if "per_method" in spec:
            return {"per_method": {m: as_choice(s) for m, s in spec["per_method"].items()}}
        return {"choice": spec["grid"]}

    return with_values(cfg, {"space": {k: as_choice(v) for k, v in cfg.space.items()}})


def grid_suggester(seed: int):
    import random

    points = grid_points(load_config(CONFIG, ["tracking.uri=null"]))
    random.Random(seed).shuffle(points)
    return lambda trial_id: points.pop() if points else None, lambda *a: None


def optuna_suggester(cfg: Config, sampler: str, seed: int):
    from orchestrator.search.tune import make_searcher

    search = make_searcher(with_values(cfg, {"search.sampler": sampler, "train.seed": seed,
                                             "search.num_samples": 48}))
    return (lambda trial_id: trial_point(search.suggest(trial_id))), search.on_trial_complete


def replay(table: dict[tuple, Record], cfg: Config, strategy: str, scheduler: str, seed: int, workers: int,
           budget: float, reference: list[float], rung_dir: Path) -> list[tuple[float, float]]:
    """(compute used, hypervolume) after each finished full-budget trial, until `budget` seconds are spent."""
    suggest, complete = (grid_suggester(seed) if strategy == "grid"
                         else optuna_suggester(cfg, strategy, seed))
    epochs = cfg.train.epochs
    rungs = asha.rung_epochs(1, epochs, 2.0) if scheduler != "none" else []
    running: list[tuple[float, int, str, tuple, int]] = []  # (time the epoch ends, order, trial, key, epoch)
    spent, clock, n, front, curve = 0.0, 0.0, 0, [], []

    def start(now: float) -> bool:
        nonlocal n, spent
        if spent >= budget:
            return False
        trial_id = f"s{seed}-{n}"
        point = suggest(trial_id)
        if point is None:
            return False
        key = point_key(point)
        n += 1
        spent += table[key].seconds[0]
        heapq.heappush(running, (now + table[key].seconds[0], n, trial_id, key, 1))
        return True

    for _ in range(workers):
        if not start(0.0):
            break
    while running:
        clock, order, trial_id, key, epoch = heapq.heappop(running)
        record = table[key]
        diverged = epoch == len(record.metrics) and record.final is None
        stop = (not diverged and epoch in rungs and asha.record_and_decide(
            rung_dir, epoch, trial_id, record.metrics[epoch - 1] if scheduler == "asha"
            else [record.metrics[epoch - 1], record.size],
            2.0, list(DIRECTIONS) if scheduler == "mo_asha" else None))
        if epoch == epochs or stop or diverged:
            full = epoch == epochs and record.final is not None
            result = {"metric": record.metrics[epoch - 1], OBJECTIVES[1]: record.size,
                      "full_budget": full, "diverged": diverged, "stopped_early": stop}
            complete(trial_id, result)
            if full:
                front.append(record.final)
                curve.append((spent, hypervolume(front, list(DIRECTIONS), reference)))
            start(clock)
        else:
            spent += record.seconds[epoch]
            heapq.heappush(running, (clock + record.seconds[epoch], order, trial_id, key, epoch + 1))
    return curve


def share_at(curve: list[tuple[float, float]], compute: float, best: float) -> float:
    reached = [hv for spent, hv in curve if spent <= compute]
    return max(reached, default=0.0) / best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = replay_config()
    table = load_table(cfg)
    budget = sum(sum(r.seconds) for r in table.values())
    reference = [0.0, max(r.reference_size for r in table.values())]
    best = hypervolume([r.final for r in table.values() if r.final], list(DIRECTIONS), reference)
    combos = [(s, sch) for s in ("grid", "random", "tpe", "nsga2") for sch in ("none", "asha", "mo_asha")]
    shares: dict[str, list[list[float]]] = {}
    for strategy, scheduler in combos:
        name = f"{strategy}+{scheduler}"
        shares[name] = []
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as rung_dir:
                curve = replay(table, cfg, strategy, scheduler, seed, args.workers, budget, reference, Path(rung_dir))
            shares[name].append([share_at(curve, b * budget, best) for b in BUDGETS])
        print(f"{name}: median share at 1/3 of the grid's compute "
              f"{statistics.median(s[6] for s in shares[name]):.3f}", flush=True)
    report(shares, table, budget, args)


def _q(values: list[float], q: float) -> float:
    return float(pd.Series(values).quantile(q))


def report(shares: dict[str, list[list[float]]], table: dict[tuple, Record], budget: float, args: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def median_at(name: str, b: float) -> float:
        return statistics.median(s[BUDGETS.index(b)] for s in shares[name])

    third = BUDGETS[6]  # 0.35 of the grid's compute: the first budget at or past one third
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for i, (name, runs) in enumerate(shares.items()):
        med = [statistics.median(s[j] for s in runs) for j in range(len(BUDGETS))]
        low = [_q([s[j] for s in runs], 0.25) for j in range(len(BUDGETS))]
        high = [_q([s[j] for s in runs], 0.75) for j in range(len(BUDGETS))]
        style = "-" if "mo_asha" in name else "--" if "asha" in name else ":"
        ax.plot(BUDGETS, med, style, color=f"C{i}", label=name)
        ax.fill_between(BUDGETS, low, high, color=f"C{i}", alpha=0.12)
    ax.axvline(1 / 3, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("compute used, share of the grid's (simulated seconds)")
    ax.set_ylabel("hypervolume, share of the grid's final")
    ax.set_title(f"Replay of a {len(table)}-point STS-B grid: median and IQR over {args.seeds} seeds, "
                 f"{args.workers} workers", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = ROOT / "benchmarks" / "results"
    fig.savefig(out / "search_replay.png", dpi=110)
    plt.close(fig)
    rows = ["| searcher + scheduler | at 1/3 (0.35) of the grid's compute | at 1/2 | at 1 | ahead of random+none at every budget |",
            "|---|---|---|---|---|"]
    for name in shares:
        ahead = all(median_at(name, b) >= median_at("random+none", b) for b in BUDGETS)
        rows.append(f"| {name} | {median_at(name, third):.3f} | {median_at(name, 0.5):.3f} | {median_at(name, 1.0):.3f} "
                    f"| {'yes' if ahead else 'no'} |")
    md = "\n".join([
        "# Search efficiency by replay", "",
        f"`{command_line()}`; the table: results/gpu/search-grid/ ({len(table)} points of STS-B recorded on one "
        f"H200 at commit 79cad6d, {budget / 60:.0f} trial-minutes in all). Median share of the grid's final "
        f"hypervolume (metric:max, params_no_embeddings:min) over {args.seeds} seeds, {args.workers} trials at "
        "once, simulated time; plot: search_replay.png (IQR bands).", "", *rows, ""])
    write("search_replay", {"budgets": BUDGETS, "shares": shares, "workers": args.workers, "seeds": args.seeds,
                            "grid_seconds": budget}, md)
    print(md)


if __name__ == "__main__":
    main()
