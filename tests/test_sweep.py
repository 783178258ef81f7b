"""`python -m orchestrator.sweep` end to end on CPU: the smoke sweep, the Pareto files, resuming after
the driver is killed, and the same sweep submitted with `ray job submit` to a cluster the test starts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from orchestrator.base.pareto import pareto_mask
from tests.conftest import DATA, MODELS, REPO, pid_at_first_checkpoint

pytestmark = pytest.mark.integration
QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"


def abs_sets(results: Path) -> list[str]:
    """Absolute paths, so that the same command works from any working directory (ray job submit)."""
    return ["--set", f"model={MODELS / 'minilm-l3-h384'}", "--set", f"data_dir={DATA}",
            "--set", f"results_dir={results}"]


@pytest.fixture
def ray_tmp():
    """A Ray temp dir of this test's own (short: Ray's socket paths have a length limit), so the test can
    kill exactly its Ray processes. `ray stop --force` would kill every Ray cluster on the machine."""
    path = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    yield path
    subprocess.run(["pkill", "-9", "-f", str(path)], capture_output=True)
    time.sleep(1)
    shutil.rmtree(path, ignore_errors=True)


def sweep_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.sweep", *args]


def check_outputs(sweep_dir: Path, methods: set[str], auxiliary: list[str] | None = None) -> pd.DataFrame:
    """`auxiliary`, when given: the roles of the auxiliary runs (teacher, student_ceiling) the sweep made, sorted."""
    trials = pd.read_csv(sweep_dir / "trials.csv", dtype={"trial_id": str})
    assert set(trials["method.name"]) == methods
    assert trials["trial_id"].is_unique and (trials["status"] == "complete").all()
    for col in ("metric", "params", "flops", "base_params", "full_budget"):
        assert trials[col].notna().all(), col
    # pareto.csv is exactly the front recomputed from trials.csv
    front = pd.read_csv(sweep_dir / "pareto.csv")
    done = trials[trials["full_budget"]]
    mask = pareto_mask(done[["metric", "params"]].to_numpy(float), ["max", "min"])
    assert sorted(front["trial_id"]) == sorted(done[mask]["trial_id"])
    assert (sweep_dir / "pareto.png").stat().st_size > 10_000
    assert "| trial_id |" in (sweep_dir / "pareto.md").read_text()
    check_mlflow(sweep_dir, trials, auxiliary)
    return trials


def check_mlflow(sweep_dir: Path, trials: pd.DataFrame, auxiliary: list[str] | None = None) -> None:
    """One parent run per sweep, one finished child run per trial (each trial once), front metrics on the parent."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{sweep_dir.parent / 'mlflow.db'}")
    exp = client.get_experiment_by_name(sweep_dir.name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sweep_role") == "parent"]
    assert len(parents) == 1
    parent = parents[0]
    below = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    # the cached FFT runs a recipe declares (the teacher, a student's ceiling) are runs of their own role
    aux_roles = ("teacher", "student_ceiling")
    children = [r for r in below if r.data.tags.get("sweep_role") not in aux_roles]
    teachers = [r for r in below if r.data.tags.get("sweep_role") in aux_roles]
    assert len(runs) == 1 + len(children) + len(teachers)  # no run outside the sweep's tree
    if auxiliary is not None:
        assert sorted(r.data.tags["sweep_role"] for r in teachers) == auxiliary
    assert sorted(r.data.tags["trial_id"] for r in children) == sorted(trials["trial_id"])
    assert all(r.info.status == "FINISHED" and r.data.tags["full_budget"] == "true" for r in children)
    assert {r.data.tags["sweep_role"] for r in children} == {"trial"}  # the view filters on it (teachers hidden)
    for child in children:
        row = trials[trials["trial_id"] == child.data.tags["trial_id"]].iloc[0]
        metrics, params = child.data.metrics, child.data.params
        assert metrics["metric"] == pytest.approx(row["metric"])
        assert params["method.name"] == row["method.name"]
        # a name a person can read: pc_lora-r8-<trial id>
        assert child.info.run_name == f"{row['method.name']}-r{int(row['method.rank'])}-{row['trial_id']}"
        assert metrics["params_kept_pct"] == pytest.approx(100 * row["params"] / row["base_params"])
        assert metrics["encoder_params_kept_pct"] == pytest.approx(
            100 * row["params_no_embeddings"] / row["base_params_no_embeddings"])
        # constants once, as params, not as flat curves; only the keys the trial's method uses
        assert "world_size" in params and "world_size" not in metrics and "worker_start_unix" not in metrics
        for key in params:
            if key.startswith("method.") and key in row.index and params[key] != "null":
                assert pd.notna(row[key]), f"{child.info.run_name} carries {key}, which trials.csv blanks"
        history = client.get_metric_history(child.info.run_id, "params")
        assert len(history) == 1  # a size is logged once, at the end
    for teacher in teachers:
        role = teacher.data.tags["sweep_role"]
        assert teacher.info.run_name.startswith(f"{role}-fft-") and teacher.info.status == "FINISHED"
    assert set(parent.data.tags["methods"].split(",")) == set(trials["method.name"])
    if trials["searched"].str.contains("method.name").any():  # searched: in the space, not a fixed setting
        assert "method.name" not in parent.data.params and "space.method.name" in parent.data.params
    else:
        assert parent.data.params["method.name"] == trials["method.name"].iloc[0]
    assert 0 < parent.data.metrics["hypervolume"] < 1 and "max_metric" in parent.data.metrics
    assert parent.info.status == "FINISHED"
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the runs view, not GenAI's
    assert not [e.name for e in client.search_experiments() if e.name.startswith("teacher-")]


def test_smoke_sweep_both_methods(tmp_path: Path, shared_models, shared_data) -> None:
    proc = subprocess.run(sweep_cmd("--config", str(QUICKSTART), "--smoke", *abs_sets(tmp_path)),
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # one auxiliary run: the ceiling is the teacher's cached run (the same checkpoint, the same FFT), not a second
    trials = check_outputs(tmp_path / "quickstart-smoke", {"pc_lora", "kd_lora"}, auxiliary=["teacher"])
    pc = trials[trials["method.name"] == "pc_lora"].iloc[0]
    assert pc["params"] < pc["base_params"] and pc["flops"] < pc["base_flops"]
    # The console is the tool's own lines: one per epoch and per finished trial, tagged with the trial id;
    # no transformers load reports or Tune status tables without --verbose.
    out = proc.stdout
    for trial_id in trials["trial_id"]:
        assert f"[quickstart-smoke] {trial_id} " in out and f"{trial_id} " in out.split("Pareto front")[0]
    assert "trials 2/2 done (2 complete)" in out and "2 trials: 2 complete" in out
    assert "LOAD REPORT" not in out + proc.stderr and "Trial status:" not in out
    # the closing summary: the files, then the commands that open the report, the UI (table and charts)
    closing = out.split("2 trials: 2 complete")[1]
    python = os.path.relpath(sys.executable, REPO)  # the interpreter that ran, as the shell in REPO names it
    assert "files: " in closing and f"report: {python} -m orchestrator report {tmp_path / 'quickstart-smoke'}" in closing
    assert f"MLflow UI: {python} -m orchestrator ui --results {tmp_path}" in closing
    assert "Optuna dashboard" not in closing  # --smoke runs a plain grid: no study
    # the KD-LoRA trial's teacher is the reference the front is judged against (issue 32)
    assert "reference: FFT teacher (minilm-l3-h384) accuracy " in closing
    assert "| FFT teacher (minilm-l3-h384) |" in (tmp_path / "quickstart-smoke" / "pareto.md").read_text()
    # and the student's own FFT (the quickstart's student, here the same checkpoint as the model: the teacher's
    # cached run serves as its ceiling, trained once)
    assert "reference: student's FFT ceiling (minilm-l3-h384) accuracy " in closing
    assert "| student's FFT ceiling (minilm-l3-h384) |" in (tmp_path / "quickstart-smoke" / "pareto.md").read_text()
    recorded = json.loads((tmp_path / "quickstart-smoke" / "references.json").read_text())
    assert [r["name"] for r in recorded] == ["FFT teacher (minilm-l3-h384)", "student's FFT ceiling (minilm-l3-h384)"]
    assert "runs?viewStateShareKey=orchestrator-trials&compareRunsMode=CHART" in closing


def test_driver_killed_then_resume_runs_every_trial_once(tmp_path: Path, shared_models, shared_data,
                                                         ray_tmp: Path) -> None:
    cfg = yaml.safe_load(QUICKSTART.read_text())
    cfg.update({"name": "resume", "space": {"method.rank": {"grid": [2, 4, 8]}}})
    cfg["method"].update({"name": "pc_lora", "kd_weight": 0.0})
    cfg["train"].update({"epochs": 1, "max_examples": 32, "max_length": 32})
    cfg["eval"] = {"max_examples": 32}
    cfg["search"] = {"sampler": "grid", "max_concurrent_trials": 1, "objectives": ["metric:max", "params:min"]}
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(cfg))
    sweep_dir = tmp_path / "resume"
    first_ray = ray_tmp / "first"
    first_ray.mkdir()
    proc = subprocess.Popen(sweep_cmd("--config", str(path), *abs_sets(tmp_path)), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "RAY_TMPDIR": str(first_ray)})
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if len(list(sweep_dir.glob("trials/*/metrics.json"))) >= 1:
            break
        time.sleep(1)
    finished = {p.parent.name: p.stat().st_mtime for p in sweep_dir.glob("trials/*/metrics.json")}
    assert finished and proc.poll() is None, "the sweep ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started, as a lost machine would
    proc.wait()
    # the rest of that Ray (raylet, GCS, workers): everything started under its temp dir
    subprocess.run(["pkill", "-9", "-f", str(first_ray)], capture_output=True)
    assert not (sweep_dir / "trials.csv").exists()
    again = subprocess.run(sweep_cmd("--config", str(path), "--resume", *abs_sets(tmp_path)), cwd=REPO,
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    trials = check_outputs(sweep_dir, {"pc_lora"})
    assert sorted(trials["method.rank"]) == [2, 4, 8]
    for trial_id, mtime in finished.items():  # finished trials were not run again
        assert (sweep_dir / "trials" / trial_id / "metrics.json").stat().st_mtime == mtime


def test_a_trial_training_in_its_own_process_resumes_after_it_is_killed(tmp_path: Path, shared_models,
                                                                       shared_data) -> None:
    """A local one-worker trial trains in its Tune trial's process (resources.trainer: auto); SIGKILLed after
    its first checkpoint, Tune starts it again from that checkpoint, as Ray Train replaces a lost worker."""
    cfg = yaml.safe_load(QUICKSTART.read_text())
    cfg.update({"name": "killed", "space": {"method.rank": {"grid": [4]}}})
    cfg["method"].update({"name": "pc_lora", "kd_weight": 0.0})
    cfg["train"].update({"epochs": 2, "max_examples": 32, "max_length": 32})
    cfg["eval"] = {"max_examples": 32}
    cfg["search"] = {"sampler": "grid", "scheduler": "none", "objectives": ["metric:max", "params:min"]}
    path = tmp_path / "killed.yaml"
    path.write_text(yaml.safe_dump(cfg))
    pid_file = tmp_path / "trial.pid"
    proc = subprocess.Popen(sweep_cmd("--config", str(path), *abs_sets(tmp_path)), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "ORCH_TEST_PID_FILE": str(pid_file), "ORCH_TEST_PAUSE": "120"})
    killed = pid_at_first_checkpoint(pid_file, proc, "trial")
    assert killed != proc.pid  # the trial's process, not the driver
    os.kill(killed, signal.SIGKILL)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-4000:]
    sweep_dir = tmp_path / "killed"
    (trial_dir,) = list((sweep_dir / "trials").iterdir())
    assert (trial_dir / "ray").exists() is False  # no TorchTrainer ran: it trained in the trial's process
    epochs = [json.loads(line) for line in (trial_dir / "epochs.jsonl").read_text().splitlines()]
    assert [(e["epoch"], e["resumed_from_epoch"]) for e in epochs] == [(1, 0), (2, 1)]
    trials = check_outputs(sweep_dir, {"pc_lora"})
    assert trials["resources.trainer"].tolist() == ["trial"]


