"""ASHA's rule as the trials apply it (orchestrator/asha.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from orchestrator.base.rungs import bracket_of, max_brackets, rung_epochs, trial_rungs
from orchestrator.engine.asha import record_and_decide, should_stop


def test_rungs_are_grace_times_eta_powers_below_the_budget() -> None:
    assert rung_epochs(1, 10, 2) == [1, 2, 4, 8]
    assert rung_epochs(1, 9, 3) == [1, 3]
    assert rung_epochs(2, 2, 2) == []  # a rung at the last epoch decides nothing
    assert rung_epochs(1, 1, 2) == []


def test_hyperband_brackets_start_later_and_are_drawn_as_ray_draws_them(tmp_path) -> None:
    """Bracket s first compares at grace · η^s; the last bracket may never compare. A trial's bracket is Ray's
    softmax draw over the brackets' numbers of rungs, fixed by its id (a restarted trial keeps it)."""
    from orchestrator.config.schema import with_values
    from orchestrator.search.tune import early_stop_spec
    from orchestrator.spec.load import load_config

    assert [rung_epochs(1, 9, 2, s) for s in range(4)] == [[1, 2, 4, 8], [2, 4, 8], [4, 8], [8]]
    assert rung_epochs(1, 3, 2, 2) == [] and max_brackets(1, 3, 2) == 3 and max_brackets(1, 1, 2) == 1
    # η < 2: two powers can fall on one epoch (1, 1.5); brackets still differ, each one rung shorter than the last
    assert [rung_epochs(1, 10, 1.5, s) for s in range(3)] == [[1, 2, 3, 5, 7], [2, 3, 5, 7], [3, 5, 7]]
    assert max_brackets(1, 10, 1.5) == 6
    assert rung_epochs(1, 100, 1.0000001) == list(range(1, 100))  # every epoch a rung, without 10^7 steps
    drawn = [bracket_of(f"trial_{i:05d}", [2, 1, 0]) for i in range(20000)]
    weights = np.exp([0.0, -1.0, -2.0])
    shares = [drawn.count(b) / len(drawn) for b in range(3)]
    assert shares == pytest.approx(list(weights / weights.sum()), abs=0.015)  # 0.665, 0.245, 0.090
    assert [bracket_of(f"trial_{i:05d}", [2, 1, 0]) for i in range(50)] == drawn[:50]  # the same every time
    assert {bracket_of(f"trial_{i:05d}", [3]) for i in range(50)} == {0}
    # a sweep's trial: its bracket's rungs, and rung records of its own bracket (the first bracket's where they were)
    from orchestrator.base.sweep_folder import SweepFolder

    cfg = load_config("search_spaces/glue.yaml", [f"results_dir={tmp_path}", "search.brackets=3"])
    folder = SweepFolder.under(cfg.results_dir, cfg.name)
    plans = {f"t{i}": trial_rungs(f"t{i}", 1, 3, 2.0, 3) for i in range(40)}
    assert {bracket for bracket, _ in plans.values()} == {0, 1, 2}
    for trial_id, (bracket, rungs) in plans.items():
        spec = early_stop_spec(cfg, folder, trial_id)
        if bracket == 2:
            assert spec is None  # the last bracket runs to the end
            continue
        assert spec.rungs == ((1, 2) if bracket == 0 else (2,)) == tuple(rungs)
        own = folder.rung_dir("mo_asha") / ("bracket_1" if bracket == 1 else "")
        assert spec.rung_dir == str(own).rstrip("/") and spec.objectives == ("metric", "params", "flops")
    assert early_stop_spec(with_values(cfg, {"search.scheduler": "none"}), folder, "t0") is None


def test_cutoff_is_the_top_one_over_eta_quantile_of_earlier_records() -> None:
    earlier = [0.5, 0.6, 0.7, 0.8]
    cutoff = np.percentile(earlier, 50)  # η = 2: the median
    assert cutoff == pytest.approx(0.65)
    assert should_stop(earlier, 0.64, 2) and not should_stop(earlier, 0.65, 2)
    assert not should_stop([], 0.0, 2)  # the first trial at a rung always goes on
    assert should_stop(earlier, 0.7, 4) and not should_stop(earlier, 0.8, 4)  # η = 4: top quarter


def test_records_are_shared_and_a_resumed_trial_keeps_its_first_decision(tmp_path) -> None:
    assert record_and_decide(tmp_path, 1, "a", 0.9, 2) is False
    assert record_and_decide(tmp_path, 1, "b", 0.5, 2) is True
    assert record_and_decide(tmp_path, 1, "c", 0.95, 2) is False
    # "b" asks again after a restart with a better value: the recorded decision stands
    assert record_and_decide(tmp_path, 1, "b", 0.99, 2) is True
    assert len((tmp_path / "rung_1.jsonl").read_text().splitlines()) == 3


