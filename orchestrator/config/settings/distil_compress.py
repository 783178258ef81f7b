"""Distil-then-compress's settings (orchestrator/recipes/distil_compress.py is its recipe): KD-LoRA's student
and teacher, PC-LoRA's adapters and decay, composed; no key of its own."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.config.settings.kd_lora import KDLoRASettings
from orchestrator.config.settings.pc_lora import PCLoRASettings


@dataclass
class DistilCompressSettings(PCLoRASettings, KDLoRASettings):
    """The KD-LoRA student compressed by PC-LoRA. `kd_weight` weighs feature KD from the student's own
    pre-trained weights (PC-LoRA's term), `logit_kd_weight` logit KD from the fine-tuned teacher (KD-LoRA's)."""

    def logit_teacher_problems(self) -> list[str]:
        return []  # the logit teacher is always the task's fine-tuned teacher, whatever kd_teacher says
