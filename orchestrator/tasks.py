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

Local copies (data_dir): `<data_dir>/<task.local_dir>/<task.local_files[split]>`, either the classic
GLUE TSV layout (glue/SST-2/train.tsv, dev.tsv = validation) or the hub's Parquet layout
(imdb/train.parquet, cifar10/train.parquet, with the hub's column names). A folder may also hold
`<split>.parquet` or hub shards `<split>-00000-of-00001.parquet` instead of the TSV.

CLI: python -m orchestrator.tasks describe TASK [--data-dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import math
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    import datasets
    import pyarrow as pa
    import transformers

# Bumped when the layout of cached tokenised data changes, so that old cache files are not reused.
CACHE_VERSION = 1
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


def get_task(name: str) -> TaskSpec:
    """The TaskSpec called `name`; ValueError naming the choices otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r} (key: task); choose one of {', '.join(TASKS)}") from None


def _may_be_unlabelled(split: str) -> bool:
    return split.startswith("test") or split == "unsupervised"


def _check_split(task: TaskSpec, split: str) -> None:
    if split not in task.splits:
        raise ValueError(f"task {task.name!r} has no split {split!r}; choose one of {', '.join(task.splits)}")


# ---------------------------------------------------------------------------------------------- loading

def _load_from_hub(hub_id: str, hub_config: str | None, split: str) -> datasets.Dataset:
    """The only function that talks to the hub (tests monkeypatch it)."""
    import datasets

    return datasets.load_dataset(hub_id, hub_config, split=split)


def _features(task: TaskSpec) -> datasets.Features:
    import datasets

    feats: dict[str, Any] = {}
    for col in task.input_columns:
        feats[col] = datasets.Image() if task.kind == "image" else datasets.Value("string")
    feats["label"] = (datasets.Value("float32") if task.is_regression
                      else datasets.ClassLabel(names=list(task.label_names)))
    return datasets.Features(feats)


def _to_dataset(task: TaskSpec, table: pa.Table, split: str) -> datasets.Dataset:
    import datasets

    features = _features(task)
    table = table.select(list(features)).cast(features.arrow_schema)
    info = datasets.DatasetInfo(features=features, dataset_name=task.name)
    return datasets.Dataset(table, info=info, split=split)


def _local_paths(task: TaskSpec, split: str, data_dir: str | os.PathLike[str]) -> list[Path]:
    """The file(s) holding `split` under data_dir; DataError naming what is missing and the fix."""
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DataError(f"data_dir: folder {str(root)!r} does not exist; point data_dir / --data-dir / "
                        "ORCH_DATA_DIR at local copies of the datasets, or leave it unset to use the hub")
    folder = root / task.local_dir
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder for task {task.name!r}; put its files there "
                        f"({', '.join(task.local_files.values())}) or leave data_dir unset to use the hub")
    main = folder / task.local_files[split]
    if main.is_file():
        return [main]
    for candidates in ([folder / f"{split}.parquet"], sorted(folder.glob(f"{split}-*.parquet"))):
        existing = [p for p in candidates if p.is_file()]
        if existing:
            return existing
    raise DataError(f"{main}: split {split!r} of {task.name} not found (also looked for {split}.parquet "
                    f"and {split}-*.parquet in {folder}); add the file, or use another split")


def _label_parser(task: TaskSpec) -> Callable[[str], float | int | None]:
    """raw TSV label -> class id / score, or None when the value is not a valid label."""
    if task.is_regression:
        def parse(raw: str) -> float | None:
            try:
                value = float(raw)
            except ValueError:
                return None
            return value if math.isfinite(value) else None
        return parse
    lookup = {name: i for i, name in enumerate(task.label_names)}
    lookup.update({str(i): i for i in range(task.num_labels)})
    return lambda raw: lookup.get(raw.strip())


def _first_bad_utf8_line(path: Path) -> int:
    """The 1-based line of the first byte sequence that is not UTF-8 (read again only on that error)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        return data[:err.start].count(b"\n") + 1
    return 1


def _read_tsv(task: TaskSpec, split: str, path: Path) -> datasets.Dataset:
    """A classic GLUE TSV file. QUOTE_NONE: GLUE text contains unbalanced quote characters."""
    import pyarrow as pa

    wanted = {out: task.tsv_columns[out] for out in task.input_columns}
    label_src = task.tsv_columns["label"]
    parse_label = _label_parser(task)
    columns: dict[str, list[str]] = {c: [] for c in task.input_columns}
    labels: list[float | int] = []
    # utf-8-sig: MRPC's files start with a byte-order mark.
    reader: Any = None
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            first = next(reader, None)
            if first is None:
                raise DataError(f"{path}: the file is empty (split {split!r} of {task.name}); "
                                "it needs a header line and at least one row")
            header = [h.strip() for h in first]
            if all(src in header for src in wanted.values()):
                names, rows_before = header, []
            elif task.tsv_positional and len(first) == len(task.tsv_positional):
                names, rows_before = list(task.tsv_positional), [first]  # no header: line 1 is data
            else:
                raise DataError(f"{path}:1: expected a header with the columns "
                                f"{', '.join(repr(v) for v in wanted.values())} (tab-separated), found {header!r}"
                                + (f", or {len(task.tsv_positional)} columns without a header"
                                   if task.tsv_positional else ""))
            positions = {out: names.index(src) for out, src in wanted.items()}
            label_pos = names.index(label_src) if label_src in names else None
            if label_pos is None and not _may_be_unlabelled(split):
                raise DataError(f"{path}:1: no label column {label_src!r} in the header {names!r}; "
                                f"split {split!r} of {task.name} needs labels")
            width = len(names)

            def add(row: list[str], line: int) -> None:
                if len(row) != width:
                    raise DataError(f"{path}:{line}: expected {width} tab-separated columns "
                                    f"({', '.join(names)}), found {len(row)}; fix or delete this line")
                for out, pos in positions.items():
                    columns[out].append(row[pos])
                if label_pos is None:
                    labels.append(-1)
                    return
                label = parse_label(row[label_pos])
                if label is None:
                    allowed = ("a number" if task.is_regression else
                               f"one of {', '.join(task.label_names)} or their ids 0..{task.num_labels - 1}")
                    raise DataError(f"{path}:{line}: label {row[label_pos]!r} (column {label_src!r}) is not "
                                    f"a label of {task.name}; expected {allowed}")
                labels.append(label)

            for row in rows_before:
                add(row, 1)
            for row in reader:
                if row:  # blank lines (a trailing newline) carry no row
                    add(row, reader.line_num)
    except UnicodeDecodeError:
        raise DataError(f"{path}:{_first_bad_utf8_line(path)}: not UTF-8 text; GLUE files are UTF-8 (re-download "
                        "the file, or convert it: iconv -t UTF-8)") from None
    except csv.Error as err:  # e.g. a field over csv.field_size_limit (128 KiB): not a GLUE file
        line = reader.line_num if reader is not None else 1
        raise DataError(f"{path}:{line}: cannot be read as tab-separated text ({err}); fix or delete this line") from None
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or type(err).__name__})") from None
    if not labels:
        raise DataError(f"{path}: no rows (split {split!r} of {task.name} is empty); add data rows "
                        "below the header")
    table = pa.table({**{c: pa.array(v, pa.string()) for c, v in columns.items()},
                      "label": pa.array(labels, pa.float32() if task.is_regression else pa.int64())})
    return _to_dataset(task, table, split)


