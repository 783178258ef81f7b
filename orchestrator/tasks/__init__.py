"""Tasks: GLUE, IMDb and CIFAR, from the Hugging Face hub or local copies, with GLUE's metrics.

One table (`TASKS`) says, per task, where its data lives, which columns are its inputs, its labels
and its metrics. Everything else is a handful of generic functions over that table:

    load_split(task, split, data_dir)        -> datasets.Dataset  (inputs + "label")
    stratified_subset(ds, n, seed)           -> datasets.Dataset  (train/eval.max_examples)
    build_dataset(task, split, ...)          -> (torch Dataset, collate_fn) for a training loop
    compute_metrics(task, predictions, labels), glue_score(...)
    load_model(name, task), load_processor(name, task)

Column scheme: inputs keep the names of the hub's datasets (`nyu-mll/glue`: "sentence",
"sentence1"/"sentence2", "question"/"sentence", "question1"/"question2", "premise"/"hypothesis";
imdb "text"; cifar "img"); local TSV columns are renamed to them. The label is always "label": a
class id (ClassLabel) or a float score for STS-B. Rows without a label (GLUE test splits, IMDb's
"unsupervised") carry label -1, as on the hub.

Modules, one job each:

    registry  TaskSpec, TASKS, get_task, DataError, METRIC_NAMES   (standard library only)
    loading   load_split, stratified_subset (hub, Parquet; tsv: the classic GLUE TSV files)
    metrics   compute_metrics, glue_score
    models    load_model, load_processor
    data      TextDataset, TextCollator, ImageDataset, ImageCollator
    cache     build_dataset, clear_memo, CACHE_VERSION (tokenisation, in-process memo, disk cache)
    cli       describe, main: python -m orchestrator.tasks describe TASK [--data-dir DIR] [--json]

Only the registry is imported with the package: `orchestrator.spec.validation` checks `task:` against TASKS
on every config load, and that must not import torch, datasets or transformers. Every other name
(public, and the private helpers tests use) is looked up in its module on first access (PEP 562).
To monkeypatch a helper, patch the module that uses it (orchestrator.tasks.loading._load_from_hub,
orchestrator.tasks.cache._tokenize): setting it on this package changes nothing the code calls.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from orchestrator.tasks.registry import (
    CHANCE_SCORES,
    METRIC_NAMES,
    TASKS,
    DataError,
    TaskSpec,
    at_chance,
    collapsed,
    get_task,
)

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from orchestrator.tasks.cache import CACHE_VERSION, build_dataset, clear_memo
    from orchestrator.tasks.cli import describe, main
    from orchestrator.tasks.data import ImageCollator, ImageDataset, TextCollator, TextDataset
    from orchestrator.tasks.loading import load_split, stratified_subset
    from orchestrator.tasks.metrics import compute_metrics, glue_score
    from orchestrator.tasks.models import load_model, load_processor

# name -> the module (of this package) that defines it; names of the former single module included.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("_GLUE_SPLITS", "_GLUE_FILES", "_glue", "_ENTAILMENT", "_CIFAR10_LABELS",
                     "_CIFAR100_LABELS", "_ACC", "_ACC_F1", "_image", "_MNLI_SPLITS", "_may_be_unlabelled",
                     "_check_split"), "registry"),
    **dict.fromkeys(("_features", "_to_dataset", "_labels_of"), "tables"),
    **dict.fromkeys(("_label_parser", "_first_bad_utf8_line", "_read_tsv"), "tsv"),
    **dict.fromkeys(("load_split", "stratified_subset", "_load_from_hub", "_local_paths", "_normalise",
                     "_stratify_key"), "loading"),
    **dict.fromkeys(("compute_metrics", "glue_score", "_GLUE_TASKS", "_MNLI_PARTS"), "metrics"),
    **dict.fromkeys(("load_model", "load_processor", "_HUB_ID", "_model_ref", "_from_pretrained"), "models"),
    **dict.fromkeys(("TextDataset", "TextCollator", "ImageDataset", "ImageCollator", "_crop_and_flip"), "data"),
    **dict.fromkeys(("build_dataset", "clear_memo", "CACHE_VERSION", "_MEMO", "_cached_processor",
                     "_tokenizer_fingerprint", "_source_fingerprint", "_truncating_backend", "_tokenize",
                     "_read_arrow", "_write_arrow"), "cache"),
    **dict.fromkeys(("describe", "main", "_describe_text"), "cli"),
}
_MODULES = frozenset(("registry", "tables", "tsv", "loading", "metrics", "models", "data", "cache", "cli"))

__all__ = ["CACHE_VERSION", "CHANCE_SCORES", "at_chance", "collapsed", "METRIC_NAMES", "TASKS", "DataError", "ImageCollator", "ImageDataset", "TaskSpec",
           "TextCollator", "TextDataset", "build_dataset", "clear_memo", "compute_metrics", "describe",
           "get_task", "glue_score", "load_model", "load_processor", "load_split", "main", "stratified_subset"]


def __getattr__(name: str) -> Any:
    # Not cached in globals(): T.<name> stays the object the code uses, also while a test patches it
    # in its module.
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_MODULES})
