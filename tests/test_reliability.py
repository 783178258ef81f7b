"""Issue 31 (reliability, second round) and issue 32 items 3 and 9: the probe's cases that need no sweep.

Each failed before its fix: bad paths and objectives exit 2 with one line before Ray starts, messages blame
only what the user set, say a thing once and stay short, and every subcommand names itself in its usage.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli import MAX_LINE, bounded, run_main
from orchestrator.config.schema import Config, ConfigError
from orchestrator.spec.load import load_config
from tests.conftest import REPO

BASE = {"name": "r", "task": "glue/sst2", "model": "bert-base-uncased"}
QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"


def cli(module: str, argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """A command run in-process through run_main: (exit status, stderr)."""
    with pytest.raises(SystemExit) as info:
        run_main(importlib.import_module(module).main, argv)
    return int(info.value.code), capsys.readouterr().err


def ray_running() -> bool:
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


# ------------------------------------------------------------------ 31.6: paths given to train and --config


@pytest.mark.parametrize("out", ["/proc/orch-run", "/sys/orch-run", "FILE", "FILE/sub", "LOOP"])
def test_train_out_that_cannot_hold_a_run_exits_2_with_one_line_before_ray(
        tmp_path: Path, capsys: pytest.CaptureFixture, out: str) -> None:
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me\n")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    out = out.replace("FILE", str(existing)).replace("LOOP", str(loop))
    config = tmp_path / "cfg.yaml"
    config.write_text("name: r\ntask: glue/sst2\nmodel: bert-base-uncased\n")
    code, err = cli("orchestrator.train", ["--config", str(config), "--out", out], capsys)
    assert code == 2 and err.startswith("error: --out: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and not ray_running()
    assert existing.read_text() == "keep me\n"
    if out.endswith("loop"):
        assert "symlink loop" in err


def test_config_pointing_at_a_folder_or_a_loop_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = cli("orchestrator.sweep", ["--config", str(tmp_path), "--dry-run"], capsys)
    assert code == 2 and "is a folder, not a file" in err and "does not exist" not in err
    loop = tmp_path / "cfg.yaml"
    loop.symlink_to(loop)
    code, err = cli("orchestrator.sweep", ["--config", str(loop), "--dry-run"], capsys)
    assert code == 2 and "is a symlink loop" in err and "does not exist" not in err
    code, err = cli("orchestrator.sweep", ["--config", str(tmp_path / "none.yaml"), "--dry-run"], capsys)
    assert code == 2 and "does not exist" in err


def test_model_and_data_dir_symlink_loops_are_reported_as_loops(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"model={loop}", f"data_dir={loop}", f"results_dir={tmp_path / 'res'}"], base=BASE)
    problems = info.value.problems
    assert len(problems) == 2 and all("symlink loop" in p and "does not exist" not in p for p in problems)


# ------------------------------------------------------------------ 31.7: objectives


@pytest.mark.parametrize("objectives", ["[metric:max, metric:min]", "[metric:max, params:min, metric:max]"])
def test_an_objective_given_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture, objectives: str) -> None:
    with pytest.raises(ConfigError, match=r"search\.objectives: 'metric' given more than once"):
        load_config(None, [f"search.objectives={objectives}", f"results_dir={tmp_path}"], base=BASE)


# ------------------------------------------------------------------ 31.8: messages


def test_an_out_of_range_value_blames_only_its_own_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["method.kd_weight=2"], base=BASE)
    assert info.value.problems == ["method.kd_weight: must lie in [0, 1], got 2.0"]
    # the combination check still speaks when both values are valid on their own
    with pytest.raises(ConfigError, match=r"method\.logit_kd_weight: must lie in \[0, 1 − method\.kd_weight\]"):
        load_config(None, ["method.kd_weight=0.8", "method.logit_kd_weight=0.5", "method.kd_teacher=finetuned"],
                    base=BASE)


def test_a_key_given_twice_is_reported_once_without_double_wrapping(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text("name: x\nname: y\n")
    code, err = cli("orchestrator.sweep", ["--config", str(config), "--dry-run"], capsys)
    assert code == 2 and err.count("appears twice") == 1 and "not valid YAML" not in err
    assert "problem(s)" not in err and err.count("\n") == 1, err


def test_a_line_of_10000_tabs_is_cut_in_the_error(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  shared_models: Path) -> None:
    sst2 = tmp_path / "data" / "glue" / "SST-2"
    sst2.mkdir(parents=True)
    (sst2 / "train.tsv").write_text("\t" * 10_000 + "\ngood\t1\n")  # the probe's header of tabs
    (sst2 / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    code, err = cli("orchestrator.sweep", ["--config", str(QUICKSTART), "--dry-run", "--set",
                                           f"data_dir={tmp_path / 'data'}"], capsys)
    assert code == 2 and "train.tsv:1" in err and "more characters cut" in err
    assert max(len(line) for line in err.splitlines()) < MAX_LINE + 100


def test_bounded_keeps_short_lines_and_cuts_long_ones() -> None:
    assert bounded("a\nb") == "a\nb"
    cut = bounded("x" * (MAX_LINE + 10) + "\nshort")
    assert cut.splitlines()[0].endswith("(10 more characters cut)") and cut.splitlines()[1] == "short"


# ------------------------------------------------------------------ 32.9: each subcommand names itself


@pytest.mark.parametrize(("command", "module"), [("sweep", "sweep"), ("train", "train"), ("report", "sweep_page"),
                                                 ("leaderboard", "leaderboard"), ("ui", "ui"), ("tasks", "tasks"),
                                                 ("models", "models_fetch")])
def test_each_subcommand_prints_its_own_usage_line(command: str, module: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    via_entry = subprocess.run([sys.executable, "-m", "orchestrator", command, "--help"], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=120)
    assert via_entry.returncode == 0 and via_entry.stdout.startswith(f"usage: python -m orchestrator {command} ")
    own = subprocess.run([sys.executable, "-m", f"orchestrator.{module}", "--help"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert own.returncode == 0 and own.stdout.startswith(f"usage: python -m orchestrator.{module} ")


# ------------------------------------------------------------------ 31.1: what a diverged trial reports to Tune


def test_a_diverged_epoch_reports_every_objective_at_its_worst() -> None:
    """Tune refuses a result without a metric its searcher names; the loop dropped the diverged trial's None."""
    import math

    from orchestrator.engine.session import tune_result

    diverged = {"epoch": 1, "metric": None, "loss": math.nan, "diverged": True, "params": 10}
    result = tune_result(diverged, ["metric:max", "params:min", "train_seconds:min"])
    assert result["metric"] == -math.inf and result["train_seconds"] == math.inf and result["params"] == 10
    assert result["diverged"] is True and "loss" not in result
    assert diverged["metric"] is None  # metrics.json and trials.csv keep null


