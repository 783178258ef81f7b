"""Search efficiency by replay (issues "Multi-objective early stopping" and 35): searchers and schedulers run against
a recorded table, with simulated time, through the project's own code.

    python -m benchmarks.search_replay [--seeds 20] [--workers 4]                 # the 48-point STS-B grid
    python -m benchmarks.search_replay --config search_spaces/search-table-gpu.yaml \\
        --table results/gpu/search-table/search-table-stsb-* --methods pc_lora kd_lora --name search_replay_stsb

The table (benchmarks/search_table.py): sweep folders recorded with every trial to the end, each point's metric
after every epoch, the seconds each epoch took, and its final objectives; by default results/gpu/search-grid/
(48 points of PC-LoRA and KD-LoRA on STS-B, 4 epochs). This is the tabular benchmark method of HPOBench and Syne
Tune's blackbox repository: a searcher's trial is looked up, not trained, so many seeds of many searchers cost
minutes.

The searchers are the sweep's own: `orchestrator.search.tune.make_searcher` (FullBudgetOptunaSearch with Optuna's
NSGA-II, NSGA-III, TPE, Gaussian-process or random sampler, over the table's values as choices, its first points
one per method) and the grid (`orchestrator.spec.space.grid_points`, shuffled per seed). The schedulers are the
trials' own rule, `orchestrator.engine.asha.record_and_decide` (ASHA on the metric, MO-ASHA on the objectives,
rungs and Hyperband brackets from `orchestrator.base.rungs`, grace period 1, η 2 and one bracket unless told), or
none. `--workers` trials run at once; a
trial's epochs take their recorded seconds; a stopped trial frees its worker at the rung. Every strategy gets
the table's compute (the sum of all its epochs' seconds). Hypervolume: `orchestrator.base.pareto.hypervolume`
of the finished full-budget points against the sweeps' reference (metric 0, the uncompressed model's sizes), as
a share of the whole table's. Reported: the share at each budget (median and IQR over seeds) and the compute
each strategy needs to reach 90 % and 95 % of it (benchmarks/search_report.py).
"""

from __future__ import annotations

import argparse
import heapq
import statistics
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import RESULTS, command_line
from benchmarks.search_table import (
    GRID_CONFIG,
    GRID_DIR,
    Table,
    describe,
    grid_order,
    load_table,
    point_key,
    replay_config,
)
from orchestrator.base.pareto import hypervolume
from orchestrator.base.rungs import trial_rungs
from orchestrator.config.schema import Config, with_values
from orchestrator.engine import asha
from orchestrator.spec.space import trial_point

STRATEGIES = ("grid", "random", "tpe", "nsga2", "nsga3", "gp")
SCHEDULERS = ("none", "asha", "mo_asha")
TARGETS = (0.90, 0.95)  # shares of the table's hypervolume whose cost is reported
# Shares of the table's compute at which the curves are read: every 1/40, and 1/3 (the first target).
BUDGETS = sorted({i / 40 for i in range(1, 41)} | {1 / 3})
Curve = list[tuple[float, float]]  # (compute spent, hypervolume) after each finished full-budget trial


@dataclass(frozen=True)
class Rule:
    """How the replayed sweep runs: its scheduler and that scheduler's rungs, and how many trials at once."""

    scheduler: str = "none"
    workers: int = 4
    grace_period: int = 1
    reduction_factor: float = 2.0
    brackets: int = 1


@dataclass(frozen=True)
class Run:
    """One replay's figures: the hypervolume share at each budget, and the compute share that reached each
    target (None: not within the budget)."""

    shares: tuple[float, ...]
    reach: tuple[float | None, ...]


def grid_suggester(cfg: Config, seed: int | None) -> tuple[Callable, Callable]:
    points = grid_order(cfg, seed)[::-1]  # popped from the end: the first point first
    return (lambda trial_id: points.pop() if points else None), (lambda *a: None)


