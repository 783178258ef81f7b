"""The layout of a sweep's folder, results/<name>/, written down once: every writer and reader asks this record.

    results/                      the sweeps' results_dir
      mlflow.db                   the default MLflow store, shared by every sweep there
      <name>/                     SweepFolder(root)
        sweep.yaml                the config as the user wrote it, and the space (written when the sweep starts)
        trials.csv                one row per trial (written when it ends, and on --resume)
        pareto.csv .md .png .svg  the front
        references.json           what the trials are judged against (orchestrator/reports/references.py)
        ablation.md               seeds' spread (when search.seeds is set)
        optuna.db                 the Optuna study (unless search.storage names another)
        asha/ or mo_asha/         the rung records of the early stopping inside the trials
        tune/                     Ray Tune's experiment state (what --resume restores)
        report/                   `python -m orchestrator report` (its default place)
        .sweep.lock               held by the sweep's driver while it runs
        trials/<trial_id>/        one trial's folder: config/records.py's TrialFiles name what it holds

Only names and paths: nothing here reads or writes a file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRIALS = "trials"
MLFLOW_DB = "mlflow.db"


@dataclass(frozen=True)
class SweepFolder:
    """The paths inside one sweep's folder."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def under(cls, results_dir: str | Path, name: str) -> SweepFolder:
        """The folder of the sweep `name` under `results_dir` (a config's results_dir and name)."""
        return cls(Path(results_dir) / name)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def results_dir(self) -> Path:
        return self.root.parent

    @property
    def mlflow_db(self) -> Path:
        """The default MLflow store beside the sweep (results_dir/mlflow.db), shared by the sweeps there."""
        return self.results_dir / MLFLOW_DB

    @property
    def sweep_yaml(self) -> Path:
        return self.root / "sweep.yaml"

    @property
    def trials_csv(self) -> Path:
        return self.root / "trials.csv"

    @property
    def pareto_csv(self) -> Path:
        return self.root / "pareto.csv"

    @property
    def pareto_md(self) -> Path:
        return self.root / "pareto.md"

    @property
    def pareto_png(self) -> Path:
        return self.root / "pareto.png"

    @property
    def pareto_svg(self) -> Path:
        return self.root / "pareto.svg"

    @property
    def references(self) -> Path:
        return self.root / "references.json"

    @property
    def ablation_md(self) -> Path:
        return self.root / "ablation.md"

    @property
    def optuna_db(self) -> Path:
        return self.root / "optuna.db"

    @property
    def lock(self) -> Path:
        return self.root / ".sweep.lock"

    @property
    def tune_dir(self) -> Path:
        return self.root / "tune"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def trials_dir(self) -> Path:
        return self.root / TRIALS

    def read_trials(self) -> Any:
        """trials.csv as a DataFrame with the trial ids as strings: an id of digits alone ("01234567", one Tune id
        in about forty) would otherwise read as a number, lose a leading zero and name no folder."""
        import pandas as pd

        return pd.read_csv(self.trials_csv, dtype={"trial_id": str})

    def trial(self, trial_id: str) -> Path:
        """One trial's folder (TrialFiles name its contents), named by its Tune trial id."""
        return self.trials_dir / str(trial_id)

    def trial_dirs(self) -> Iterator[Path]:
        """The trial folders present, in name order."""
        return iter(sorted(p for p in self.trials_dir.iterdir() if p.is_dir()) if self.trials_dir.is_dir() else [])

    def rung_dir(self, scheduler: str) -> Path:
        """Where the trials' rung records of `scheduler` (asha, mo_asha) live."""
        return self.root / scheduler

    def outputs(self) -> list[Path]:
        """What the sweep writes when it ends and logs on its parent MLflow run."""
        return [self.trials_csv, self.pareto_csv, self.pareto_md, self.pareto_png]

    def is_sweep(self) -> bool:
        """Whether a sweep started here (its sweep.yaml is written first)."""
        return self.sweep_yaml.is_file()

    @staticmethod
    def trial_pattern(file_name: str) -> str:
        """A glob, relative to a results_dir, for `file_name` in every sweep's trial folders."""
        return f"*/{TRIALS}/*/{file_name}"
