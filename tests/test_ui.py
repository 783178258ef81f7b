"""`python -m orchestrator.ui`: its refusals (fast), and the real thing: the MLflow UI served on
127.0.0.1 for a results folder that a real sweep wrote, driven by headless Chromium (Debian's
chromium, `.ci/setup` installs it), which must list the trial runs with their metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from orchestrator import ui
from tests.conftest import DATA, MODELS, REPO

QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
# As root Chromium needs --no-sandbox; the background-networking flags keep it from calling out (the
# machine's closed network refuses those calls, noisily): ../.library/env notes.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1400,900"]
SERVER_START_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ui_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.ui", *args]


# ---------------------------------------------------------------- refusals, no server started


def test_missing_database_is_refused_with_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(ui_cmd("--results", str(tmp_path / "nothing-here")), capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert "no MLflow database" in proc.stderr and str(tmp_path / "nothing-here" / "mlflow.db") in proc.stderr


def test_non_loopback_host_needs_allow_remote(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").touch()
    proc = subprocess.run(ui_cmd("--results", str(tmp_path), "--host", "0.0.0.0"), capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert "--allow-remote" in proc.stderr and "authenticat" in proc.stderr


def test_port_in_use_is_refused_before_mlflow_starts(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").touch()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert ui.main(["--results", str(tmp_path), "--port", str(port)]) == 2


def test_a_missing_mlflow_is_named_with_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    """Issue 32: `No module named mlflow` after a "ready" message, exit 1. Now: checked first, exit 2."""
    import importlib.util

    (tmp_path / "mlflow.db").touch()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    monkeypatch.setattr(ui.os, "execve", lambda *a: pytest.fail("started a server without mlflow"))
    monkeypatch.setattr(ui.subprocess, "Popen", lambda *a, **k: pytest.fail("started a server without mlflow"))
    assert ui.main(["--results", str(tmp_path), "--port", str(free_port())]) == 2
    err = capsys.readouterr()
    assert "mlflow is not importable" in err.err and "pip install -e ." in err.err and "ready" not in err.out


# A stand-in for `mlflow server`: noisy like it (an access line per request, the --host 0.0.0.0 advice), answers
# /health 503 until a file appears, then 200; writes its pid.
FAKE_SERVER = """
import http.server, os, sys
from pathlib import Path
port, folder = int(sys.argv[1]), Path(sys.argv[2])
(folder / "server.pid").write_text(str(os.getpid()))
print("To allow connections from other hosts, use --host 0.0.0.0", flush=True)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = (folder / "go").exists()
        if ok:
            (folder / "answered").touch()
        self.send_response(200 if ok else 503)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def test_ui_says_ready_only_when_the_server_answers_and_its_pid_stops_it(tmp_path: Path) -> None:
    """Issue 32: "ready" only after /health answers; SIGTERM to the PID a shell gets stops the server too;
    only the tool's own lines on the console (the server's go to its log)."""
    (tmp_path / "mlflow.db").touch()
    (tmp_path / "fake.py").write_text(FAKE_SERVER)
    port = free_port()
    script = (f"import sys; from orchestrator import ui; ui.server_command = lambda *a, **k: "
              f"[sys.executable, {str(tmp_path / 'fake.py')!r}, '{port}', {str(tmp_path)!r}]; "
              f"sys.exit(ui.main(['--results', {str(tmp_path)!r}, '--port', '{port}']))")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("MLflow UI for ") and "starting" in first
        deadline = time.monotonic() + 60
        while not (tmp_path / "server.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        (tmp_path / "go").touch()  # from now on /health answers
        ready = proc.stdout.readline()
        assert ready.startswith(f"ready: http://127.0.0.1:{port}") and (tmp_path / "answered").exists()
        server = int((tmp_path / "server.pid").read_text())
        os.kill(proc.pid, signal.SIGTERM)  # the PID only, as `kill $!` does
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        with pytest.raises(ProcessLookupError):
            for _ in range(100):  # the server ends with it (reaped by the tool, so it does not linger)
                os.kill(server, 0)
                time.sleep(0.1)
        rest, err = proc.communicate(timeout=30)
        assert "0.0.0.0" not in first + ready + rest + err and "GET" not in rest + err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_help_describes_every_option() -> None:
    text = ui.build_parser().format_help()
    for option in ("--results", "--host", "--port", "--allow-remote", "--allowed-hosts", "--verbose"):
        assert option in text
    assert ui.is_loopback("127.0.0.1") and ui.is_loopback("localhost") and ui.is_loopback("::1")
    assert not ui.is_loopback("0.0.0.0") and not ui.is_loopback("192.168.1.5")
    cmd = ui.server_command(Path("/r"), "127.0.0.1", 5000)
    assert "sqlite:////r/mlflow.db" in cmd and "/r/mlartifacts" in cmd and cmd[cmd.index("--workers") + 1] == "1"


# ---------------------------------------------------------------- the UI in a browser


class GridRows(HTMLParser):
    """The runs table of the rendered page: {row-id (the MLflow run id): {col-id: cell text}}."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str | None, str | None]] = []
        self.rows: dict[str, dict[str, str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        a = dict(attrs)
        self.stack.append((tag, a.get("row-id") if a.get("role") == "row" else None,
                           a.get("col-id") if a.get("role") == "gridcell" else None))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        row = next((r for _, r, _ in reversed(self.stack) if r), None)
        col = next((c for _, _, c in reversed(self.stack) if c), None)
        if row and col and data.strip():
            cells = self.rows.setdefault(row, {})
            cells[col] = (cells.get(col, "") + " " + data.strip()).strip()


def grid_rows(html: str) -> dict[str, dict[str, str]]:
    parser = GridRows()
    parser.feed(html)
    return parser.rows


@pytest.fixture(scope="module")
def ui_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder written by a real sweep: three PC-LoRA trials (ranks 2, 4 and 8), two side by side.

    Smaller than the quickstart smoke sweep (no KD-LoRA teacher to fine-tune): the browser is what is
    under test here; tests/test_sweep.py covers the sweep itself.
    """
    if not (MODELS / "minilm-l3-h384" / "config.json").is_file() or not (DATA / "glue" / "SST-2").is_dir():
        pytest.skip(f"offline models/data not found under {MODELS.parent}")
    if CHROMIUM is None:
        pytest.skip("chromium not found; run .ci/setup (apt-get install chromium)")
    results = tmp_path_factory.mktemp("ui-results")
    cfg = yaml.safe_load(QUICKSTART.read_text())
    cfg.update({"name": "ui", "model": str(MODELS / "minilm-l3-h384"), "data_dir": str(DATA),
                "results_dir": str(results), "space": {"method.rank": {"grid": [2, 4, 8]}}})
    cfg["method"].update({"name": "pc_lora", "kd_weight": 0.0})
    cfg["train"].update({"epochs": 1, "max_examples": 32, "max_length": 32})
    cfg["eval"] = {"max_examples": 32}
    cfg["search"] = {"sampler": "grid", "max_concurrent_trials": 2, "objectives": ["metric:max", "params:min"]}
    path = results / "ui.yaml"
    path.write_text(yaml.safe_dump(cfg))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "orchestrator.sweep", "--config", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=900,
                          env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"sweep for the UI test: {time.monotonic() - started:.0f} s")
    assert (results / "mlflow.db").is_file()
    return results


