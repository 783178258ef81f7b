"""Tables and plots of one sweep: its Pareto front (pareto.md, pareto.png), ablation tables, both parameter bases.

Pure functions of a trials table (one row per trial, as trials.csv holds it) and the sweep's config:
no Ray, no MLflow, so reports can be rebuilt from committed files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.config import Config, objective_pairs
from orchestrator.fs import atomic_path
from orchestrator.pareto import pareto_mask
from orchestrator.recipes import BASELINES


def front_of(cfg: Config, trials: pd.DataFrame) -> pd.DataFrame:
    """The non-dominated full-budget trials under the sweep's objectives."""
    pairs = objective_pairs(cfg)
    names = [m for m, _ in pairs]
    done = trials[trials["full_budget"].astype(bool)] if len(trials) else trials
    done = done.dropna(subset=[n for n in names if n in done.columns])
    if len(done) == 0 or any(n not in done.columns for n in names):
        return done.iloc[0:0]
    mask = pareto_mask(done[names].to_numpy(dtype=float), [d for _, d in pairs])
    return done[mask].sort_values(names[0], ascending=pairs[0][1] == "min")


def ablation_table(cfg: Config, trials: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std (over seeds) of every objective, per cell of the searched keys, full-budget trials only."""
    keys = [k for k in cfg.space if k in trials.columns]
    done = trials[trials["full_budget"].astype(bool)]
    metrics = [m for m, _ in objective_pairs(cfg) if m in done.columns]
    grouped = done.groupby(keys, dropna=False)[metrics]
    table = grouped.agg(["mean", "std", "count"])
    table.columns = [f"{m}_{stat}" for m, stat in table.columns]
    return table.reset_index()


def ablation_markdown(cfg: Config, trials: pd.DataFrame) -> str:
    table = ablation_table(cfg, trials)
    keys = [k for k in cfg.space if k in table.columns]
    metrics = [m for m, _ in objective_pairs(cfg) if f"{m}_mean" in table.columns]
    lines = [f"# Ablation: {cfg.name}", "",
             f"Task {cfg.task}, model {Path(cfg.model).name}; mean ± std over seeds {cfg.search.seeds} "
             "(full-budget trials; n = trials per cell).", "",
             "| " + " | ".join(keys + metrics + ["n"]) + " |", "|" + "---|" * (len(keys) + len(metrics) + 1)]
    for _, row in table.iterrows():
        cells = [str(row[k]) for k in keys]
        for m in metrics:
            std = row[f"{m}_std"]
            cells.append(f"{row[f'{m}_mean']:.4g} ± {0.0 if pd.isna(std) else std:.2g}")
        cells.append(str(int(row[f"{metrics[0]}_count"])) if metrics else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pareto_markdown(cfg: Config, front: pd.DataFrame, trials: pd.DataFrame) -> str:
    pairs = objective_pairs(cfg)
    lines = [f"# Pareto front: {cfg.name}", "",
             f"Task {cfg.task}, model {Path(cfg.model).name}; objectives "
             + ", ".join(f"{m} ({d})" for m, d in pairs)
             + f". {len(front)} of {int(trials['full_budget'].sum()) if len(trials) else 0} full-budget trials "
             f"({len(trials)} in all) are non-dominated.", ""]
    searched = sorted({k for s in trials.get("searched", pd.Series(dtype=str)).dropna() for k in s.split(",") if k})
    cols = ["trial_id", "method.name"] + [k for k in searched if k != "method.name"]
    # Sizes on both bases: the whole model, and the encoder without embeddings (the papers' basis).
    cols += ["metric", "params", "params_kept_pct", "encoder_params_kept_pct", "flops", "flops_kept_pct"]
    kept = {"params_kept_pct": ("params", "base_params"),
            "encoder_params_kept_pct": ("params_no_embeddings", "base_params_no_embeddings"),
            "flops_kept_pct": ("flops", "base_flops")}
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for _, row in front.iterrows():
        cells = []
        for c in cols:
            if c in kept:
                part, whole = kept[c]
                value = 100 * row[part] / row[whole] if part in row and whole in row else float("nan")
            else:
                value = row.get(c, "")
            if isinstance(value, float) and not np.isnan(value):
                value = f"{value:.4g}" if c not in kept else f"{value:.1f}"
            elif isinstance(value, float):
                value = ""
            cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_front(cfg: Config, trials: pd.DataFrame, front: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    have = trials.dropna(subset=[c for c in ("metric", "params", "flops") if c in trials.columns])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, cost in zip(axes, ("params", "flops"), strict=True):
        if cost not in have.columns:
            continue
        for method, group in have.groupby("method.name"):
            style = {"marker": "*", "s": 120} if method in BASELINES else {"marker": "o", "s": 30}
            ax.scatter(group[cost], group["metric"], label=method, alpha=0.6, **style)
        if len(front) and cost in front.columns:
            f = front.sort_values(cost)
            ax.plot(f[cost], f["metric"], "k--", lw=1)
            ax.scatter(f[cost], f["metric"], facecolors="none", edgecolors="k", s=90, label="Pareto front")
        if "base_" + cost in have.columns and len(have):
            ax.axvline(have["base_" + cost].iloc[0], color="grey", lw=0.8, ls=":", label=f"uncompressed {cost}")
        ax.set_xscale("log")
        ax.set_xlabel(cost + (" (forward, one example)" if cost == "flops" else " (deployable model)"))
        ax.set_ylabel(f"{cfg.task} {trials['metric_name'].dropna().iloc[0] if 'metric_name' in trials and trials['metric_name'].notna().any() else 'metric'}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{cfg.name}: metric against parameters and FLOPs")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