def _normalise(task: TaskSpec, split: str, table: pa.Table, source: str) -> datasets.Dataset:
    """Hub / Parquet rows in the hub's column names -> our inputs + "label", checked."""
    import pyarrow as pa
    import pyarrow.compute as pc

    missing = [c for c in task.input_columns if c not in table.column_names]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)} for {task.name} (found "
                        f"{', '.join(table.column_names)}); use the hub's layout of {task.hub_id}")
    if table.num_rows == 0:
        raise DataError(f"{source}: no rows (split {split!r} of {task.name} is empty)")
    if task.label_column in table.column_names:
        label = table.column(task.label_column)
    elif _may_be_unlabelled(split):
        label = pa.array(np.full(table.num_rows, -1, dtype=np.float32 if task.is_regression else np.int64))
    else:
        raise DataError(f"{source}: no label column {task.label_column!r} (found "
                        f"{', '.join(table.column_names)}); split {split!r} of {task.name} needs labels")
    table = table.select(list(task.input_columns)).append_column("label", label)
    if not task.is_regression:
        try:
            values = pc.cast(table.column("label"), pa.int64())
        except (pa.ArrowException, ValueError, TypeError) as err:  # strings, fractions, lists, ...
            raise DataError(f"{source}: column {task.label_column!r} must hold class ids 0..{task.num_labels - 1} "
                            f"(integers), found {table.column('label').type}: {err}") from None
        bad = pc.or_(pc.greater_equal(values, task.num_labels), pc.less(values, -1))
        if not _may_be_unlabelled(split):
            bad = pc.or_(bad, pc.equal(values, -1))
        bad_rows = np.flatnonzero(np.asarray(pc.fill_null(bad, True)))
        if bad_rows.size:
            row = int(bad_rows[0])
            raise DataError(f"{source}: row {row}: label {values[row].as_py()!r} is outside the label set of "
                            f"{task.name} (0..{task.num_labels - 1}: {', '.join(task.label_names[:12])}"
                            f"{', ...' if task.num_labels > 12 else ''}); {bad_rows.size} bad row(s) in all")
    try:
        return _to_dataset(task, table, split)
    except (pa.ArrowException, ValueError, TypeError) as err:  # e.g. numbers where image structs belong
        found = ", ".join(f"{f.name}: {f.type}" for f in table.schema)
        raise DataError(f"{source}: the columns do not have the types of {task.hub_id} (found {found}): {err}; "
                        "use the hub's layout") from None


