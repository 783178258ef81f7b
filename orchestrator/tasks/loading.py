"""One split of a task as a datasets.Dataset (inputs + "label"), from the hub or a local copy, and subsets.

    load_split(task, split, data_dir)   -> datasets.Dataset  (inputs + "label")
    stratified_subset(ds, n, seed)      -> datasets.Dataset  (train/eval.max_examples)

Local copies (data_dir): `<data_dir>/<task.local_dir>/<task.local_files[split]>`, either the classic
GLUE TSV layout (see orchestrator.tasks.tsv) or the hub's Parquet layout (imdb/train.parquet,
cifar10/train.parquet, with the hub's column names). A folder may also hold `<split>.parquet` or hub
shards `<split>-00000-of-00001.parquet` instead of the TSV.
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from orchestrator.tasks.registry import DataError, TaskSpec, _check_split, _may_be_unlabelled
from orchestrator.tasks.tables import _labels_of, _to_dataset
from orchestrator.tasks.tsv import _read_tsv


def _load_from_hub(hub_id: str, hub_config: str | None, split: str) -> datasets.Dataset:
    """The only function that talks to the hub (tests monkeypatch it)."""
    return datasets.load_dataset(hub_id, hub_config, split=split)


# The TSV reader holds a whole file in Python lists (~10x its size); GLUE's largest TSV, MNLI's train
# split, is 80 MB. Parquet is read column-wise by Arrow and has no such limit.
MAX_TSV_BYTES = 2 << 30


def _checked(path: Path) -> Path:
    """`path`, unless it is a TSV that links to a file of another kind, or one too big to hold.

    TSV errors quote the file's first line (a header that does not match) and bad labels: a `train.tsv`
    linking to ~/.ssh/id_rsa or /etc/shadow would have them print the secret. Parquet errors quote no
    content, and the hub's cache links Parquet shards to suffix-less blobs, so Parquet links are kept."""
    if path.suffix != ".tsv":
        return path
    target = path.resolve()
    if target.suffix != ".tsv":
        raise DataError(f"{path}: links to {target}, which is not a .tsv file; link or copy the data file "
                        "itself (nothing of the target was read)")
    if (size := target.stat().st_size) > MAX_TSV_BYTES:
        raise DataError(f"{path}: {size / 2**30:.1f} GiB; TSV files over {MAX_TSV_BYTES / 2**30:.0f} GiB are "
                        "not read (they are held in memory whole): convert it to Parquet (<split>.parquet "
                        "in the same folder, with the hub's column names)")
    return path


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
        return [_checked(main)]
    for candidates in ([folder / f"{split}.parquet"], sorted(folder.glob(f"{split}-*.parquet"))):
        existing = [p for p in candidates if p.is_file()]
        if existing:
            return [_checked(p) for p in existing]
    if main.exists():
        raise DataError(f"{main}: not a regular file (a device, pipe or socket could be read forever); "
                        "put the data file itself there")
    raise DataError(f"{main}: split {split!r} of {task.name} not found (also looked for {split}.parquet "
                    f"and {split}-*.parquet in {folder}); add the file, or use another split")


def _check_class_ids(task: TaskSpec, split: str, table: pa.Table, source: str) -> None:
    """DataError unless every label is a class id of the task (or -1, on a split that may be unlabelled)."""
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


def _normalise(task: TaskSpec, split: str, table: pa.Table, source: str) -> datasets.Dataset:
    """Hub / Parquet rows in the hub's column names -> our inputs + "label", checked."""
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
        _check_class_ids(task, split, table, source)
    try:
        return _to_dataset(task, table, split)
    except (pa.ArrowException, ValueError, TypeError) as err:  # e.g. numbers where image structs belong
        found = ", ".join(f"{f.name}: {f.type}" for f in table.schema)
        raise DataError(f"{source}: the columns do not have the types of {task.hub_id} (found {found}): {err}; "
                        "use the hub's layout") from None


def _load_hub_split(task: TaskSpec, split: str) -> datasets.Dataset:
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


def load_split(task: TaskSpec, split: str, data_dir: str | os.PathLike[str] | None) -> datasets.Dataset:
    """One split as a datasets.Dataset with the task's input columns and "label".

    data_dir None: the hub (`datasets.load_dataset(task.hub_id, task.hub_config, split=split)`).
    Otherwise the local copy under `data_dir/task.local_dir` (classic GLUE TSV or hub Parquet).
    Unlabelled rows (test splits) have label -1. Raises DataError for missing or malformed data.
    """
    _check_split(task, split)
    if data_dir is None:
        return _load_hub_split(task, split)
    paths = _local_paths(task, split, data_dir)
    if paths[0].suffix == ".tsv":
        return _read_tsv(task, split, paths[0])
    try:
        table = pa.concat_tables([pq.read_table(p) for p in paths])
    except (OSError, pa.ArrowException, ValueError) as err:
        raise DataError(f"{paths[0]}: not a readable Parquet file ({err}); re-download it") from err
    return _normalise(task, split, table, str(paths[0]) if len(paths) == 1 else f"{paths[0].parent}/{split}-*")


# --------------------------------------------------------------------------------------------- subsets

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
