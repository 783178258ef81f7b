"""search.constraints: parsed and refused in the config, checked on a trial's numbers (kept-% on both
bases), told to Optuna's sampler, and infeasible trials left off the front."""

from __future__ import annotations

import math

import optuna
import pandas as pd
import pytest

from orchestrator.config.constraints import parse
from orchestrator.config.schema import ConfigError
from orchestrator.reports.report import front_of
from orchestrator.spec.load import load_config
from tests.conftest import REPO

QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"
ROW = {"metric": 0.8, "params": 30.0, "base_params": 100.0, "params_no_embeddings": 4.0,
       "base_params_no_embeddings": 50.0, "flops": 10.0, "base_flops": 40.0}


def test_bounds_read_a_trials_numbers_and_kept_pct_on_both_bases() -> None:
    assert parse("params_kept_pct <= 10").violation(ROW) == pytest.approx(20.0)  # 30 % kept
    assert parse("encoder_params_kept_pct <= 10").violation(ROW) == pytest.approx(-2.0)  # 8 %: feasible
    assert parse("metric >= 0.75").violation(ROW) == pytest.approx(-0.05)
    assert parse(" flops_kept_pct<=25 ").violation(ROW) == 0.0  # on the bound is within it
    assert math.isinf(parse("accuracy >= 0.5").violation(ROW))  # a number the trial lacks: not feasible
    assert str(parse("params <= 1e6")) == "params <= 1e+06"


@pytest.mark.parametrize("text", ["params < 10", "params_kept_pct = 10", "10 >= params", "params <= ten", ""])
def test_malformed_bounds_are_refused_naming_the_key(text: str) -> None:
    with pytest.raises(ConfigError, match=r"search\.constraints: .* is not a bound; write 'KEY <= NUMBER'"):
        load_config(QUICKSTART, [f'search.constraints=["{text}"]'])


def test_the_front_leaves_infeasible_trials_out(tmp_path) -> None:
    cfg = load_config(QUICKSTART, [f"results_dir={tmp_path}", 'search.constraints=["params_kept_pct <= 50"]'])
    trials = pd.DataFrame([{**ROW, "trial_id": "small", "metric": 0.70, "params": 30.0, "full_budget": True},
                           {**ROW, "trial_id": "big", "metric": 0.90, "params": 80.0, "full_budget": True}])
    assert list(front_of(cfg, trials)["trial_id"]) == ["small"]  # "big" dominates nothing feasible
    free = load_config(QUICKSTART, [f"results_dir={tmp_path}"])
    assert sorted(front_of(free, trials)["trial_id"]) == ["big", "small"]


def test_the_sampler_is_told_each_trials_violations(tmp_path) -> None:
    from orchestrator.search.tune import make_searcher

    cfg = load_config(QUICKSTART, [f"results_dir={tmp_path}", 'search.constraints=["params_kept_pct <= 50"]'])
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = make_searcher(cfg, url)
    search.suggest("a")
    search.suggest("b")
    search.on_trial_complete("a", {**ROW, "params": 30.0, "full_budget": True})
    search.on_trial_complete("b", {**ROW, "params": 80.0, "full_budget": True})
    trials = optuna.load_study(study_name=cfg.name, storage=url).trials
    told = [t.constraints for t in trials]  # what NSGA-II's and TPE's constrained dominance read
    assert told == [{"params_kept_pct <= 50": pytest.approx(-20.0)}, {"params_kept_pct <= 50": pytest.approx(30.0)}]
