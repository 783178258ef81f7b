"""Shared test fixtures: where the offline models and data live."""

from __future__ import annotations

from pathlib import Path

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
