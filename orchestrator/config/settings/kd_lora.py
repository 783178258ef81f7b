"""KD-LoRA's settings (orchestrator/recipes/kd_lora.py is its recipe): adapters, a teacher, and its student."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.base.choices import unknown_choice
from orchestrator.config.settings.shared import AdapterSettings, TeacherSettings

# What a student cut to `student_layers` starts from.
STUDENT_INITS = ("pretrained", "finetuned_teacher")


@dataclass
class KDLoRASettings(TeacherSettings, AdapterSettings):  # fields: the adapters', the teacher's, its own
    """KD-LoRA (Azimi et al., arXiv 2410.20777): a smaller LoRA student distilled from a fine-tuned teacher."""

    # The student: another checkpoint (the paper's: DistilBERT for BERT-base) ...
    student: str | None = None
    # ... or the teacher cut to this many evenly spaced layers (null with no `student`: half of them).
    student_layers: int | None = None
    # What a cut student starts from: `pretrained` (the paper's: the pre-trained model cut to k layers) or
    # `finetuned_teacher` (the fine-tuned teacher cut, head included: another method, asked for by name).
    student_init: str = "pretrained"
    # With `student`: also fine-tune the student fully once (cached like the teacher), the ceiling its
    # trials are judged against; false saves that run (orchestrator/recipes/auxiliary.py).
    student_ceiling: bool = True

    def problems(self) -> list[str]:
        p = super().problems()
        if not (self.student_layers is None or self.student_layers >= 1):
            p.append(f"method.student_layers: must be at least 1 (or null), got {self.student_layers}")
        if self.student and self.student_layers:
            p.append("method.student / method.student_layers: give one of them, not both (a checkpoint, or the "
                     "teacher cut to k layers)")
        if self.student_init not in STUDENT_INITS:
            p.append(unknown_choice("method.student_init", "initialisation", self.student_init, STUDENT_INITS))
        elif self.student and self.student_init == "finetuned_teacher":
            p.append("method.student_init: finetuned_teacher cuts the fine-tuned teacher; it cannot be combined "
                     "with method.student (another checkpoint)")
        return p
