"""The console lines a person reads during a sweep (orchestrator/console.py): pure formatting."""

from __future__ import annotations

import time

import pytest

from orchestrator.engine import console
from orchestrator.search import sweep_console

RESULT = {"epoch": 2, "loss": 0.41234, "metric": 0.7333, "metric_name": "accuracy", "lambda": 0.125,
          "params": 547, "base_params": 1000, "params_no_embeddings": 47, "base_params_no_embeddings": 1000,
          "flops": 58, "base_flops": 1000}


def test_epoch_line_names_the_trial_and_what_moved() -> None:
    line = console.epoch_line("712f8bfa", "pc_lora", RESULT, epochs=3)
    assert line == "712f8bfa pc_lora epoch 2/3 loss 0.4123 accuracy 0.7333 λ 0.125"
    diverged = console.epoch_line("a", "fft", {"epoch": 1, "loss": float("nan"), "diverged": True}, epochs=3)
    assert diverged == "a fft epoch 1/3 DIVERGED (non-finite loss)"


def test_trial_line_gives_both_parameter_bases_and_time() -> None:
    """The time is the trial's train_seconds, named `train` as in the report's "train min" (issue 32)."""
    line = console.trial_line("712f8bfa", "pc_lora", "r=8", {**RESULT, "train_seconds": 132.0}, "complete")
    assert line == ("712f8bfa pc_lora r=8 accuracy 0.7333 params 54.7 % (enc 4.7 %) FLOPs 5.8 % train 2.2 min "
                    "complete")
    assert "no metric" in console.trial_line("b", "kd_lora", "–", {"metric": None}, "diverged")
    assert "train ? min error" in console.trial_line("c", "kd_lora", "–", {}, "error")


def test_progress_line_counts_and_estimates_what_is_left() -> None:
    started = time.time() - 600
    line = console.progress_line({"complete": 3, "stopped": 1, "running": 2}, 8, 0.83, started, eta=222.0)
    assert line.startswith("trials 4/8 done (3 complete, 1 stopped), 2 running; best metric 0.8300; 10.0 min")
    assert line.endswith("ETA 3.7 min")
    bounded = console.progress_line({"complete": 1}, 8, None, started, eta=60.0, bound=True,
                                   pending=("the bert-base-uncased teacher",))
    assert bounded.endswith("ETA ≤ 1.0 min + the bert-base-uncased teacher")
    assert "ETA" not in console.progress_line({"complete": 8}, 8, None, started, eta=5.0)
    assert "ETA" not in console.progress_line({"complete": 1}, 8, None, started)  # nothing timed yet


def test_eta_comes_from_the_trials_own_epochs() -> None:
    """Issue 32: 'trials 1/6 done ... 4.0 min, ETA 20.0 min' for a sweep that ended at 7.5 min. The ETA is the
    epochs left times each trial's seconds per epoch (the teacher's fine-tuning is in none of them), shared by
    the trials running side by side: not elapsed time per finished trial."""
    # trial A: 1 of 3 epochs done at 40 s each; trial B: not timed yet (mean 25 s); 2 pending: 3 epochs at 25 s
    eta = console.eta_seconds([(1, 40.0), (0, None)], pending=2, epochs=3, per_epoch=[40.0, 10.0], slots=2)
    assert eta == (2 * 40 + 3 * 25 + 2 * 3 * 25) / 2
    assert console.eta_seconds([(1, None)], pending=1, epochs=3, per_epoch=[], slots=2) is None
    # seconds per epoch from a report: training steps and evaluation over the epochs this process ran
    report = {"epoch": 3, "resumed_from_epoch": 1, "train_loop_seconds": 70.0, "eval_seconds": 10.0}
    assert console.epoch_seconds(report) == 40.0
    assert console.epoch_seconds({"epoch": 1}) is None


def test_verbose_travels_in_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
    assert not console.verbose()
    console.set_verbose(True)
    assert console.verbose()
    console.set_verbose(False)
    assert not console.verbose()


def test_the_train_console_follows_epochs_from_the_file(tmp_path, monkeypatch, capsys) -> None:
    """`orchestrator train` prints each epoch once from epochs.jsonl, a line half-written waiting for its end."""
    import json

    monkeypatch.setenv(console.VERBOSE_ENV, "0")
    path = tmp_path / "epochs.jsonl"
    path.write_text(json.dumps({"epoch": 1, "loss": 0.9, "metric": 0.5}) + "\n")  # from before a resume
    follower = console.EpochFollower(tmp_path, "run", 3)
    with open(path, "a") as handle:
        handle.write(json.dumps({"epoch": 2, "loss": 0.5, "metric_name": "accuracy", "metric": 0.75,
                                 "lambda": 0.25, "resumed_from_epoch": 1}) + "\n")
        handle.write('{"epoch": 3, "lo')
    assert follower.lines() == ["[run] epoch 2/3 loss 0.5000 accuracy 0.7500 λ 0.250 "
                                "(resumed from the checkpoint of epoch 1)"]
    with open(path, "a") as handle:
        handle.write('ss": 0.4, "diverged": true}\n')
    with follower:  # the last lines are printed on exit, whatever the poll missed
        pass
    assert capsys.readouterr().out == "[run] epoch 3/3: non-finite loss; stopped as diverged\n"
    assert follower.lines() == []


