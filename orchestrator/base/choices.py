"""One wording for a value that is not one of a fixed set: `KEY: unknown WHAT 'x'; choose one of a, b, c`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orchestrator.base.typed import _show


def unknown_choice(key: str | None, what: str, value: Any, choices: Iterable[Any]) -> str:
    """The message for `value` outside `choices`, naming the key (when there is one) and every valid choice:
    unknown_choice("method.name", "method", "pc-lora", ("fft", "lora")) ->
    "method.name: unknown method 'pc-lora'; choose one of fft, lora"."""
    head = f"{key}: " if key else ""
    return f"{head}unknown {what} {_show(value)}; choose one of {', '.join(map(str, choices))}"