def test_a_diverged_trial_is_failed_in_optuna_not_told_its_stand_in_values() -> None:
    import math

    import optuna

    from orchestrator.search.optuna_search import FullBudgetOptunaSearch

    searcher = FullBudgetOptunaSearch(space=lambda trial: {"x": trial.suggest_float("x", 0, 1)},
                                      metric=["metric", "params"], mode=["max", "min"])
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"metric": -math.inf, "params": 1.0, "diverged": True, "full_budget": False})
    assert searcher._ot_study.trials[0].state == optuna.trial.TrialState.FAIL


# ------------------------------------------------------------------ 31.2: one sweep name runs once

HOLDER = """
import sys, time
from pathlib import Path
from orchestrator.base.fs import held_lock
with held_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def hold_lock(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_held_lock_is_refused_at_once_and_a_dead_holder_leaves_none(tmp_path: Path) -> None:
    from orchestrator.base.fs import LockHeld, held_lock

    lock = tmp_path / ".sweep.lock"
    holder = hold_lock(lock)
    try:
        with pytest.raises(LockHeld) as info, held_lock(lock):
            pass
        assert info.value.holder == str(holder.pid)
    finally:
        holder.kill()  # SIGKILL: a killed driver runs no clean-up
        holder.wait()
    assert lock.exists()  # left behind, but its flock went with the process
    with held_lock(lock):
        assert lock.read_text() == f"{os.getpid()}\n"
    assert not lock.exists()


def _refused_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, resume: bool) -> tuple[int, list[str]]:
    from orchestrator.engine import run
    from orchestrator.search import tune
    from orchestrator.tracking import runs as tracking

    touched: list[str] = []
    monkeypatch.setattr(run, "preflight", lambda cfg: None)
    monkeypatch.setattr(run, "ensure_ray", lambda *a, **k: touched.append("ray"))
    monkeypatch.setattr(tracking, "start_parent_run", lambda *a, **k: touched.append("mlflow"))
    cfg = load_config(None, [f"results_dir={tmp_path / 'results'}", "name=race1"], base=BASE)
    return tune.run_sweep(cfg, resume=resume), touched


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_start_of_a_running_sweep_exits_2_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture, resume: bool) -> None:
    sweep_dir = tmp_path / "results" / "race1"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "sweep.yaml").write_text("name: race1\n")  # the first one's, mid-run
    holder = hold_lock(sweep_dir / ".sweep.lock")
    try:
        code, touched = _refused_sweep(tmp_path, monkeypatch, resume=resume)
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert code == 2 and "a sweep named 'race1' is already running" in err and f"pid {holder.pid}" in err
    assert touched == [] and (sweep_dir / "sweep.yaml").read_text() == "name: race1\n"


def test_a_refused_sweep_leaves_no_folder_or_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, touched = _refused_sweep(tmp_path, monkeypatch, resume=True)  # nothing to resume
    assert code == 2 and touched == [] and not (tmp_path / "results").exists()


def test_mlflow_schema_creation_happens_under_a_lock_beside_the_database(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes creating one new sqlite database both ran MLflow's migration ('duplicate column name')."""
    import fcntl

    import mlflow.tracking

    from orchestrator.tracking import runs as tracking

    cfg = load_config(None, [f"results_dir={tmp_path}"], base=BASE)
    lock = tmp_path / "mlflow.db.lock"
    seen = []

    class Probe:
        def __init__(self, uri: str) -> None:
            with open(lock) as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    seen.append("free")
                    fcntl.flock(handle, fcntl.LOCK_UN)
                except BlockingIOError:
                    seen.append("held")

    monkeypatch.setattr(mlflow.tracking, "MlflowClient", Probe)
    monkeypatch.setattr(tracking, "_MIGRATED", set())
    tracking.client(cfg)
    assert seen == ["held"]


