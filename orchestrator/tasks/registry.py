"""The task table: what each task's data, labels and metrics are. Pure standard library on purpose.

`orchestrator.spec.validation` checks `task:` against TASKS on every config load; keeping this module free
of torch, datasets and numpy makes that cheap (the heavy modules of this package load on first use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.base.choices import unknown_choice

METRIC_NAMES = ("accuracy", "f1", "mcc", "pearson", "spearman")


class DataError(ValueError):
    """Bad or missing data: the message names the file (and line, for TSV) and the fix."""


@dataclass(frozen=True)
class TaskSpec:
    """Everything the loaders, the model head and the metrics need to know about one task."""

    name: str                      # "glue/sst2"
    kind: str                      # "text" | "image"
    hub_id: str                    # "nyu-mll/glue"
    hub_config: str | None         # "sst2"; None = the dataset's only configuration
    input_columns: tuple[str, ...]  # ("sentence",), ("sentence1", "sentence2"), ("img",)
    label_names: tuple[str, ...]   # () for regression
    num_labels: int                # 1 for regression
    is_regression: bool
    metric_names: tuple[str, ...]  # keys of compute_metrics, from METRIC_NAMES
    primary_metric: str            # written as metric_name; a metric name or a mean of two
    splits: tuple[str, ...]
    eval_split: str                # the split results are reported on ("validation", ...)
    local_dir: str                 # folder under data_dir: "glue/SST-2", "imdb", "cifar10"
    local_files: dict[str, str] = field(compare=False)  # split -> file name in local_dir
    label_column: str = "label"    # the label's column on the hub and in Parquet ("fine_label")
    # Classic GLUE TSV: our column -> the header's column name ...
    tsv_columns: dict[str, str] = field(default_factory=dict, compare=False)
    # ... and, for files without a header (CoLA train/dev), the names of the columns by position.
    tsv_positional: tuple[str, ...] = ()


_GLUE_SPLITS = ("train", "validation", "test")
_GLUE_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}


def _glue(config: str, folder: str, inputs: dict[str, str], label: str, label_names: tuple[str, ...],
          metrics: tuple[str, ...], primary: str, **extra: Any) -> TaskSpec:
    regression = not label_names
    return TaskSpec(
        name=f"glue/{config}", kind="text", hub_id="nyu-mll/glue", hub_config=config,
        input_columns=tuple(inputs), label_names=label_names, num_labels=len(label_names) or 1,
        is_regression=regression, metric_names=metrics, primary_metric=primary,
        splits=extra.pop("splits", _GLUE_SPLITS), eval_split=extra.pop("eval_split", "validation"),
        local_dir=f"glue/{folder}", local_files=extra.pop("local_files", dict(_GLUE_FILES)),
        tsv_columns={**inputs, "label": label}, **extra,
    )


_ENTAILMENT = ("entailment", "not_entailment")
_CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# CIFAR-100 fine labels in id order (the hub's list spells id 26 "cra"; the original meta file says crab).
_CIFAR100_LABELS = tuple(["apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"])
_ACC = ("accuracy",)
_ACC_F1 = ("accuracy", "f1")


def _image(name: str, hub_id: str, labels: tuple[str, ...], label_column: str) -> TaskSpec:
    return TaskSpec(
        name=name, kind="image", hub_id=hub_id, hub_config=None, input_columns=("img",),
        label_names=labels, num_labels=len(labels), is_regression=False, metric_names=_ACC,
        primary_metric="accuracy", splits=("train", "test"), eval_split="test", local_dir=name,
        local_files={"train": "train.parquet", "test": "test.parquet"}, label_column=label_column,
    )


_MNLI_SPLITS = ("train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched")

TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    # CoLA train/dev have no header: source, label, original label (empty), sentence.
    _glue("cola", "CoLA", {"sentence": "sentence"}, "label", ("unacceptable", "acceptable"),
          ("mcc",), "mcc", tsv_positional=("source", "label", "original_label", "sentence")),
    _glue("sst2", "SST-2", {"sentence": "sentence"}, "label", ("negative", "positive"), _ACC, "accuracy"),
    _glue("mrpc", "MRPC", {"sentence1": "#1 String", "sentence2": "#2 String"}, "Quality",
          ("not_equivalent", "equivalent"), _ACC_F1, "acc_and_f1"),
    _glue("qqp", "QQP", {"question1": "question1", "question2": "question2"}, "is_duplicate",
          ("not_duplicate", "duplicate"), _ACC_F1, "acc_and_f1"),
    _glue("stsb", "STS-B", {"sentence1": "sentence1", "sentence2": "sentence2"}, "score", (),
          ("pearson", "spearman"), "pearson_spearman_mean"),
    _glue("mnli", "MNLI", {"premise": "sentence1", "hypothesis": "sentence2"}, "gold_label",
          ("entailment", "neutral", "contradiction"), _ACC, "accuracy", splits=_MNLI_SPLITS,
          eval_split="validation_matched",
          local_files={"train": "train.tsv", "validation_matched": "dev_matched.tsv",
                       "validation_mismatched": "dev_mismatched.tsv", "test_matched": "test_matched.tsv",
                       "test_mismatched": "test_mismatched.tsv"}),
    _glue("qnli", "QNLI", {"question": "question", "sentence": "sentence"}, "label", _ENTAILMENT, _ACC,
          "accuracy"),
    _glue("rte", "RTE", {"sentence1": "sentence1", "sentence2": "sentence2"}, "label", _ENTAILMENT, _ACC,
          "accuracy"),
    # WNLI's TSV labels are 0/1 with 1 = entailment, the order of the hub's names.
    _glue("wnli", "WNLI", {"sentence1": "sentence1", "sentence2": "sentence2"}, "label",
          ("not_entailment", "entailment"), _ACC, "accuracy"),
    TaskSpec(name="imdb", kind="text", hub_id="stanfordnlp/imdb", hub_config=None, input_columns=("text",),
             label_names=("neg", "pos"), num_labels=2, is_regression=False, metric_names=_ACC,
             primary_metric="accuracy", splits=("train", "test", "unsupervised"), eval_split="test",
             local_dir="imdb", local_files={s: f"{s}.parquet" for s in ("train", "test", "unsupervised")}),
    _image("cifar10", "uoft-cs/cifar10", _CIFAR10_LABELS, "label"),
    _image("cifar100", "uoft-cs/cifar100", _CIFAR100_LABELS, "fine_label"),
)}


# The primary metric of the best constant prediction on each task's evaluation split (the majority class;
# the mean score for STS-B, whose correlations are then 0; uniform chance on the balanced CIFAR test sets).
# A trial at or below it has learned nothing: reports mark such cells. Measured on the GLUE dev and CIFAR
# test files (tests/test_tasks.py checks them against ../shared/data); tasks absent here are not marked.
CHANCE_SCORES: dict[str, float] = {
    "glue/cola": 0.0,       # MCC of any constant prediction
    "glue/sst2": 0.5092,    # 444 of 872 positive
    "glue/mrpc": 0.7480,    # all "equivalent": accuracy 0.684, F1 0.812
    "glue/stsb": 0.0,       # Pearson / Spearman of a constant
    "glue/qnli": 0.5054,
    "imdb": 0.5,            # 12,500 of 25,000 positive
    "cifar10": 0.1,
    "cifar100": 0.01,
}


def at_chance(task: str, metric: float | None) -> bool:
    """Whether a primary-metric value is no better than the best constant prediction's on `task`."""
    chance = CHANCE_SCORES.get(task)
    return chance is not None and metric is not None and metric <= chance + 5e-4


