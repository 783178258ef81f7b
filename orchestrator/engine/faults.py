"""Fault injection for the tests that kill a worker or a driver mid-run (tests/test_train.py, test_multinode.py,
test_reliability_sweeps.py).

Kept out of the training loop's logic: the loop calls `before_training` and `after_epoch` and nothing happens
unless a test sets ORCH_TEST_PID_FILE or ORCH_TEST_START_PID_FILE.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def _pause(variable: str) -> None:
    """Record this process's pid once in the file `variable` names, then wait (ORCH_TEST_PAUSE s) to be killed."""
    pid_file = os.environ.get(variable)
    if not pid_file or Path(pid_file).exists():
        return
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("ORCH_TEST_PAUSE", "60")))


def before_training(rank: int) -> None:
    """Rank 0 with its model and data ready, before its first epoch and so before any checkpoint
    (ORCH_TEST_START_PID_FILE): a kill here leaves a trial that Tune knows only from its experiment state. The
    first ORCH_TEST_START_SKIP runs to come here go on (a sweep's later trial is the one to pause)."""
    pid_file = os.environ.get("ORCH_TEST_START_PID_FILE")
    if rank != 0 or not pid_file:
        return
    with open(f"{pid_file}.seen", "a+") as seen:  # one line per run that came here
        seen.write("x\n")
        seen.seek(0)
        if len(seen.readlines()) <= int(os.environ.get("ORCH_TEST_START_SKIP", "0")):
            return
    _pause("ORCH_TEST_START_PID_FILE")


def after_epoch(rank: int, epoch: int) -> None:
    """Rank 0 after its first epoch (index 0, checkpoint reported) records its pid once, then waits
    (ORCH_TEST_PAUSE s) to be killed: the run then has an epoch left to train after it resumes. (After
    the last epoch, as this hook once fired, a kill could land before or after the final checkpoint was
    registered, and the resumed worker then had nothing to train: the resume test's flake.)"""
    if rank == 0 and epoch == 0:
        _pause("ORCH_TEST_PID_FILE")