def load_split(task: TaskSpec, split: str, data_dir: str | os.PathLike[str] | None) -> datasets.Dataset:
    """One split as a datasets.Dataset with the task's input columns and "label".

    data_dir None: the hub (`datasets.load_dataset(task.hub_id, task.hub_config, split=split)`).
    Otherwise the local copy under `data_dir/task.local_dir` (classic GLUE TSV or hub Parquet).
    Unlabelled rows (test splits) have label -1. Raises DataError for missing or malformed data.
    """
    _check_split(task, split)
    if data_dir is None:
        try:
            ds = _load_from_hub(task.hub_id, task.hub_config, split)
        except DataError:
            raise
        except Exception as err:  # network, missing dataset, ...: one message with the fix
            raise DataError(f"could not load split {split!r} of {task.name} from the hub ({task.hub_id}"
                            f"{', ' + task.hub_config if task.hub_config else ''}): {type(err).__name__}: "
                            f"{err}; with no network, set data_dir (--data-dir, ORCH_DATA_DIR) to local "
                            "copies") from err
        if ds._indices is not None:  # a selection: materialise the rows it selects
            ds = ds.flatten_indices()
        return _normalise(task, split, ds.data.table, f"{task.hub_id} ({split})")
    paths = _local_paths(task, split, data_dir)
    if paths[0].suffix == ".tsv":
        return _read_tsv(task, split, paths[0])
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.concat_tables([pq.read_table(p) for p in paths])
    except (OSError, pa.ArrowException, ValueError) as err:
        raise DataError(f"{paths[0]}: not a readable Parquet file ({err}); re-download it") from err
    return _normalise(task, split, table, str(paths[0]) if len(paths) == 1 else f"{paths[0].parent}/{split}-*")


# --------------------------------------------------------------------------------------------- subsets

def _labels_of(ds: datasets.Dataset, label_column: str) -> np.ndarray:
    # Through Arrow: the numpy formatter takes seconds for 67k rows, this takes milliseconds.
    return ds.select_columns([label_column]).with_format("arrow")[:].column(label_column).to_numpy()


def _stratify_key(labels: np.ndarray, bins: int = 10) -> np.ndarray:
    """Class ids as they are; float labels (regression) -> `bins` quantile bins by rank."""
    if np.issubdtype(labels.dtype, np.integer):
        return labels
    ranks = np.argsort(np.argsort(labels, kind="stable"), kind="stable")
    return ranks * bins // max(len(labels), 1)


