"""The tasks CLI: python -m orchestrator.tasks list [--json] | describe TASK [--data-dir DIR] [--json]

Loads every split to count its rows (datasets and pyarrow, no torch), so it answers quickly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.tasks.loading import _local_paths, load_split
from orchestrator.tasks.registry import TASKS, DataError, TaskSpec, get_task
from orchestrator.tasks.tables import _labels_of


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


def list_text(as_json: bool) -> str:
    rows = [{"task": t.name, "kind": t.kind, "num_labels": t.num_labels, "metric": t.primary_metric,
             "local_dir": t.local_dir} for t in TASKS.values()]
    if as_json:
        return json.dumps(rows, indent=2)
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in rows[0]}
    lines = ["  ".join(f"{k:<{w}}" for k, w in widths.items()).rstrip()]
    lines += ["  ".join(f"{str(r[k]):<{w}}" for k, w in widths.items()).rstrip() for r in rows]
    return "\n".join(lines + ["", "python -m orchestrator tasks describe TASK [--data-dir DIR]: splits, sizes, labels"])


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI; the exit status: 0, or 2 for an unknown task or bad data (the message, no traceback)."""
    from orchestrator.base.shell import prog

    parser = argparse.ArgumentParser(
        prog=prog("orchestrator.tasks"),
        description="Inspect the tasks (datasets, labels, metrics) the orchestrator trains on.")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="list the tasks: kind, labels, metric, where local copies go",
                             description="List every task the orchestrator trains on (no data is read).")
    listing.add_argument("--json", action="store_true", help='print JSON: [{"task", "kind", "num_labels", '
                                                             '"metric", "local_dir"}, ...]')
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
    if args.command == "list":
        print(list_text(args.json))
        return 0
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
    needed = [s for s in dict.fromkeys(("train", task.eval_split)) if s not in info["splits"]]
    if needed:  # what training reads: the task cannot be trained from this copy
        print(f"error: {task.name}: split(s) {', '.join(needed)} not found "
              f"({', '.join(task.local_files[s] for s in needed)}); training needs them", file=sys.stderr)
        return 2
    return 0
