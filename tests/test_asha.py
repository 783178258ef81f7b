"""ASHA's rule as the trials apply it (orchestrator/asha.py)."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.asha import record_and_decide, rung_epochs, should_stop


def test_rungs_are_grace_times_eta_powers_below_the_budget() -> None:
    assert rung_epochs(1, 10, 2) == [1, 2, 4, 8]
    assert rung_epochs(1, 9, 3) == [1, 3]
    assert rung_epochs(2, 2, 2) == []  # a rung at the last epoch decides nothing
    assert rung_epochs(1, 1, 2) == []


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