def optuna_suggester(cfg: Config, sampler: str, seed: int, num_samples: int) -> tuple[Callable, Callable]:
    from orchestrator.search.tune import make_searcher

    search = make_searcher(with_values(cfg, {"search.sampler": sampler, "train.seed": seed,
                                             "search.num_samples": num_samples}))
    return (lambda trial_id: trial_point(search.suggest(trial_id))), search.on_trial_complete


def suggester(table: Table, cfg: Config, strategy: str, seed: int | None) -> tuple[Callable, Callable]:
    """(suggest(trial_id) -> point or None, complete(trial_id, result)) for a strategy; seed None: the grid in
    its own order."""
    if strategy == "grid":
        return grid_suggester(cfg, seed)
    return optuna_suggester(cfg, strategy, 0 if seed is None else seed, len(table))


def replay(table: Table, cfg: Config, strategy: str, rule: Rule, seed: int | None, budget: float,
           rung_dir: Path) -> Curve:
    """(compute used, hypervolume) after each finished full-budget trial, until `budget` seconds are spent.
    Compute is charged when an epoch starts, so a point finished at `spent` cost no more than `spent`."""
    suggest, complete = suggester(table, cfg, strategy, seed)
    plans: dict[str, tuple[int, list[int]]] = {}  # trial: its bracket and that bracket's rungs
    running: list[tuple[float, int, str, tuple, int]] = []  # (time the epoch ends, order, trial, key, epoch)
    spent, n, front, curve = 0.0, 0, [], []

    def start(now: float) -> None:
        nonlocal n, spent
        point = suggest(f"s{seed}-{n}") if spent < budget else None
        if point is None:
            return
        key = point_key(point)
        plans[f"s{seed}-{n}"] = trial_rungs(f"s{seed}-{n}", rule.grace_period, table.epochs, rule.reduction_factor,
                                            rule.brackets) if rule.scheduler != "none" else (0, [])
        spent += table.records[key].seconds[0]
        heapq.heappush(running, (now + table.records[key].seconds[0], n, f"s{seed}-{n}", key, 1))
        n += 1

    for _ in range(rule.workers):
        start(0.0)
    while running:
        clock, order, trial_id, key, epoch = heapq.heappop(running)
        record = table.records[key]
        diverged = epoch == len(record.metrics) and record.final is None
        bracket, rungs = plans[trial_id]
        stop = not diverged and epoch in rungs and stop_at_rung(table, rule, asha.bracket_dir(rung_dir, bracket), epoch,
                                                                trial_id, record)
        if epoch == table.epochs or stop or diverged:
            full = epoch == table.epochs and record.final is not None
            complete(trial_id, {"metric": record.metrics[epoch - 1],
                                **dict(zip(table.objectives[1:], record.sizes, strict=True)),
                                "full_budget": full, "diverged": diverged, "stopped_early": stop})
            if full:
                front.append(record.final)
                curve.append((spent, hypervolume(front, list(table.directions), list(table.reference))))
            start(clock)
        else:
            spent += record.seconds[epoch]
            heapq.heappush(running, (clock + record.seconds[epoch], order, trial_id, key, epoch + 1))
    return curve


def stop_at_rung(table: Table, rule: Rule, rung_dir: Path, epoch: int, trial_id: str, record: Any) -> bool:
    """The trials' own rule at a rung: ASHA on the metric so far, MO-ASHA on it and the sizes."""
    metric = record.metrics[epoch - 1]
    multi = rule.scheduler == "mo_asha"
    return asha.record_and_decide(rung_dir, epoch, trial_id, [metric, *record.sizes] if multi else metric,
                                  rule.reduction_factor, list(table.directions) if multi else None)


def share_at(curve: Curve, compute: float, best: float) -> float:
    """The share of `best` reached with at most `compute` spent."""
    reached = [hv for spent, hv in curve if spent <= compute]
    return max(reached, default=0.0) / best if best > 0 else 0.0


