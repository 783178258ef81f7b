"""Torch datasets over prepared Arrow tables and their collators: what a training loop iterates.

    TextDataset + TextCollator    tokenised rows, padded per batch
    ImageDataset + ImageCollator  encoded images, decoded per item, the image processor per batch

build_dataset (orchestrator.tasks.cache) makes the tables these wrap.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    import pyarrow as pa

# What build_dataset returns beside the dataset: a batch of items -> the model's tensors.
Collate = Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]

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
    """A random crop of the original size from the zero-padded image, then a flip with p = 0.5."""
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
