"""Distil, then compress: the KD-LoRA student compressed by PC-LoRA while it learns from the fine-tuned teacher.

KD-LoRA stops at its student's size (a half-depth model keeps about half the encoder); PC-LoRA at its base
model's depth (at ~7 % of mpnet-base's encoder it already loses most of its accuracy on small GLUE tasks). This
method takes the student KD-LoRA would train (`method.student`, another pre-trained checkpoint, or the model
cut to `method.student_layers`), attaches PC-LoRA's adapters to every linear of it, and fades its own weights
out under λ (methods/pc_lora.py), so what ships is a half-depth model at a fraction of its own encoder: the
small end of the front that neither method reaches alone.

The loss composes the two methods' terms with the functions they already use (methods/pc_lora_loss.py `loss`):
  (1 − kd − logit_kd)·task + kd·feature KD + logit_kd·logit KD,
feature KD against the student's own pre-trained weights (its λ = 1 pass, adapters off: PC-LoRA's paper
term, so the adapters learn to stand in for the weights they replace) and logit KD against the task's
fine-tuned teacher, whose logits come cached per example from its own run on its own tokens (KD-LoRA's
mechanism: teacher and student may tokenize differently). The student's own FFT is its ceiling (an
auxiliary model, as for KD-LoRA).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.config.settings.distil_compress import DistilCompressSettings
from orchestrator.recipes import kd_lora, pc_lora
from orchestrator.recipes.base import Recipe, StepInputs, present_settings

if TYPE_CHECKING:
    import torch
    from torch import nn

    from orchestrator.config.schema import Config
    from orchestrator.recipes.auxiliary import AuxModel
    from orchestrator.tasks import TaskSpec


@dataclass
class Teachers:
    """Both teachers of the loss: the student's own λ = 1 pass (features) and the fine-tuned teacher (logits)."""

    features: pc_lora.FeatureTeacher | None  # None when kd_weight is 0
    logits: kd_lora.KDTeacher


class DistilCompress(Recipe):
    name = "distil_compress"
    display_name = "KD-LoRA student + PC-LoRA"
    settings = DistilCompressSettings
    trains_student = True
    # PC-LoRA's own rates (start-specific, width-scaled), read on the student: the network being compressed.
    defaults = pc_lora.RECIPE.defaults
    lr_range = pc_lora.RECIPE.lr_range

    # -------------------------------------------------------------------- on the driver
    def defaults_for(self, cfg: Config) -> Mapping[str, Any]:
        from orchestrator.config.schema import with_values

        student = cfg.method.student or cfg.method.teacher or cfg.model
        return pc_lora.RECIPE.defaults_for(with_values(cfg, {"model": student}))

    def auxiliary_models(self, cfg: Config) -> list[AuxModel]:
        """KD-LoRA's: the fine-tuned teacher, whose logits it learns from, and the student's own FFT ceiling."""
        return kd_lora.RECIPE.auxiliary_models(cfg)

    def model_references(self, cfg: Config) -> list[str]:
        return kd_lora.RECIPE.model_references(cfg)

    def rank_problems(self, cfg: Config, model: nn.Module, rank: int) -> list[str]:
        return pc_lora.RECIPE.rank_problems(cfg, model, rank)

    # -------------------------------------------------------------------- in the worker
    def data_reference(self, cfg: Config) -> str:
        return kd_lora.RECIPE.data_reference(cfg)

    def build_model(self, cfg: Config, task: TaskSpec, teacher_dir: str | None) -> nn.Module:
        from methods import pc_lora as pc

        m = cfg.method
        student = kd_lora.load_student(cfg, task, teacher_dir)
        pc.attach(student, m.rank, alpha=m.alpha, target_patterns=m.target_modules, init=m.adapter_init)
        return student

    def prepare(self, cfg: Config, task: TaskSpec, device: torch.device, teacher_dir: str | None,
                train_size: int) -> Teachers:
        from methods.feature_cache import FeatureCache

        features = (pc_lora.FeatureTeacher(None, FeatureCache(pc_lora.TEACHER_CACHE_BYTES))
                    if cfg.method.kd_weight > 0 else None)
        return Teachers(features, kd_lora.RECIPE.prepare(cfg, task, device, teacher_dir, train_size))

    def before_step(self, cfg: Config, raw_model: nn.Module, step: int, total_steps: int) -> dict[str, float]:
        return pc_lora.RECIPE.before_step(cfg, raw_model, step, total_steps)

    def loss(self, s: StepInputs) -> torch.Tensor:
        import torch

        from methods import pc_lora_loss

        m = s.cfg.method
        idx = s.batch.pop("idx")
        inputs = {k: v for k, v in s.batch.items() if k != "labels"}
        out = s.model(**s.batch, output_hidden_states=True)
        t_hidden: Any = ()
        if s.aux.features is not None:
            t_hidden, _ = pc_lora.teacher_outputs(s.aux.features, s.raw_model, inputs, idx)
        if s.aux.logits.model is not None:  # augmented images: the teacher sees the student's own crop
            with torch.no_grad():
                t_logits = s.aux.logits.model(**inputs).logits
        else:
            t_logits = s.aux.logits.logits.lookup(idx)
        return pc_lora_loss.loss(out.loss, out.hidden_states[1:], t_hidden, m.kd_weight,
                                 attention_mask=inputs.get("attention_mask"), student_logits=out.logits,
                                 teacher_logits=t_logits, logit_kd_weight=m.logit_kd_weight,
                                 temperature=m.temperature, regression=s.regression)

    def deployable(self, cfg: Config, raw_model: nn.Module) -> nn.Module:
        return pc_lora.RECIPE.deployable(cfg, raw_model)

    def save(self, model: nn.Module, path: Path) -> None:
        pc_lora.RECIPE.save(model, path)

    # -------------------------------------------------------------------- in reports
    def label(self, row: Mapping[str, Any]) -> str:
        present = present_settings(row)
        student = kd_lora.RECIPE.label({k: v for k, v in present.items()
                                        if k in ("method.student", "method.student_layers", "method.student_init")})
        # PC-LoRA's label without "ft teacher": the logit teacher here is always the fine-tuned one
        compress = pc_lora.RECIPE.label({k: v for k, v in present.items() if k != "method.kd_teacher"})
        return ", ".join(p for p in (student, compress) if p != "–") or "–"

    def student_model(self, row: Mapping[str, Any]) -> str | None:
        return kd_lora.RECIPE.student_model(row)



RECIPE = DistilCompress()