# ------------------------------------------------------------------ 31.3: no tracking password in Tune's pickles

PASSWORD = "s3cr3t%2Fpw"
SECRET_URI = f"http://alice:{PASSWORD}@127.0.0.1:5999"


def test_what_travels_to_trials_and_the_searcher_holds_no_password(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from ray import cloudpickle

    from orchestrator.base.redact import TRACKING_URI_VAR
    from orchestrator.config.schema import config_from_dict
    from orchestrator.search import tune
    from orchestrator.tracking import runs as tracking

    monkeypatch.delenv(TRACKING_URI_VAR, raising=False)
    cfg = load_config(QUICKSTART, [f"tracking.uri={SECRET_URI}", f"results_dir={tmp_path}"])
    public = tracking.portable(cfg)
    assert PASSWORD not in str(public.to_dict()) and public.tracking.uri == "http://alice:***@127.0.0.1:5999"
    searcher = tune.make_searcher(public, f"sqlite:///{tmp_path / 'optuna.db'}")
    searcher.suggest("t1")
    searcher.save(str(tmp_path / "searcher-state.pkl"))
    for blob in (cloudpickle.dumps(public.to_dict()), cloudpickle.dumps(searcher),
                 (tmp_path / "searcher-state.pkl").read_bytes()):
        assert PASSWORD.encode() not in blob
    # a trial rebuilds the public config and still connects with the real URI (the environment it inherits)
    assert tracking.tracking_uri(config_from_dict(public.to_dict())) == SECRET_URI
    assert os.environ[TRACKING_URI_VAR] == SECRET_URI


def test_a_concealed_uri_is_not_revealed_for_another_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.base.redact import TRACKING_URI_VAR, conceal_uri, reveal_uri

    monkeypatch.setenv(TRACKING_URI_VAR, "http://bob:other-secret@host:1")
    assert conceal_uri("sqlite:///x.db") == "sqlite:///x.db"  # nothing to hide: the environment is left alone
    assert reveal_uri("http://alice:***@127.0.0.1:5999") == "http://alice:***@127.0.0.1:5999"


# ------------------------------------------------------------------ 31.5: an unreachable tracking server


def test_an_unreachable_tracking_server_is_refused_naming_the_host(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                   shared_models: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, err = cli("orchestrator.sweep", ["--config", str(QUICKSTART), "--set", f"results_dir={tmp_path}",
                                           "--set", f"tracking.uri=http://alice:{PASSWORD}@127.0.0.1:{port}"], capsys)
    assert code == 2 and f"cannot reach the MLflow tracking server at 127.0.0.1:{port}" in err, err
    assert PASSWORD not in err and err.count("\n") == 1 and not ray_running()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 32.3: reports need only the results


def test_the_report_and_leaderboard_work_when_model_and_data_folders_are_gone(tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture) -> None:
    import yaml

    from orchestrator import leaderboard, sweep_page
    from tests.test_sweep_page import make_sweep

    sweep_dir = make_sweep(tmp_path / "results")
    recorded = yaml.safe_load((sweep_dir / "sweep.yaml").read_text())
    recorded.update({"model": str(tmp_path / "moved" / "model"), "data_dir": str(tmp_path / "moved" / "data")})
    (sweep_dir / "sweep.yaml").write_text(yaml.safe_dump(recorded))
    trials = pd.read_csv(sweep_dir / "trials.csv", dtype={"trial_id": str})
    trials["model"] = recorded["model"]  # the column a sweep writes; the folder it names is gone
    trials.to_csv(sweep_dir / "trials.csv", index=False)
    assert sweep_page.main(["page", "--results", str(tmp_path / "results")]) == 0
    assert (sweep_dir / "report" / "index.html").is_file()
    assert leaderboard.main(["--results", str(tmp_path / "results")]) == 0, capsys.readouterr().err


def load_in(folder: Path, overrides: list[str]) -> Config:
    """A config loaded as from a shell in `folder` (which holds `real-model/` and `link` -> it): relative paths
    resolve there."""
    (folder / "real-model").mkdir()
    (folder / "real-model" / "config.json").write_text("{}")
    (folder / "link").symlink_to(folder / "real-model")
    os.chdir(folder)
    try:
        return load_config(None, overrides, base=BASE)
    finally:
        os.chdir(REPO)


def test_sweep_yaml_records_paths_as_the_user_wrote_them(tmp_path: Path) -> None:
    from orchestrator.spec.paths import as_written

    cfg = load_in(tmp_path, ["model=./link", "results_dir=res"])
    assert cfg.model == str(tmp_path / "real-model") and cfg.results_dir == str(tmp_path / "res")  # what Ray gets
    written = as_written(cfg)
    assert written.model == "./link" and written.results_dir == "res"


def test_two_keys_that_lead_to_one_folder_each_keep_their_written_form(tmp_path: Path) -> None:
    """A model given as a symlink and a student given plainly, both leading to one folder: each key is recorded
    as its own user wrote it (the student's form used to overwrite the model's)."""
    from orchestrator.spec.paths import as_written

    cfg = load_in(tmp_path, ["method.student=./real-model", "model=./link"])
    assert cfg.model == cfg.method.student == str(tmp_path / "real-model")
    written = as_written(cfg)
    assert (written.model, written.method.student) == ("./link", "./real-model")


# ------------------------------------------------------------------ 31.4: no Optuna trial RUNNING for ever


def test_a_resumed_sweep_fails_the_study_trials_left_running(tmp_path: Path) -> None:
    import optuna

    from orchestrator.search.optuna_search import fail_abandoned

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="alone", storage=url, directions=["maximize", "minimize"])
    done = study.ask()
    study.tell(done, [0.8, 10.0])
    study.ask()  # asked for by a driver killed before Tune saved the trial
    assert fail_abandoned(url, "alone") == 1
    states = [t.state.name for t in optuna.load_study(study_name="alone", storage=url).trials]
    assert states == ["COMPLETE", "FAIL"]
    assert fail_abandoned(url, "no-such-study") == 0


def test_the_searchers_storage_is_pickled_without_its_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """search.storage may name a database with a password (postgresql://bob:...@db/optuna); Ray's searcher state
    pickles the study's storage, URL and all."""
    import pickle

    import optuna

    from orchestrator.base.redact import STORAGE_URL_VAR
    from orchestrator.search.optuna_search import rdb_storage

    monkeypatch.delenv(STORAGE_URL_VAR, raising=False)
    storage = rdb_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    real = f"postgresql://bob:{PASSWORD}@db.internal/optuna"
    storage.url = real  # as if it had connected there: no PostgreSQL in this test
    blob = pickle.dumps(storage)
    assert PASSWORD.encode() not in blob and b"bob:***@db.internal" in blob
    seen = {}
    monkeypatch.setattr(optuna.storages.RDBStorage, "__setstate__", lambda self, state: seen.update(state))
    pickle.loads(blob)
    assert seen["url"] == real  # the driver that pickled it (or resumes it) connects with the real URL


def test_train_reports_a_bad_out_and_a_bad_config_at_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    existing = tmp_path / "existing.txt"
    existing.write_text("")
    code, err = cli("orchestrator.train", ["--config", str(QUICKSTART), "--set", "method.rank=0", "--out",
                                           str(existing)], capsys)
    assert code == 2 and "--out: " in err and "method.rank: must be at least 1" in err and not ray_running()


def test_a_sweep_that_raises_closes_its_parent_run_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """31.1: the sweep that died of the diverged trial left its parent run RUNNING for ever."""
    from orchestrator.engine import run
    from orchestrator.search import tune
    from orchestrator.tracking import runs as tracking

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Tune failed")

    monkeypatch.setattr(run, "preflight", lambda cfg: None)
    monkeypatch.setattr(run, "ensure_ray", lambda *a, **k: None)
    monkeypatch.setattr(run, "use_gpu", lambda cfg: False)
    monkeypatch.setattr(tune, "make_tuner", broken)
    cfg = load_config(None, [f"results_dir={tmp_path}", "name=broken"], base=BASE)
    with pytest.raises(RuntimeError, match="Tune failed"):
        tune.run_sweep(cfg)
    (parent,) = tracking.client(cfg).search_runs([tracking.experiment_id(cfg)])
    assert parent.info.status == "FAILED" and not (tmp_path / "broken" / ".sweep.lock").exists()
    # --resume takes the same parent run back: RUNNING while the resumed driver runs, not FAILED beside it
    seen: list[str] = []

    def status_then_raise(*args: object, **kwargs: object) -> None:
        seen.append(tracking.client(cfg).get_run(parent.info.run_id).info.status)
        raise RuntimeError("Tune failed again")

    monkeypatch.setattr(tune, "make_tuner", status_then_raise)
    monkeypatch.setattr(tune, "fate_problem", lambda *a, **k: None)  # no tune/ state to restore in this test
    with pytest.raises(RuntimeError, match="again"):
        tune.run_sweep(cfg, resume=True)
    assert seen == ["RUNNING"]
    assert [r.info.status for r in tracking.client(cfg).search_runs([tracking.experiment_id(cfg)])] == ["FAILED"]
