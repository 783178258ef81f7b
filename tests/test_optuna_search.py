"""The sweep's searcher: only full-budget trials reach Optuna as COMPLETE; the study lives in a database
that optuna-dashboard opens and that survives Tune's save/restore (what --resume does)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from orchestrator.spec.load import load_config
from tests.conftest import REPO

QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"


def searcher(tmp_path: Path, url: str | None):
    from orchestrator.search.tune import make_searcher

    cfg = load_config(QUICKSTART, [f"results_dir={tmp_path}", "search.sampler=random"])
    return cfg, make_searcher(cfg, url)


def test_stopped_and_diverged_trials_are_not_told_as_complete(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    cfg, search = searcher(tmp_path, url)
    configs = [search.suggest(f"t{i}") for i in range(3)]
    assert all(c is not None for c in configs)
    search.on_trial_complete("t0", {"metric": 0.8, "params": 1e7, "full_budget": True})
    search.on_trial_complete("t1", {"metric": 0.6, "params": 5e6, "full_budget": False, "stopped_early": True})
    search.on_trial_complete("t2", {"metric": 0.5, "params": 5e6, "full_budget": False, "diverged": True})
    # what optuna-dashboard sees: the study, by the sweep's name, in the sweep's database
    study = optuna.load_study(study_name=cfg.name, storage=url)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                      optuna.trial.TrialState.FAIL]
    assert study.trials[0].values == [0.8, 1e7] and study.trials[1].values is None
    assert [t.number for t in study.best_trials] == [0]  # the stopped trial's partial point is not on the front


def test_the_study_survives_save_and_restore_without_duplicates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    import pickle

    cfg, search = searcher(tmp_path, url)
    as_created = pickle.dumps(search)  # tune/tuner.pkl holds the searcher as the sweep created it
    search.suggest("t0")
    search.suggest("t1")
    search.on_trial_complete("t0", {"metric": 0.7, "params": 2e7, "full_budget": True})
    search.save(str(tmp_path / "searcher.pkl"))  # Tune's checkpoint of it; the driver dies with t1 running
    restored = pickle.loads(as_created)  # --resume: Tuner.restore unpickles it, then restores the checkpoint
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_complete("t1", {"metric": 0.75, "params": 1e7, "full_budget": True})
    restored.suggest("t2")
    study = optuna.load_study(study_name=cfg.name, storage=url)
    assert [t.number for t in study.trials] == [0, 1, 2]  # nothing lost, nothing told twice
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "RUNNING"]


@pytest.mark.parametrize(("storage", "expected"), [
    (None, "sqlite:///{sweep}/optuna.db"),
    ("postgresql://bob:pw@db/optuna", "postgresql://bob:pw@db/optuna"),
])
def test_the_study_lives_under_the_sweep_unless_told(tmp_path: Path, storage: str | None, expected: str) -> None:
    from orchestrator.search.optuna_search import storage_url

    assert storage_url(storage, tmp_path / "s") == expected.format(sweep=(tmp_path / "s").resolve())