def stratified_subset(ds: datasets.Dataset, n: int | None, seed: int,
                      label_column: str = "label") -> datasets.Dataset:
    """A deterministic, class-stratified subset of n rows (train.max_examples / eval.max_examples).

    Each class gets n × its share (largest remainders round), rows chosen by a permutation seeded
    with `seed`; the result keeps the original row order. Regression labels are stratified by ten
    quantile bins of the score. n None or >= len(ds): ds unchanged.
    """
    if n is None or n >= len(ds):
        return ds
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"max_examples must be a positive integer or null, got {n!r}")
    strata = _stratify_key(_labels_of(ds, label_column))
    classes, counts = np.unique(strata, return_counts=True)
    quota = n * counts / counts.sum()
    take = np.floor(quota).astype(int)
    # Largest remainders get the rows left over; ties go to the larger, then the lower class.
    order = sorted(range(len(classes)), key=lambda k: (-(quota[k] - take[k]), -counts[k], k))
    for k in order[: n - take.sum()]:
        take[k] += 1
    rng = np.random.default_rng(seed)
    chosen = [rng.permutation(np.flatnonzero(strata == c))[:t] for c, t in zip(classes, take, strict=True)]
    return ds.select(np.sort(np.concatenate(chosen)).tolist())


# --------------------------------------------------------------------------------------------- metrics

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


# -------------------------------------------------------------------------------------- models, processors

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _model_ref(name: str) -> str:
    """A local folder (checked) or something that looks like a hub id; ValueError naming `model`."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"model: {name!r} has no config.json; give a Hugging Face model folder or a hub id")
        return str(path)
    if name.startswith((".", "/", "~")) or not _HUB_ID.match(name):
        raise ValueError(f"model: local folder {name!r} does not exist; give an existing model folder or a "
                         "hub id like 'bert-base-uncased' or 'org/name'")
    return name


def _from_pretrained(loader: Any, name: str, what: str, *, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    ref = _model_ref(name)
    if trust_remote_code:
        warnings.warn(f"trust_remote_code: true: loading the {what} of {name!r} may run Python code from its "
                      "repository", UserWarning, stacklevel=3)
    try:
        # trust_remote_code always passed, False unless the config's trust_remote_code asks for it.
        return loader.from_pretrained(ref, trust_remote_code=bool(trust_remote_code), **kwargs)
    except OSError as err:  # transformers raises OSError for unknown ids, no network, missing files
        raise ValueError(f"model: could not load the {what} of {name!r} (not a local folder, or not "
                         f"reachable on the hub): {err}") from None


def load_model(model_name_or_path: str, task: TaskSpec, *, trust_remote_code: bool = False,
               **kwargs: Any) -> transformers.PreTrainedModel:
    """The model with a fresh head for the task: num_labels, id2label/label2id and problem_type.

    Text tasks: AutoModelForSequenceClassification (problem_type "regression" for STS-B); images:
    AutoModelForImageClassification. A checkpoint whose head has another size gets a new head
    (ignore_mismatched_sizes). kwargs go to from_pretrained and override these defaults. Weights are
    read from safetensors, or from .bin with torch.load(weights_only=True); `trust_remote_code` (the
    config key of that name) lets the repository run its own code, with a warning.
    """
    from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification

    head: dict[str, Any] = {
        "num_labels": task.num_labels,
        "problem_type": "regression" if task.is_regression else "single_label_classification",
        "ignore_mismatched_sizes": True,
        "weights_only": True,  # transformers' default; pinned so that no pickle is ever unpickled
    }
    if not task.is_regression:
        head["id2label"] = dict(enumerate(task.label_names))
        head["label2id"] = {name: i for i, name in enumerate(task.label_names)}
    loader = AutoModelForImageClassification if task.kind == "image" else AutoModelForSequenceClassification
    return _from_pretrained(loader, model_name_or_path, "model", trust_remote_code=trust_remote_code,
                            **{**head, **kwargs})


def load_processor(model_name_or_path: str, task: TaskSpec, *, trust_remote_code: bool = False) -> Any:
    """The model's tokenizer (text tasks) or image processor (image tasks)."""
    from transformers import AutoImageProcessor, AutoTokenizer

    if task.kind == "image":
        return _from_pretrained(AutoImageProcessor, model_name_or_path, "image processor",
                                trust_remote_code=trust_remote_code)
    tokenizer = _from_pretrained(AutoTokenizer, model_name_or_path, "tokenizer", trust_remote_code=trust_remote_code)
    # transformers builds a tokenizer with a handful of special tokens for a folder that has only
    # config.json: every word would become [UNK] and training would silently learn nothing.
    if len(tokenizer) < 100:
        raise ValueError(f"model: {model_name_or_path!r} has no usable tokenizer ({len(tokenizer)} tokens); "
                         "save the tokenizer files (tokenizer.json / vocab.txt) in that folder")
    return tokenizer


