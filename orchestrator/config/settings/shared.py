"""The settings several methods share, each defined once: a method's settings class composes them.

Every settings class is a dataclass of `method.*` keys (litgpt's lora.Config style): each field has its
default and a comment saying what it means; `problems()` checks the fields the class declares (and calls
`super()`, so a class that composes several checks each once) and returns one message per problem,
naming the key: `method.rank: must be at least 1, got 0`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

S = TypeVar("S", bound="MethodSettings")


@dataclass
class MethodSettings:
    """No settings of its own: full fine-tuning. The base of every method's settings."""

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The dotted config keys of these settings (`method.rank`, ...): what means something for the method."""
        return tuple(f"method.{f.name}" for f in dataclasses.fields(cls))

    @classmethod
    def of(cls: type[S], method: Any) -> S:
        """These settings read from the flat `method` section of a config (which holds every method's keys)."""
        return cls(**{f.name: getattr(method, f.name) for f in dataclasses.fields(cls)})

    def problems(self) -> list[str]:
        """Values out of range and keys that do not fit together, each message naming its key."""
        return []


@dataclass
class AdapterSettings(MethodSettings):
    """Low-rank adapters on the model's linear layers: LoRA's settings, and part of PC-LoRA's and KD-LoRA's."""

    # The adapters' rank r: A is r × in, B is out × r.
    rank: int = 8
    # LoRA scaling numerator; None = the method's own: rank for PC-LoRA (scaling 1, methods/pc_lora.py),
    # 2 x rank for LoRA and KD-LoRA (scaling 2, the KD-LoRA code's; methods/baselines.py).
    alpha: float | None = None
    # Module-name patterns to adapt instead of the per-architecture defaults.
    target_modules: list[str] | None = None

    def problems(self) -> list[str]:
        p = super().problems()
        if self.rank < 1:
            p.append(f"method.rank: must be at least 1, got {self.rank}")
        if not (self.alpha is None or self.alpha > 0):
            p.append(f"method.alpha: must be positive or null, got {self.alpha}")
        return p


@dataclass
class TeacherSettings(MethodSettings):
    """Distillation from a teacher: PC-LoRA's (feature KD) and KD-LoRA's (logit KD) share these."""

    # The weight of the distillation term: loss = (1 − kd_weight)·task loss + kd_weight·KD loss.
    kd_weight: float = 0.5
    # The softmax temperature T of logit KD (KD-LoRA's loss, PC-LoRA's optional logit term).
    temperature: float = 2.0
    # PC-LoRA: None = the pre-trained model itself is the feature-KD teacher (no second copy);
    # KD-LoRA: None = `model`, fully fine-tuned once per task and reused.
    teacher: str | None = None
    # The fine-tuned teacher's own full fine-tuning run (once per task, cached): its epochs and rate.
    teacher_epochs: int = 3
    teacher_lr: float = 5.0e-5

    def problems(self) -> list[str]:
        p = super().problems()
        if not 0.0 <= self.kd_weight <= 1.0:
            p.append(f"method.kd_weight: must lie in [0, 1], got {self.kd_weight}")
        if not self.temperature > 0:
            p.append(f"method.temperature: must be positive, got {self.temperature}")
        if self.teacher_epochs < 1:
            p.append(f"method.teacher_epochs: must be at least 1, got {self.teacher_epochs}")
        if not self.teacher_lr > 0:
            p.append(f"method.teacher_lr: must be positive, got {self.teacher_lr}")
        return p
