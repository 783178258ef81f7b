"""The two file primitives every writer shares: an atomic replace and an exclusive lock.

Trials on several nodes write into one sweep folder, and a driver can be killed mid-write; so a
file that others read (metrics.json, trials.csv, the leaderboards) is written to a temporary name
beside it and moved into place, and whatever must happen once (a teacher, a rung record, a
leaderboard refresh) happens under an flock on a lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.base.numbers import is_finite_number


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` (os.replace: atomic on
    POSIX), on failure it is removed. A unique name, so two writers never share a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def finite_or_none(value: Any) -> Any:
    """NaN and ±inf as None, recursively: json.dumps would write them as bare NaN, which is not JSON."""
    if isinstance(value, float) and not is_finite_number(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    """Strict JSON (a non-finite number becomes null), keys sorted, written atomically."""
    atomic_write_text(path, json.dumps(finite_or_none(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (created with its folder), held for the `with` block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class LockHeld(Exception):
    """Another live process holds the lock; `holder` is the pid it wrote into the lock file ('' if unknown)."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path, self.holder = path, holder
        super().__init__(f"{path} is held by pid {holder or '?'}")


@contextlib.contextmanager
def held_lock(path: Path) -> Iterator[None]:
    """An flock on `path` held for the block, taken at once or not at all (LockHeld): for what must not run
    twice at the same time, such as one sweep name. The kernel drops an flock when its holder dies, so a
    killed process leaves no stale lock; the file (holding the holder's pid, for messages) is removed on exit.
    """
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)  # CLOEXEC: Ray's processes do not inherit it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise LockHeld(path, holder) from None
        try:  # the previous holder may have removed the file between our open and flock: lock the current one
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still held: a waiter that opened it sees another inode and retries
        os.close(fd)
