"""Reference rows: the scores a sweep's trials are judged against (DESIGN.md: FFT is the baseline every table
compares with), shown in the closing summary, pareto.md, pareto.png and the report.

`references_of` gathers them from the cached auxiliary models the trials' recipes declared
(orchestrator/recipes/auxiliary.py): the fully fine-tuned teacher that a KD-LoRA trial (or PC-LoRA with
`kd_teacher: finetuned`) had trained, results/teachers/<teacher_key>/metrics.json, and a KD-LoRA student's
own FFT ceiling, results/ceilings/<key>/metrics.json, which judges that student's trials (`judges`). Another
kind is one more role there and one more list in `references_of`. A sweep whose trials fine-tuned no teacher
has none, and says so (`missing_note`) rather than inventing one.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.base.sweep_folder import SweepFolder
from orchestrator.config.records import read_metrics
from orchestrator.config.schema import Config, ConfigError, with_values


@dataclass(frozen=True)
class Reference:
    """One reference row: a finished run the trials are compared with, and where its record lies."""

    name: str                  # "FFT teacher (minilm-l6-h384)"
    metric_name: str
    metric: float
    params: float | None
    params_no_embeddings: float | None
    flops: float | None
    train_seconds: float | None  # its own training time, counted apart from every trial's
    source: str                # the folder holding its metrics.json
    # A ceiling's student checkpoint (`method.student`): the trials judged against it are that student's; None:
    # the whole front is (a teacher). A default, so references.json written before it still reads.
    judges: str | None = None

    def as_row(self) -> dict[str, Any]:
        """The fields a trials row has, so the same formatting and kept-% code applies."""
        return {"metric": self.metric, "metric_name": self.metric_name, "params": self.params,
                "params_no_embeddings": self.params_no_embeddings, "flops": self.flops,
                "train_seconds": self.train_seconds}

    def share(self, metric: float | None) -> float | None:
        """`metric` as a % of this reference's (None when either is missing or the reference is not positive)."""
        if metric is None or (isinstance(metric, float) and math.isnan(metric)) or not self.metric > 0:
            return None
        return 100 * float(metric) / self.metric


def row_reference(name: str, row: Mapping[str, Any]) -> Reference:
    """A finished trial's row (a leaderboard's FFT teacher or a KD-LoRA student's ceiling) as a Reference."""
    def value(key: str) -> float | None:
        v = row.get(key)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    return Reference(name=name, metric_name=str(row.get("metric_name", "metric")), metric=float(row["metric"]),
                     params=value("params"), params_no_embeddings=value("params_no_embeddings"),
                     flops=value("flops"), train_seconds=value("train_seconds"),
                     source=f"{row.get('sweep')}/trials/{row.get('trial_id')}")


def _integer_field(cfg: Config, key: str) -> bool:
    """Whether the config declares the dotted `key` an integer (`int` or `int | None`)."""
    *parents, name = key.split(".")
    obj: Any = cfg
    for part in parents:
        obj = getattr(obj, part, None)
    if obj is None or not dataclasses.is_dataclass(obj):
        return False
    declared = {f.name: str(f.type) for f in dataclasses.fields(obj)}.get(name, "")
    return declared.split(" | ")[0] == "int"


def _point(row: pd.Series, cfg: Config) -> dict[str, Any]:
    """The searched settings of a trials.csv row (what `with_values` needs to rebuild its config)."""
    searched = row.get("searched")
    keys = [k for k in str(searched).split(",") if k] if isinstance(searched, str) else []
    # numpy scalars (from a DataFrame) as the plain Python values a config holds; a column of integers with
    # blanks (student_layers of the PC-LoRA rows) reads as floats: 2.0 is given back as 2
    point = {k: row[k].item() if hasattr(row[k], "item") else row[k]
             for k in ["method.name", *keys] if k in row.index and pd.notna(row[k])}
    return {k: int(v) if isinstance(v, float) and v.is_integer() and _integer_field(cfg, k) else v
            for k, v in point.items()}


def auxiliary_references(cfg: Config, trials: pd.DataFrame, results_dir: str | Path | None = None,
                         role: str | None = None) -> list[Reference]:
    """The cached auxiliary models (orchestrator/recipes/auxiliary.py) this sweep's trials declared, one row per
    distinct model, read from their cache folders under `results_dir` (default: the config's; a report on copied
    results passes the copy's); only those of `role` when given. A model not cached (not trained yet, or turned
    off) has no row."""
    from orchestrator import recipes

    root = Path(results_dir if results_dir is not None else cfg.results_dir)
    found: dict[tuple[str, Path], Reference] = {}
    for _, row in trials.iterrows() if len(trials) else []:
        try:
            trial_cfg = with_values(cfg, _point(row, cfg))
        except ConfigError:  # a row from an older config layout: no auxiliary model to find
            continue
        for aux in recipes.get_recipe(trial_cfg.method.name).auxiliary_models(trial_cfg):
            folder = aux.cached(root) or aux.folder(root)
            if (role is not None and aux.role != role) or (aux.role, folder) in found:
                continue
            metrics = read_metrics(folder)
            if metrics is None or metrics.get("metric") is None:
                continue
            found[aux.role, folder] = Reference(name=aux.reference, metric_name=str(metrics.get("metric_name", "metric")),
                                      metric=float(metrics["metric"]), params=metrics.get("params"),
                                      params_no_embeddings=metrics.get("params_no_embeddings"),
                                      flops=metrics.get("flops"), train_seconds=metrics.get("train_seconds"),
                                      source=str(folder), judges=aux.judges)
    return list(found.values())


