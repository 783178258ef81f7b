"""The team set-up, for real: an MLflow tracking server backed by PostgreSQL, a sweep logging to it.

The test starts a throwaway PostgreSQL cluster (Debian's postgresql, `.ci/setup` installs it) on
127.0.0.1 and a free port, with its own database and password-protected user; starts
`mlflow server` on it; runs the smoke sweep with `tracking.uri` pointing at the server; and reads
the runs back through the REST API only. Server and cluster are stopped in a finally, also when the
test fails. Skips with the reason when PostgreSQL's binaries or psycopg2 are missing.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import DATA, MODELS, REPO

pytestmark = pytest.mark.integration

QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"
SERVER_START_S = 120  # /health after 15-25 s on 2 idle cores (STACK.md); a loaded CI machine is slower


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin() -> Path | None:
    """Debian's newest PostgreSQL server binaries (/usr/lib/postgresql/<major>/bin), or None."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/postgres")]
    found.sort(key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0))
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def wait_for_health(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server not healthy after {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def api(url: str, path: str, payload: dict[str, Any] | None = None, params: str = "") -> dict[str, Any]:
    """One MLflow REST call: GET with a query string, or POST with a JSON body."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(f"{url}/api/2.0/mlflow/{path}{'?' + params if params else ''}", data=data,
                                 headers={"Content-Type": "application/json"},
                                 method="GET" if data is None else "POST")
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.load(resp)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Stop a process started with start_new_session=True, and everything it started."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def uri(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster on 127.0.0.1:<free port> with database `mlflow` owned by user `mlflow`.

    PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` user (which
    Debian's package creates) and lives in a folder of its own under /tmp, since pytest's tmp_path is
    private to root.
    """
    bin_dir = postgres_bin()
    if bin_dir is None or not (bin_dir / "pg_ctl").is_file():
        pytest.skip("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin); run .ci/setup "
                    "(apt-get install postgresql)")
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root and `runuser` is missing: cannot run PostgreSQL as `postgres`")
        as_user = [runuser, "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="pg-mlflow-", dir="/tmp"))
    superuser_password = "pg-" + os.urandom(8).hex()
    (base / "pwfile").write_text(superuser_password + "\n")
    (base / "pwfile").chmod(0o600)
    if owner is not None:
        for path in (base, base / "pwfile"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    data, log = base / "data", base / "postgres.log"
    pg = Postgres("127.0.0.1", free_port(), "mlflow", "pw-" + os.urandom(8).hex(), "mlflow")
    env = {**os.environ, "LC_ALL": "C", "PGPASSWORD": superuser_password}

    def run(*cmd: str, user: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([*(as_user if user else []), *cmd], cwd=base, env=env, capture_output=True,
                              text=True, timeout=timeout)
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        return proc

    started = False
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={base / 'pwfile'}",
            "--auth=scram-sha-256", "-E", "UTF8")
        options = f"-c listen_addresses=127.0.0.1 -c port={pg.port} -c unix_socket_directories={base}"
        started = True
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        psql = shutil.which("psql", path=str(bin_dir)) or shutil.which("psql")
        assert psql, "psql not found"
        run(psql, "-h", pg.host, "-p", str(pg.port), "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1",
            "-q", "-c", f"CREATE ROLE {pg.user} LOGIN PASSWORD '{pg.password}'",
            "-c", f"CREATE DATABASE {pg.database} OWNER {pg.user}", user=False)  # one -c, one transaction
        yield pg
    finally:
        if started:
            stopped = subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                                      "-t", "60", "stop"], cwd=base, capture_output=True, timeout=120)
            pid_file = data / "postmaster.pid"
            if stopped.returncode != 0 and pid_file.is_file():  # pg_ctl could not stop it: end it ourselves
                with contextlib.suppress(ValueError, ProcessLookupError):
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def tracking_server(postgres: Postgres, tmp_path: Path) -> Iterator[str]:
    """`mlflow server` on the PostgreSQL database, 127.0.0.1:<free port>; yields its URL."""
    # SQLAlchemy 2.1 (MLflow's store) opens postgresql:// URIs with psycopg 3, no longer psycopg2
    pytest.importorskip("psycopg", reason="mlflow server needs psycopg 3 for postgresql:// URIs "
                                          "(pip install 'psycopg[binary]'; it is in the dev extra)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "mlflow-server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", postgres.uri,
                                 "--default-artifact-root", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
                                 "--port", str(port), "--workers", "1"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        seconds = wait_for_health(url, proc, log, SERVER_START_S)
        print(f"mlflow server healthy after {seconds:.1f} s")
        # The first store call creates the schema in PostgreSQL (migrations): do it before the sweep.
        assert api(url, "experiments/search", {"max_results": 10})["experiments"][0]["name"] == "Default"
        yield url
    finally:
        stop(proc)


def search_runs(url: str, experiment_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    token = None
    while True:
        payload: dict[str, Any] = {"experiment_ids": [experiment_id], "max_results": 1000}
        if token:
            payload["page_token"] = token
        page = api(url, "runs/search", payload)
        runs += page.get("runs", [])
        token = page.get("next_page_token")
        if not token:
            return runs


def as_dict(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {item["key"]: item["value"] for item in items or []}


SECRET = "Pg%2FSecret99"  # a password with a '/', percent-encoded as a URI needs it


def started_unix(monotonic_start: float) -> float:
    return time.time() - (time.monotonic() - monotonic_start)


def assert_no_secret(console: str, results: Path, ray_sessions_since: float) -> None:
    """The password in none of: the console, any file under results/ (trials.csv, sweep.yaml, config.yaml,
    tune/tuner.pkl and Tune's experiment state, epochs.jsonl), the logs of the Ray sessions this run started."""
    needles = (SECRET.encode(), b"Secret99")
    assert not any(n.decode() in console for n in needles), "the password is on the console"
    files = [p for p in results.rglob("*") if p.is_file()]
    ray_root = Path("/tmp/ray")
    sessions = [d for d in ray_root.glob("session_2*") if d.is_dir() and d.stat().st_mtime >= ray_sessions_since]
    files += [p for d in sessions for p in (d / "logs").rglob("*") if p.is_file()]
    assert any(p.name == "tuner.pkl" for p in files) and sessions, "nothing to search: the layout changed?"
    leaks = [str(p) for p in files if any(n in p.read_bytes() for n in needles)]
    assert not leaks, f"the tracking password is in {leaks}"
    print(f"no password in the console, {len(files)} files under results/ and {len(sessions)} Ray session(s)")


def test_sweep_logs_to_a_postgres_backed_tracking_server(tracking_server: str, tmp_path: Path,
                                                          shared_models, shared_data) -> None:
    results = tmp_path / "results"
    started = time.monotonic()
    # Credentials in the URI, as a team's server behind basic auth takes them (this server ignores them):
    # nothing the sweep prints or writes, Ray's logs and Tune's pickled state included, may hold them.
    with_password = tracking_server.replace("http://", f"http://alice:{SECRET}@")
    proc = subprocess.run([sys.executable, "-m", "orchestrator.sweep", "--config", str(QUICKSTART), "--smoke",
                           "--set", f"model={MODELS / 'minilm-l3-h384'}", "--set", f"data_dir={DATA}",
                           "--set", f"results_dir={results}", "--set", f"tracking.uri={with_password}"],
                          cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"smoke sweep against the tracking server: {time.monotonic() - started:.0f} s")
    assert_no_secret(proc.stdout + proc.stderr, results, ray_sessions_since=started_unix(started))
    trials = pd.read_csv(results / "quickstart-smoke" / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 2 and set(trials["method.name"]) == {"pc_lora", "kd_lora"}
    errors = "".join(p.read_text()[-3000:] for p in (results / "quickstart-smoke" / "tune").glob("*/error.txt"))
    assert (trials["status"] == "complete").all(), (trials[["trial_id", "status"]], errors, proc.stdout[-3000:])
    assert not (results / "mlflow.db").exists(), "the sweep wrote a local sqlite database instead of the server"

    exp = api(tracking_server, "experiments/get-by-name", params="experiment_name=quickstart-smoke")["experiment"]
    runs = search_runs(tracking_server, exp["experiment_id"])
    parents = [r for r in runs if as_dict(r["data"].get("tags")).get("sweep_role") == "parent"]
    assert len(parents) == 1, [r["info"]["run_name"] for r in runs]
    parent = parents[0]
    assert parent["info"]["status"] == "FINISHED"
    assert as_dict(parent["data"].get("metrics"))["hypervolume"] > 0
    children = [r for r in runs if as_dict(r["data"].get("tags")).get("mlflow.parentRunId") == parent["info"]["run_id"]
                and as_dict(r["data"].get("tags")).get("sweep_role") != "teacher"]
    assert sorted(as_dict(r["data"]["tags"])["trial_id"] for r in children) == sorted(trials["trial_id"])
    teachers = [r for r in runs if as_dict(r["data"].get("tags")).get("sweep_role") == "teacher"]
    assert len(teachers) == 1  # KD-LoRA's, a child of the sweep in its experiment
    assert len(runs) == 1 + len(trials) + len(teachers)
    for child in children:
        tags, metrics, params = (as_dict(child["data"].get(k)) for k in ("tags", "metrics", "params"))
        row = trials[trials["trial_id"] == tags["trial_id"]].iloc[0]
        assert child["info"]["status"] == "FINISHED" and tags["full_budget"] == "true"
        assert child["info"]["run_name"] == f"{row['method.name']}-r{int(row['method.rank'])}-{row['trial_id']}"
        assert metrics["metric"] == pytest.approx(row["metric"])
        assert metrics["params"] == pytest.approx(row["params"])
        assert params["method.name"] == row["method.name"]
        # artifacts went to the server's artifact root, not to the sweep's results folder
        artifact_dir = Path(re.sub(r"^file://", "", child["info"]["artifact_uri"]))
        assert artifact_dir.is_relative_to(tmp_path / "artifacts"), artifact_dir
        assert json.loads((artifact_dir / "metrics.json").read_text())["metric"] == pytest.approx(row["metric"])
    # a curve, not only the last value: the history of the loss is in the database
    history = api(tracking_server, "metrics/get-history", params=f"run_id={children[0]['info']['run_id']}&metric_key=loss")
    assert history["metrics"] and all("value" in m for m in history["metrics"])