@pytest.mark.parametrize(("scheduler", "record"), [
    ("asha", "1.01"),
    ("mo_asha", "[1.01, 0.0]"),  # a recorded (metric, params) that dominates every trial
])
def test_asha_stops_trials_and_the_sweep_goes_on(tmp_path: Path, shared_models, shared_data, scheduler: str,
                                                 record: str) -> None:
    """Trials stopped at a rung end their runs cleanly, so the next trial gets the CPUs (with Tune's own
    ASHAScheduler and Train V2 the next trial waited for ever: ray-project/ray#54305). MO-ASHA records each
    trial's (metric, params) at the rung and stops the dominated ones."""
    cfg = yaml.safe_load(QUICKSTART.read_text())
    cfg.update({"name": "asha", "space": {"method.rank": {"grid": [2, 4]}}})
    cfg["method"].update({"name": "pc_lora", "kd_weight": 0.0})
    cfg["train"].update({"epochs": 2, "max_examples": 32, "max_length": 32})
    cfg["eval"] = {"max_examples": 32}
    cfg["search"] = {"sampler": "grid", "scheduler": scheduler, "grace_period": 1, "max_concurrent_trials": 1,
                     "objectives": ["metric:max", "params:min"]}
    path = tmp_path / "asha.yaml"
    path.write_text(yaml.safe_dump(cfg))
    rung = tmp_path / "asha" / scheduler / "rung_1.jsonl"
    rung.parent.mkdir(parents=True)
    rung.write_text(f'{{"trial_id": "earlier", "value": {record}, "stopped": false}}\n')  # nobody beats it
    proc = subprocess.run(sweep_cmd("--config", str(path), *abs_sets(tmp_path)), cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = pd.read_csv(tmp_path / "asha" / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 2 and (trials["status"] == "stopped").all() and not trials["full_budget"].any()
    assert (trials["epoch"] == 1).all() and trials["params"].notna().all()
    rows = [json.loads(line) for line in rung.read_text().splitlines()]
    assert len(rows) == 3 and all(r["stopped"] for r in rows[1:])
    if scheduler == "mo_asha":  # each trial's vector: the metric at the rung and the params it will deploy
        for r in rows[1:]:
            row = trials[trials["trial_id"] == r["trial_id"]].iloc[0]
            assert r["value"] == [pytest.approx(row["metric"]), pytest.approx(row["params"])]
    assert len(pd.read_csv(tmp_path / "asha" / "pareto.csv")) == 0  # no full-budget trial, no front


@pytest.mark.skipif(shutil.which("ray", path=str(Path(sys.executable).parent)) is None, reason="no ray CLI")
def test_ray_job_submit_to_a_started_cluster(tmp_path: Path, shared_models, shared_data, ray_tmp: Path) -> None:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled"}
    start = subprocess.run(["ray", "start", "--head", "--num-cpus", "2", "--temp-dir", str(ray_tmp), "--dashboard-host", "127.0.0.1",
                            "--dashboard-port", "8265", "--disable-usage-stats"],
                           capture_output=True, text=True, timeout=180, env=env)
    assert start.returncode == 0, start.stderr[-3000:]
    try:
        for _ in range(12):  # a head whose job agent is still starting refuses jobs: "No available agent"
            job = subprocess.run(["ray", "job", "submit", "--address", "http://127.0.0.1:8265", "--working-dir", ".",
                                  "--", "python", "-m", "orchestrator.sweep", "--config",
                                  "search_spaces/quickstart.yaml", "--smoke", *abs_sets(tmp_path),
                                  # the quickstart's KD-LoRA student is a local model folder too (README: absolute)
                                  "--set", f"method.student={MODELS / 'minilm-l3-h384'}"],
                                 cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
            if job.returncode == 0 or "No available agent" not in job.stdout + job.stderr:
                break
            time.sleep(5)
        assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-2000:]
        assert "succeeded" in job.stdout.lower()
    finally:  # only this cluster: its processes all name its temp dir
        subprocess.run(["pkill", "-9", "-f", str(ray_tmp)], capture_output=True)
    check_outputs(tmp_path / "quickstart-smoke", {"pc_lora", "kd_lora"}, auxiliary=["teacher"])
    assert np.isfinite(pd.read_csv(tmp_path / "quickstart-smoke" / "trials.csv", dtype={"trial_id": str})["metric"]).all()