def teacher_references(cfg: Config, trials: pd.DataFrame, results_dir: str | Path | None = None) -> list[Reference]:
    """The fine-tuned teachers this sweep's trials used (results/teachers/<teacher_key>/)."""
    from orchestrator.recipes.auxiliary import TEACHER

    return auxiliary_references(cfg, trials, results_dir, TEACHER)


def ceiling_references(cfg: Config, trials: pd.DataFrame, results_dir: str | Path | None = None) -> list[Reference]:
    """The KD-LoRA students' own FFT ceilings (results/ceilings/<key>/), each judging its student's trials."""
    from orchestrator.recipes.auxiliary import STUDENT_CEILING

    return auxiliary_references(cfg, trials, results_dir, STUDENT_CEILING)


def references_of(cfg: Config, trials: pd.DataFrame, results_dir: str | Path | None = None) -> list[Reference]:
    """Every reference row of a sweep, in the order shown: what the summary, pareto.md/.png and the report use.
    The FFT teachers, then the KD-LoRA students' own FFT ceilings; a new kind of reference is one more list."""
    return teacher_references(cfg, trials, results_dir) + ceiling_references(cfg, trials, results_dir)


def write_record(sweep_dir: Path, references: list[Reference]) -> None:
    """The references as the sweep found them. A report reads them back rather than finding the teachers again:
    their cache keys hold the absolute paths the sweep ran with, which sweep.yaml (paths as the user wrote
    them) and results copied elsewhere do not reproduce."""
    from orchestrator.base.fs import atomic_write_text

    atomic_write_text(SweepFolder(sweep_dir).references, json.dumps([dataclasses.asdict(ref) for ref in references], indent=1))


def read_record(sweep_dir: Path) -> list[Reference] | None:
    """The sweep's references.json as written (write_record); None when the sweep wrote none."""
    path = SweepFolder(sweep_dir).references
    return [Reference(**raw) for raw in json.loads(path.read_text())] if path.is_file() else None


def recorded(cfg: Config, trials: pd.DataFrame, sweep_dir: Path) -> list[Reference]:
    """The sweep's references.json; for a sweep written before it existed, found again (references_of)."""
    found = read_record(sweep_dir)
    return found if found is not None else references_of(cfg, trials, Path(sweep_dir).parent)


def kept_pct(ref: Reference, trials: pd.DataFrame) -> dict[str, float | None]:
    """The reference's params, encoder params and FLOPs as a % of the sweep's uncompressed model (the trials'
    base_*), so it reads on the same axes as the trials; None where a size is unknown."""
    from orchestrator.config.constraints import KEPT_PCT, value_of

    row: dict[str, Any] = ref.as_row()
    for _, base in KEPT_PCT.values():
        known = trials[base].dropna() if base in trials.columns else []
        row[base] = float(known.iloc[0]) if len(known) else None
    return {name: value_of(row, name) for name in KEPT_PCT}


def describe(ref: Reference, trials: pd.DataFrame) -> str:
    """`FFT teacher (minilm-l6-h384) accuracy 0.7810, params 100.0 % (enc 100.0 %), FLOPs 100.0 %`."""
    kept = kept_pct(ref, trials)

    def pct(name: str) -> str:
        return "?" if kept[name] is None else f"{kept[name]:.1f} %"

    return (f"{ref.name} {ref.metric_name} {ref.metric:.4f}, params {pct('params_kept_pct')} "
            f"(enc {pct('encoder_params_kept_pct')}), FLOPs {pct('flops_kept_pct')}")


def judged_best(ref: Reference, trials: pd.DataFrame, front: pd.DataFrame) -> tuple[float | None, str]:
    """(the best metric judged against `ref`, what it is): the front's best for a teacher; for a student's
    ceiling, the best full-budget trial of that student (a KD-LoRA trial with `method.student` = ref.judges)."""
    from orchestrator import recipes

    if ref.judges is None:
        rows, what = front, "the front's best"
    else:
        own = [recipes.get_recipe(str(row.get("method.name"))).student_model(row) == ref.judges
               if isinstance(row.get("method.name"), str) else False for _, row in trials.iterrows()]
        rows = trials[own] if len(trials) else trials
        if "full_budget" in rows.columns:
            rows = rows[rows["full_budget"].fillna(False).astype(bool)]
        what = f"the best {Path(ref.judges).name} student"
    best = rows["metric"].max() if len(rows) and "metric" in rows.columns else None
    return (None if best is None or pd.isna(best) else float(best)), what


def judged(ref: Reference, trials: pd.DataFrame, front: pd.DataFrame) -> str:
    """describe(), the best it judges (the front's, or a ceiling's student's) as a % of it, and the reference's
    own time, said apart."""
    best, what = judged_best(ref, trials, front)
    share = ref.share(best)
    return (describe(ref, trials) + (f"; {what} is {share:.1f} % of it" if share is not None else "")
            + (f"; fine-tuned once in {ref.train_seconds / 60:.1f} min, apart from the trials' times"
               if ref.train_seconds else ""))


def missing_note(trials: pd.DataFrame | None = None) -> str:
    """What a sweep without a reference says instead of inventing one; a sweep of full fine-tunes alone (a student's
    ceiling, a learning-rate search for FFT) is its own reference and says that instead."""
    from orchestrator.recipes import RECIPES

    methods = set(trials["method.name"].dropna()) if trials is not None and "method.name" in trials else set()
    if methods and all(m in RECIPES and RECIPES[m].is_full_finetune for m in methods):
        return "none needed: every trial of this sweep is a full fine-tune (100 % of FFT by definition)"
    return ("no reference score: no trial of this sweep fine-tuned a teacher (PC-LoRA with the default "
            "kd_teacher: pretrained distils from the pre-trained model); an `fft` trial gives one")
