"""PC-LoRA's settings (orchestrator/recipes/pc_lora.py is its recipe): adapters, a teacher, and its own decay."""

from __future__ import annotations

from dataclasses import dataclass

from methods.schedules import SCHEDULES as DECAY_SCHEDULES
from orchestrator.base.choices import unknown_choice
from orchestrator.config.settings.shared import AdapterSettings, TeacherSettings

# PC-LoRA's feature-KD teacher when method.teacher is null.
KD_TEACHERS = ("pretrained", "finetuned")


@dataclass
class PCLoRASettings(TeacherSettings, AdapterSettings):  # fields: the adapters', the teacher's, its own
    """PC-LoRA (Hwang et al., arXiv 2406.09117): λ(n)·(W x + b) + B(A x) + C, λ decaying from 1 to 0."""

    # How λ goes from 1 to 0 (methods/schedules.py): linear, sine or cosine.
    decay_schedule: str = "sine"
    # The share of training steps by which λ reaches 0 (and stays there), in (0, 1].
    decay_end: float = 0.8
    # The feature-KD teacher when method.teacher is null: `pretrained` (the paper's: the model itself at λ = 1)
    # or `finetuned` (the task's fully fine-tuned teacher, cached as for KD-LoRA).
    kd_teacher: str = "pretrained"
    # Weight of logit KD from the fine-tuned teacher beside feature KD (0 = the paper's loss).
    logit_kd_weight: float = 0.0
    # How the adapters start (methods/pc_lora.py ADAPTER_INITS): `svd` (W's top-r singular triplets and C = b,
    # λ scaling the remainder; beat the zero start on IMDb and four GLUE tasks, issue 36) or `zero` (the
    # paper's: B = C = 0). Each has its own default learning rate (orchestrator/recipes/pc_lora.py).
    adapter_init: str = "svd"

    def problems(self) -> list[str]:
        from methods.pc_lora import ADAPTER_INITS  # torch: imported when a config is checked, not on import

        p = super().problems()
        if self.decay_schedule not in DECAY_SCHEDULES:
            p.append(unknown_choice("method.decay_schedule", "schedule", self.decay_schedule, DECAY_SCHEDULES))
        if not 0.0 < self.decay_end <= 1.0:
            p.append(f"method.decay_end: must lie in (0, 1] (the share of training steps over which λ decays "
                     f"to 0), got {self.decay_end}")
        if self.kd_teacher not in KD_TEACHERS:
            p.append(unknown_choice("method.kd_teacher", "teacher", self.kd_teacher, KD_TEACHERS))
        if self.adapter_init not in ADAPTER_INITS:
            p.append(unknown_choice("method.adapter_init", "initialisation", self.adapter_init, ADAPTER_INITS))
        # One message at most for logit_kd_weight, none that blames it for a kd_weight refused on its own.
        if not 0.0 <= self.logit_kd_weight <= 1.0:
            p.append(f"method.logit_kd_weight: must lie in [0, 1], got {self.logit_kd_weight}")
        elif 0.0 <= self.kd_weight <= 1.0 and self.kd_weight + self.logit_kd_weight > 1.0:
            p.append(f"method.logit_kd_weight: must lie in [0, 1 − method.kd_weight], got {self.logit_kd_weight} "
                     f"with kd_weight {self.kd_weight}")
        else:
            p += self.logit_teacher_problems()
        return p

    def logit_teacher_problems(self) -> list[str]:
        """Whether logit KD has a teacher to learn from (a method whose logit teacher is always the fine-tuned
        one says none)."""
        if self.logit_kd_weight > 0 and self.kd_teacher == "pretrained" and not self.teacher:
            return ["method.logit_kd_weight: logit KD needs a fine-tuned teacher (the pre-trained model's head "
                    "is untrained); set method.kd_teacher: finetuned or name one with method.teacher"]
        return []
