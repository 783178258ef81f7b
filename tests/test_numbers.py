"""The one check of a finite number (orchestrator/base/numbers.py) and the readers and writers that use it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.base.numbers import is_finite_number, is_missing


@pytest.mark.parametrize(("value", "finite"), [
    (0, True), (3, True), (-2.5, True), (1e308, True), (np.float64(0.25), True),
    (True, False), (False, False), (None, False), ("1.0", False), (math.nan, False), (math.inf, False),
    (-math.inf, False), (np.float64("nan"), False), (10**400, False), ([1.0], False),
])
def test_is_finite_number(value: object, finite: bool) -> None:
    assert is_finite_number(value) is finite


@pytest.mark.parametrize(("value", "missing"), [
    (None, True), (math.nan, True), (np.float64("nan"), True),
    (0, False), (0.0, False), ("", False), (math.inf, False), ("nan", False),
])
def test_is_missing(value: object, missing: bool) -> None:
    assert is_missing(value) is missing


def test_the_readers_keep_only_finite_numbers() -> None:
    """The call sites: MLflow's metrics, the console's numbers, the strict JSON records, a regression label."""
    from orchestrator.base.fs import finite_or_none
    from orchestrator.engine.console import _number
    from orchestrator.tracking.runs import numeric

    record = {"a": 1, "b": 2.5, "flag": True, "nan": math.nan, "inf": -math.inf, "huge": 10**400, "text": "x"}
    assert numeric(record) == {"a": 1.0, "b": 2.5}
    assert [_number(record, k) for k in record] == [1.0, 2.5, None, None, None, None, None]
    assert finite_or_none({"x": [math.nan, 1.0, math.inf], "y": 10**400}) == {"x": [None, 1.0, None], "y": 10**400}


def test_a_config_float_and_a_regression_label_must_be_finite() -> None:
    """The other call sites: a config value coerced to float (base/typed.py), an STS-B score read from a TSV."""
    from orchestrator.config.schema import Config, ConfigError, with_values
    from orchestrator.tasks import get_task
    from orchestrator.tasks.tsv import _label_parser

    assert with_values(Config(), {"train.lr": 1}).train.lr == 1.0
    for bad in (math.inf, 10**400):
        with pytest.raises(ConfigError, match="train.lr"):
            with_values(Config(), {"train.lr": bad})
    parse = _label_parser(get_task("glue/stsb"))
    assert [parse(raw) for raw in ("2.5", "inf", "nan", "x")] == [2.5, None, None, None]
