"""KD-LoRA (Azimi et al., arXiv 2410.20777): a smaller LoRA student distilled from a fine-tuned teacher.

The teacher (`model`, or `method.teacher`) is fully fine-tuned once per task on the driver and
cached with its logits for every training example (orchestrator/recipes/auxiliary.py, built by
orchestrator/engine/run.py `ensure_auxiliary`). The
student is, as in the paper, a separately pre-trained smaller model (`method.student`, e.g.
MiniLM-L3 for an L6 teacher) or the *pre-trained* model cut to `method.student_layers` evenly spaced
layers (DistilBERT's initialisation). Cutting the already fine-tuned teacher is another method and
is asked for by name: `method.student_init: finetuned_teacher`.

Teacher and student may tokenize differently (an MPNet teacher, a MiniLM student): the teacher's
logits come from its own fine-tuning run (`auxiliary.teacher_config`), which reads the training set through
the teacher's tokenizer, and are looked up by `idx`, the example's position in the training subset,
which no tokenizer changes. The student trains on its own tokens and never feeds them to the teacher.

With `train.augment` on an image task, cached logits would describe a different crop than the student
sees, so the teacher then runs on the student's own augmented batch instead (one image processor per
task pipeline; text has no augmentation, so text keeps the cached logits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.config.records import TrialFiles
from orchestrator.config.settings import KDLoRASettings
from orchestrator.recipes.base import Recipe, StepInputs, present_settings, short_number
from orchestrator.recipes.lora import lora_rank_problems

if TYPE_CHECKING:
    import torch
    from torch import nn

    from orchestrator.config.schema import Config
    from orchestrator.recipes.auxiliary import AuxModel
    from orchestrator.tasks import TaskSpec

@dataclass
class KDTeacher:
    """The teacher's side of the loss: cached logits by example index, or a live model (augmentation)."""

    logits: Any = None   # methods.kd_lora.TeacherLogits
    model: Any = None    # a frozen nn.Module


def load_student(cfg: Config, task: TaskSpec, teacher_dir: str | None) -> nn.Module:
    """The student before any adapter: `method.student` (another checkpoint), or the pre-trained model (or, with
    `student_init: finetuned_teacher`, the fine-tuned teacher) cut to `student_layers` evenly spaced layers."""
    from methods import kd_lora
    from orchestrator.tasks import load_model

    m = cfg.method
    if m.student:
        return load_model(m.student, task, trust_remote_code=cfg.trust_remote_code)
    source = (str(Path(teacher_dir) / TrialFiles.MODEL) if m.student_init == "finetuned_teacher"
              else m.teacher or cfg.model)
    full = load_model(source, task, trust_remote_code=cfg.trust_remote_code)
    return kd_lora.cut_layers(full, m.student_layers or max(1, full.config.num_hidden_layers // 2))


class KDLoRA(Recipe):
    name = "kd_lora"
    display_name = "KD-LoRA"
    settings = KDLoRASettings
    trains_student = True
    defaults = {"train.lr": 5.0e-4}
    lr_range = (2.0e-4, 3.0e-3)

    def auxiliary_models(self, cfg: Config) -> list[AuxModel]:
        """The fine-tuned teacher; and, for a separately pre-trained student, that student's own FFT on the same
        task and budget: its ceiling, the reference its trials are judged against (`method.student_ceiling:
        false` skips that run). A student cut from the teacher has no checkpoint of its own to fine-tune."""
        from orchestrator.recipes import auxiliary

        m = cfg.method
        ceiling = [auxiliary.student_ceiling(cfg, m.student)] if m.student and m.student_ceiling else []
        return [auxiliary.teacher(cfg), *ceiling]

    def model_references(self, cfg: Config) -> list[str]:
        # A cut student shares the teacher's layer widths, so the teacher's architecture is checked.
        return [cfg.method.student or cfg.method.teacher or cfg.model]

    def rank_problems(self, cfg: Config, model: nn.Module, rank: int) -> list[str]:
        return lora_rank_problems(cfg, model, rank)

    def data_reference(self, cfg: Config) -> str:
        return cfg.method.student or cfg.method.teacher or cfg.model

    def student_model(self, row: Mapping[str, Any]) -> str | None:
        # a student cut from the teacher (method.student_layers) has no checkpoint of its own to fine-tune
        student = row.get("method.student")
        return student if isinstance(student, str) and student else None

    def build_model(self, cfg: Config, task: TaskSpec, teacher_dir: str | None) -> nn.Module:
        from methods import baselines

        m = cfg.method
        return baselines.attach_lora(load_student(cfg, task, teacher_dir), m.rank, alpha=m.alpha,
                                     targets=m.target_modules)

    def prepare(self, cfg: Config, task: TaskSpec, device: torch.device, teacher_dir: str | None,
                train_size: int) -> KDTeacher:
        from methods import kd_lora

        if cfg.train.augment and task.kind == "image":  # text is never augmented (tasks/cache.py)
            from orchestrator.tasks import load_model

            model = load_model(str(Path(teacher_dir) / TrialFiles.MODEL), task,
                               trust_remote_code=cfg.trust_remote_code).to(device).eval()
            model.requires_grad_(False)
            return KDTeacher(model=model)
        logits = kd_lora.TeacherLogits.load(Path(teacher_dir) / TrialFiles.TEACHER_LOGITS).to(device)
        if len(logits) != train_size:
            raise RuntimeError(f"teacher logits cover {len(logits)} examples, the training set has "
                               f"{train_size}; delete {teacher_dir} to recompute them")
        return KDTeacher(logits=logits)

    def loss(self, s: StepInputs) -> torch.Tensor:
        import torch

        from methods import kd_lora

        m = s.cfg.method
        idx = s.batch.pop("idx")
        labels = s.batch.pop("labels")
        if s.aux.model is not None:
            with torch.no_grad():
                teacher = s.aux.model(**s.batch).logits
        else:
            teacher = s.aux.logits.lookup(idx)
        logits = s.model(**s.batch).logits
        return kd_lora.kd_loss(logits, teacher, labels, kd_weight=m.kd_weight, temperature=m.temperature,
                               regression=s.regression)

    def deployable(self, cfg: Config, raw_model: nn.Module) -> nn.Module:
        from methods import baselines

        return baselines.merge_lora(raw_model)

    def label(self, row: Mapping[str, Any]) -> str:
        present = present_settings(row)
        parts = self.rank_part(present)
        if "method.student" in present:
            parts.append(f"student={Path(str(present['method.student'])).name}")
        elif "method.student_layers" in present:
            cut = "fine-tuned teacher" if present.get("method.student_init") == "finetuned_teacher" else "layers"
            parts.append(f"student={short_number(present['method.student_layers'])} {cut}")
        if "method.kd_weight" in present:
            parts.append(f"kd={short_number(present['method.kd_weight'])}")
        if "method.temperature" in present:
            parts.append(f"T={short_number(present['method.temperature'])}")
        return ", ".join(parts) or "–"


RECIPE = KDLoRA()