# ------------------------------------------------------------------------------------ training datasets

class TextDataset(torch.utils.data.Dataset):
    """Tokenised rows (no padding) over an Arrow table; items carry "labels" and "idx".

    `idx` is the row's position in this dataset, the same in every run and process that builds it with
    the same arguments (KD-LoRA looks teacher logits up by it). `labels` (numpy) serves metrics.
    """

    def __init__(self, table: pa.Table, regression: bool) -> None:
        self.table = table
        self.regression = regression

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def labels(self) -> np.ndarray:
        return self.table.column("labels").to_numpy()

    def _rows(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        n = len(self)
        idx = [i + n if i < 0 else i for i in indices]
        if any(not 0 <= i < n for i in idx):
            raise IndexError(f"index out of range for a dataset of {n} rows")
        rows = self.table.take(idx).to_pylist()
        for row, i in zip(rows, idx, strict=True):
            row["idx"] = i
        return rows

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self._rows([int(i)])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        # DataLoader fetches a whole batch with one call: one Arrow take instead of batch_size.
        return self._rows([int(i) for i in indices])


class TextCollator:
    """Dynamic padding to the longest row of the batch; adds attention_mask; labels and idx as tensors."""

    def __init__(self, pad_token_id: int, pad_token_type_id: int = 0, padding_side: str = "right",
                 regression: bool = False) -> None:
        self.pad = {"input_ids": pad_token_id, "token_type_ids": pad_token_type_id}
        self.left = padding_side == "left"
        self.regression = regression

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(it["input_ids"]) for it in items]
        width = max(lengths)
        batch: dict[str, torch.Tensor] = {}
        keys = [k for k in ("input_ids", "token_type_ids") if k in items[0]]
        for key in [*keys, "attention_mask"]:
            out = np.full((len(items), width), self.pad.get(key, 0), dtype=np.int64)
            for row, (it, n) in enumerate(zip(items, lengths, strict=True)):
                cols = slice(width - n, width) if self.left else slice(0, n)
                out[row, cols] = 1 if key == "attention_mask" else it[key]
            batch[key] = torch.from_numpy(out)
        dtype = torch.float32 if self.regression else torch.long
        batch["labels"] = torch.tensor([it["labels"] for it in items], dtype=dtype)
        batch["idx"] = torch.tensor([it["idx"] for it in items], dtype=torch.long)
        return batch


class ImageDataset(torch.utils.data.Dataset):
    """Encoded images over an Arrow table, decoded per item; CIFAR augmentation when `augment`.

    Augmentation is the classic CIFAR recipe (ResNet, ViT fine-tuning code): a random crop of the
    original size from the image zero-padded by 4 px (1/8 of the side, for other sizes), and a
    horizontal flip with p = 0.5, applied at the original resolution before the processor's resize.
    Randomness comes from torch's generator, so it follows torch.manual_seed and DataLoader workers.
    """

    def __init__(self, table: pa.Table, augment: bool) -> None:
        self.table = table
        self.augment = augment

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def labels(self) -> np.ndarray:
        return self.table.column("label").to_numpy()

    def __getitem__(self, i: int) -> dict[str, Any]:
        from PIL import Image

        i = int(i) + (len(self) if int(i) < 0 else 0)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)} rows")
        cell = self.table.column("img")[i].as_py()
        source = io.BytesIO(cell["bytes"]) if cell.get("bytes") else cell["path"]
        with Image.open(source) as img:
            image = img.convert("RGB")
        if self.augment:
            image = Image.fromarray(_crop_and_flip(np.asarray(image)))
        return {"image": image, "labels": int(self.table.column("label")[i].as_py()), "idx": i}


def _crop_and_flip(arr: np.ndarray) -> np.ndarray:
    h, w = arr.shape[:2]
    pad = max(1, round(min(h, w) / 8))
    padded = np.pad(arr, ((pad, pad), (pad, pad), (0, 0)))
    y, x = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
    out = padded[y:y + h, x:x + w]
    if torch.rand(()) < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


