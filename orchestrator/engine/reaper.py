"""Takes down the local Ray a CLI process started when that process dies without shutting it down.

A driver killed with SIGKILL (or by the OOM killer) cannot run `ray.shutdown()`. Ray's GCS and raylet
fate-share with it and go, but the dashboard and runtime-env agents notice only when their next check of
the raylet fails: 288 s after the kill on a 2-core machine, listening on the node's address all that time.
`watch(pid)` starts this module as a detached process that remembers every Ray process below the driver
and, once the driver is gone, sends them SIGTERM, then SIGKILL to any still there 5 s later. Linux only
(it reads /proc); elsewhere `watch` does nothing.

    python -m orchestrator.reaper DRIVER_PID    (started by orchestrator.run.ensure_ray, not by hand)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 1.0
TERM_GRACE_S = 5.0
PROC = Path("/proc")


def watch(driver_pid: int) -> None:
    """Reap the local Ray of `driver_pid` after it dies (a no-op without /proc)."""
    if not (PROC / str(driver_pid) / "stat").is_file():
        return
    # A session of its own: a Ctrl-C or a kill of the driver's process group must not take the reaper too.
    subprocess.Popen([sys.executable, "-m", "orchestrator.engine.reaper", str(driver_pid)], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     cwd=Path(__file__).resolve().parent.parent)


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of `pid`, or None once it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the command name in (...) may hold spaces
    return int(fields[1]), int(fields[19])


def _is_ray(pid: int) -> bool:
    try:
        cmdline = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return cmdline.startswith(b"ray::") or b"/ray/" in cmdline


def _ray_descendants(root: int) -> dict[int, int]:
    """Ray processes below `root`: pid -> start time (the pair names a process even after pid reuse)."""
    stats = {int(p.name): s for p in PROC.iterdir() if p.name.isdigit() and (s := _stat(int(p.name)))}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        if _is_ray(pid):
            found[pid] = stats[pid][1]
    return found


def _signal_alive(known: dict[int, int], sig: signal.Signals) -> int:
    alive = 0
    for pid, started in known.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == started:
            alive += 1
            with contextlib.suppress(OSError):  # gone between the check and the signal
                os.kill(pid, sig)
    return alive


def reap(driver_pid: int) -> None:
    driver = _stat(driver_pid)
    if driver is None:
        return
    known: dict[int, int] = {}
    while (now := _stat(driver_pid)) is not None and now[1] == driver[1]:
        known.update(_ray_descendants(driver_pid))
        time.sleep(POLL_S)
    # Orphans have moved to init by now, so the processes recorded while the driver lived are the list.
    if _signal_alive(known, signal.SIGTERM):
        time.sleep(TERM_GRACE_S)
        _signal_alive(known, signal.SIGKILL)


if __name__ == "__main__":
    reap(int(sys.argv[1]))
