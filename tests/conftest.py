"""Shared test fixtures: where the offline models and data live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MODELS = SHARED / "models"
DATA = SHARED / "data"


@pytest.fixture
def shared_models() -> Path:
    if not (MODELS / "minilm-l6-h384" / "config.json").is_file():
        pytest.skip(f"offline models not found at {MODELS}")
    return MODELS


@pytest.fixture
def shared_data() -> Path:
    if not (DATA / "glue" / "SST-2").is_dir():
        pytest.skip(f"offline data not found at {DATA}")
    return DATA


def pytest_configure(config: pytest.Config) -> None:
    # Tests that read whole offline datasets (seconds, not milliseconds); deselect with -m "not data".
    config.addinivalue_line("markers", "data: reads full offline datasets from ../shared/data; slower")


def headless_chromium(url: str, tmp_path: Path, shot: Path, *, size: str = "1400,1200",
                      budget_ms: int = 5000) -> tuple[str, list[str]]:
    """Load `url` in headless Chromium: (the DOM after its scripts ran, the page's console lines); a
    screenshot at `shot`. Skips when no Chromium is installed (.ci/setup installs it)."""
    import shutil
    import subprocess

    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if chromium is None:
        pytest.skip("chromium not found; run .ci/setup (apt-get install chromium)")
    # As root Chromium needs --no-sandbox; the background-networking flags keep it from calling out.
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--window-size={size}", f"--user-data-dir={tmp_path / 'chromium-profile'}",
             "--enable-logging=stderr", "--v=0", f"--virtual-time-budget={budget_ms}", f"--screenshot={shot}",
             "--dump-dom"]
    proc = subprocess.run([chromium, *flags, url], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    return proc.stdout, console


def pid_at_first_checkpoint(pid_file: Path, proc: Any, who: str, timeout: float = 300) -> int:
    """The pid orchestrator/faults.py writes once the training process has reported its first checkpoint
    (it then pauses, waiting to be killed); fails if `proc` ends or the time runs out first."""
    import time

    deadline = time.time() + timeout
    while not pid_file.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert pid_file.exists(), f"the {who} never reached its first checkpoint"
    time.sleep(0.5)  # the pid is written before the file is closed
    return int(pid_file.read_text())
