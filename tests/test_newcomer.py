"""A newcomer pastes what the tool prints (issue 32): every command of a sweep's closing summary works in a
fresh shell without an activated venv, from the directory the sweep ran in."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from orchestrator.base import shell
from orchestrator.search import sweep_console
from orchestrator.spec.load import load_config
from tests.conftest import DATA, MODELS, REPO

QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"
# A login shell's PATH on Debian: no venv's bin/, so a bare `python` or `pip` is not this project's.
CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"),
             "LANG": "C.UTF-8", "TMPDIR": os.environ.get("TMPDIR", "/tmp")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_printed_paths_are_relative_to_the_working_directory_and_quoted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert shell.shell_path(tmp_path / "results" / "quickstart") == "results/quickstart"
    assert shell.shell_path(tmp_path / "python") == "./python"  # never looked up on PATH
    assert shell.shell_path("/elsewhere/my results") == "'/elsewhere/my results'"
    monkeypatch.setattr(sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    assert shell.module_command("orchestrator", "report", "results/q") == ".venv/bin/python -m orchestrator report results/q"
    line = shell.dashboard_command(f"sqlite:///{tmp_path}/results/q/optuna.db")
    assert line == (".venv/bin/python -m pip install 'optuna-dashboard>=0.21,<0.22' && "
                    ".venv/bin/optuna-dashboard sqlite:///results/q/optuna.db")


def test_the_dashboard_extra_is_what_the_summary_installs() -> None:
    # (tomllib is Python 3.11+; the project supports 3.10)
    line = re.search(r'(?m)^dashboard = \[(.*)\]$', (REPO / "pyproject.toml").read_text())
    assert line and line.group(1) == f'"{shell.DASHBOARD_REQUIREMENT}"'


def test_the_dashboard_line_only_where_a_study_exists(tmp_path: Path) -> None:
    """A grid (and --smoke's plain grid) has no Optuna study: no line pointing at a database that is not there."""
    import pandas as pd

    cfg = load_config(QUICKSTART, [f"results_dir={tmp_path}"])
    sweep_dir = tmp_path / cfg.name
    sweep_dir.mkdir()
    empty = pd.DataFrame({"status": [], "full_budget": []})
    assert not any("Optuna dashboard" in line for line in sweep_console.summary(cfg, empty, empty, sweep_dir))
    (sweep_dir / "optuna.db").touch()
    assert any("Optuna dashboard" in line for line in sweep_console.summary(cfg, empty, empty, sweep_dir))
    grid = load_config(QUICKSTART, [f"results_dir={tmp_path}", "search.sampler=grid", "search.scheduler=none",
                                    'space={"method.rank": {"grid": [4, 8]}}'])
    assert not any("Optuna dashboard" in line for line in sweep_console.summary(grid, empty, empty, sweep_dir))


def test_the_readme_runs_the_venv_interpreter() -> None:
    """Outside the cluster section (whose entrypoints run the cluster's own python), every command of this
    project's CLI names the venv's interpreter, which the README's install made and never activates."""
    text = (REPO / "README.md").read_text()
    start = text.index("## Running on a Ray cluster")
    local = text[:start] + text[text.index("\n## ", start + 5):]
    assert local.count(".venv/bin/python -m orchestrator") >= 10
    assert not re.findall(r"(?<![\w/.-])python3? -m orchestrator", local)
    assert not re.findall(r"(?<![\w/.-])(?<!-m )(?:pip install|optuna-dashboard sqlite)", local)


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        assert proc.poll() is None, f"exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer in {seconds} s")


def serve_as_printed(command: str, cwd: Path, health: str, port: int) -> None:
    """Start a printed server command in a fresh shell (with a free port appended: the default may be taken
    on a shared machine), wait until it answers, stop it with SIGTERM to the PID the shell got."""
    proc = subprocess.Popen(["bash", "-c", f"{command} --port {port}"], cwd=cwd, env=CLEAN_ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(f"http://127.0.0.1:{port}{health}", proc)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.mark.integration
def test_every_command_the_summary_prints_works_in_a_fresh_shell(tmp_path: Path, shared_models, shared_data) -> None:
    """The README's way: `.venv/bin/python -m orchestrator.sweep ...` from the checkout, nothing activated."""
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    cfg = yaml.safe_load(QUICKSTART.read_text())
    cfg.update({"name": "newcomer", "model": str(MODELS / "minilm-l3-h384"), "data_dir": str(DATA),
                "results_dir": "results", "space": {"method.rank": {"choice": [2, 4]}}})
    cfg["method"].update({"name": "pc_lora", "kd_weight": 0.0})
    cfg["train"].update({"epochs": 1, "max_examples": 32, "max_length": 32})
    cfg["eval"] = {"max_examples": 32}
    cfg["search"] = {"sampler": "random", "num_samples": 2, "scheduler": "none", "max_concurrent_trials": 2,
                     "objectives": ["metric:max", "params:min"]}
    (tmp_path / "newcomer.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(["bash", "-c", ".venv/bin/python -m orchestrator.sweep --config newcomer.yaml"],
                          cwd=tmp_path, env=CLEAN_ENV, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    printed = {m.group(1): m.group(2) for m in re.finditer(r"(?m)^\[newcomer\] (report|MLflow UI|Optuna dashboard): "
                                                               r"(.*?)(?:   \(.*|, then .*)?$", proc.stdout)}
    assert printed["report"] == ".venv/bin/python -m orchestrator report results/newcomer", proc.stdout
    assert printed["MLflow UI"] == ".venv/bin/python -m orchestrator ui --results results"
    assert printed["Optuna dashboard"].endswith(".venv/bin/optuna-dashboard sqlite:///results/newcomer/optuna.db")

    report = subprocess.run(["bash", "-c", printed["report"]], cwd=tmp_path, env=CLEAN_ENV, capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stdout + report.stderr
    assert (tmp_path / "results" / "newcomer" / "report" / "index.html").is_file()
    serve_as_printed(printed["MLflow UI"], tmp_path, "/health", free_port())
    install, dashboard = printed["Optuna dashboard"].split(" && ")
    if subprocess.run([sys.executable, "-c", "import optuna_dashboard"]).returncode != 0:
        pytest.skip("optuna-dashboard is not installed in this venv (installing it needs the package index)")
    done = subprocess.run(["bash", "-c", install], cwd=tmp_path, env=CLEAN_ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    serve_as_printed(dashboard, tmp_path, "/", free_port())
