"""The sweep on a Ray cluster of three hosts (tests/netns_cluster.py: a head and two worker nodes, each in
its own network namespace), submitted with `ray job submit` from the host:

- trials spread over the worker nodes, and trials.csv records each trial's node(s);
- a worker node lost mid-trial (every process in its namespace SIGKILLed, the namespace deleted): the trial
  resumes on the surviving node from its last checkpoint, the sweep completes, every trial appears once in
  trials.csv and once in MLflow;
- the head lost mid-sweep ends the job; on a fresh cluster `--resume` finishes the sweep from storage.

Results, checkpoints, the Tune/Optuna state and the MLflow database live in one folder every node sees
(the namespaces share the filesystem, as nodes share NFS or a bucket). Timings go to the test output
(`pytest -s`) and to /tmp/multinode_report.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import DATA, MODELS, REPO
from tests.netns_cluster import NetnsCluster, unavailable_reason

pytestmark = [pytest.mark.integration, pytest.mark.multinode]
REPORT = Path("/tmp/multinode_report.md")
RANKS = [2, 4]  # the worker-loss sweep: two trials, which start at once (one per worker node)
# Enough epochs that a trial is still training when the test sees its first registered checkpoint:
# with 3, an idle machine finished the trials (5 s an epoch) before the kill could land.
EPOCHS = 8
MEASURED: dict[str, object] = {}  # numbers for the report, filled in by the tests of this module


@pytest.fixture(scope="module")
def netns() -> None:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)


def write_config(folder: Path, name: str, ranks: list[int]) -> Path:
    """A tiny PC-LoRA sweep, one trial per rank: MiniLM-L3, 128 SST-2 examples of 32 tokens, EPOCHS epochs, 1 CPU."""
    cfg = {
        "name": name, "task": "glue/sst2", "model": str(MODELS / "minilm-l3-h384"), "data_dir": str(DATA),
        "results_dir": str(folder),
        "method": {"name": "pc_lora", "rank": 4, "decay_schedule": "sine", "decay_end": 0.8, "kd_weight": 0.0},
        "train": {"epochs": EPOCHS, "batch_size": 16, "lr": 1.0e-3, "max_length": 32, "max_examples": 128,
                  "seed": 0},
        "eval": {"max_examples": 64},
        "resources": {"workers": 1, "cpus_per_worker": 1, "use_gpu": False},
        "search": {"sampler": "grid", "scheduler": "none", "objectives": ["metric:max", "params:min"]},
        "space": {"method.rank": {"grid": ranks}},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def sweep(config: Path, *extra: str) -> list[str]:
    return ["python", "-m", "orchestrator.sweep", "--config", str(config), *extra]


def epochs_of(trial_dir: Path) -> list[dict]:
    path = trial_dir / "epochs.jsonl"
    if not path.is_file():
        return []
    lines = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line cut short by a node lost mid-write
            lines.append(json.loads(line))
    return lines


def job_output(log: Path) -> str:
    return log.read_text()[-6000:] if log.is_file() else ""


def check_sweep(sweep_dir: Path, workers: set[str], ranks: list[int]) -> pd.DataFrame:
    """Every trial once in trials.csv, complete, trained on worker nodes; once in MLflow, finished."""
    from mlflow.tracking import MlflowClient

    trials = pd.read_csv(sweep_dir / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == len(ranks) and trials["trial_id"].is_unique, trials
    assert (trials["status"] == "complete").all(), trials[["trial_id", "status"]]
    assert sorted(trials["method.rank"]) == ranks
    assert set(trials["node"]) <= workers, trials["node"]  # the head (0 CPUs) never trains
    for _, row in trials.iterrows():
        assert set(row["nodes"].split()) <= workers and row["nodes"].split()[-1] == row["node"]
        done = sorted({e["epoch"] for e in epochs_of(sweep_dir / "trials" / row["trial_id"])})
        assert done == list(range(1, EPOCHS + 1)), (row["trial_id"], done)  # every epoch trained
    client = MlflowClient(f"sqlite:///{sweep_dir.parent / 'mlflow.db'}")
    exp = client.get_experiment_by_name(sweep_dir.name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sweep_role") == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.tags["trial_id"] for r in children) == sorted(trials["trial_id"])
    assert len(runs) == len(ranks) + 1  # nothing else: no second run for a resumed trial
    for child in children:
        row = trials[trials["trial_id"] == child.data.tags["trial_id"]].iloc[0]
        assert child.info.status == "FINISHED" and child.data.tags["full_budget"] == "true"
        assert child.data.tags["node"] == row["node"]
        assert child.data.metrics["metric"] == pytest.approx(row["metric"])
    trials["wall_seconds"] = trials["trial_id"].map(
        {c.data.tags["trial_id"]: c.data.metrics.get("wall_seconds") for c in children})
    return trials


def registered_epochs(trial_dir: Path) -> list[int]:
    """Epochs whose checkpoint Ray Train's controller has registered (and persisted in its snapshot on
    storage): what a restarted run resumes from. A checkpoint uploaded but not yet registered is lost."""
    found = []
    for snapshot in trial_dir.glob("ray/*/checkpoint_manager_snapshot.json"):
        with contextlib.suppress(ValueError, OSError):
            found += [r["metrics"]["epoch"] for r in json.loads(snapshot.read_text())["checkpoint_results"]]
    return sorted(found)


def wait_for_checkpoint(sweep_dir: Path, job, log: Path, timeout: float = 900) -> tuple[Path, int]:
    """A trial with a checkpoint that Ray Train registered and epochs still to go: (its folder, the epoch)."""
    deadline = time.time() + timeout
    while time.time() < deadline and job.poll() is None:
        for trial_dir in sorted(sweep_dir.glob("trials/*")):
            registered = registered_epochs(trial_dir)
            if (registered and registered[-1] < EPOCHS - 1 and epochs_of(trial_dir)
                    and not (trial_dir / "metrics.json").exists()):
                return trial_dir, registered[-1]
        time.sleep(0.2)
    raise AssertionError("no trial checkpointed an epoch in time\n" + job_output(log))


def per_node(cluster: NetnsCluster, trials: pd.DataFrame) -> dict[str, int]:
    """Trials per node, by where each trial started (a resumed trial counts on its first node)."""
    first = trials["nodes"].fillna(trials["node"]).str.split().str[0]
    return {cluster.node_of_ip(ip): int(n) for ip, n in first.value_counts().items()}


def write_report() -> None:
    lines = ["# Multi-node sweep: measured (tests/test_multinode.py)", "",
             "Cluster: head (0 CPUs; job driver, trial drivers) + 2 worker nodes (1 CPU each), each in its own",
             "network namespace on one 2-core machine shared with other work; storage a shared folder.",
             "Sweeps: PC-LoRA grids (2 trials for the worker loss, 1 for the head loss), MiniLM-L3, 128 SST-2",
             f"examples x 32 tokens, {EPOCHS} epochs, 1 Ray Train worker (1 CPU) per trial. Ray's default health",
             "checks. Numbers of one run; they grow with the machine's load (load averages below).", ""]
    lines += [f"- {key}: {value}" for key, value in MEASURED.items()]
    REPORT.write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))


@pytest.fixture(scope="module")
def cluster(netns, tmp_path_factory) -> NetnsCluster:
    """One cluster for the module: the worker-loss test loses a worker node, the head-loss test the head."""
    root = tmp_path_factory.mktemp("multinode")
    started = time.perf_counter()
    try:
        with NetnsCluster(root, workers=2, worker_cpus=1) as c:
            MEASURED["load average (1 min) when the module started"] = round(os.getloadavg()[0], 1)
            MEASURED["cluster start, head + 2 workers (s)"] = round(c.start_seconds, 1)
            (c.log_dir / "shared").mkdir()  # on the host filesystem: the storage every node sees
            yield c
    finally:
        MEASURED["load average (1 min) when the module ended"] = round(os.getloadavg()[0], 1)
        MEASURED["whole module, wall time (s)"] = round(time.perf_counter() - started, 1)
        write_report()


def test_worker_node_lost_mid_trial_resumes_on_the_other(cluster: NetnsCluster, shared_models,
                                                         shared_data) -> None:
    """Two trials start at once, one per worker node (1 CPU each; the head has none). The node of one
    of them is lost after its first epoch: that trial resumes on the surviving node from its checkpoint."""
    shared = cluster.log_dir / "shared"
    config = write_config(shared, "loss", RANKS)
    sweep_dir = shared / "loss"
    log = cluster.log_dir / "loss.log"
    workers = {n.ip for n in cluster.nodes.values() if n.name != "head"}
    started = time.perf_counter()
    job = cluster.submit(sweep(config), cwd=REPO, log=log, wait=False)
    victim, checkpointed = wait_for_checkpoint(sweep_dir, job, log)
    node = cluster.node_of_ip(epochs_of(victim)[-1]["node"])
    assert node in ("w1", "w2"), node
    survivor = "w2" if node == "w1" else "w1"
    before = len(epochs_of(victim))
    killed_at = cluster.kill_node(node)
    print(f"\n[multinode] killed node {node} after epoch {checkpointed} of trial {victim.name}")
    # Watch the victim's next epoch (on the survivor) and when the cluster declares the node dead.
    resumed_at = dead_at = None
    while job.poll() is None and (resumed_at is None or dead_at is None):
        later = [e for e in epochs_of(victim)[before:] if cluster.node_of_ip(e["node"]) == survivor]
        if later and resumed_at is None:
            resumed_at = later[0]["time"]
        if dead_at is None:
            with contextlib.suppress(OSError):
                if len(cluster.alive_nodes()) == 2:
                    dead_at = time.time()
        time.sleep(1.0)
    job.wait(timeout=600)
    wall = time.perf_counter() - started
    assert job.returncode == 0, job_output(log)
    assert "succeeded" in job_output(log).lower()
    trials = check_sweep(sweep_dir, workers, RANKS)
    ips = {n.name: n.ip for n in cluster.nodes.values()}
    assert per_node(cluster, trials) == {"w1": 1, "w2": 1}  # spread: one trial started on each worker
    row = trials[trials["trial_id"] == victim.name].iloc[0]
    assert row["nodes"].split() == [ips[node], ips[survivor]], row["nodes"]  # moved once, to the survivor
    assert row["node"] == ips[survivor] and set(trials["node"]) == {ips[survivor]}
    assert row["resumed_from_epoch"] >= checkpointed >= 1  # from its checkpoint, not from scratch
    on_lost = max(e["epoch"] for e in epochs_of(victim) if cluster.node_of_ip(e["node"]) == node)
    redone = on_lost - int(row["resumed_from_epoch"])  # finished on the lost node, not registered: trained again
    other = trials[trials["trial_id"] != victim.name].iloc[0]
    MEASURED["worker loss: sweep wall time, `ray job submit` (s)"] = round(wall, 1)
    MEASURED["worker loss: trials per node (where each started)"] = per_node(cluster, trials)
    MEASURED["worker loss: the lost trial moved"] = f"{node} -> {survivor} ({row['nodes']})"
    MEASURED["worker loss: trial wall time, lost trial vs the undisturbed one (s)"] = (
        f"{row['wall_seconds']:.1f} vs {other['wall_seconds']:.1f}: the loss cost it "
        f"{row['wall_seconds'] - other['wall_seconds']:.1f}")
    if dead_at is not None:
        MEASURED["worker loss: kill -> Ray marks the node dead (s)"] = round(dead_at - killed_at, 1)
    if resumed_at is not None:
        MEASURED["worker loss: kill -> the lost trial's next epoch on the survivor (s)"] = round(
            resumed_at - killed_at, 1)
    MEASURED["worker loss: resumed from the checkpoint of epoch / finished epochs trained again"] = (
        f"{int(row['resumed_from_epoch'])} / {redone}")
    MEASURED["worker loss: trials in trials.csv / MLflow child runs (each once)"] = f"{len(trials)} / {len(trials)}"
    print(f"[multinode] worker loss: sweep {wall:.1f}s; trial {victim.name} {node} -> {survivor}, resumed "
          f"from epoch {int(row['resumed_from_epoch'])}; trial walls {row['wall_seconds']:.1f}s (lost) vs "
          f"{other['wall_seconds']:.1f}s")


def test_head_lost_then_resume_on_a_new_cluster(cluster: NetnsCluster, shared_models, shared_data) -> None:
    """The head (job driver, trial drivers, GCS) is lost mid-sweep: the job ends with it. A new cluster
    (new addresses) comes up and `--resume` finishes the sweep from storage: the interrupted trial from its
    checkpoint, each trial once in trials.csv and MLflow."""
    shared = cluster.log_dir / "shared"
    config = write_config(shared, "headloss", [4])  # one trial: the multi-trial checks are above
    sweep_dir = shared / "headloss"
    log = cluster.log_dir / "headloss.log"
    old_workers = {n.ip for n in cluster.nodes.values() if n.name != "head" and n.alive}
    job = cluster.submit(sweep(config), cwd=REPO, log=log, wait=False)
    interrupted, checkpointed = wait_for_checkpoint(sweep_dir, job, log)
    killed_at = cluster.kill_node("head")
    print(f"\n[multinode] killed the head after epoch {checkpointed} of trial {interrupted.name}")
    try:
        job.wait(timeout=30)  # the CLI follows the job's logs from the head: it loses them
    except subprocess.TimeoutExpired:
        job.kill()
    assert job.wait() != 0 or "succeeded" not in job_output(log).lower()
    assert not (sweep_dir / "trials.csv").exists()
    cluster.teardown()  # what is left of the old cluster: worker nodes without a head
    root = cluster.log_dir.parent
    with NetnsCluster(root, workers=1, worker_cpus=1) as fresh:
        up_at = time.time()
        new_workers = {n.ip for n in fresh.nodes.values() if n.name != "head"}
        started = time.perf_counter()
        resume_log = fresh.log_dir / "resume.log"
        resumed = fresh.submit(sweep(config, "--resume"), cwd=REPO, log=resume_log)
        wall = time.perf_counter() - started
        assert resumed.returncode == 0, job_output(resume_log)
        assert "succeeded" in job_output(resume_log).lower()
    trials = check_sweep(sweep_dir, old_workers | new_workers, [4])
    row = trials[trials["trial_id"] == interrupted.name].iloc[0]
    assert row["resumed_from_epoch"] >= checkpointed and row["node"] in new_workers  # from storage, new cluster
    assert row["nodes"].split()[0] in old_workers
    MEASURED["head loss: kill -> new cluster up (s)"] = round(up_at - killed_at, 1)
    MEASURED["head loss: `--resume` job wall time (s)"] = round(wall, 1)
    MEASURED["head loss: interrupted trial resumed from the checkpoint of epoch"] = int(row["resumed_from_epoch"])
    MEASURED["head loss: trials in trials.csv / MLflow child runs (each once)"] = f"{len(trials)} / {len(trials)}"
    print(f"[multinode] head loss: new cluster after {up_at - killed_at:.1f}s, resume {wall:.1f}s; trial "
          f"{interrupted.name} resumed from epoch {int(row['resumed_from_epoch'])}")