# ------------------------------------------------------------------------ MO-ASHA (hand-made rung tables)

def test_nondominated_order_ranks_fronts_then_crowding() -> None:
    from orchestrator.base.pareto import crowding_distance, nondominated_order, nondominated_ranks

    # (metric max, params min): a, b, c on the front; d dominated by b; e dominated by d (third front)
    points = np.array([[0.9, 100.0], [0.8, 50.0], [0.6, 10.0], [0.7, 60.0], [0.5, 70.0]])
    directions = ["max", "min"]
    assert list(nondominated_ranks(points, directions)) == [0, 0, 0, 1, 2]
    # the front's extremes (a, c) are infinitely far from crowding; b, between them, comes third
    assert list(crowding_distance(points[:3])) == [np.inf, pytest.approx(2.0), np.inf]
    assert nondominated_order(points, directions) == [0, 2, 1, 3, 4]


def test_mo_asha_keeps_the_cheap_end_of_the_front_that_asha_stops() -> None:
    from orchestrator.engine.asha import mo_should_stop

    earlier = [[0.90, 100.0], [0.85, 80.0], [0.80, 60.0]]  # (metric, params) recorded at the rung
    cheap = [0.60, 5.0]  # a small rank: the worst metric, but nobody is as small
    assert should_stop([e[0] for e in earlier], cheap[0], 2)  # ASHA: below the median metric
    assert not mo_should_stop(earlier, cheap, ["max", "min"], 2)  # MO-ASHA: on the front, an extreme
    dominated = [0.70, 90.0]  # worse than [0.85, 80] in both
    assert mo_should_stop(earlier, dominated, ["max", "min"], 2)
    assert not mo_should_stop([], [0.1, 1e9], ["max", "min"], 2)  # the first at a rung always goes on
    assert mo_should_stop(earlier, [float("nan"), 5.0], ["max", "min"], 2)  # nothing to rank it by


def test_mo_asha_never_stops_a_trial_that_nothing_at_its_rung_dominates() -> None:
    """The quickstart's case: a smaller PC-LoRA trial reached the rung first; the KD-LoRA trial after it has the
    better metric and more parameters. Both are on the rung's front; ⌈2/2⌉ = 1 with ties broken by arrival
    stopped the KD-LoRA one, the best metric of the sweep so far."""
    from orchestrator.engine.asha import mo_should_stop

    assert not mo_should_stop([[0.70, 54.7]], [0.76, 76.6], ["max", "min"], 2)
    # A trial dominated by one recorded there still falls to the ⌈n/η⌉ rule: here 3rd of 3, keep 2: stopped.
    assert mo_should_stop([[0.70, 54.7], [0.76, 76.6]], [0.72, 80.0], ["max", "min"], 2)
    # ... and goes on when few enough are recorded there: 2nd of 2 after the one that dominates it, keep 1 of 2
    # at η = 1.5 (⌈2/1.5⌉ = 2).
    assert not mo_should_stop([[0.76, 76.6]], [0.72, 80.0], ["max", "min"], 1.5)


def test_mo_asha_records_vectors_and_keeps_first_decisions(tmp_path) -> None:
    directions = ["max", "min"]
    assert record_and_decide(tmp_path, 2, "a", [0.9, 100.0], 2, directions) is False
    assert record_and_decide(tmp_path, 2, "b", [0.8, 120.0], 2, directions) is True   # dominated by a
    assert record_and_decide(tmp_path, 2, "c", [0.5, 10.0], 2, directions) is False   # cheap end of the front
    assert record_and_decide(tmp_path, 2, "b", [0.99, 1.0], 2, directions) is True    # a restart keeps its record
    rows = [line for line in (tmp_path / "rung_2.jsonl").read_text().splitlines() if line]
    assert len(rows) == 3 and '"value": [0.5, 10.0]' in rows[2]


def test_the_rung_value_is_the_metric_or_the_objectives() -> None:
    from orchestrator.config.records import EarlyStopSpec

    report = {"metric": 0.7, "params": 1e6, "flops": 3e8}
    asha = EarlyStopSpec("d", "t", (1,), 2.0)
    mo = EarlyStopSpec("d", "t", (1,), 2.0, objectives=("metric", "params"), directions=("max", "min"))
    assert asha.rung_value(report) == 0.7 and mo.rung_value(report) == [0.7, 1e6]
    assert EarlyStopSpec.from_dict(dataclasses.asdict(mo)) == mo
