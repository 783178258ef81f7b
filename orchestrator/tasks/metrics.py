"""GLUE's metrics per task (compute_metrics) and the GLUE score over tasks (glue_score).

scipy and sklearn load inside compute_metrics: the leaderboard imports glue_score only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from orchestrator.tasks.registry import TaskSpec


def compute_metrics(task: TaskSpec, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every metric of the task plus the primary one (under task.primary_metric), as GLUE defines them.

    predictions: logits [N, C] (argmax taken), class ids [N], or scores [N] / [N, 1] for regression.
    F1 is binary with class 1 positive (MRPC "equivalent", QQP "duplicate"). A correlation of a
    constant prediction is undefined; it is reported as 0.0 so that sweeps can rank such trials.
    """
    import scipy.stats
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    preds = np.asarray(predictions)
    labels = np.asarray(labels)
    if task.is_regression:
        preds = preds.reshape(len(preds), -1)
        if preds.shape[1] != 1:
            raise ValueError(f"{task.name} is a regression task: expected predictions [N] or [N, 1], "
                             f"got shape {np.asarray(predictions).shape}")
        preds = preds[:, 0].astype(np.float64)
        labels = labels.astype(np.float64).reshape(-1)
    else:
        if preds.ndim == 2:
            preds = preds.argmax(axis=-1)
        elif preds.ndim != 1:
            raise ValueError(f"expected logits [N, {task.num_labels}] or class ids [N], got shape {preds.shape}")
        labels = labels.astype(np.int64).reshape(-1)
        if (labels < 0).any():
            raise ValueError(f"labels of {task.name} contain -1 (unlabelled rows, e.g. a GLUE test split): "
                             "evaluate on a labelled split such as " + task.eval_split)
    if len(preds) != len(labels) or len(labels) == 0:
        raise ValueError(f"predictions ({len(preds)}) and labels ({len(labels)}) must have the same, "
                         "non-zero length")

    def corr(fn: Callable[..., Any]) -> float:
        if np.ptp(preds) == 0 or np.ptp(labels) == 0:
            return 0.0
        return float(fn(preds, labels)[0])

    compute = {
        "accuracy": lambda: float(accuracy_score(labels, preds)),
        "f1": lambda: float(f1_score(labels, preds, pos_label=1, average="binary", zero_division=0)),
        "mcc": lambda: float(matthews_corrcoef(labels, preds)),
        "pearson": lambda: corr(scipy.stats.pearsonr),
        "spearman": lambda: corr(scipy.stats.spearmanr),
    }
    out = {name: compute[name]() for name in task.metric_names}
    if task.primary_metric not in out:  # a mean of the task's metrics: acc_and_f1, pearson_spearman_mean
        out[task.primary_metric] = float(np.mean([out[m] for m in task.metric_names]))
    return out


_GLUE_TASKS = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")
_MNLI_PARTS = {"mnli-m": "m", "mnli_matched": "m", "mnli-mm": "mm", "mnli_mismatched": "mm"}


def glue_score(primary_by_task: dict[str, float], *, require_all: bool = False) -> float:
    """The GLUE score: the unweighted mean of the tasks' primary metrics, as the leaderboard computes it.

    Keys: task names with or without "glue/" ("glue/cola", "sst2"). MRPC/QQP's primary metric is
    already the mean of accuracy and F1 and STS-B's the mean of Pearson and Spearman. MNLI counts once:
    give "glue/mnli" (one value), or "mnli-m" and "mnli-mm" (also "mnli_matched"/"mnli_mismatched"),
    which are averaged, as the leaderboard averages MNLI-m and MNLI-mm. WNLI counts like any task.
    With require_all=False the mean is over the tasks given; True refuses an incomplete set.
    """
    scores: dict[str, float] = {}
    mnli: dict[str, float] = {}
    for key, value in primary_by_task.items():
        short = key.removeprefix("glue/")
        if short in _MNLI_PARTS:
            mnli[_MNLI_PARTS[short]] = float(value)
        elif short in _GLUE_TASKS:
            scores[short] = float(value)
        else:
            raise ValueError(f"{key!r} is not a GLUE task; keys are {', '.join(_GLUE_TASKS)} (optionally "
                             "with glue/), or mnli-m / mnli-mm")
    if mnli:
        if "mnli" in scores or len(mnli) != 2:
            raise ValueError("give MNLI either as 'mnli' or as both 'mnli-m' and 'mnli-mm'")
        scores["mnli"] = (mnli["m"] + mnli["mm"]) / 2
    missing = [t for t in _GLUE_TASKS if t not in scores]
    if not scores or (require_all and missing):
        raise ValueError(f"GLUE score needs the primary metric of every GLUE task; missing: {', '.join(missing)}")
    return float(np.mean(list(scores.values())))