@pytest.fixture
def ui_server(ui_results: Path, tmp_path: Path) -> Iterator[tuple[str, int, subprocess.Popen]]:
    port = free_port()
    log = tmp_path / "ui.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(ui_cmd("--results", str(ui_results), "--port", str(port)), cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={k: v for k, v in os.environ.items() if k != "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"})
    url = f"http://127.0.0.1:{port}"
    try:
        start = time.monotonic()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"orchestrator.ui exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() - start > SERVER_START_S:
                pytest.fail(f"the UI did not answer /health in {SERVER_START_S} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        print(f"orchestrator.ui healthy after {time.monotonic() - start:.1f} s")
        yield url, port, proc
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            except ProcessLookupError:
                pass


def api(url: str, path: str, payload: dict[str, Any] | None = None, params: str = "") -> dict[str, Any]:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(f"{url}/api/2.0/mlflow/{path}{'?' + params if params else ''}", data=data,
                                 headers={"Content-Type": "application/json"},
                                 method="GET" if data is None else "POST")
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)


def listening_addresses(port: int) -> set[str]:
    import psutil

    return {c.laddr.ip for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port}


def other_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses."""
    import psutil

    return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family == socket.AF_INET and not a.address.startswith("127.")]


def render(url: str, shot: Path, profile: Path, size: str = "1400,900", budget_ms: int = 20000) -> str:
    """The page's DOM after its scripts ran (virtual time waits for pending fetches), and a screenshot."""
    flags = [f"--window-size={size}" if f.startswith("--window-size=") else f for f in CHROMIUM_FLAGS]
    proc = subprocess.run([CHROMIUM, *flags, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                           f"--screenshot={shot}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def scatter_points(html: str) -> int:
    """Markers Plotly drew in the page's scatter charts."""
    return len(re.findall(r'class="point[ "]', html))


def axis_titles(html: str) -> set[str]:
    """The axis titles of the page's Plotly charts."""
    return set(re.findall(r'class="[xy]title"[^>]*data-unformatted="([^"]+)"', html))


@pytest.mark.integration
def test_ui_lists_the_trials_with_their_metrics_in_chromium(ui_server, ui_results: Path, tmp_path: Path) -> None:
    url, port, proc = ui_server
    # bound to loopback only: nothing listens on the port elsewhere, and the machine's other address refuses
    assert listening_addresses(port) == {"127.0.0.1"}
    for address in other_addresses()[:2]:
        with socket.socket() as sock, pytest.raises(OSError):
            sock.settimeout(5)
            sock.connect((address, port))

    trials = pd.read_csv(ui_results / "ui" / "trials.csv", dtype={"trial_id": str})
    assert len(trials) == 3
    exp_id = api(url, "experiments/get-by-name", params="experiment_name=ui")["experiment"]["experiment_id"]
    # The experiment carries this tool's view (tracking.DEFAULT_VIEW, set when the sweep created it): the
    # link the sweep prints opens the runs sorted by metric, listed flat, with the kept-% columns in view.
    from orchestrator.tracking import runs as tracking

    page = tracking.view_url(url, exp_id)
    shot = tmp_path / "experiment-page.png"
    by_trial: dict[str, dict[str, str]] = {}
    for attempt in range(3):  # the first render after start can find the server still warming its caches
        html = render(page, shot, tmp_path / f"chromium-profile-{attempt}")
        rows = grid_rows(html)
        by_trial = {t: cells for t in trials["trial_id"] for cells in rows.values()
                    if t in cells.get("attributes.`Run Name`", "")}
        if len(by_trial) == len(trials) and all("metrics.`params_kept_pct`" in c for c in by_trial.values()):
            break
    assert "Training runs" in html and "ui" in html
    assert set(by_trial) == set(trials["trial_id"]), f"trial rows not found in the page; rows: {rows}"
    for _, row in trials.iterrows():
        cells = by_trial[row["trial_id"]]
        assert float(cells["metrics.`metric`"]) == pytest.approx(row["metric"], rel=1e-6)
        assert float(cells["metrics.`params_kept_pct`"]) == pytest.approx(100 * row["params"] / row["base_params"],
                                                                         rel=1e-4)
        assert cells["params.`method.name`"] == row["method.name"]
        assert f"pc_lora-r{int(row['method.rank'])}-{row['trial_id']}" in cells["attributes.`Run Name`"]

    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1400, 900) and len(png) > 30_000, (width, height, len(png))
    print(f"screenshot: {shot} ({len(png)} bytes)")

    # The summary's second link, the same page as charts: every trial a point of metric against kept-%,
    # with the axes already chosen (tracking.DEFAULT_VIEW's charts), no clicks.
    chart_shot = tmp_path / "compare-view.png"
    sizes = {"params_kept_pct", "encoder_params_kept_pct", "flops_kept_pct"}
    for attempt in range(3):  # a cold page can be dumped before its charts have drawn
        # one chart per row: a window tall enough for all three (MLflow draws only the charts in view)
        # (Plotly loads lazily, three charts at once: more virtual time on a loaded machine)
        html = render(tracking.chart_view(page), chart_shot, tmp_path / f"chromium-charts-{attempt}", "1400,1500",
                      budget_ms=40000)
        if scatter_points(html) >= 3 * len(trials):
            break
    assert axis_titles(html) == sizes | {"metric"}, axis_titles(html)
    # one point per trial in each of the three panels; the parent run is not among the runs shown (issue 32)
    assert scatter_points(html) == 3 * len(trials), scatter_points(html)
    assert "sweep-ui" not in html and "matching runs" in html
    # each chart wide enough for its x-axis title (issue 32: `params_kept_` cut off in three narrow columns):
    # about 8 px a character at Plotly's title size, with room to spare
    widths = [float(w) for w in re.findall(r'<svg class="main-svg"[^>]*? width="([\d.]+)"', html)]
    assert widths and min(widths) >= 10 * max(map(len, sizes)), widths
    print(f"screenshot: {chart_shot}")

    # Ctrl-C (SIGINT to the foreground process group, as a terminal sends it) stops the server cleanly
    os.killpg(proc.pid, signal.SIGINT)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("orchestrator.ui still running 30 s after Ctrl-C")
    assert code in (0, -signal.SIGINT, 130), code
    print(f"orchestrator.ui exited with {code} after Ctrl-C")
    assert listening_addresses(port) == set()
    # only the tool's own lines (issue 32): no access log for the pages just loaded, no `--host 0.0.0.0` advice
    console = (tmp_path / "ui.log").read_text()
    assert "ready: http://127.0.0.1:" in console and "0.0.0.0" not in console and '"GET /' not in console, console
    assert "Warning" not in console, console
