"""`orchestrator.asha`, the name notes use for ASHA's rule: it is decided inside the trial, in
orchestrator/engine/asha.py."""

from orchestrator.base.rungs import rung_epochs
from orchestrator.engine.asha import mo_should_stop, record_and_decide, should_stop

__all__ = ["mo_should_stop", "record_and_decide", "rung_epochs", "should_stop"]
