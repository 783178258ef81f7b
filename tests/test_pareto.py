"""Pareto front and hypervolume on hand-built points."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.base.pareto import hypervolume, pareto_mask


def test_front_mixes_max_and_min() -> None:
    # (accuracy up, params down)
    pts = np.array([[0.90, 100], [0.85, 50], [0.80, 60], [0.90, 120], [0.70, 10]])
    assert pareto_mask(pts, ["max", "min"]).tolist() == [True, True, False, False, True]


def test_duplicates_and_ties_are_all_kept_single_point_is_front() -> None:
    pts = np.array([[1.0, 1.0], [1.0, 1.0], [0.5, 2.0]])
    assert pareto_mask(pts, ["min", "min"]).tolist() == [True, True, True]
    assert pareto_mask(np.array([[3.0, 4.0]]), ["max", "min"]).tolist() == [True]


def test_nan_rows_are_refused_with_their_index() -> None:
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        pareto_mask(np.array([[1.0, 2.0], [np.nan, 1.0]]), ["max", "min"])


def test_hypervolume_2d_by_hand() -> None:
    # minimise both, reference (4, 4): points (1,3), (2,2), (3,1) -> 3 + 2 + 1 = 6 (staircase area)
    pts = np.array([[1, 3], [2, 2], [3, 1], [3.5, 3.5]])
    assert hypervolume(pts, ["min", "min"], [4, 4]) == pytest.approx(6.0)
    # the same front with the first objective maximised: negate it by hand
    assert hypervolume(pts * [-1, 1], ["max", "min"], [-4, 4]) == pytest.approx(6.0)
    acc = np.array([[0.9, 100.0], [0.8, 50.0]])
    # reference accuracy 0.5, params 200: (0.9-0.5)*(200-100) + (0.8-0.5)*(100-50) = 40 + 15
    assert hypervolume(acc, ["max", "min"], [0.5, 200.0]) == pytest.approx(55.0)


def test_hypervolume_3d_by_hand_and_points_beyond_reference() -> None:
    unit = np.array([[0.0, 0.0, 0.0]])
    assert hypervolume(unit, ["min"] * 3, [1, 1, 1]) == pytest.approx(1.0)
    two = np.array([[0.0, 0.0, 0.5], [0.5, 0.5, 0.0]])
    # box A: 1*1*0.5 = 0.5; box B: 0.5*0.5*1 = 0.25; overlap: 0.5*0.5*0.5 = 0.125
    assert hypervolume(two, ["min"] * 3, [1, 1, 1]) == pytest.approx(0.625)
    assert hypervolume(np.array([[2.0, 0.0]]), ["min", "min"], [1, 1]) == 0.0


def test_ablation_table_mean_and_std_per_cell() -> None:
    import pandas as pd

    from orchestrator.config.schema import Config
    from orchestrator.search.tune import ablation_markdown, ablation_table

    cfg = Config()
    cfg.space = {"method.decay_schedule": {"grid": ["sine", "linear"]}}
    cfg.search.seeds = [0, 1]
    trials = pd.DataFrame({
        "method.decay_schedule": ["sine", "sine", "linear", "linear", "linear"],
        "train.seed": [0, 1, 0, 1, 2],
        "metric": [0.8, 0.9, 0.6, 0.7, 0.1],
        "params": [10, 10, 10, 10, 10],
        "full_budget": [True, True, True, True, False],  # the stopped trial does not count
    })
    table = ablation_table(cfg, trials).set_index("method.decay_schedule")
    assert table.loc["sine", "metric_mean"] == pytest.approx(0.85)
    assert table.loc["linear", "metric_std"] == pytest.approx(np.std([0.6, 0.7], ddof=1))
    assert table.loc["linear", "metric_count"] == 2
    assert "0.85 ± 0.071" in ablation_markdown(cfg, trials)


def test_pareto_markdown_shows_both_parameter_bases() -> None:
    import pandas as pd

    from orchestrator.reports.report import front_of, pareto_markdown
    from orchestrator.spec.load import load_config

    cfg = load_config(None, base={"name": "s", "task": "glue/sst2", "model": "bert-base-uncased"})
    trials = pd.DataFrame([{"trial_id": "a", "method.name": "pc_lora", "full_budget": True, "metric": 0.8,
                            "params": 55, "base_params": 100, "params_no_embeddings": 4,
                            "base_params_no_embeddings": 50, "flops": 11, "base_flops": 100, "searched": ""}])
    text = pareto_markdown(cfg, front_of(cfg, trials), trials)
    header = next(line for line in text.splitlines() if line.startswith("| trial_id"))
    row = next(line for line in text.splitlines() if line.startswith("| a "))
    cells = dict(zip(header.strip("|").split(" | "), row.strip("|").split(" | "), strict=True))
    assert cells["params_kept_pct"].strip() == "55.0" and cells["encoder_params_kept_pct"].strip() == "8.0"


def test_trials_csv_carries_the_kept_pct_the_console_shows(tmp_path) -> None:
    """trials.csv: params_kept_pct, encoder_params_kept_pct, flops_kept_pct beside the raw sizes (issue 32)."""
    from types import SimpleNamespace

    from orchestrator.reports.sweep_outputs import collect_rows
    from orchestrator.spec.load import load_config

    cfg = load_config(None, base={"name": "s", "task": "glue/sst2", "model": "bert-base-uncased",
                                  "results_dir": str(tmp_path)})
    sizes = {"metric": 0.8, "full_budget": True, "params": 55, "base_params": 100, "params_no_embeddings": 4,
             "base_params_no_embeddings": 50, "flops": 11, "base_flops": 200}
    grid = [SimpleNamespace(metrics={**sizes, "trial_id": "a"}, config={}, path=str(tmp_path / "a"), error=None),
            SimpleNamespace(metrics={"trial_id": "b"}, config={}, path=str(tmp_path / "b"), error="lost")]
    rows = collect_rows(cfg, grid).set_index("trial_id")
    assert rows.loc["a", "params_kept_pct"] == pytest.approx(55.0)
    assert rows.loc["a", "encoder_params_kept_pct"] == pytest.approx(8.0)
    assert rows.loc["a", "flops_kept_pct"] == pytest.approx(5.5)
    assert np.isnan(rows.loc["b", "params_kept_pct"])  # an errored trial without sizes: blank, not 0
