"""PC-LoRA (Hwang et al., arXiv 2406.09117): low-rank adapters that take over from the frozen weights.

Every target linear computes λ(n)·(W x + b) + B(A x) + C; λ decays to 0 by `decay_end` of training
and W, b are deleted at the end (methods/pc_lora.py). The loss mixes the task loss with feature KD
from a teacher: the pre-trained model itself at λ = 1 (the paper's), or the task's fine-tuned teacher
(`method.kd_teacher: finetuned`, the same cached FFT run KD-LoRA uses), which also allows logit KD
(`method.logit_kd_weight`) beside the feature term.

The adapters start at W's top-r singular triplets (`method.adapter_init: svd`, the default since issue 36)
or at zero (`zero`, the paper's: B = C = 0); each start has its own default learning rate. Why the adapters
need a higher rate than LoRA: they must learn to replace W x + b entirely before λ reaches 0, not only to
nudge it; from zero most of all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.config.settings import PCLoRASettings
from orchestrator.recipes.base import Recipe, StepInputs, present_settings, short_number

if TYPE_CHECKING:
    import torch
    from torch import nn

    from methods.feature_cache import FeatureCache
    from orchestrator.config.schema import Config
    from orchestrator.recipes.auxiliary import AuxModel
    from orchestrator.tasks import TaskSpec

# The teacher's hidden states kept per training example (methods/feature_cache.py), on the device. 512 MiB
# holds the quickstart's 1,000 SST-2 examples 4 times over (MiniLM-L6: 6 layers × ~12 tokens × 384 floats
# each); a larger training set fills it with the first examples seen and computes the rest every step.
TEACHER_CACHE_BYTES = 512 * 2**20


@dataclass
class FeatureTeacher:
    """The teacher's side of PC-LoRA's loss: a separate frozen model, or None for the model itself at λ = 1."""

    model: nn.Module | None
    cache: FeatureCache


def teacher_outputs(teacher: FeatureTeacher, raw_model: nn.Module, inputs: dict[str, Any],
                    idx: torch.Tensor) -> tuple[Sequence[torch.Tensor], torch.Tensor]:
    """(hidden states after each layer, logits) of the teacher on `inputs`: from the cache after the first epoch.
    The first epoch (and every example the cache has no room for) runs the frozen teacher."""
    import torch

    from methods import pc_lora_loss

    mask = inputs.get("attention_mask")
    hit = teacher.cache.get(idx, mask)
    if hit is not None:
        return hit
    if teacher.model is not None:
        with torch.no_grad():
            out = teacher.model(**inputs, output_hidden_states=True)
    else:
        out = pc_lora_loss.teacher_forward(raw_model, **inputs)
    hidden = out.hidden_states[1:]
    teacher.cache.put(idx, mask, hidden, out.logits)
    return hidden, out.logits


class PCLoRA(Recipe):
    name = "pc_lora"
    display_name = "PC-LoRA"
    settings = PCLoRASettings
    # The default start, svd: it holds W's large top singular directions, so it needs a lower rate than the zero
    # start (at 2e-3 it collapsed to a constant prediction on every GLUE task, H200); at 1e-3 it beat the zero
    # start at its own rate by 1.7-7.9 points on four GLUE tasks and 3.3 on IMDb at MiniLM scale
    # (results/gpu/fidelity2/; results/gpu/paper-scale/README.md for paper scale).
    defaults = {"train.lr": 1.0e-3}
    # What shipped search spaces draw (search_spaces/quickstart.yaml, cifar.yaml): the svd start collapses above 2e-3.
    lr_range = (4.0e-4, 2.0e-3)
    # The paper's zero start (`method.adapter_init: zero`), measured on one H200 (results/gpu/fidelity/): 5e-4
    # collapses as λ -> 0 (STS-B 0.36-0.40), 2e-3 holds (0.74), 4e-3 collapses to a constant prediction or
    # diverges on MRPC, STS-B, CoLA and SST-2.
    zero_defaults = {"train.lr": 2.0e-3}

    def defaults_for(self, cfg: Config) -> Mapping[str, Any]:
        """The rates above were measured on 384-wide MiniLM; a wider model gets them × 384 / hidden_size
        (`width_scaled_lr`). On 768-wide all-mpnet-base-v2 (IMDb, rank 32, issue 36, H200): the svd start
        collapsed to a constant prediction at 1e-3 and reached 85.3 at 5e-4, the zero start collapsed at
        2e-3: each at twice the scaled default (svd 5e-4, zero 1e-3), and svd's at it."""
        from orchestrator.recipes.base import model_width, width_scaled_lr

        own = self.zero_defaults if cfg.method.adapter_init == "zero" else self.defaults
        return {**own, "train.lr": width_scaled_lr(own["train.lr"], model_width(cfg.model))}

    def _uses_teacher(self, cfg: Config) -> bool:
        return cfg.method.kd_weight > 0 or cfg.method.logit_kd_weight > 0

    def _uses_finetuned_teacher(self, cfg: Config) -> bool:
        return self._uses_teacher(cfg) and cfg.method.kd_teacher == "finetuned" and not cfg.method.teacher

    def auxiliary_models(self, cfg: Config) -> list[AuxModel]:
        """The task's fine-tuned teacher (the cached FFT run KD-LoRA uses) with `kd_teacher: finetuned`."""
        from orchestrator.recipes import auxiliary

        return [auxiliary.teacher(cfg)] if self._uses_finetuned_teacher(cfg) else []

    def rank_problems(self, cfg: Config, model: nn.Module, rank: int) -> list[str]:
        from methods import pc_lora

        return list(pc_lora.rank_errors(model, rank, target_patterns=cfg.method.target_modules))

    def build_model(self, cfg: Config, task: TaskSpec, teacher_dir: str | None) -> nn.Module:
        from methods import pc_lora
        from orchestrator.tasks import load_model

        model = load_model(cfg.model, task, trust_remote_code=cfg.trust_remote_code)
        pc_lora.attach(model, cfg.method.rank, alpha=cfg.method.alpha, target_patterns=cfg.method.target_modules,
                       init=cfg.method.adapter_init)
        return model

    def prepare(self, cfg: Config, task: TaskSpec, device: torch.device, teacher_dir: str | None,
                train_size: int) -> FeatureTeacher | None:
        """The teacher's side of the loss (None without KD): a separate frozen model (fine-tuned) or the model
        itself at λ = 1, adapters off; either way frozen, so its outputs are cached per example."""
        if not self._uses_teacher(cfg):
            return None
        from methods.feature_cache import FeatureCache

        cache = FeatureCache(TEACHER_CACHE_BYTES)
        ref = cfg.method.teacher or (str(Path(teacher_dir) / "model") if self._uses_finetuned_teacher(cfg) else None)
        if ref is None:
            return FeatureTeacher(None, cache)
        from orchestrator.tasks import load_model

        teacher = load_model(ref, task, trust_remote_code=cfg.trust_remote_code).to(device).eval()
        teacher.requires_grad_(False)
        return FeatureTeacher(teacher, cache)

    def before_step(self, cfg: Config, raw_model: nn.Module, step: int, total_steps: int) -> dict[str, float]:
        from methods import pc_lora

        lam = pc_lora.decay_factor(step, total_steps, cfg.method.decay_schedule, cfg.method.decay_end)
        pc_lora.set_lambda(raw_model, lam)
        return {"lambda": lam}

    def loss(self, s: StepInputs) -> torch.Tensor:
        from methods import pc_lora_loss

        m = s.cfg.method
        idx = s.batch.pop("idx")
        if s.aux is None:
            return s.model(**s.batch).loss
        out = s.model(**s.batch, output_hidden_states=True)
        inputs = {k: v for k, v in s.batch.items() if k != "labels"}
        t_hidden, t_logits = teacher_outputs(s.aux, s.raw_model, inputs, idx)
        # Logit KD only from a separate fine-tuned teacher: the model's own λ = 1 pass goes through the
        # head being trained, whose logits teach nothing.
        logit_kd_weight = m.logit_kd_weight if s.aux.model is not None else 0.0
        return pc_lora_loss.loss(out.loss, out.hidden_states[1:], t_hidden, m.kd_weight,
                                 attention_mask=inputs.get("attention_mask"), student_logits=out.logits,
                                 teacher_logits=t_logits, logit_kd_weight=logit_kd_weight,
                                 temperature=m.temperature, regression=s.regression)

    def deployable(self, cfg: Config, raw_model: nn.Module) -> nn.Module:
        from methods import pc_lora

        return pc_lora.compress(raw_model)

    def save(self, model: nn.Module, path: Path) -> None:
        from methods import pc_lora

        pc_lora.save_compressed(model, path)

    def label(self, row: Mapping[str, Any]) -> str:
        present = present_settings(row)
        parts = self.rank_part(present)
        if "method.decay_schedule" in present:
            parts.append(f"{present['method.decay_schedule']} to {short_number(present.get('method.decay_end', '?'))}")
        if "method.kd_weight" in present:
            parts.append(f"kd={short_number(present['method.kd_weight'])}")
        # Every row names its start; a row without one predates the key, when every run started at zero.
        parts.append(f"{present.get('method.adapter_init', 'zero')} start")
        if present.get("method.kd_teacher") == "finetuned":
            parts.append("ft teacher")
        if short_number(present.get("method.logit_kd_weight", 0)) not in ("0", "?"):
            parts.append(f"logit kd={short_number(present['method.logit_kd_weight'])}")
        return ", ".join(parts) or "–"


RECIPE = PCLoRA()
