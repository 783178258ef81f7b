"""One sweep as a static HTML page (no server, works offline).

    python -m orchestrator report quickstart                 # results/quickstart/report/index.html
    python -m orchestrator report /shared/results/glue-sst2 --out /tmp/sst2-report

The page holds the front (metric against params and FLOPs, as % of the uncompressed model), every
trial's curve, the trials best first in a sortable table (each linked to its metrics.json, config.yaml
and MLflow run), and the sweep's config. Figures are written as SVG (for papers) and PNG beside it.
Reads only the sweep's files (sweep.yaml, trials.csv, trials/*/epochs.jsonl) and, when the sweep
logged to the local default database, that database for the MLflow links.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator import recipes
from orchestrator.base.redact import redact
from orchestrator.base.sweep_folder import SweepFolder
from orchestrator.config.budgets import budget_text
from orchestrator.config.records import TrialFiles
from orchestrator.config.schema import Config, ConfigError
from orchestrator.reports.report import front_of
from orchestrator.reports.report_html import SCRIPT, STYLE, _table
from orchestrator.spec.yaml_file import load_recorded
from orchestrator.tracking.runs import DB_FILE, LOCAL_UI, view_url


def sweep_folder(sweep: str, results: Path) -> Path:
    """SWEEP as a folder holding sweep.yaml: a path, or a sweep name under `results`."""
    for candidate in (Path(sweep), results / sweep):
        if SweepFolder(candidate).is_sweep():
            return candidate
    raise ConfigError([f"SWEEP: no sweep.yaml in {sweep!r} or {str(results / sweep)!r}; give a sweep's folder "
                      "or its name (with --results for a results folder other than results/)"])


def curves_of(sweep_dir: Path, trial_ids: list[str]) -> dict[str, pd.DataFrame]:
    curves = {}
    for trial_id in trial_ids:
        path = SweepFolder(sweep_dir).trial(trial_id) / TrialFiles.EPOCHS
        if path.is_file() and path.stat().st_size:
            curves[trial_id] = pd.read_json(path, lines=True).drop_duplicates("epoch", keep="last")
    return curves


def mlflow_links(cfg: Config, results: Path) -> tuple[str, dict[str, str]]:
    """The experiment's runs page and each trial's run page on `orchestrator ui`, from the local database;
    ('', {}) when the sweep logged elsewhere (a tracking server has its own URLs)."""
    db = results / DB_FILE
    if not db.is_file():
        return "", {}
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db.resolve()}")
    exp = client.get_experiment_by_name(cfg.name)
    if exp is None:
        return "", {}
    runs = client.search_runs([exp.experiment_id], max_results=10_000)
    by_trial = {r.data.tags["trial_id"]: f"{LOCAL_UI}/#/experiments/{exp.experiment_id}/runs/{r.info.run_id}"
                for r in runs if "trial_id" in r.data.tags}
    return view_url(LOCAL_UI, exp.experiment_id), by_trial


def _pct(part: Any, whole: Any) -> str:
    ok = pd.notna(part) and pd.notna(whole) and whole
    value = 100 * float(part) / float(whole) if ok else None
    return f'<td data-sort="{value:.4f}">{value:.1f}</td>' if value is not None else '<td data-sort="-1">–</td>'


def trial_rows(trials: pd.DataFrame, front_ids: set[str], runs: dict[str, str], page_dir: Path,
               sweep_dir: Path) -> list[list[str]]:
    rows = []
    ordered = trials.assign(_m=trials["metric"].fillna(-1e9)).sort_values("_m", ascending=False)
    for _, r in ordered.iterrows():
        trial_id = str(r["trial_id"])
        trial_dir = SweepFolder(sweep_dir).trial(trial_id)
        folder = os.path.relpath(trial_dir, page_dir)
        links = " ".join(f'<a href="{html.escape(folder)}/{name}">{label}</a>'
                         for name, label in ((TrialFiles.METRICS, "metrics"), (TrialFiles.CONFIG, "config"))
                         if (trial_dir / name).is_file())
        if trial_id in runs:
            links += f' <a href="{html.escape(runs[trial_id])}">MLflow</a>'
        metric = f'{r["metric"]:.4f}' if pd.notna(r["metric"]) else "–"
        minutes = r.get("train_seconds")
        rows.append([f'<td class="text">{html.escape(trial_id)}{" ★" if trial_id in front_ids else ""}</td>',
                     f'<td class="text">{html.escape(str(r["method.name"]))}</td>',
                     f'<td class="text">{html.escape(recipes.label(r))}</td>',
                     f'<td data-sort="{r["metric"] if pd.notna(r["metric"]) else -1e9}">{metric}</td>',
                     _pct(r.get("params"), r.get("base_params")),
                     _pct(r.get("params_no_embeddings"), r.get("base_params_no_embeddings")),
                     _pct(r.get("flops"), r.get("base_flops")),
                     f'<td class="text">{html.escape(str(r["status"]))}'
                     f'{", infeasible" if r.get("feasible") is False or r.get("feasible") == 0 else ""}</td>',
                     f'<td>{float(minutes) / 60:.1f}</td>' if pd.notna(minutes) else "<td>–</td>",
                     f'<td class="text">{links}</td>'])
    return rows


def references_html(references: list, trials: pd.DataFrame, front: pd.DataFrame) -> str:
    """The reference rows (orchestrator/reports/references.py) the trials are judged against, or that there are none."""
    from orchestrator.reports.references import judged, missing_note

    if not references:
        return f"<p>Reference: {html.escape(missing_note(trials))}.</p>"
    items = "".join(f"<li>{html.escape(judged(ref, trials, front))} (<code>{html.escape(ref.source)}</code>)</li>"
                    for ref in references)
    return f'<p>References, what the trials are judged against:</p><ul class="references">{items}</ul>'


def page(cfg: Config, sweep_dir: Path, trials: pd.DataFrame, front: pd.DataFrame, runs: dict[str, str],
         experiment_url: str, page_dir: Path, references: list | None = None) -> str:
    references = references or []
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    metric = trials["metric_name"].dropna().iloc[0] if trials["metric_name"].notna().any() else "metric"
    objectives = ", ".join(cfg.search.objectives)
    header = ["trial (★ on the front)", "method", "settings", metric, "params kept %", "encoder kept %",
              "FLOPs kept %", "status", "train min", "files"]
    from orchestrator.base.shell import module_command, relative_path

    ui = module_command("orchestrator", "ui", "--results", relative_path(sweep_dir.parent))
    mlflow = (f'<a href="{html.escape(experiment_url)}">the sweep in MLflow</a> (after '
              f"<code>{html.escape(ui)}</code>)" if experiment_url else "MLflow: the sweep's experiment on its tracking server")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(cfg.name)}: sweep report</title>", f"<style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(cfg.name)}</h1>",
             f"<p>{html.escape(cfg.task)} with {html.escape(Path(cfg.model).name)}; {html.escape(budget_text(trials))}. "
             f"{len(trials)} trials: {html.escape(', '.join(f'{n} {s}' for s, n in sorted(counts.items())))}. "
             f"Objectives {html.escape(objectives)}; {html.escape(cfg.search.sampler)} sampler, "
             f"{html.escape(cfg.search.scheduler)} scheduler. {len(front)} trials on the front. {mlflow}.</p>",
             '<figure><img src="front.svg" alt="metric against parameters and FLOPs kept"><figcaption>The Pareto '
             "front of the full-budget trials: circled, joined by a dashed staircase; hollow markers: stopped "
             "early; dash-dot: the reference rows below. Also <a href=\"front.png\">PNG</a>.</figcaption></figure>",
             references_html(references, trials, front),
             '<figure><img src="curves.svg" alt="evaluation metric by epoch"><figcaption>Each trial\'s '
             'evaluation metric by epoch. Also <a href="curves.png">PNG</a>.</figcaption></figure>',
             "<h2>Trials, best first</h2><p>Click a header to sort. Train min: the trial's own training and "
             "evaluation (<code>train_seconds</code>, the console's <code>train X min</code>); a KD-LoRA teacher's "
             "fine-tuning is in no trial's time (see the references above).</p>",
             _table("trials", header, trial_rows(trials, set(front["trial_id"].astype(str)), runs, page_dir,
                                                 sweep_dir)),
             "<h2>Configuration (sweep.yaml)</h2>",
             f"<pre>{html.escape(redact(SweepFolder(sweep_dir).sweep_yaml.read_text()))}</pre>",
             f"<script>{SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def write_report(sweep_dir: Path, out_dir: Path, results: Path) -> Path:
    from orchestrator.base.fs import atomic_write_text
    from orchestrator.reports.plots import plot_curves, plot_front
    from orchestrator.reports.references import recorded

    # sweep.yaml holds the tracking URI redacted; the page never connects to it (mlflow_links reads the
    # local default database only), so it is dropped rather than refused.
    folder = SweepFolder(sweep_dir)
    cfg = load_recorded(folder.sweep_yaml, ["tracking.uri=null"])  # no model or data folder needed
    csv = folder.trials_csv
    if not csv.is_file():
        raise ConfigError([f"{csv}: not written yet (the sweep writes it when it ends, or on --resume); "
                           "run the report after the sweep"])
    trials = folder.read_trials()
    front = front_of(cfg, trials)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = curves_of(sweep_dir, [str(t) for t in trials["trial_id"]])
    references = recorded(cfg, trials, sweep_dir)
    plot_front(cfg, trials, front, out_dir / "front.png", references)
    plot_curves(cfg, trials, curves, out_dir / "curves.png")
    experiment_url, runs = mlflow_links(cfg, results)
    path = out_dir / "index.html"
    atomic_write_text(path, page(cfg, sweep_dir, trials, front, runs, experiment_url, out_dir.resolve(), references))
    return path
