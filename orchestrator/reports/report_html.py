"""results/leaderboards/index.html: the leaderboards as one static page (no server, works offline).

Sortable tables (click a header; `#sort=TABLE:COLUMN:asc|desc` in the URL sorts on load), the per-task
figures (the SVGs beside the page), and every cell linked to its trial's config.yaml and metrics.json
when those files are committed under results/. Pure: a frame in, a string out.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

from orchestrator.base.numbers import is_missing
from orchestrator.base.sweep_folder import SweepFolder
from orchestrator.config.records import TrialFiles
from orchestrator.reports.marks import quality_mark
from orchestrator.reports.report import (
    BUDGETS,
    GLUE_COLUMNS,
    budget_text,
    config_label,
    task_slug,
    under_budget,
)

SCRIPT = """
function sortTable(table, col, dir) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const key = r => { const c = r.cells[col]; const v = c.dataset.sort ?? c.textContent.trim();
                     const n = parseFloat(v); return isNaN(n) ? v : n; };
  rows.sort((a, b) => { const x = key(a), y = key(b);
    const o = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
    return dir === "asc" ? o : -o; });
  rows.forEach(r => body.appendChild(r));
  table.querySelectorAll("th").forEach((th, i) => th.dataset.dir = i === col ? dir : "");
  document.body.dataset.sorted = table.id + ":" + col + ":" + dir;
}
document.querySelectorAll("table.board").forEach(table => {
  table.querySelectorAll("th").forEach((th, i) => th.addEventListener("click", () =>
    sortTable(table, i, th.dataset.dir === "desc" ? "asc" : "desc")));
});
const m = location.hash.match(/^#sort=([\\w-]+):(\\d+):(asc|desc)$/);
if (m) { const t = document.getElementById(m[1]); if (t) sortTable(t, parseInt(m[2]), m[3]); }
"""

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table.board { border-collapse: collapse; margin: 1em 0; }
table.board th, table.board td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
table.board th { background: #f0f0f0; cursor: pointer; }
table.board th[data-dir="asc"]::after { content: " ▲"; } table.board th[data-dir="desc"]::after { content: " ▼"; }
td.text { text-align: left; } .chance { color: #a00; } figure img { max-width: 100%; }
"""


def _link(row: pd.Series, results_dir: Path, out_dir: Path) -> str:
    """A relative link to the trial's folder when its config and metrics are on disk; '' when not."""
    trial_dir = SweepFolder.under(results_dir, str(row["sweep"])).trial(str(row["trial_id"]))
    if not (trial_dir / TrialFiles.METRICS).is_file():
        return ""
    return os.path.relpath(trial_dir, out_dir)


def _cell(value: float | None, *, mark: str, link: str, title: str) -> str:
    """A metric cell; `mark` is marks.quality_mark's († no better than a constant prediction, ‡ collapsed)."""
    if is_missing(value):
        return '<td data-sort="-1e9">–</td>'
    text = f"{100 * value:.1f}" + mark
    if link:
        text = (f'<a href="{html.escape(link)}/{TrialFiles.METRICS}" title="{html.escape(title)}">{text}</a> '
                f'<a href="{html.escape(link)}/{TrialFiles.CONFIG}">cfg</a>')
    cls = ' class="chance"' if mark else ""
    return f'<td data-sort="{100 * value:.4f}"{cls}>{text}</td>'


def _table(table_id: str, header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f'<table class="board" id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def glue_table(frame: pd.DataFrame, results_dir: Path, out_dir: Path) -> str:
    """One row per (model, method): each GLUE column holds its best trial, linked."""
    from orchestrator.reports.report import best_per_task

    columns = [(h, t, c) for h, t, c in GLUE_COLUMNS if t in set(frame["task"])]
    best = best_per_task(frame[frame["task"].isin({t for _, t, _ in columns})]) if len(frame) else frame
    rows = []
    for (model, method), group in best.groupby(["model_name", "method.name"], sort=True):
        by_task = {r["task"]: r for _, r in group.iterrows()}
        cells = [f'<td class="text">{html.escape(str(model))}</td>', f'<td class="text">{html.escape(method)}</td>']
        for _, task, column in columns:
            r = by_task.get(task)
            value = None if r is None else (r.get(column) if pd.notna(r.get(column)) else r.get("metric"))
            cells.append(_cell(None if r is None else float(value), mark="" if r is None else quality_mark(task, r),
                               link="" if r is None else _link(r, results_dir, out_dir),
                               title="" if r is None else f"{r['sweep']}/{r['trial_id']}: {config_label(r)}"))
        rows.append(cells)
    return _table("glue", ["model", "method"] + [h for h, _, _ in columns], rows)


def compression_table(frame: pd.DataFrame, task: str, cost: str, results_dir: Path, out_dir: Path) -> str:
    rows_of_task = frame[frame["task"] == task]
    rows = []
    for budget in BUDGETS:
        best = under_budget(rows_of_task, cost, budget)
        if best is None:
            rows.append([f'<td class="text">≤ {budget} %</td>', '<td data-sort="-1e9">–</td>',
                         '<td class="text">–</td>', '<td class="text">–</td>'])
            continue
        rows.append([f'<td class="text" data-sort="{budget}">≤ {budget} %</td>',
                     _cell(float(best["metric"]), mark=quality_mark(task, best),
                           link=_link(best, results_dir, out_dir), title=f"{best['sweep']}/{best['trial_id']}"),
                     f'<td class="text">{html.escape(str(best["method.name"]))}</td>',
                     f'<td class="text">{html.escape(config_label(best))}</td>'])
    table_id = f"{task_slug(task)}-{cost.replace('_', '-')}"
    return _table(table_id, ["budget", "metric ×100", "method", "configuration"], rows)


def page(frame: pd.DataFrame, results_dir: Path, out_dir: Path) -> str:
    """The whole page as a string."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>LoRA compression leaderboards</title>", f"<style>{STYLE}</style></head><body>",
             "<h1>LoRA compression leaderboards</h1>",
             f"<p>{len(frame)} finished full-budget trials ({html.escape(budget_text(frame))}). Each cell is the "
             "best trial of its (model, method, task); click it for its metrics.json (cfg: its config.yaml). "
             "† at or below the best constant prediction; ‡ collapsed: above it, but ended with less than half of the "
             "gain over it that the run had after its best epoch. Click a header to sort.</p>"]
    if len(frame):
        parts += ["<h2>GLUE (validation ×100)</h2>", glue_table(frame, results_dir, out_dir)]
    for task in sorted(set(frame["task"])) if len(frame) else []:
        slug = task_slug(task)
        parts += [f'<h2 id="{slug}">{html.escape(task)}</h2>',
                  f'<figure><img src="{slug}.svg" alt="{html.escape(task)}: metric against parameters and FLOPs">'
                  f'<figcaption>Pareto fronts ({html.escape(budget_text(frame[frame["task"] == task]))}); also '
                  f'<a href="{slug}.png">PNG</a>.</figcaption></figure>']
        for cost, label in (("params", "parameters (whole model)"),
                            ("params_no_embeddings", "encoder parameters (no embeddings)"), ("flops", "FLOPs")):
            if cost in frame.columns and f"base_{cost}" in frame.columns:
                parts += [f"<h3>Best metric by {label} kept</h3>",
                          compression_table(frame, task, cost, results_dir, out_dir)]
    parts += [f"<script>{SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"


def write_page(frame: pd.DataFrame, results_dir: Path, out_dir: Path) -> Path:
    from orchestrator.base.fs import atomic_write_text

    path = Path(out_dir) / "index.html"
    atomic_write_text(path, page(frame, Path(results_dir).resolve(), Path(out_dir).resolve()))
    return path