def compute_to_reach(curve: Curve, target: float, best: float) -> float | None:
    """The compute spent when the hypervolume first reached `target` × `best`; None when it never did."""
    for spent, hv in curve:
        if hv >= target * best * (1 - 1e-12):  # an exact 1.0 share may round a hair below
            return spent
    return None


def summarise(curve: Curve, table: Table) -> Run:
    """A replay's figures, compute as shares of the table's."""
    shares = tuple(share_at(curve, b * table.compute, table.best) for b in BUDGETS)
    reach = tuple(None if (c := compute_to_reach(curve, t, table.best)) is None else c / table.compute
                  for t in TARGETS)
    return Run(shares, reach)


def replay_seed(table: Table, cfg: Config, strategy: str, rule: Rule, seed: int) -> Run:
    with tempfile.TemporaryDirectory() as rung_dir:
        return summarise(replay(table, cfg, strategy, rule, seed, table.compute, Path(rung_dir)), table)


# Worker processes get the table and config once (a fork's copy), then run (strategy, rule, seed) tasks.
_SHARED: dict[str, Any] = {}


def _init(table: Table, cfg: Config) -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # NSGA-III's notice
    warnings.filterwarnings("ignore", message="Define-by-run function")  # Ray's, on GP's slow suggestions
    _SHARED.update(table=table, cfg=cfg)


def _task(args: tuple[str, Rule, int]) -> Run:
    return replay_seed(_SHARED["table"], _SHARED["cfg"], *args)


def run_all(table: Table, cfg: Config, combos: Sequence[tuple[str, Rule]], seeds: int, jobs: int
            ) -> dict[str, list[Run]]:
    """Every (strategy, rule) over seeds 0..seeds-1, in `jobs` processes; keyed "strategy+scheduler"."""
    tasks = [(strategy, rule, seed) for strategy, rule in combos for seed in range(seeds)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs, initializer=_init, initargs=(table, cfg)) as pool:
            runs = list(pool.map(_task, tasks, chunksize=max(1, seeds // 4)))
    else:
        _init(table, cfg)
        runs = [_task(t) for t in tasks]
    out: dict[str, list[Run]] = {}
    for (strategy, rule, _), run in zip(tasks, runs, strict=True):
        out.setdefault(f"{strategy}+{rule.scheduler}", []).append(run)
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", nargs="+", type=Path, default=[GRID_DIR],
                        help="sweep folders that hold the table (default: the 48-point STS-B grid)")
    parser.add_argument("--config", type=Path, default=GRID_CONFIG, help="the config whose grid they recorded")
    parser.add_argument("--methods", nargs="*", default=None, help="replay only these methods of the space")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4, help="trials at once in the replayed sweep")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--schedulers", nargs="+", default=list(SCHEDULERS), choices=SCHEDULERS)
    parser.add_argument("--grace-period", type=int, default=1)
    parser.add_argument("--reduction-factor", type=float, default=2.0)
    parser.add_argument("--brackets", type=int, default=1, help="Hyperband brackets of the schedulers")
    parser.add_argument("--jobs", type=int, default=1, help="processes replaying seeds side by side")
    parser.add_argument("--name", default="search_replay", help="output files: OUT/NAME.{md,json,png}")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--source", default=None, help="how the outputs name the table (default: its folders)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, list[Run]]:
    from benchmarks.search_report import report

    args = parse(argv)
    cfg = replay_config(args.config, args.methods)
    source = args.source or describe(args.table)
    table = load_table(cfg, args.table, source)
    combos = [(s, Rule(sch, args.workers, args.grace_period, args.reduction_factor, args.brackets))
              for s in args.strategies for sch in args.schedulers]
    runs = run_all(table, cfg, combos, args.seeds, args.jobs)
    for name, seeds in runs.items():
        print(f"{name}: median share at 1/3 of the table's compute "
              f"{statistics.median(r.shares[BUDGETS.index(1 / 3)] for r in seeds):.3f}", flush=True)
    print(report(runs, table, args, command_line()))
    return runs


if __name__ == "__main__":
    main()
