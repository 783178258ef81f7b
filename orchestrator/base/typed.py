"""Typed construction of dataclasses from plain dicts (YAML, --set, a worker's Config.to_dict()).

Generic over any dataclass tree: `build` converts and checks every value against its field's type
hint and appends one message per problem, naming the dotted key; `show` keeps messages short and
free of secrets. orchestrator/config/schema.py builds its `Config` with these.
"""

from __future__ import annotations

import dataclasses
import re
import reprlib
import types
import typing
from typing import Any, Literal, Union

from orchestrator.base.numbers import is_finite_number

# Bounds on what a config may hold, so that hostile or mistyped input ends in a clean error instead of
# an overflow, a file name the OS refuses, or a message megabytes long.
MAX_STRING = 4096          # PATH_MAX on Linux
MAX_INT = 2**63            # what Optuna, Ray and MLflow store


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 120
_REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxtuple = 6
_REPR.maxlevel = 2


def _show(value: Any) -> str:
    """A bounded repr for messages: long strings, deep or aliased YAML structures and huge ints stay
    short, and passwords or tokens are masked (a string before it is cut, so no part of one shows)."""
    from orchestrator.base.redact import redact

    try:
        return redact(_REPR.repr(redact(value) if isinstance(value, str) else value))
    except (ValueError, RecursionError):  # an int of more than 4300 digits has no repr
        return f"<{type(value).__name__}>"


def _key_text(key: Any) -> str:
    """A mapping key as messages print it: plain text as is, anything odd (empty, long, not a string) as repr."""
    if isinstance(key, str) and key.isprintable() and 0 < len(key) <= 80 and ":" not in key and key == key.strip():
        return key
    return _show(key)


def _why(value: Any) -> str:
    """Why a value of the right kind was still refused by _coerce."""
    if isinstance(value, float) and not is_finite_number(value):
        return " (NaN and infinity are not allowed)"
    if isinstance(value, int) and not isinstance(value, bool) and not -MAX_INT <= value < MAX_INT:
        return " (out of range)"
    if isinstance(value, str) and (len(value) > MAX_STRING or "\x00" in value):
        return f" (at most {MAX_STRING} characters, no NUL character)"
    return ""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false",
            type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


_YAML11_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, value converted to `tp`); ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, converted = _coerce(value, arg)
            if ok:
                return True, converted
        return False, value
    if origin is Literal:
        return value in typing.get_args(tp), value
    if origin is list:
        if not isinstance(value, list):
            return False, value
        (item_tp,) = typing.get_args(tp)
        out = []
        for item in value:
            ok, converted = _coerce(item, item_tp)
            if not ok:
                return False, value
            out.append(converted)
        return True, out
    if origin is dict:
        return isinstance(value, dict), value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool) and -MAX_INT <= value < MAX_INT, value
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not is_finite_number(value):  # NaN, ±inf, an int too large for a float
                return False, value
            return True, float(value)
        if isinstance(value, str) and _YAML11_EXPONENT.fullmatch(value.strip()):
            # YAML 1.1 reads `5e-5` (no dot) as a string; every user means the number.
            return True, float(value)
        return False, value
    if tp is str:
        return isinstance(value, str) and len(value) <= MAX_STRING and "\x00" not in value, value
    return False, value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _build(cls: type, raw: Any, prefix: str, problems: list[str]) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(f"{prefix.rstrip('.') or 'config'}: expected a mapping of keys, got "
                        f"{type(raw).__name__} ({_show(raw)}); write it as `key: value` lines")
        return cls()
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}{_key_text(key)}"
        if key not in names:
            close = _closest(key, names)
            hint = f"; did you mean '{prefix}{close}'?" if close else ""
            problems.append(f"{dotted}: unknown key{hint} (known keys: {', '.join(names)})")
            continue
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{dotted}.", problems)
            continue
        ok, converted = _coerce(value, tp)
        if not ok:
            problems.append(f"{dotted}: expected {_type_name(tp)}, got {_show(value)}{_why(value)}")
            continue
        kwargs[key] = converted
    return cls(**kwargs)


def _closest(word: Any, options: list[str]) -> str | None:
    import difflib

    if not isinstance(word, str) or len(word) > 200:  # a YAML key may be a number, null, a date, ...
        return None
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return match[0] if match else None