class ImageCollator:
    """The model's image processor (resize, crop, rescale, normalise) over a batch -> pixel_values."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pixels = self.processor(images=[it["image"] for it in items], return_tensors="pt")["pixel_values"]
        return {
            "pixel_values": pixels,
            "labels": torch.tensor([it["labels"] for it in items], dtype=torch.long),
            "idx": torch.tensor([it["idx"] for it in items], dtype=torch.long),
        }


_MEMO: dict[str, Any] = {}
_MEMO_LOCK = threading.Lock()


def _cached_processor(model_name_or_path: str, task: TaskSpec, trust_remote_code: bool = False) -> Any:
    key = f"processor:{task.kind}:{model_name_or_path}:{bool(trust_remote_code)}"
    with _MEMO_LOCK:
        if key not in _MEMO:
            _MEMO[key] = load_processor(model_name_or_path, task, trust_remote_code=trust_remote_code)
        return _MEMO[key]


def _tokenizer_fingerprint(tokenizer: Any) -> str:
    """What decides the token ids: the tokenizer's full definition, not the name it was loaded by."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)  # call-time state, changed by every tokenizer(...) call
        spec.pop("padding", None)
        text = json.dumps(spec, sort_keys=True)
    else:
        text = json.dumps(sorted(tokenizer.get_vocab().items())) + repr(tokenizer.special_tokens_map)
    return hashlib.sha256(f"{type(tokenizer).__name__}\n{text}".encode()).hexdigest()


def _source_fingerprint(task: TaskSpec, split: str, data_dir: str | os.PathLike[str] | None) -> list[Any]:
    if data_dir is None:
        return ["hub", task.hub_id, task.hub_config, split]
    return [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in _local_paths(task, split, data_dir)]


