"""The search replay's outputs (benchmarks/search_replay.py): one plot (anytime hypervolume, median and IQR over
seeds, a panel per scheduler) and one markdown table (the share at a few budgets and the compute to reach 90 % and
95 % of the table's hypervolume), with the JSON of every seed's figures beside them."""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import asdict
from typing import Any

import numpy as np

from benchmarks._common import ROOT, cpu_model, load_average, write
from benchmarks.search_replay import BUDGETS, TARGETS, Run
from benchmarks.search_table import Table, contributions

BASELINE = "random+none"   # the naive search every other is held against
COLUMNS = (0.25, 1 / 3, 0.5, 1.0)


def shipped_default() -> str:
    """search_spaces/glue.yaml's sampler and scheduler, as the table names them ('nsga2+mo_asha'): the default a
    user's sweep runs, whatever it is when the report is written."""
    from orchestrator.spec.load import load_config

    search = load_config(ROOT / "search_spaces" / "glue.yaml").search
    return f"{search.sampler}+{search.scheduler}"


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """The compute by which a quarter, half and three quarters of the seeds had reached a target (the empirical
    distribution's quantiles, no interpolation: a seed that never reached it counts as inf)."""
    return tuple(float(np.quantile(np.asarray(values, dtype=float), q, method="inverted_cdf"))
                 for q in (0.25, 0.5, 0.75))


def reach_text(runs: list[Run], i: int) -> str:
    """Compute to reach TARGETS[i]: median [IQR] over seeds and how many seeds reached it; '—' past the budget."""
    values = [math.inf if r.reach[i] is None else r.reach[i] for r in runs]
    low, mid, high = quartiles(values)
    show = lambda v: "—" if math.isinf(v) else f"{v:.2f}"  # noqa: E731
    reached = sum(not math.isinf(v) for v in values)
    return f"{show(mid)} [{show(low)}-{show(high)}] ({reached}/{len(values)})"


def median_share(runs: list[Run], budget: float) -> float:
    return statistics.median(r.shares[BUDGETS.index(budget)] for r in runs)


def ahead_everywhere(runs: dict[str, list[Run]], name: str) -> str:
    if BASELINE not in runs or name == BASELINE:
        return ""
    return "yes" if all(median_share(runs[name], b) >= median_share(runs[BASELINE], b) for b in BUDGETS) else "no"


def markdown(runs: dict[str, list[Run]], table: Table, args: Any, command: str) -> str:
    head = ["searcher + scheduler", *(f"HV share at {c:.2g} of the compute" for c in COLUMNS),
            *(f"compute to {t:.0%} of the HV" for t in TARGETS), f"ahead of {BASELINE} at every budget"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    default = shipped_default()
    for name, seeds in runs.items():
        label = f"{name} (glue.yaml's default)" if name == default else name
        cells = [label, *(f"{median_share(seeds, c):.3f}" for c in COLUMNS),
                 *(reach_text(seeds, i) for i in range(len(TARGETS))), ahead_everywhere(runs, name)]
        rows.append("| " + " | ".join(cells) + " |")
    seeds = len(next(iter(runs.values())))
    return "\n".join([
        "# Search efficiency by replay", "",
        f"`{command}` on {cpu_model()}, {os.cpu_count()} cores ({args.jobs} process{'es' if args.jobs > 1 else ''}; load average "
        f"{load_average()} at the end). The table: {table.source} ({len(table)} points, {table.epochs} epochs "
        f"each, {table.compute / 60:.0f} trial-minutes in all, objectives {', '.join(table.objectives)}). "
        f"{seeds} seeds, {args.workers} trials at once, simulated time; rungs at grace period {args.grace_period}, "
        f"η {args.reduction_factor:g}, {args.brackets} bracket{'s' if args.brackets > 1 else ''}. Hypervolume as a share of the whole table's; compute as a share of the "
        "table's (every epoch of every point): medians over seeds; the compute to a target is the median "
        "[IQR] over seeds, quantiles without interpolation (how many seeds reached it within the table's "
        "compute; — past it). Plot: "
        f"{args.name}.png (median and IQR bands).", "", *rows, "", resting_points(table), ""])


def point_text(key: tuple) -> str:
    """A table point as 'name=pc_lora, rank=32, lr=0.002' (the last part of each key)."""
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in key if v is not None)


def resting_points(table: Table, shown: int = 5) -> str:
    """What the table's hypervolume rests on: the points whose loss would shrink it most (search_table.contributions).
    A searcher reaches 95 % only after finding every point that holds over 5 %; where one point holds several
    percent, the 95 % column measures the luck of drawing it more than the searcher."""
    held = contributions(table)
    if not held:
        return "No point holds a share of the hypervolume alone (every one is matched by another)."
    named = "; ".join(f"{point_text(key)}: {share:.1%}" for share, key in held[:shown])
    return (f"What the hypervolume rests on: {len(held)} of the {len(table)} points hold a share of it alone (the "
            f"table's hypervolume without that point is that much smaller); the largest: {named}.")


def plot(runs: dict[str, list[Run]], table: Table, args: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schedulers = list(dict.fromkeys(name.split("+")[1] for name in runs))
    strategies = list(dict.fromkeys(name.split("+")[0] for name in runs))
    fig, axes = plt.subplots(1, len(schedulers), figsize=(4.2 * len(schedulers), 4.2), sharey=True, squeeze=False)
    for ax, scheduler in zip(axes[0], schedulers, strict=True):
        for i, strategy in enumerate(strategies):
            seeds = runs.get(f"{strategy}+{scheduler}")
            if not seeds:
                continue
            shares = np.asarray([r.shares for r in seeds])
            low, mid, high = np.quantile(shares, [0.25, 0.5, 0.75], axis=0)
            ax.plot(BUDGETS, mid, color=f"C{i}", label=strategy)
            ax.fill_between(BUDGETS, low, high, color=f"C{i}", alpha=0.12)
        for target in TARGETS:
            ax.axhline(target, color="grey", lw=0.7, ls=":")
        ax.set_title(f"scheduler: {scheduler}", fontsize=9)
        ax.set_xlabel("compute used, share of the table's")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("hypervolume, share of the table's")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Replay of {table.source} ({len(table)} points): median and IQR over "
                 f"{len(next(iter(runs.values())))} seeds, {args.workers} workers", fontsize=8)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / f"{args.name}.png", dpi=110)
    plt.close(fig)


def report(runs: dict[str, list[Run]], table: Table, args: Any, command: str) -> str:
    """Writes OUT/NAME.{png,md,json}; returns the markdown."""
    plot(runs, table, args)
    md = markdown(runs, table, args, command)
    payload = {"command": command, "cpu": cpu_model(), "table": table.source, "points": len(table),
               "epochs": table.epochs, "table_seconds": table.compute, "reference": table.reference,
               "hypervolume": table.best, "budgets": BUDGETS, "targets": TARGETS, "workers": args.workers,
               "grace_period": args.grace_period, "reduction_factor": args.reduction_factor, "brackets": args.brackets,
               "runs": {name: [asdict(r) for r in seeds] for name, seeds in runs.items()}}
    write(args.name, payload, md, args.out)
    return md
