"""What a recipe is: everything one method needs, in one object the loop, the sweep and the reports ask.

A recipe holds the method's defaults (learning rate and its search range), its settings (the config keys
that mean something for it: orchestrator/config/settings/), how its model is built, its loss, what happens
before each optimizer step, how the deployable model is made and saved, and its label in tables. The loop
stays one readable loop; the recipe supplies the method-shaped holes. Subclasses override only what differs
from plain fine-tuning.

No torch at import time: config validation and `--help` import recipes for their names and keys, so
the methods (plain PyTorch, in methods/) are imported inside the functions that use them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from orchestrator.config.settings import MethodSettings

if TYPE_CHECKING:
    import torch
    from torch import nn

    from orchestrator.config.schema import Config
    from orchestrator.recipes.auxiliary import AuxModel
    from orchestrator.tasks import TaskSpec


@dataclass
class StepInputs:
    """What a recipe's loss sees for one batch."""

    cfg: Config
    model: nn.Module       # what the forward pass runs (DDP-wrapped on several workers)
    raw_model: nn.Module   # the unwrapped network (PC-LoRA's λ and teacher pass need it)
    batch: dict[str, torch.Tensor]  # on the device; `idx` and `labels` included
    aux: Any               # what `Recipe.prepare` returned (teacher logits, a teacher model, ...)
    regression: bool


def short_number(value: Any) -> str:
    """4 -> '4', 0.5 -> '0.5', 2e-3 -> '0.002': how table labels print a setting."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "?"
    return str(int(v)) if v.is_integer() else f"{v:.2g}"


# The hidden size of MiniLM-L6/L3 and DINOv2-S, the models every default learning rate here was measured on.
REFERENCE_WIDTH = 384
# A width-scaled rate never drops below this share of the measured one (3072 wide and up).
MIN_WIDTH_FACTOR = 1 / 8


def model_width(ref: str) -> int | None:
    """`hidden_size` of a model from its config alone, no weights: a local folder's config.json, else the
    hub's cached copy (never the network). None when neither is at hand."""
    import json

    config_file = Path(ref).expanduser() / "config.json"
    try:
        if config_file.is_file():
            config = json.loads(config_file.read_text())
            # DistilBERT calls it `dim`; the vision backbones nest nothing here.
            width = config.get("hidden_size", config.get("dim"))
        else:
            from transformers import AutoConfig

            width = getattr(AutoConfig.from_pretrained(ref, local_files_only=True), "hidden_size", None)
    except Exception:  # no cached copy, a malformed file: the preflight reports those; keep the default
        return None
    return width if isinstance(width, int) and width > 0 else None


def width_scaled_lr(lr: float, width: int | None) -> float:
    """`lr` (measured at REFERENCE_WIDTH) × REFERENCE_WIDTH / width, kept within [lr · MIN_WIDTH_FACTOR, lr].

    Adam's update moves every weight by about lr, so a layer's output moves by about lr × fan-in: the
    rate that keeps that step the same shrinks as 1 / width (μP's rule for hidden layers with Adam,
    Yang et al., arXiv 2203.03466, Table 3). Narrower models keep `lr` (nothing was measured there);
    an unknown width keeps it too. Three significant digits, so config.yaml shows 0.000667, not a tail.
    """
    if not width:
        return lr
    factor = min(1.0, max(MIN_WIDTH_FACTOR, REFERENCE_WIDTH / width))
    return float(f"{lr * factor:.3g}")


def present_settings(row: Mapping[str, Any]) -> dict[str, Any]:
    """The method.* entries of a trials.csv row that hold a value."""
    return {k: v for k, v in dict(row).items() if k.startswith("method.") and v is not None
            and not (isinstance(v, float) and math.isnan(v)) and v != ""}


