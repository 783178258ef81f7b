"""The MLflow layout (issue "A sweep people can follow and compare"): run names, params that apply to the
trial's method, constants once, kept-% on both bases, a parent that holds the search space."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.spec.load import load_config
from orchestrator.tracking import runs as tracking

QUICKSTART = Path(__file__).resolve().parent.parent / "search_spaces" / "quickstart.yaml"


def config(tmp_path: Path, *sets: str):
    return load_config(QUICKSTART, [f"results_dir={tmp_path}", *sets])


def test_run_names_say_method_rank_and_trial(tmp_path: Path) -> None:
    assert tracking.run_name(config(tmp_path), "712f8bfa_00003") == "pc_lora-r8-712f8bfa_00003"
    assert tracking.run_name(config(tmp_path, "method.name=fft"), "t1") == "fft-t1"  # FFT has no rank
    assert tracking.run_name(config(tmp_path, "method.name=fft"), "t1", "teacher") == "teacher-fft-t1"


def test_params_are_the_keys_of_the_trials_method(tmp_path: Path) -> None:
    pc = tracking.flat_params(config(tmp_path))
    kd = tracking.flat_params(config(tmp_path, "method.name=kd_lora"))
    assert pc["method.decay_schedule"] == "sine" and "method.student_layers" not in pc
    assert "method.decay_schedule" not in kd and "method.student_layers" in kd
    assert kd["train.epochs"] == pc["train.epochs"] == "3"


def test_epochs_log_what_changes_and_the_end_logs_sizes_once_with_kept_pct() -> None:
    report = {"epoch": 2, "loss": 0.5, "metric": 0.8, "world_size": 1, "worker_start_unix": 1.8e9,
              "resumed_from_epoch": 0, "params": 25, "base_params": 100, "params_no_embeddings": 5,
              "base_params_no_embeddings": 50, "flops": 10, "base_flops": 40, "device": "cpu", "diverged": False}
    assert tracking.epoch_metrics(report) == {"loss": 0.5, "metric": 0.8}
    final = tracking.final_metrics(report)
    assert final["params_kept_pct"] == 25.0 and final["encoder_params_kept_pct"] == 10.0
    assert final["flops_kept_pct"] == 25.0 and final["params"] == 25
    assert not {"world_size", "worker_start_unix", "resumed_from_epoch"} & set(final)


def test_the_parent_holds_the_search_space_and_the_experiment_opens_on_runs(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    run_id = tracking.start_parent_run(cfg)
    c = tracking.client(cfg)
    run = c.get_run(run_id)
    assert run.info.run_name == "sweep-quickstart"
    assert run.data.tags["methods"] == "pc_lora,kd_lora" and "method" not in run.data.tags
    assert "space.method.rank" in run.data.params and "method.rank" not in run.data.params  # searched, not fixed
    assert run.data.params["search.sampler"] == "nsga2" and run.data.params["train.epochs"] == "3"
    assert "method.rank" in run.data.tags["mlflow.note.content"]
    exp = c.get_experiment(run.info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(exp.tags[f"mlflow.sharedViewState.{tracking.VIEW_KEY}"])
    assert "metrics.`params_kept_pct`" in view["selectedColumns"] and view["orderByKey"] == "metrics.`metric`"
    assert tracking.view_url("http://127.0.0.1:5000/", exp.experiment_id).endswith(
        f"/#/experiments/{exp.experiment_id}/runs?viewStateShareKey={tracking.VIEW_KEY}")


def test_the_parents_hypervolume_is_a_share_of_the_ideal_box(tmp_path: Path) -> None:
    from orchestrator.search.tune import front_summary

    cfg = config(tmp_path)  # objectives: metric max, params min; reference: metric 0, the base model's size
    trials = pd.DataFrame([{"metric": 0.8, "params": 50.0, "base_params": 100.0, "full_budget": True},
                           {"metric": 0.6, "params": 20.0, "base_params": 100.0, "full_budget": True},
                           {"metric": 0.99, "params": 1.0, "base_params": 100.0, "full_budget": False}])
    summary = front_summary(cfg, trials)
    # dominated area 0.8*50 + 0.6*30 = 58 of the 1 x 100 box; the stopped trial counts for nothing
    assert summary["hypervolume"] == pytest.approx(0.58)
    assert summary["max_metric"] == 0.8 and summary["min_params"] == 20.0 and summary["full_budget_trials"] == 2
