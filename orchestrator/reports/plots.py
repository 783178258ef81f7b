"""The figures: one sweep's front (pareto.png/.svg), its learning curves (report SWEEP), and the
leaderboards' per-task fronts. Each is written as PNG and as SVG (for papers and the HTML pages).

Pure functions of trials tables, as orchestrator/reports/report.py's tables are; matplotlib is imported late.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator import recipes
from orchestrator.base.fs import atomic_path
from orchestrator.base.pareto import pareto_mask
from orchestrator.config.budgets import budget_text
from orchestrator.config.schema import Config, objective_pairs
from orchestrator.reports.report import _method_rank, under_budget

# cost column -> (axis label when shown as % of the uncompressed model, label of the raw count)
COSTS = {"params": ("parameters kept, % of the uncompressed model", "parameters (deployable model)"),
         "flops": ("FLOPs kept, % of the uncompressed model (forward, one example)", "FLOPs (forward, one example)")}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, salt: str) -> None:
    """`path` (PNG) and the same figure beside it as SVG; a fixed hash salt keeps reruns byte-identical."""
    import matplotlib

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    with matplotlib.rc_context({"svg.hashsalt": salt}), atomic_path(path.with_suffix(".svg")) as tmp:
        fig.savefig(tmp, format="svg", metadata={"Date": None, "Creator": None})
    _pyplot().close(fig)


def _metric_label(cfg: Config, trials: pd.DataFrame) -> str:
    names = trials["metric_name"].dropna() if "metric_name" in trials.columns else pd.Series(dtype=str)
    return f"{cfg.task} {names.iloc[0] if len(names) else 'metric'}"


def plot_front(cfg: Config, trials: pd.DataFrame, front: pd.DataFrame, path: Path, references: Sequence = ()) -> None:
    """Metric against parameters and against FLOPs, as % of the uncompressed model (linear axes), one
    colour per method; trials stopped before the full budget hollow and grey-edged; the front (circled, joined
    by a dashed staircase) drawn only on the panels of the objectives it was computed on; each reference row
    (orchestrator/reports/references.py, e.g. the FFT teacher) a labelled horizontal dash-dot line."""
    plt = _pyplot()
    objectives = {m for m, _ in objective_pairs(cfg)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    methods = sorted(trials["method.name"].dropna().unique(), key=_method_rank) if len(trials) else []
    colours = {m: f"C{i}" for i, m in enumerate(methods)}
    for ax, cost in zip(axes, COSTS, strict=True):
        base = f"base_{cost}"
        have = trials.dropna(subset=[c for c in ("metric", cost) if c in trials.columns]) \
            if cost in trials.columns else trials.iloc[0:0]
        relative = base in have.columns and have[base].notna().all() and len(have) > 0

        def x(rows: pd.DataFrame, cost: str = cost, relative: bool = relative) -> pd.Series:
            return 100 * rows[cost] / rows[f"base_{cost}"] if relative else rows[cost]

        for method in methods:
            group = have[have["method.name"] == method]
            full = group[group["full_budget"].astype(bool)] if "full_budget" in group else group
            stopped = group.drop(full.index)
            marker = "*" if method in recipes.BASELINES else "o"
            ax.scatter(x(full), full["metric"], color=colours[method], marker=marker, s=40, alpha=0.75,
                       label=method)
            if len(stopped):
                ax.scatter(x(stopped), stopped["metric"], facecolors="none", edgecolors=colours[method],
                           marker=marker, s=40, alpha=0.6, label=f"{method}, stopped early")
        if len(front) and cost in objectives and cost in front.columns:
            f = front.dropna(subset=[cost]).sort_values(cost)
            # The staircase runs on to the right edge (what the front attains at any larger size), so a
            # one-point front has its dashed line too.
            edge = 100.0 if relative else float(have[cost].max()) if len(have) else float(f[cost].max())
            xs, ys = [*x(f), max(edge, float(x(f).max()))], [*f["metric"], float(f["metric"].iloc[-1])]
            ax.step(xs, ys, where="post", color="k", lw=1, ls="--", gid=f"pareto-front-{cost}")
            ax.scatter(x(f), f["metric"], facecolors="none", edgecolors="k", s=100, label="Pareto front (dashed)")
        for i, ref in enumerate(references):
            ax.axhline(ref.metric, color="0.3", lw=1, ls="-.", gid=f"reference-{i}-{cost}",
                       label=f"reference: {ref.name}")
            ax.annotate(f"{ref.name} {ref.metric:.3f}", (0.01, ref.metric), xycoords=("axes fraction", "data"),
                        xytext=(0, 2), textcoords="offset points", fontsize=7, color="0.3", va="bottom")
        if relative:
            ax.axvline(100, color="grey", lw=0.8, ls=":", label="uncompressed")
            ax.set_xlim(left=0)
        ax.set_xlabel(COSTS[cost][0] if relative else COSTS[cost][1])
        ax.set_ylabel(_metric_label(cfg, trials))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{cfg.name}: metric against parameters and FLOPs ({budget_text(trials)})")
    fig.tight_layout()
    save_figure(fig, path, salt=cfg.name)


def plot_curves(cfg: Config, trials: pd.DataFrame, curves: dict[str, pd.DataFrame], path: Path) -> None:
    """Each trial's evaluation metric by epoch (and PC-LoRA's λ where reported, dotted on a second axis)."""
    import matplotlib.ticker

    plt = _pyplot()
    methods = dict(zip(trials["trial_id"].astype(str), trials["method.name"], strict=True))
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ordered = sorted(set(methods.values()), key=_method_rank)
    colours = {m: f"C{i}" for i, m in enumerate(ordered)}
    labelled: set[str] = set()
    lam_ax = None
    for trial_id, epochs in sorted(curves.items()):
        method = methods.get(trial_id, "?")
        if "metric" not in epochs or epochs["metric"].isna().all():
            continue
        label = None if method in labelled else method
        labelled.add(method)
        ax.plot(epochs["epoch"], epochs["metric"], color=colours.get(method, "k"), marker="o", ms=3, lw=1,
                alpha=0.75, label=label)
        if "lambda" in epochs and epochs["lambda"].notna().any():
            lam_ax = lam_ax or ax.twinx()
            lam_ax.plot(epochs["epoch"], epochs["lambda"], color=colours.get(method, "k"), ls=":", lw=0.8, alpha=0.5)
    if lam_ax is not None:
        lam_ax.set_ylabel("λ (PC-LoRA, dotted)")
        lam_ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(_metric_label(cfg, trials))
    ax.grid(alpha=0.3)
    if labelled:
        ax.legend(fontsize=8)
    ax.set_title(f"{cfg.name}: evaluation metric by epoch ({len(curves)} trials)")
    fig.tight_layout()
    save_figure(fig, path, salt=f"{cfg.name}-curves")


def plot_task(frame: pd.DataFrame, task: str, path: Path) -> None:
    """metric against parameters and against FLOPs for every method of one task; the Pareto front of
    all methods (metric max, cost min) drawn; FFT and LoRA of each model as horizontal reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = frame[frame["task"] == task]
    metric_name = rows["metric_name"].dropna().iloc[0] if rows["metric_name"].notna().any() else "metric"
    models = sorted(rows["model_name"].unique())
    methods = sorted(rows["method.name"].unique(), key=_method_rank)
    colours = {m: f"C{i}" for i, m in enumerate(methods)}
    markers = dict(zip(models, "osD^vP*X", strict=False))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, cost in zip(axes, ("params", "flops"), strict=True):
        for method in methods:
            for model in models:
                g = rows[(rows["method.name"] == method) & (rows["model_name"] == model)]
                if len(g):
                    label = method if len(models) == 1 else f"{method} ({model})"
                    ax.scatter(g[cost], 100 * g["metric"], color=colours[method], marker=markers.get(model, "o"),
                               s=36, alpha=0.7, label=label)
        values = rows[["metric", cost]].to_numpy(float)
        front = rows[pareto_mask(values, ["max", "min"])].sort_values([cost, "metric"])
        ax.step(front[cost], 100 * front["metric"], where="post", color="k", lw=1, ls="--")
        ax.scatter(front[cost], 100 * front["metric"], facecolors="none", edgecolors="k", s=100,
                   label="Pareto front (all methods)")
        for method, ls in zip(recipes.BASELINES, ("-", ":", "-.", "--"), strict=False):
            for model in models:
                ref = under_budget(rows[(rows["method.name"] == method) & (rows["model_name"] == model)],
                                   "params", math.inf)
                if ref is not None:
                    name = recipes.get_recipe(method).display_name
                    ax.axhline(100 * ref["metric"], color=colours[method], ls=ls, lw=1,
                               label=f"{name} {model}" if len(models) > 1 else name)
        for model in models:
            base = rows.loc[rows["model_name"] == model, f"base_{cost}"].iloc[0]
            ax.axvline(base, color="grey", lw=0.8, ls=":",
                       label="uncompressed" + (f" {model}" if len(models) > 1 else ""))
        spread = rows[cost].max() / max(rows[cost].min(), 1)
        if spread >= 10:  # a log axis only when the costs span a decade; else its labels collide
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter())
        ax.set_xlabel("parameters (deployable model)" if cost == "params" else "FLOPs (forward, one example)")
        ax.set_ylabel(f"{task} {metric_name} ×100")
        ax.grid(alpha=0.3)
    # Below the axes: with two scales on one page the legend has ~20 entries and covered the points.
    handles, labels = axes[0].get_legend_handles_labels()
    legend_height = 0.2 * math.ceil(len(labels) / 4)  # inches: 4 entries a row
    fig.set_size_inches(11, 4.4 + legend_height)
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(f"{task}: metric against parameters and FLOPs ({len(rows)} trials; {budget_text(rows)})")
    fig.tight_layout(rect=(0, legend_height / (4.4 + legend_height) + 0.02, 1, 1))
    save_figure(fig, path, salt="leaderboard")