# A run "collapsed" when it ends with less than this share of the gain above the best constant prediction that it
# had after its best epoch: it learned the task, then lost most of it. Seen at paper scale, where PC-LoRA at 93 %
# removal reached MCC 0.29 on CoLA while λ was high and ended at 0.13 once its weights were gone
# (results/gpu/paper-scale/README.md): above the constant prediction, so `at_chance` does not mark it, yet no model
# to ship. A best epoch within MIN_GAIN of the constant prediction is noise, not learning.
COLLAPSE_SHARE = 0.5
MIN_GAIN = 0.02


def collapsed(task: str, metric: float | None, best_epoch_metric: float | None) -> bool:
    """Whether a run's final primary metric kept less than COLLAPSE_SHARE of the gain above the best constant
    prediction that it had at its best epoch (False where the task has no constant-prediction score)."""
    chance = CHANCE_SCORES.get(task)
    if chance is None or metric is None or best_epoch_metric is None:
        return False
    gain = best_epoch_metric - chance
    return gain > MIN_GAIN and metric - chance < COLLAPSE_SHARE * gain


def get_task(name: str) -> TaskSpec:
    """The TaskSpec called `name`; ValueError naming the choices otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(unknown_choice("task", "task", name, TASKS)) from None


def _may_be_unlabelled(split: str) -> bool:
    """Splits whose rows may carry label -1: GLUE's test splits and IMDb's "unsupervised" have none."""
    return split.startswith("test") or split == "unsupervised"


def _check_split(task: TaskSpec, split: str) -> None:
    """ValueError naming the task's splits when `split` is not one of them."""
    if split not in task.splits:
        raise ValueError(unknown_choice(f"task {task.name}", "split", split, task.splits))
