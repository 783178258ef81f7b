"""The classic GLUE TSV layout (glue/SST-2/train.tsv, ...) -> datasets.Dataset, every problem a DataError.

Every error names the file and line and says how to fix it: a malformed download should not end a
sweep with a traceback from deep inside csv or pyarrow.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from orchestrator.base.numbers import is_finite_number
from orchestrator.tasks.registry import DataError, TaskSpec, _may_be_unlabelled
from orchestrator.tasks.tables import _to_dataset

if TYPE_CHECKING:
    import datasets


def _label_parser(task: TaskSpec) -> Callable[[str], float | int | None]:
    """raw TSV label -> class id / score, or None when the value is not a valid label."""
    if task.is_regression:
        def parse(raw: str) -> float | None:
            try:
                value = float(raw)
            except ValueError:
                return None
            return value if is_finite_number(value) else None
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


@dataclass
class _Layout:
    """Where a file's columns are: decided from its first line (a header, or CoLA's headerless data)."""

    names: list[str]              # the column names, by position
    positions: dict[str, int]     # our input column -> its position in a row
    label_pos: int | None         # None: an unlabelled split whose file has no label column
    rows_before: list[list[str]]  # [line 1] when the file has no header (line 1 is data), else []


def _layout(task: TaskSpec, split: str, path: Path, first: list[str] | None) -> _Layout:
    wanted = {out: task.tsv_columns[out] for out in task.input_columns}
    label_src = task.tsv_columns["label"]
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
    return _Layout(names, positions, label_pos, rows_before)


def _numbered_rows(layout: _Layout, reader: Any) -> Iterator[tuple[list[str], int]]:
    """(row, 1-based line) for every data row; blank lines (a trailing newline) carry no row."""
    for row in layout.rows_before:
        yield row, 1
    for row in reader:
        if row:
            yield row, reader.line_num


def _parse_rows(task: TaskSpec, split: str, path: Path,
                reader: Any) -> tuple[dict[str, list[str]], list[float | int]]:
    """The input columns and labels of every row, checked row by row (DataError naming the line)."""
    layout = _layout(task, split, path, next(reader, None))
    parse_label = _label_parser(task)
    label_src = task.tsv_columns["label"]
    columns: dict[str, list[str]] = {c: [] for c in task.input_columns}
    labels: list[float | int] = []
    width = len(layout.names)
    for row, line in _numbered_rows(layout, reader):
        if len(row) != width:
            raise DataError(f"{path}:{line}: expected {width} tab-separated columns "
                            f"({', '.join(layout.names)}), found {len(row)}; fix or delete this line")
        for out, pos in layout.positions.items():
            columns[out].append(row[pos])
        if layout.label_pos is None:
            labels.append(-1)
            continue
        label = parse_label(row[layout.label_pos])
        if label is None:
            allowed = ("a number" if task.is_regression else
                       f"one of {', '.join(task.label_names)} or their ids 0..{task.num_labels - 1}")
            raise DataError(f"{path}:{line}: label {row[layout.label_pos]!r} (column {label_src!r}) is not "
                            f"a label of {task.name}; expected {allowed}")
        labels.append(label)
    return columns, labels


def _read_tsv(task: TaskSpec, split: str, path: Path) -> datasets.Dataset:
    """A classic GLUE TSV file. QUOTE_NONE: GLUE text contains unbalanced quote characters."""
    reader: Any = None
    try:
        # utf-8-sig: MRPC's files start with a byte-order mark.
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            columns, labels = _parse_rows(task, split, path, reader)
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
