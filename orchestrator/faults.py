"""Fault injection for the tests that kill a worker mid-run (tests/test_train.py, test_multinode.py).

Kept out of the training loop's logic: the loop calls `after_epoch` once per epoch and nothing
happens unless the test sets ORCH_TEST_PID_FILE.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def after_epoch(rank: int, epoch: int) -> None:
    """Rank 0 after its first epoch (index 0, checkpoint reported) records its pid once, then waits
    (ORCH_TEST_PAUSE s) to be killed: the run then has an epoch left to train after it resumes. (After
    the last epoch, as this hook once fired, a kill could land before or after the final checkpoint was
    registered, and the resumed worker then had nothing to train: the resume test's flake.)"""
    pid_file = os.environ.get("ORCH_TEST_PID_FILE")
    if not pid_file or rank != 0 or epoch != 0 or Path(pid_file).exists():
        return
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("ORCH_TEST_PAUSE", "60")))