class Recipe:
    """Plain fine-tuning of the whole model; the other methods override what they change."""

    name: ClassVar[str]
    display_name: ClassVar[str]        # how tables and plots name the method
    is_baseline: ClassVar[bool] = False  # FFT and LoRA: the references every table compares against
    is_full_finetune: ClassVar[bool] = False  # FFT: its score is the reference (100 %) of its model and task
    # KD-LoRA and the like: what ships is a student (another checkpoint, or the model cut to fewer layers), so its
    # cells state their share of the FFT teacher and of the student's own FFT ceiling
    trains_student: ClassVar[bool] = False
    # The method's own config keys, a dataclass in orchestrator/config/settings/ (fields, defaults, checks).
    settings: ClassVar[type[MethodSettings]] = MethodSettings
    # Values for keys the config leaves null (train.lr: null = the method's own learning rate).
    defaults: ClassVar[Mapping[str, Any]] = {}
    # The log-uniform learning-rate range shipped search spaces use for this method.
    lr_range: ClassVar[tuple[float, float]] = (1e-5, 1e-4)

    @property
    def keys(self) -> tuple[str, ...]:
        """The method.* keys that mean something for this method: its settings' fields (a sweep over several
        methods draws a dimension only for the methods that have it; trials.csv blanks it for the others)."""
        return self.settings.keys()

    # -------------------------------------------------------------------- on the driver
    def defaults_for(self, cfg: Config) -> Mapping[str, Any]:
        """The defaults for this configuration (a method may pick them by its own settings)."""
        return self.defaults

    def auxiliary_models(self, cfg: Config) -> list[AuxModel]:
        """The cached models (a fine-tuned teacher, a student's own FFT ceiling) the engine builds, or finds
        cached, before this run trains (orchestrator/recipes/auxiliary.py); none for most methods."""
        return []

    def model_references(self, cfg: Config) -> list[str]:
        """The checkpoints this method builds on, for the preflight's rank check."""
        return [cfg.model]

    def rank_problems(self, cfg: Config, model: nn.Module, rank: int) -> list[str]:
        """Why `rank` does not fit `model` for this method (an empty list when it fits)."""
        return []

    # -------------------------------------------------------------------- in the worker
    def data_reference(self, cfg: Config) -> str:
        """The model whose tokenizer or image processor feeds the trained network."""
        return cfg.model

    def build_model(self, cfg: Config, task: TaskSpec, teacher_dir: str | None) -> nn.Module:
        from methods import baselines
        from orchestrator.tasks import load_model

        return baselines.prepare_fft(load_model(cfg.model, task, trust_remote_code=cfg.trust_remote_code))

    def prepare(self, cfg: Config, task: TaskSpec, device: torch.device, teacher_dir: str | None,
                train_size: int) -> Any:
        """What the loss needs beside the model (teacher logits, a frozen teacher); None for most."""
        return None

    def before_step(self, cfg: Config, raw_model: nn.Module, step: int, total_steps: int) -> dict[str, float]:
        """Per-step state the method advances (PC-LoRA's λ); returns what the epoch line reports."""
        return {}

    def loss(self, s: StepInputs) -> torch.Tensor:
        s.batch.pop("idx")
        return s.model(**s.batch).loss

    def deployable(self, cfg: Config, raw_model: nn.Module) -> nn.Module:
        """What a user ships (may modify `raw_model` in place)."""
        return raw_model

    def save(self, model: nn.Module, path: Path) -> None:
        from methods import baselines

        baselines.save_model(model, path)

    # -------------------------------------------------------------------- in reports
    def label(self, row: Mapping[str, Any]) -> str:
        """The key settings of a trial of this method, for tables ('r=8, sine to 0.8, kd=0.5')."""
        return "–"

    def student_model(self, row: Mapping[str, Any]) -> str | None:
        """The separately pre-trained model a trial's deployable network starts from when it is not the trial's
        model (KD-LoRA's student); that model's own FFT is the trial's ceiling. None: the trial's model."""
        return None

    @staticmethod
    def rank_part(present: Mapping[str, Any]) -> list[str]:
        return [f"r={short_number(present['method.rank'])}"] if "method.rank" in present else []