def _truncating_backend(tokenizer: Any, max_length: int) -> Any:
    """A copy of a fast tokenizer's Rust backend set to truncate as tokenizer(..., truncation=True) does.

    Calling the backend directly skips transformers' per-row Python conversion (about 40 % of the
    time on SST-2); the ids are the same (a test checks). None for tokenizers without a backend.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    copy = Tokenizer.from_str(backend.to_str())
    copy.no_padding()
    copy.enable_truncation(max_length, strategy="longest_first",
                           direction=getattr(tokenizer, "truncation_side", "right"))
    return copy


def _tokenize(task: TaskSpec, ds: datasets.Dataset, tokenizer: Any, max_length: int) -> pa.Table:
    """input_ids (+ token_type_ids) per row, truncated to max_length (pairs: longest first), no padding."""
    import pyarrow as pa

    texts = [ds.select_columns([c]).with_format("arrow")[:].column(c).to_pylist() for c in task.input_columns]
    keep = [k for k in ("input_ids", "token_type_ids") if k == "input_ids" or k in tokenizer.model_input_names]
    out: dict[str, list[list[int]]] = {k: [] for k in keep}
    backend = _truncating_backend(tokenizer, max_length)
    step = 8192  # bounded memory for the 400k-row tasks; the tokenizer parallelises within a chunk
    for start in range(0, len(texts[0]), step):
        chunk = [t[start:start + step] for t in texts]
        if backend is not None:
            encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
            encodings = encode(list(zip(*chunk, strict=True)) if len(chunk) > 1 else chunk[0])
            out["input_ids"].extend(e.ids for e in encodings)
            if "token_type_ids" in out:
                out["token_type_ids"].extend(e.type_ids for e in encodings)
            continue
        enc = tokenizer(chunk[0], chunk[1] if len(chunk) > 1 else None, truncation=True,
                        max_length=max_length, padding=False, return_attention_mask=False)
        for k in keep:
            out[k].extend(enc[k])
    labels = _labels_of(ds, "label")
    return pa.table({
        "input_ids": pa.array(out["input_ids"], pa.list_(pa.int32())),
        **({"token_type_ids": pa.array(out["token_type_ids"], pa.list_(pa.int8()))}
           if "token_type_ids" in out else {}),
        "labels": pa.array(labels, pa.float32() if task.is_regression else pa.int64()),
    })


def _read_arrow(path: Path) -> pa.Table:
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:  # zero-copy: trials in other processes share the pages
        return pa.ipc.open_file(source).read_all()


def _write_arrow(table: pa.Table, path: Path) -> None:
    import pyarrow as pa

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)  # atomic: a concurrent trial reads the old state or the whole file


def build_dataset(task: TaskSpec, split: str, *, model_name_or_path: str,
                  data_dir: str | os.PathLike[str] | None, max_length: int | None = 128,
                  max_examples: int | None = None, seed: int = 0, train: bool, augment: bool = False,
                  cache_dir: str | os.PathLike[str] | None = None, trust_remote_code: bool = False,
                  ) -> tuple[torch.utils.data.Dataset, Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]]:
    """The dataset and collate_fn a training loop needs for one split.

    Rows: load_split, then stratified_subset(max_examples, seed). Each batch from collate_fn holds the
    model inputs, "labels" (long; float for regression) and "idx" (long, the row's position in the
    dataset: drop it before calling the model).
    Text: tokenised once (truncation to max_length, no padding) and padded per batch. The tokenised
    table is memoised in the process and, with cache_dir, written there as an Arrow file keyed by a
    hash of (task, split, data files, tokenizer definition, max_length, max_examples, seed), so the
    trials of a sweep tokenise once. max_length None = the tokenizer's model_max_length.
    Images: decoded per item, the model's image processor applied per batch in collate_fn; with
    train and augment, CIFAR's random crop (pad 4) and horizontal flip first (see ImageDataset).
    trust_remote_code: passed to the tokenizer / image processor (see load_model).
    """
    _check_split(task, split)
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                   or max_length < 8):
        raise ValueError(f"train.max_length must be an integer >= 8 or null, got {max_length!r}")
    processor = _cached_processor(model_name_or_path, task, trust_remote_code)
    source = _source_fingerprint(task, split, data_dir)
    if task.kind == "image":
        key = json.dumps(["image", task.name, split, source, max_examples, seed])
        with _MEMO_LOCK:
            table = _MEMO.get(key)
        if table is None:
            ds = stratified_subset(load_split(task, split, data_dir), max_examples, seed)
            # One contiguous chunk: a selection is a view whose every chunk keeps the whole file's
            # buffers alive, and pickling it (DataLoader spawn workers) copies them once per chunk.
            table = ds.with_format("arrow")[:].combine_chunks()
            with _MEMO_LOCK:
                _MEMO[key] = table
        return ImageDataset(table, augment=augment and train), ImageCollator(processor)

    if processor.pad_token_id is None:
        raise ValueError(f"model: the tokenizer of {model_name_or_path!r} has no padding token; set one "
                         "(tokenizer.pad_token = tokenizer.eos_token) and save the tokenizer folder")
    if max_length is None:
        max_length = min(int(processor.model_max_length), 4096)
    fp_key = f"fingerprint:{model_name_or_path}"
    with _MEMO_LOCK:
        if fp_key not in _MEMO:
            _MEMO[fp_key] = _tokenizer_fingerprint(processor)
        fingerprint = _MEMO[fp_key]
    spec = [CACHE_VERSION, task.name, split, source, fingerprint, max_length,
            max_examples, seed]
    digest = hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:20]
    key = f"text:{digest}"
    path = (Path(cache_dir).expanduser() / f"{task.name.replace('/', '-')}-{split}-{digest}.arrow"
            if cache_dir is not None else None)
    with _MEMO_LOCK:
        table = _MEMO.get(key)
    if table is None:
        # The lock makes the workers of a run (and concurrent trials) tokenise once: the others wait
        # for the file. filelock comes with datasets / huggingface_hub.
        from filelock import FileLock

        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{path}.lock") if path is not None else contextlib.nullcontext():
            if path is not None and path.is_file():
                try:
                    table = _read_arrow(path)
                except Exception:  # a damaged cache file (disk full, killed writer): rebuild it
                    table = None
            if table is None:
                ds = stratified_subset(load_split(task, split, data_dir), max_examples, seed)
                table = _tokenize(task, ds, processor, max_length)
                if path is not None:
                    _write_arrow(table, path)
    with _MEMO_LOCK:
        _MEMO[key] = table
    collate = TextCollator(processor.pad_token_id, getattr(processor, "pad_token_type_id", 0),
                           processor.padding_side, regression=task.is_regression)
    return TextDataset(table, regression=task.is_regression), collate


def clear_memo() -> None:
    """Forget the in-process memo of processors and prepared datasets (the disk cache stays)."""
    with _MEMO_LOCK:
        _MEMO.clear()


# ------------------------------------------------------------------------------------------------- CLI

def describe(task: TaskSpec, data_dir: str | os.PathLike[str] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """(the JSON of `describe --json`, notes {split: "unlabelled" or why its file is missing}).

    Local copies: splits without a file are left out of "splits" and noted; any other data problem
    raises DataError. The hub: every split is loaded (datasets caches the download).
    """
    sizes: dict[str, int] = {}
    unlabelled: list[str] = []
    missing: dict[str, str] = {}
    for split in task.splits:
        if data_dir is not None:
            try:
                _local_paths(task, split, data_dir)
            except DataError as err:
                if not Path(data_dir, task.local_dir).is_dir():
                    raise
                missing[split] = str(err)
                continue
        ds = load_split(task, split, data_dir)
        sizes[split] = len(ds)
        if ds.data.table.num_rows and _labels_of(ds, "label").max() == -1:
            unlabelled.append(split)
    if not sizes:
        raise DataError(f"{Path(data_dir or '.', task.local_dir)}: no split of {task.name} found; expected "
                        f"{', '.join(task.local_files.values())}")
    info = {"task": task.name, "splits": sizes, "num_labels": task.num_labels,
            "label_names": list(task.label_names), "metric": task.primary_metric}
    return info, {**missing, **{s: "unlabelled" for s in unlabelled}}


def _describe_text(task: TaskSpec, info: dict[str, Any], notes: dict[str, str], source: str) -> str:
    lines = [f"task:           {task.name} ({task.kind}, {'regression' if task.is_regression else 'classification'})",
             f"source:         {source}",
             f"input columns:  {', '.join(task.input_columns)}"]
    if task.is_regression:
        lines.append("labels:         one score (regression, MSE loss)")
    else:
        shown = ", ".join(f"{i} {n}" for i, n in enumerate(task.label_names[:20]))
        more = f", ... ({task.num_labels} in all)" if task.num_labels > 20 else ""
        lines.append(f"{f'labels ({task.num_labels}):':<16}{shown}{more}")
    lines.append(f"metric:         {task.primary_metric} (reports {', '.join(task.metric_names)}) "
                 f"on {task.eval_split}")
    lines.append("splits:")
    for split in task.splits:
        if split in info["splits"]:
            note = " (unlabelled)" if notes.get(split) == "unlabelled" else ""
            lines.append(f"  {split:<22} {info['splits'][split]:>9,}{note}")
        else:
            lines.append(f"  {split:<22} {'-':>9} (not found: {task.local_files[split]})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.tasks",
        description="Inspect the tasks (datasets, labels, metrics) the orchestrator trains on.")
    sub = parser.add_subparsers(dest="command", required=True)
    desc = sub.add_parser("describe", help="print a task's splits and sizes, labels, input columns and metric",
                          description="Print a task's splits and their sizes, labels, input columns and "
                                      "metric, read from the hub or from a local copy.")
    desc.add_argument("task", help=f"task name: {', '.join(TASKS)}")
    desc.add_argument("--data-dir", default=os.environ.get("ORCH_DATA_DIR") or None,
                      help="folder with local copies (glue/SST-2/train.tsv, cifar10/train.parquet, ...); "
                           "default: $ORCH_DATA_DIR, or the Hugging Face hub when that is unset")
    desc.add_argument("--json", action="store_true",
                      help='print JSON: {"task", "splits": {name: size}, "num_labels", "label_names", "metric"}')
    args = parser.parse_args(argv)
    try:
        task = get_task(args.task)
        info, notes = describe(task, args.data_dir)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        source = (str(Path(args.data_dir, task.local_dir)) if args.data_dir
                  else f"hub {task.hub_id}" + (f" ({task.hub_config})" if task.hub_config else ""))
        print(_describe_text(task, info, notes, source))
    return 0


if __name__ == "__main__":
    sys.exit(main())
