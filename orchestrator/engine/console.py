"""What a person sees while a sweep runs: one line per epoch and per finished trial, tagged with the trial
id, and a progress line; Ray's and transformers' own output only with `--verbose`.

Without --verbose the sweep's Ray runs with `log_to_driver=False` (worker prints, Ray Train's and
PlacementGroupCleaner's warnings, transformers' load reports stay in Ray's log files) and Tune's status
tables are off; these lines come from the results the trials report to Tune instead.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from orchestrator.base.numbers import is_finite_number

VERBOSE_ENV = "ORCH_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def set_verbose(on: bool) -> None:
    """Set for this process and the local Ray it starts (workers inherit the environment)."""
    os.environ[VERBOSE_ENV] = "1" if on else "0"


def quiet_libraries() -> None:
    """transformers' load reports, progress bars and deprecation warnings off (unless --verbose)."""
    if verbose():
        return
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # "Creating initial MLflow database tables...": mlflow sets its logger's level from this variable when
    # imported, which may come after this call; the level set here covers an mlflow imported already.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:  # "A new study created in memory with name: ..." (optuna resets its level on first use)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:
        pass
    # Tune's legacy reporter at verbose=0 prints nothing; the new one still prints its configuration box.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def _number(result: dict[str, Any], key: str) -> float | None:
    value = result.get(key)
    if not is_finite_number(value):
        return None
    return float(value)


def _pct(part: float | None, whole: float | None) -> str:
    return "?" if part is None or not whole else f"{100 * part / whole:.1f} %"


def epoch_line(trial_id: str, method: str, result: dict[str, Any], epochs: int) -> str:
    """`712f8bfa pc_lora epoch 2/3 loss 0.41 acc 0.733 λ 0.12`."""
    parts = [trial_id, method, f"epoch {result.get('epoch', '?')}/{epochs}"]
    loss, metric, lam = _number(result, "loss"), _number(result, "metric"), _number(result, "lambda")
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    if metric is not None:
        parts.append(f"{result.get('metric_name', 'metric')} {metric:.4f}")
    if lam is not None:
        parts.append(f"λ {lam:.3f}")
    if result.get("diverged"):
        parts.append("DIVERGED (non-finite loss)")
    return " ".join(parts)


def trial_line(trial_id: str, method: str, label: str, result: dict[str, Any], status: str) -> str:
    """`712f8bfa pc_lora r=8, sine to 0.8 acc 0.733 params 54.7 % (enc 4.7 %) FLOPs 5.8 % train 2.2 min complete`.

    The time is the trial's `train_seconds` (metrics.json, the report's "train min"): its training and
    evaluation, from the start of its loop to its record; a KD-LoRA teacher's fine-tuning is not in it (the
    closing summary states it apart) and neither is the wait for a free core."""
    metric = _number(result, "metric")
    shown = "no metric" if metric is None else f"{result.get('metric_name', 'metric')} {metric:.4f}"
    sizes = (f"params {_pct(_number(result, 'params'), _number(result, 'base_params'))} "
             f"(enc {_pct(_number(result, 'params_no_embeddings'), _number(result, 'base_params_no_embeddings'))}) "
             f"FLOPs {_pct(_number(result, 'flops'), _number(result, 'base_flops'))}")
    seconds = _number(result, "train_seconds")
    took = "train ? min" if seconds is None else f"train {seconds / 60:.1f} min"
    return f"{trial_id} {method} {label} {shown} {sizes} {took} {status}".rstrip()


def epoch_seconds(result: dict[str, Any]) -> float | None:
    """Seconds per epoch of a running trial, from its own report: training steps and evaluation over the
    epochs this process ran (a KD-LoRA teacher's fine-tuning and the trial's start-up are not in them)."""
    spent = (_number(result, "train_loop_seconds") or 0.0) + (_number(result, "eval_seconds") or 0.0)
    ran = (_number(result, "epoch") or 0) - (_number(result, "resumed_from_epoch") or 0)
    return spent / ran if spent > 0 and ran > 0 else None


def eta_seconds(running: list[tuple[int, float | None]], pending: int, epochs: int, per_epoch: list[float],
                slots: int) -> float | None:
    """Time left if every trial runs all `epochs`: each running trial's epochs left (`running`: epochs done,
    its seconds per epoch or None) and `pending` trials' epochs at the mean of `per_epoch` (every seconds-per-
    epoch seen), shared by `slots` trials at a time. None until one epoch has been timed."""
    if not per_epoch:
        return None
    mean = sum(per_epoch) / len(per_epoch)
    left = sum(max(0, epochs - done) * (own or mean) for done, own in running) + pending * epochs * mean
    return left / max(1, slots)


