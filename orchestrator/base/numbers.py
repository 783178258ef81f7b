"""What counts as a number in a record: the one check every reader and writer of metrics uses.

A metric can arrive as an int, a float, a numpy scalar (pandas rows), a bool (which Python calls an int),
None, NaN or ±inf (a diverged run), or a huge int that no float holds. These two functions decide.
"""

from __future__ import annotations

import math
from typing import Any


def is_finite_number(value: Any) -> bool:
    """A real number a float can hold exactly enough: an int or a float (numpy's float64 included), not bool, not NaN or ±inf,
    not an int too large for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        return False


def is_missing(value: Any) -> bool:
    """None or NaN: a blank cell of trials.csv (pandas reads it as NaN), a metric a run did not have."""
    return value is None or (isinstance(value, float) and math.isnan(value))
