"""Torch datasets over prepared Arrow tables and their collators: what a training loop iterates.

    TextDataset + TextCollator    tokenised rows, padded per batch
    ImageDataset + ImageCollator  encoded images, decoded per item, the image processor per batch
                                  (in torch on the GPU when the loop runs on one)

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

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per row (before padding)."""
        import pyarrow.compute as pc

        return pc.list_value_length(self.table.column("input_ids")).to_numpy(zero_copy_only=False)

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
    """The model's image processor (resize, crop, rescale, normalise) over a batch -> pixel_values.

    With `device` (a GPU), a standard resize/centre-crop/normalise processor runs in torch on that
    device instead (:class:`DevicePixels`): the PIL processor costs ~4 ms a CIFAR image on one core,
    so a 50 k-image epoch would spend minutes on the host while the GPU waits.
    """

    def __init__(self, processor: Any, device: torch.device | str | None = None) -> None:
        self.processor = processor
        self.on_device = DevicePixels.of(processor, device) if device is not None else None

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        images = [it["image"] for it in items]
        pixels = self.on_device(images) if self.on_device is not None else None
        if pixels is None:
            pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        return {
            "pixel_values": pixels,
            "labels": torch.tensor([it["labels"] for it in items], dtype=torch.long),
            "idx": torch.tensor([it["idx"] for it in items], dtype=torch.long),
        }


class DevicePixels:
    """A ViT/DINOv2-style image processor (shortest-edge or fixed resize, centre crop, rescale,
    normalise) in torch, on a device. Bicubic with antialias is PIL's kernel (a = −0.5)."""

    def __init__(self, device: torch.device | str, size: dict[str, int | None], crop: tuple[int, int] | None,
                 scale: float | None, mean: Sequence[float] | None, std: Sequence[float] | None,
                 mode: str) -> None:
        self.device = torch.device(device)
        self.size, self.crop, self.scale, self.mode = size, crop, scale, mode
        as_tensor = lambda v: torch.tensor(v, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)  # noqa: E731
        self.mean = as_tensor(mean) if mean is not None else None
        self.std = as_tensor(std) if std is not None else None

    @classmethod
    def of(cls, processor: Any, device: torch.device | str) -> DevicePixels | None:
        """The torch version of `processor`, or None when it does something else (then it is called as is)."""
        modes = {2: "bilinear", 3: "bicubic"}  # PIL's resample codes
        size = _size_dict(getattr(processor, "size", None))
        if not getattr(processor, "do_resize", False) or size is None or getattr(processor, "resample", None) not in modes:
            return None
        crop = None
        if getattr(processor, "do_center_crop", False):
            crop_size = _size_dict(getattr(processor, "crop_size", None))
            if crop_size is None or crop_size.get("height") is None:
                return None
            crop = (int(crop_size["height"]), int(crop_size["width"]))
        scale = processor.rescale_factor if getattr(processor, "do_rescale", False) else None
        normalise = getattr(processor, "do_normalize", False)
        return cls(device, size, crop, scale, processor.image_mean if normalise else None,
                   processor.image_std if normalise else None, modes[processor.resample])

    def __call__(self, images: list[Any]) -> torch.Tensor | None:
        arrays = [np.asarray(im.convert("RGB") if hasattr(im, "convert") else im) for im in images]
        if len({a.shape for a in arrays}) != 1:
            return None  # mixed sizes: the processor resizes each on its own
        x = torch.from_numpy(np.stack(arrays)).to(self.device, non_blocking=True)
        x = x.permute(0, 3, 1, 2).float()
        h, w = x.shape[-2:]
        if self.size.get("shortest_edge"):
            short = int(self.size["shortest_edge"])
            out_h, out_w = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
        else:
            out_h, out_w = int(self.size["height"]), int(self.size["width"])
        x = torch.nn.functional.interpolate(x, size=(out_h, out_w), mode=self.mode, align_corners=False,
                                            antialias=True).clamp_(0, 255)
        if self.crop is not None:
            top, left = (out_h - self.crop[0]) // 2, (out_w - self.crop[1]) // 2
            x = x[:, :, top:top + self.crop[0], left:left + self.crop[1]]
        if self.scale is not None:
            x = x * self.scale
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x.contiguous()


def _size_dict(size: Any) -> dict[str, int | None] | None:
    if size is None:
        return None
    keys = ("shortest_edge", "height", "width")
    as_dict = {k: (size.get(k) if isinstance(size, dict) else getattr(size, k, None)) for k in keys}
    if as_dict["shortest_edge"] is None and (as_dict["height"] is None or as_dict["width"] is None):
        return None
    return as_dict


class LengthGroupedSampler(torch.utils.data.Sampler[int]):
    """DistributedSampler's contract (this rank's share of a per-epoch seeded shuffle, `set_epoch`,
    shards padded to equal length) with batches of like lengths: each epoch's shuffled order is cut into
    pools of `pool_batches` global batches, each pool is sorted by length and cut into batches, and the
    batches are shuffled. A rank takes every `num_replicas`-th example, so with a global batch divisible
    by the number of workers each local batch is its share of one global batch."""

    def __init__(self, lengths: Sequence[int], batch_size: int, num_replicas: int = 1, rank: int = 0,
                 seed: int = 0, pool_batches: int = 8) -> None:
        self.lengths = [int(n) for n in lengths]
        self.batch_size, self.num_replicas, self.rank = batch_size, num_replicas, rank
        self.seed, self.pool = seed, batch_size * pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.num_replicas)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        n = len(self.lengths)
        shuffled = torch.randperm(n, generator=g).tolist()
        grouped = [i for start in range(0, n, self.pool)
                   for i in sorted(shuffled[start:start + self.pool], key=lambda i: -self.lengths[i])]
        batches = [grouped[start:start + self.batch_size] for start in range(0, n, self.batch_size)]
        order = [i for b in torch.randperm(len(batches), generator=g).tolist() for i in batches[b]]
        total = len(self) * self.num_replicas
        order += order[:total - n]  # as DistributedSampler pads: every rank takes as many steps
        return iter(order[self.rank:total:self.num_replicas])
