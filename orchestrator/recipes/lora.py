"""Plain LoRA (PEFT) on the task's model: the parameter-efficient baseline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orchestrator.config.settings import AdapterSettings
from orchestrator.recipes.base import Recipe

if TYPE_CHECKING:
    from torch import nn

    from orchestrator.config.schema import Config
    from orchestrator.tasks import TaskSpec


def lora_rank_problems(cfg: Config, model: nn.Module, rank: int) -> list[str]:
    """The LoRA target layers of `model` (per architecture, or method.target_modules) and whether `rank` fits."""
    from methods import baselines

    try:
        targets = baselines.lora_target_modules(model, cfg.method.target_modules)
    except ValueError as exc:
        return [str(exc)]
    problem = baselines.lora_rank_problem(model, rank, targets)
    return [problem] if problem else []


class LoRA(Recipe):
    name = "lora"
    display_name = "LoRA"
    is_baseline = True
    settings = AdapterSettings
    # MiniLM-L6, rank 8 (results/gpu/fidelity/): 5e-4 beat 1e-3 on MRPC, CoLA, SST-2; 1e-3 by 0.2 on STS-B.
    defaults = {"train.lr": 5.0e-4}
    lr_range = (2.0e-4, 3.0e-3)

    def rank_problems(self, cfg: Config, model: nn.Module, rank: int) -> list[str]:
        return lora_rank_problems(cfg, model, rank)

    def build_model(self, cfg: Config, task: TaskSpec, teacher_dir: str | None) -> nn.Module:
        from methods import baselines
        from orchestrator.tasks import load_model

        model = load_model(cfg.model, task, trust_remote_code=cfg.trust_remote_code)
        return baselines.attach_lora(model, cfg.method.rank, alpha=cfg.method.alpha, targets=cfg.method.target_modules)

    def deployable(self, cfg: Config, raw_model: nn.Module) -> nn.Module:
        from methods import baselines

        return baselines.merge_lora(raw_model)

    def label(self, row: Mapping[str, Any]) -> str:
        from orchestrator.recipes.base import present_settings

        return ", ".join(self.rank_part(present_settings(row))) or "–"


RECIPE = LoRA()
