"""Records that cross a process or file boundary, each defined once.

- `TrialFiles`: the names of what a run folder holds (the loop writes them; tune, leaderboard and
  train read them).
- `EarlyStopSpec` and `LoopConfig`: what the driver hands each Ray Train worker.
- `SpaceDimension`: one entry of a config's `space` section.
- `RunMetrics`: metrics.json, the record of one run (flat JSON, stable names: DESIGN.md's contract).

No torch, no Ray: the driver, the CLI and the reports import this module cheaply.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TrialFiles:
    """File names inside a run or trial folder."""

    CONFIG = "config.yaml"
    METRICS = "metrics.json"
    EPOCHS = "epochs.jsonl"  # one line per finished epoch, appended by rank 0: where and when it ran
    MODEL = "model"
    STATE = "state.pt"  # the checkpoint's payload
    TEACHER_LOGITS = "train_logits.safetensors"


@dataclass(frozen=True)
class EarlyStopSpec:
    """ASHA or MO-ASHA inside the trial (orchestrator/engine/asha.py): where the rung records live, when to
    compare, and for MO-ASHA the objectives ranked at a rung with their directions (empty: ASHA on metric)."""

    rung_dir: str
    trial_id: str
    rungs: tuple[int, ...]
    reduction_factor: float
    objectives: tuple[str, ...] = ()
    directions: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> EarlyStopSpec | None:
        if not raw:
            return None
        return cls(rung_dir=raw["rung_dir"], trial_id=raw["trial_id"], rungs=tuple(raw["rungs"]),
                   reduction_factor=float(raw["reduction_factor"]), objectives=tuple(raw.get("objectives", ())),
                   directions=tuple(raw.get("directions", ())))

    def rung_value(self, report: dict[str, Any]) -> float | list[float]:
        """What a trial records at a rung: its metric (ASHA), or its objectives (MO-ASHA); NaN if absent."""
        def number(key: str) -> float:
            value = report.get(key)
            return float(value) if value is not None else math.nan

        return [number(k) for k in self.objectives] if self.objectives else number("metric")


@dataclass(frozen=True)
class LoopConfig:
    """Everything `orchestrator.loop.train_worker` is given (Ray passes it as a plain dict)."""

    config: dict[str, Any]          # Config.to_dict() of the resolved run
    out_dir: str                    # the run folder (TrialFiles names inside it)
    teacher_dir: str | None = None  # a KD-LoRA teacher's folder (model/, train logits)
    emit_train_logits: bool = False  # a teacher run: also write its logits for every training example
    mlflow_run_id: str | None = None
    early_stop: EarlyStopSpec | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LoopConfig:
        return cls(config=raw["config"], out_dir=raw["out_dir"], teacher_dir=raw.get("teacher_dir"),
                   emit_train_logits=bool(raw.get("emit_train_logits", False)),
                   mlflow_run_id=raw.get("mlflow_run_id"),
                   early_stop=EarlyStopSpec.from_dict(raw.get("early_stop")))


@dataclass(frozen=True)
class SpaceDimension:
    """One searched key: `{kind: args}` in YAML. `args` is a list of values (choice, grid), [low, high]
    (int, uniform, loguniform), or, for `per_method`, a mapping method -> {kind: args}."""

    key: str
    kind: str
    args: Any

    @classmethod
    def of(cls, key: str, spec: dict[str, Any]) -> SpaceDimension:
        ((kind, args),) = spec.items()
        return cls(key, kind, args)

    @property
    def discrete(self) -> bool:
        return self.kind in ("choice", "grid")

    @property
    def values(self) -> list[Any]:
        """The candidate values of a choice/grid dimension (empty for a range)."""
        return list(self.args) if self.discrete else []

    def for_method(self, method: str) -> SpaceDimension | None:
        """The dimension as `method` draws it: itself, or its per-method entry (None when it has none)."""
        if self.kind != "per_method":
            return self
        inner = self.args.get(method)
        return SpaceDimension.of(self.key, inner) if inner else None

    def optuna_name(self, method: str) -> str:
        """Optuna needs one distribution per parameter name: a per-method dimension is named per method."""
        return f"{self.key}[{method}]" if self.kind == "per_method" else self.key


def space_dimensions(space: dict[str, dict[str, Any]]) -> list[SpaceDimension]:
    return [SpaceDimension.of(k, v) for k, v in space.items()]


# Run statuses as trials.csv, MLflow tags and the leaderboards spell them.
DIVERGED = "diverged"


@dataclass
class RunMetrics:
    """metrics.json. Sizes are of the deployable model; `base_*` of the uncompressed one; both bases
    (whole model, and without embeddings, which the papers' reductions use) are always present."""

    task: str
    method: str
    metric_name: str
    metric: float | None            # the task's primary metric on its evaluation split; None if diverged
    params: int
    params_no_embeddings: int
    base_params: int
    base_params_no_embeddings: int
    flops: int
    base_flops: int
    trainable_params: int
    train_seconds: float
    world_size: int
    epoch: int
    step: int
    loss: float | None
    full_budget: bool               # trained every epoch and measured on the deployable model
    stopped_early: bool             # stopped by ASHA at a rung
    diverged: bool = False          # a non-finite loss or gradient ended the run
    status_message: str = ""
    device: str = ""
    node: str = ""
    examples_per_s: float | None = None
    step_seconds_median: float | None = None
    resumed_from_epoch: int = 0
    # PC-LoRA: λ at the end (0 for a model that no longer uses W).
    lambda_: float | None = None
    # Every metric the task defines (accuracy, f1, mcc, pearson, spearman, ...).
    task_metrics: dict[str, float] = field(default_factory=dict)
    # Timing stamps for benchmarks/overhead.py and anything else the loop reports.
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The flat dict written to metrics.json (DESIGN.md's key names)."""
        flat = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("task_metrics", "extra", "lambda_")}
        if self.lambda_ is not None:
            flat["lambda"] = self.lambda_
        return {**self.extra, **self.task_metrics, **flat}

    @classmethod
    def from_json(cls, raw: dict[str, Any], task_metric_names: tuple[str, ...] = ()) -> RunMetrics:
        names = {f.name for f in dataclasses.fields(cls)} - {"task_metrics", "extra", "lambda_"}
        known = {k: raw[k] for k in names if k in raw}
        for name in ("metric", "loss"):
            known.setdefault(name, None)
        task_metrics = {k: raw[k] for k in task_metric_names if k in raw}
        extra = {k: v for k, v in raw.items() if k not in names and k not in task_metrics and k != "lambda"}
        return cls(**known, lambda_=raw.get("lambda"), task_metrics=task_metrics, extra=extra)

    def write(self, out_dir: Path) -> None:
        from orchestrator.base.fs import atomic_write_json

        atomic_write_json(Path(out_dir) / TrialFiles.METRICS, self.to_json())


# The columns of metrics.json that trials.csv carries (the task's own metrics are added per task).
METRIC_COLUMNS = tuple(
    ["lambda" if f.name == "lambda_" else f.name for f in dataclasses.fields(RunMetrics)
     if f.name not in ("task", "method", "task_metrics", "extra", "full_budget", "step")]
    + ["nodes"])


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's metrics.json as a dict (None when absent). Older files may hold bare NaN."""
    path = Path(run_dir) / TrialFiles.METRICS
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def read_epochs(run_dir: Path) -> list[dict[str, Any]]:
    """A run folder's epochs.jsonl, one dict per line in order ([] when absent); a line cut short by a node
    lost mid-write is skipped, not fatal."""
    path = Path(run_dir) / TrialFiles.EPOCHS
    if not path.is_file():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            lines.append(record)
    return lines