def progress_line(counts: dict[str, int], total: int, best: float | None, started: float,
                  eta: float | None = None, *, bound: bool = False, pending: tuple[str, ...] = ()) -> str:
    """`trials 5/8 done (3 complete, 1 stopped, 1 diverged), 2 running; best metric 0.8312; 6.2 min, ETA 3.7 min`.

    `eta` from eta_seconds; `bound`: early stopping may end trials sooner (ETA ≤); `pending`: the auxiliary models
    still fine-tuning ("the KD-LoRA teacher"), whose time is not in the ETA."""
    done = sum(counts.get(k, 0) for k in ("complete", "stopped", "diverged", "error"))
    detail = ", ".join(f"{counts[k]} {k}" for k in ("complete", "stopped", "diverged", "error") if counts.get(k))
    elapsed = time.time() - started
    eta_text = ""
    if eta is not None and done < total:
        eta_text = f", ETA {'≤ ' if bound else ''}{eta / 60:.1f} min" + "".join(f" + {title}" for title in pending)
    best_text = "" if best is None else f"; best metric {best:.4f}"
    return (f"trials {done}/{total} done ({detail or 'none yet'}), {counts.get('running', 0)} running"
            f"{best_text}; {elapsed / 60:.1f} min{eta_text}")


@dataclass
class Progress:
    """The progress line's state, from the trials' own reports: counts by status, the best complete metric,
    and for the ETA each running trial's epochs done and every trial's seconds per epoch."""

    total: int
    epochs: int
    bound: bool = False  # early stopping may end trials sooner: the ETA is an upper bound
    started: float = field(default_factory=time.time)
    counts: dict[str, int] = field(default_factory=dict)
    best: float | None = None
    slots: int = 1  # the most trials seen running side by side
    done: dict[str, int] = field(default_factory=dict)  # running trial -> epochs done
    own: dict[str, float] = field(default_factory=dict)  # trial -> seconds per epoch

    def start(self, trial_id: str, running: int) -> None:
        self.done[trial_id] = 0
        self.slots = max(self.slots, running, len(self.done))

    def epoch(self, trial_id: str, result: dict[str, Any]) -> None:
        self.done[trial_id] = int(result["epoch"])
        seconds = epoch_seconds(result)
        if seconds is not None:
            self.own[trial_id] = seconds

    def finish(self, trial_id: str, status: str, metric: float | None, running: list[str]) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        if status == "complete" and metric is not None:
            self.best = metric if self.best is None else max(self.best, metric)
        self.done.pop(trial_id, None)
        self.counts["running"] = len(running)

    def eta(self) -> float | None:
        running = [(n, self.own.get(t)) for t, n in self.done.items()]
        finished = sum(n for k, n in self.counts.items() if k != "running")
        return eta_seconds(running, max(0, self.total - finished - len(running)), self.epochs,
                           list(self.own.values()), self.slots)

    def line(self, *, pending: tuple[str, ...] = ()) -> str:
        return progress_line(self.counts, self.total, self.best, self.started, self.eta(), bound=self.bound,
                             pending=pending)


class EpochFollower:
    """Prints each epoch of a run as rank 0 appends it to DIR/epochs.jsonl: `orchestrator train`'s console
    when Ray keeps the workers' own output in its logs (no --verbose). A file, not a stream, so a restarted
    worker's epochs and the last one before exit are never lost or printed twice.

        with EpochFollower(out_dir, cfg.name, cfg.train.epochs):
            fit(cfg, out_dir)
    """

    def __init__(self, out_dir: Any, name: str, epochs: int, poll_s: float = 1.0) -> None:
        from pathlib import Path

        self.path, self.name, self.epochs, self.poll_s = Path(out_dir) / "epochs.jsonl", name, epochs, poll_s
        self.seen = self.path.stat().st_size if self.path.is_file() else 0  # a resumed run's earlier epochs
        self._stop: Any = None

    def lines(self) -> list[str]:
        import json

        if not self.path.is_file():
            return []
        with open(self.path) as handle:
            handle.seek(self.seen)
            text = handle.read()
        complete = text[:text.rfind("\n") + 1]  # a line still being written waits for the next poll
        self.seen += len(complete.encode())
        return [self.line(json.loads(raw)) for raw in complete.splitlines() if raw.strip()]

    def line(self, e: dict[str, Any]) -> str:
        if e.get("diverged"):
            return f"[{self.name}] epoch {e['epoch']}/{self.epochs}: non-finite loss; stopped as diverged"
        parts = [f"[{self.name}] epoch {e['epoch']}/{self.epochs}"]
        if e.get("loss") is not None:
            parts.append(f"loss {e['loss']:.4f}")
        if e.get("metric") is not None:
            parts.append(f"{e.get('metric_name', 'metric')} {e['metric']:.4f}")
        if e.get("lambda") is not None:
            parts.append(f"λ {e['lambda']:.3f}")
        if e.get("resumed_from_epoch"):
            parts.append(f"(resumed from the checkpoint of epoch {e['resumed_from_epoch']})")
        return " ".join(parts)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            for line in self.lines():
                print(line, flush=True)

    def __enter__(self) -> EpochFollower:
        import threading

        if not verbose():  # with --verbose rank 0's own lines reach the console
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._stop is not None:
            self._stop.set()
            self._thread.join()
            for line in self.lines():
                print(line, flush=True)
