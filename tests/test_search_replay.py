"""benchmarks/search_replay.py: the recorded grid replays through the sweep's searcher and the trials' stopping
rule (the numbers it reports are only as good as these properties)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import search_replay as R
from orchestrator.base.pareto import hypervolume

pytestmark = pytest.mark.skipif(not (R.GRID_DIR / "trials.csv").is_file(), reason="the recorded grid is not here")


@pytest.fixture(scope="module")
def setting():
    cfg = R.replay_config()
    table = R.load_table(cfg)
    budget = sum(sum(r.seconds) for r in table.values())
    reference = [0.0, max(r.reference_size for r in table.values())]
    best = hypervolume([r.final for r in table.values() if r.final], list(R.DIRECTIONS), reference)
    return cfg, table, budget, reference, best


def test_the_table_holds_every_grid_point_with_its_curve(setting) -> None:
    cfg, table, *_ = setting
    assert len(table) == 48
    assert all(len(r.metrics) == len(r.seconds) for r in table.values())
    assert sum(r.final is not None for r in table.values()) >= 40  # diverged points have no final objectives
    assert all(r.seconds[0] > 0 and all(s > 0 for s in r.seconds) for r in table.values())


def test_the_grid_replayed_to_its_budget_reaches_its_own_front(setting, tmp_path: Path) -> None:
    cfg, table, budget, reference, best = setting
    curve = R.replay(table, cfg, "grid", "none", 0, 4, budget, reference, tmp_path)
    assert len(curve) == sum(r.final is not None for r in table.values())  # every point once, to the end
    assert R.share_at(curve, budget, best) == pytest.approx(1.0)
    assert curve[-1][0] == pytest.approx(budget)  # charged exactly the grid's compute


@pytest.mark.parametrize("scheduler", ["asha", "mo_asha"])
def test_schedulers_stop_trials_and_save_compute(setting, tmp_path: Path, scheduler: str) -> None:
    cfg, table, budget, reference, best = setting
    full = R.replay(table, cfg, "grid", "none", 0, 4, budget, reference, tmp_path / "none")
    stopped = R.replay(table, cfg, "grid", scheduler, 0, 4, budget, reference, tmp_path / scheduler)
    assert len(stopped) < len(full)  # some trials ended at a rung: fewer full-budget points
    assert (tmp_path / scheduler / "rung_1.jsonl").is_file()  # the trials' own rule recorded them
    assert stopped[-1][0] < budget  # and the grid's points cost less than the grid


def test_an_optuna_sampler_draws_points_of_the_table(setting, tmp_path: Path) -> None:
    cfg, table, budget, reference, best = setting
    curve = R.replay(table, cfg, "nsga2", "mo_asha", 1, 4, budget / 3, reference, tmp_path)
    assert curve and 0 < R.share_at(curve, budget / 3, best) <= 1.0  # a KeyError here: a point off the grid
