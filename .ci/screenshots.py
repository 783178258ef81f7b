"""The README's screenshots of a finished sweep, rendered by headless Chromium (`.ci/setup` installs it):
its MLflow runs table and charts (served by `python -m orchestrator ui`), its HTML report and its pareto.png.

    .venv/bin/python .ci/screenshots.py --results results --sweep quickstart --out results/screenshots

Writes only under --out (mlflow-runs.png, mlflow-charts.png, report.png, pareto.png); the report is built in a
temporary folder, not in the sweep's.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium() -> str:
    found = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if found is None:
        sys.exit("chromium not found: run `bash .ci/setup` (apt-get install chromium)")
    return found


def shoot(url: str, shot: Path, profile: Path, size: str = "1400,900", budget_ms: int = 20000) -> None:
    subprocess.run([chromium(), *FLAGS, f"--window-size={size}", f"--user-data-dir={profile}",
                    f"--virtual-time-budget={budget_ms}", f"--screenshot={shot}", url],
                   check=True, capture_output=True, timeout=180)
    print(f"wrote {shot}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_ui(results: Path, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "ui", "--results", str(results), "--port",
                             str(port)], stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"orchestrator ui exited with {proc.returncode}; its log: {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    sys.exit(f"orchestrator ui did not answer in 120 s; its log: {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("results"), help="the sweep's results_dir")
    parser.add_argument("--sweep", default="quickstart", help="the sweep's name (its folder under --results)")
    parser.add_argument("--out", type=Path, default=Path("results/screenshots"), help="where the PNGs go")
    args = parser.parse_args()
    from orchestrator.base.sweep_folder import SweepFolder

    folder = SweepFolder.under(args.results, args.sweep)
    if not folder.trials_csv.is_file():
        sys.exit(f"{folder.trials_csv} not found: run the sweep first (or pass --results / --sweep)")
    from mlflow.tracking import MlflowClient

    from orchestrator.tracking import runs as tracking

    args.out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder.pareto_png, args.out / folder.pareto_png.name)
    print(f"wrote {args.out / 'pareto.png'}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        report = work / "report"
        subprocess.run([sys.executable, "-m", "orchestrator", "report", args.sweep, "--results", str(args.results),
                        "--out", str(report)], check=True)
        shoot((report / "index.html").resolve().as_uri(), args.out / "report.png", work / "p0", size="1400,1400",
              budget_ms=5000)
        experiment = MlflowClient(f"sqlite:///{(args.results / tracking.DB_FILE).resolve()}"
                                  ).get_experiment_by_name(args.sweep)
        port = free_port()
        ui = serve_ui(args.results, port, work / "ui.log")
        try:
            page = tracking.view_url(f"http://127.0.0.1:{port}", experiment.experiment_id)
            shoot(page, args.out / "mlflow-runs.png", work / "p1")
            shoot(tracking.chart_view(page), args.out / "mlflow-charts.png", work / "p2", size="1400,1000")
        finally:
            ui.terminate()
            ui.wait(timeout=30)


if __name__ == "__main__":
    main()
