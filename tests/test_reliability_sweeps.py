"""Issue 31's probe cases that need a real sweep (tiny: MiniLM-L3, a few dozen examples, one epoch).

A diverging trial leaves the sweep to finish; one sweep name runs once; no file under results/ or Ray's session
folder holds the tracking password; a trial killed while it runs alone resumes under its own id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import DATA, MODELS, REPO, pid_at_first_checkpoint
from tests.test_sweep import QUICKSTART, check_mlflow, ray_tmp, sweep_cmd  # noqa: F401 - ray_tmp: a fixture

pytestmark = pytest.mark.integration


def tiny_config(tmp_path: Path, name: str, *, model: Path | str | None = None, **search) -> Path:
    """A one-method sweep that trains in seconds; `search` overrides the search section."""
    cfg = yaml.safe_load(QUICKSTART.read_text())
    cfg.update({"name": name, "model": str(model or MODELS / "minilm-l3-h384"), "data_dir": str(DATA),
                "results_dir": str(tmp_path / "results"), "space": {"method.rank": {"choice": [2, 4]}}})
    cfg["method"].update({"name": "pc_lora", "kd_weight": 0.0})
    cfg["train"].update({"epochs": 1, "max_examples": 32, "max_length": 32, "batch_size": 8})
    cfg["eval"] = {"max_examples": 32}
    cfg["search"] = {"sampler": "random", "scheduler": "none", "num_samples": 1, "max_concurrent_trials": 1,
                     "objectives": ["metric:max", "params:min"], **search}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_diverging_trial_leaves_the_sweep_to_finish(tmp_path: Path, shared_models, shared_data) -> None:
    """31.1: Tune refused the diverged trial's result (no 'metric') and the whole sweep ended in a TuneError.
    32.3: sweep.yaml records the model path as written (a symlink here), not where it leads."""
    link = tmp_path / "model-link"
    link.symlink_to(MODELS / "minilm-l3-h384")
    config = tiny_config(tmp_path, "diverge", model=link, num_samples=2, sampler="nsga2")
    proc = subprocess.run(sweep_cmd("--config", str(config), "--set", "train.lr=1000"), cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweep_dir = tmp_path / "results" / "diverge"
    trials = pd.read_csv(sweep_dir / "trials.csv", dtype={"trial_id": str})
    diverged = trials[trials["status"] == "diverged"]
    assert len(trials) == 2 and len(diverged) >= 1 and diverged["metric"].isna().all()
    assert not diverged["full_budget"].any()
    front = pd.read_csv(sweep_dir / "pareto.csv")
    assert not set(front["trial_id"]) & set(diverged["trial_id"]) and (sweep_dir / "pareto.md").is_file()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("diverge").experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("sweep_role") == "parent"]
    assert parent.info.status == "FINISHED"
    tags = {r.data.tags["trial_id"]: r.data.tags.get("diverged") for r in runs if r is not parent}
    assert all(tags[t] == "true" for t in diverged["trial_id"])
    assert yaml.safe_load((sweep_dir / "sweep.yaml").read_text())["model"] == str(link)


def test_the_same_sweep_started_twice_at_once_runs_once(tmp_path: Path, shared_models, shared_data) -> None:
    """31.2: both starts of one name exited 0 and trials.csv held one run's trial, the other's lost."""
    config = tiny_config(tmp_path, "race1")
    procs = [subprocess.Popen(sweep_cmd("--config", str(config)), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)]
    assert "'race1'" in loser[1] and "Traceback" not in loser[1]
    sweep_dir = tmp_path / "results" / "race1"
    trials = pd.read_csv(sweep_dir / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 1 and (trials["status"] == "complete").all()
    check_mlflow(sweep_dir, trials)  # one parent run, one finished child
    assert len(list((sweep_dir / "tune").glob("experiment_state-*.json"))) == 1
    assert not (sweep_dir / ".sweep.lock").exists()


def test_a_trial_killed_alone_resumes_under_its_own_id(tmp_path: Path, shared_models, shared_data,
                                                       ray_tmp: Path) -> None:  # noqa: F811 - the fixture
    """31.4: the driver killed while its one trial trains, before that trial's first checkpoint; --resume started a
    new trial id, and the killed one's Optuna trial stayed RUNNING, its MLflow run became a third, and its folder
    stayed behind (Tune's experiment state reached tune/ every 300 s or at a checkpoint only)."""
    config = tiny_config(tmp_path, "alone", num_samples=2, sampler="nsga2")
    pid_file = tmp_path / "trial.pid"
    first_ray = ray_tmp / "first"
    first_ray.mkdir()
    env = {**os.environ, "RAY_TMPDIR": str(first_ray), "ORCH_TEST_START_PID_FILE": str(pid_file),
           "ORCH_TEST_START_SKIP": "1", "ORCH_TEST_PAUSE": "300"}  # the second trial, the first one done
    proc = subprocess.Popen(sweep_cmd("--config", str(config), "--set", "train.epochs=2"), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    pid_at_first_checkpoint(pid_file, proc, "trial")  # here: its model and data loaded, no checkpoint yet
    time.sleep(5)  # longer than tune.STATE_PERIOD_S, the period of the state reaching tune/
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything in its group, as a lost machine would
    proc.wait()
    subprocess.run(["pkill", "-9", "-f", str(first_ray)], capture_output=True)
    sweep_dir = tmp_path / "results" / "alone"
    (killed,) = [p.name for p in (sweep_dir / "trials").iterdir() if not (p / "metrics.json").exists()]
    again = subprocess.run(sweep_cmd("--config", str(config), "--set", "train.epochs=2", "--resume"), cwd=REPO,
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    trials = pd.read_csv(sweep_dir / "trials.csv", dtype={"trial_id": str})
    assert killed in set(trials["trial_id"]) and len(trials) == 2 and (trials["status"] == "complete").all()
    assert sorted(p.name for p in (sweep_dir / "trials").iterdir()) == sorted(trials["trial_id"])
    check_mlflow(sweep_dir, trials)  # one finished child run per trial, none KILLED beside them
    import optuna

    study = optuna.load_study(study_name="alone", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]


PASSWORD = "s3cr3t-Pw-31"


def test_no_file_holds_the_tracking_password(tmp_path: Path, shared_models, shared_data,
                                             ray_tmp: Path) -> None:  # noqa: F811 - the fixture
    """31.3: the password was pickled into tune/tuner.pkl, tune/searcher-state-*.pkl and Ray's session copy."""
    from tests.test_tracking_server import free_port, stop, wait_for_health

    port = free_port()
    log = tmp_path / "server.log"
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1", "--backend-store-uri",
                               f"sqlite:///{tmp_path / 'server.db'}", "--default-artifact-root",
                               str(tmp_path / "server-artifacts")],
                              stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        wait_for_health(f"http://127.0.0.1:{port}", server, log, 180)
        config = tiny_config(tmp_path, "secret", sampler="nsga2")
        proc = subprocess.run(sweep_cmd("--config", str(config), "--set",
                                        f"tracking.uri=http://alice:{PASSWORD}@127.0.0.1:{port}"),
                              cwd=REPO, capture_output=True, text=True, timeout=900,
                              env={**os.environ, "RAY_TMPDIR": str(ray_tmp)})
    finally:
        stop(server)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert PASSWORD not in proc.stdout + proc.stderr
    sweep_dir = tmp_path / "results" / "secret"
    assert list((sweep_dir / "tune").glob("searcher-state-*.pkl")) and (sweep_dir / "tune" / "tuner.pkl").is_file()
    holding = [str(p) for root in (tmp_path / "results", ray_tmp) for p in root.rglob("*")
               if p.is_file() and not p.is_symlink() and PASSWORD.encode() in p.read_bytes()]
    assert holding == []