def test_dry_run_budget_counts_trial_epochs() -> None:
    from orchestrator.spec.load import load_config
    from orchestrator.spec.space import budget_line
    from tests.conftest import REPO

    cfg = load_config(REPO / "search_spaces" / "quickstart.yaml")
    assert budget_line(cfg) == ("6 trials x 3 epochs = at most 18 trial-epochs; mo_asha may stop a trial from epoch 2 "
                                "on (about 1/2 of the trials go on at each rung)")
    grid = load_config(REPO / "search_spaces" / "quickstart.yaml",
                       ["search.sampler=grid", "search.scheduler=none", 'space={"method.rank": {"grid": [4, 8]}}'])
    assert budget_line(grid) == "2 trials x 3 epochs = at most 6 trial-epochs"
    bracketed = load_config(REPO / "search_spaces" / "glue.yaml", ["search.brackets=3"])
    assert budget_line(bracketed).endswith("; 3 brackets, whose trials are first compared at epoch 1, epoch 2, never")
    # more brackets than there are distinct first rungs: the key, the bound and why
    from orchestrator.config.schema import ConfigError

    with pytest.raises(ConfigError, match=r"search\.brackets: at most 3 with grace_period 1, "
                                          r"reduction_factor 2 and 3 train\.epochs .* got 4"):
        load_config(REPO / "search_spaces" / "glue.yaml", ["search.brackets=4"])
    with pytest.raises(ConfigError, match=r"search\.brackets: 3 brackets need a scheduler .* search\.brackets: 1"):
        load_config(REPO / "search_spaces" / "glue.yaml", ["search.brackets=3", "search.scheduler=none"])


def test_the_summary_judges_the_front_against_the_teacher(tmp_path) -> None:
    """Issue 32: the closing summary states the FFT teacher's score and the front's share of it, or that
    the sweep has no reference."""
    import pandas as pd

    from orchestrator.reports.report import front_of
    from orchestrator.spec.load import load_config
    from tests.test_sweep_page import add_teacher, make_sweep

    sweep_dir = make_sweep(tmp_path / "results")
    cfg = load_config(sweep_dir / "sweep.yaml", ["tracking.uri=null"])
    trials = pd.read_csv(sweep_dir / "trials.csv", dtype={"trial_id": str})
    lines = sweep_console.summary(cfg, trials, front_of(cfg, trials), sweep_dir)
    assert [line for line in lines if line.startswith("reference: no reference score")]
    # a sweep of full fine-tunes alone (a student's ceiling) is its own reference, not one that lacks a teacher
    ffts = trials.assign(**{"method.name": "fft"})
    lines = sweep_console.summary(cfg, ffts, front_of(cfg, ffts), sweep_dir)
    assert "reference: none needed: every trial of this sweep is a full fine-tune (100 % of FFT by definition)" in lines
    add_teacher(sweep_dir)
    lines = sweep_console.summary(cfg, trials, front_of(cfg, trials), sweep_dir)
    assert ("reference: FFT teacher (minilm-l6-h384) accuracy 0.8500, params 100.0 % (enc 100.0 %), FLOPs 100.0 %; "
            "the front's best is 94.1 % of it; fine-tuned once in 1.6 min, apart from the trials' times") in lines


def test_progress_follows_the_trials_reports() -> None:
    """The callback's bookkeeping: two trials side by side, one finishes; the ETA is the other's epochs left at
    its own pace plus the pending trials' at the mean pace, over two slots."""
    progress = console.Progress(total=4, epochs=3, bound=True)
    progress.start("a", running=1)
    progress.start("b", running=2)
    for epoch in (1, 2, 3):
        progress.epoch("a", {"epoch": epoch, "train_loop_seconds": 30.0 * epoch, "eval_seconds": 10.0 * epoch})
    progress.epoch("b", {"epoch": 1, "train_loop_seconds": 8.0, "eval_seconds": 2.0})
    progress.finish("a", "complete", 0.8, running=["b"])
    # b: 2 epochs left at 10 s; 2 pending trials x 3 epochs at the mean of 40 and 10 s; 2 slots
    assert progress.eta() == (2 * 10 + 2 * 3 * 25) / 2
    line = progress.line()
    assert "trials 1/4 done (1 complete), 1 running; best metric 0.8000" in line and line.endswith("ETA ≤ 1.4 min")


def test_the_sweep_console_announces_each_auxiliary_model_once_and_waits_on_it_until_cached(tmp_path) -> None:
    """The first KD-LoRA trial says it fine-tunes the teacher and the student's ceiling first; a later trial does
    not say it again; the progress line names them until their metrics.json (and the teacher's logits) exist."""
    from types import SimpleNamespace

    from orchestrator.config.records import TrialFiles
    from orchestrator.search.sweep_console import TrialNotes
    from orchestrator.spec.load import load_config

    cfg = load_config(None, [f"results_dir={tmp_path}", "method.teacher_epochs=2"],
                      base={"task": "glue/sst2", "model": "bert-base-uncased", "name": "s"})
    notes = TrialNotes(cfg)
    kd = SimpleNamespace(config={"point": {"method.name": "kd_lora", "method.student": "prajjwal1/bert-mini"}})
    note = notes.auxiliary_note(kd)
    assert note.startswith("; first fine-tunes the bert-base-uncased teacher and the student's own FFT ceiling (2 epochs each")
    assert notes.auxiliary_note(kd) == ""  # said once
    assert notes.describe(kd)[0] == "kd_lora"
    assert set(notes.pending()) == {"the bert-base-uncased teacher", "the student's own FFT ceiling"}
    for folder in notes.announced:
        folder.mkdir(parents=True)
        (folder / TrialFiles.METRICS).write_text("{}")
        (folder / TrialFiles.TEACHER_LOGITS).write_text("")
    assert notes.pending() == ()
    fft = SimpleNamespace(config={"point": {"method.name": "fft"}})
    assert notes.auxiliary_note(fft) == ""  # FFT declares no auxiliary model
