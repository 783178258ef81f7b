"""build_dataset: one split, prepared for a training loop, tokenised once per process and per sweep.

Two levels of caching, because a sweep builds the same split in many trials and worker processes:
- an in-process memo (`_MEMO`) of processors, tokenizer fingerprints and prepared Arrow tables;
- with cache_dir, an Arrow file per tokenised split, keyed by a hash of everything that decides its
  token ids (CACHE_VERSION, task, split, data files, tokenizer definition, max_length, subset), and
  memory-mapped, so that concurrent trials share the pages.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from orchestrator.tasks.data import Collate, ImageCollator, ImageDataset, TextCollator, TextDataset
from orchestrator.tasks.loading import _local_paths, load_split, stratified_subset
from orchestrator.tasks.models import load_processor
from orchestrator.tasks.registry import TaskSpec, _check_split
from orchestrator.tasks.tables import _labels_of

if TYPE_CHECKING:
    import datasets
    import torch

# Bumped when the layout of cached tokenised data changes, so that old cache files are not reused.
CACHE_VERSION = 1

_V = TypeVar("_V")
# ("processor", kind, model, trust_remote_code) | ("fingerprint", model) | ("image", key) | ("text", digest):
# tuples, so that a model name containing ":" cannot run into another entry's key.
MemoKey = tuple[Hashable, ...]


class _Memo:
    """The process-wide memo behind build_dataset: thread-safe, keyed by tuples, cleared by clear_memo."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[MemoKey, Any] = {}

    def get(self, key: MemoKey) -> Any:
        with self._lock:
            return self._items.get(key)

    def put(self, key: MemoKey, value: Any) -> None:
        with self._lock:
            self._items[key] = value

    def get_or_make(self, key: MemoKey, make: Callable[[], _V]) -> _V:
        # make() runs under the lock: concurrent threads (DataLoader, trials) load a processor once.
        with self._lock:
            if key not in self._items:
                self._items[key] = make()
            return self._items[key]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_MEMO = _Memo()


def _cached_processor(model_name_or_path: str, task: TaskSpec, trust_remote_code: bool = False) -> Any:
    return _MEMO.get_or_make(
        ("processor", task.kind, model_name_or_path, bool(trust_remote_code)),
        lambda: load_processor(model_name_or_path, task, trust_remote_code=trust_remote_code))


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
    with pa.memory_map(str(path)) as source:  # zero-copy: trials in other processes share the pages
        return pa.ipc.open_file(source).read_all()


def _write_arrow(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)  # atomic: a concurrent trial reads the old state or the whole file


def _image_dataset(task: TaskSpec, split: str, data_dir: str | os.PathLike[str] | None, source: list[Any],
                   max_examples: int | None, seed: int, augment: bool, processor: Any,
                   device: torch.device | str | None) -> tuple[ImageDataset, Collate]:
    # The JSON text of the key parts, as before the memo had typed keys: equal exactly when they were.
    key: MemoKey = ("image", json.dumps(["image", task.name, split, source, max_examples, seed]))
    table = _MEMO.get(key)
    if table is None:
        ds = stratified_subset(load_split(task, split, data_dir), max_examples, seed)
        # One contiguous chunk: a selection is a view whose every chunk keeps the whole file's
        # buffers alive, and pickling it (DataLoader spawn workers) copies them once per chunk.
        table = ds.with_format("arrow")[:].combine_chunks()
        _MEMO.put(key, table)
    return ImageDataset(table, augment=augment), ImageCollator(processor, device)


def _tokenised_table(task: TaskSpec, split: str, data_dir: str | os.PathLike[str] | None, processor: Any,
                     max_length: int, digest: str, path: Path | None, max_examples: int | None,
                     seed: int) -> pa.Table:
    """The memoised table, else the cache file, else tokenised now (and written to the cache file)."""
    key: MemoKey = ("text", digest)
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
    _MEMO.put(key, table)
    return table


def _text_dataset(task: TaskSpec, split: str, data_dir: str | os.PathLike[str] | None, source: list[Any],
                  model_name_or_path: str, processor: Any, max_length: int | None, max_examples: int | None,
                  seed: int, cache_dir: str | os.PathLike[str] | None) -> tuple[TextDataset, TextCollator]:
    if processor.pad_token_id is None:
        raise ValueError(f"model: the tokenizer of {model_name_or_path!r} has no padding token; set one "
                         "(tokenizer.pad_token = tokenizer.eos_token) and save the tokenizer folder")
    if max_length is None:
        max_length = min(int(processor.model_max_length), 4096)
    fingerprint = _MEMO.get_or_make(("fingerprint", model_name_or_path), lambda: _tokenizer_fingerprint(processor))
    spec = [CACHE_VERSION, task.name, split, source, fingerprint, max_length, max_examples, seed]
    digest = hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:20]
    path = (Path(cache_dir).expanduser() / f"{task.name.replace('/', '-')}-{split}-{digest}.arrow"
            if cache_dir is not None else None)
    table = _tokenised_table(task, split, data_dir, processor, max_length, digest, path, max_examples, seed)
    collate = TextCollator(processor.pad_token_id, getattr(processor, "pad_token_type_id", 0),
                           processor.padding_side, regression=task.is_regression)
    return TextDataset(table, regression=task.is_regression), collate


def build_dataset(task: TaskSpec, split: str, *, model_name_or_path: str,
                  data_dir: str | os.PathLike[str] | None, max_length: int | None = 128,
                  max_examples: int | None = None, seed: int = 0, train: bool, augment: bool = False,
                  cache_dir: str | os.PathLike[str] | None = None, trust_remote_code: bool = False,
                  pixels_on: torch.device | str | None = None,
                  ) -> tuple[torch.utils.data.Dataset, Collate]:
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
    pixels_on: a device (the GPU) on which the collator resizes and normalises in torch instead of
    calling the processor on the host (ImageCollator); its batches' pixel_values are then on it.
    trust_remote_code: passed to the tokenizer / image processor (see load_model).
    """
    _check_split(task, split)
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                   or max_length < 8):
        raise ValueError(f"train.max_length must be an integer >= 8 or null, got {max_length!r}")
    processor = _cached_processor(model_name_or_path, task, trust_remote_code)
    source = _source_fingerprint(task, split, data_dir)
    if task.kind == "image":
        return _image_dataset(task, split, data_dir, source, max_examples, seed, augment and train, processor,
                              pixels_on)
    return _text_dataset(task, split, data_dir, source, model_name_or_path, processor, max_length,
                         max_examples, seed, cache_dir)


def clear_memo() -> None:
    """Forget the in-process memo of processors and prepared datasets (the disk cache stays)."""
    _MEMO.clear()
