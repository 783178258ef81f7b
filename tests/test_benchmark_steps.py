"""The benchmarks time the recipes' own training step (benchmarks/_common.py method_conditions), not copies of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks._common import method_conditions, random_bert, synthetic_batch
from methods import kd_lora, pc_lora
from orchestrator import recipes


@pytest.fixture(scope="module")
def conditions(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("bench")
    base = random_bert("tiny")
    base.save_pretrained(work / "model")
    teacher = base.eval().requires_grad_(False)
    logits = kd_lora.TeacherLogits(torch.randn(8, 2))
    spec = method_conditions(work / "model", rank=4, student_layers=2, kd_weight=0.5, device=torch.device("cpu"),
                             teacher=teacher, logits=logits, work_dir=Path(work))
    return {name: (model, loss, before) for name, model, loss, before in spec}


def batch() -> dict[str, torch.Tensor]:
    return {**synthetic_batch(2000, 4, 8), "labels": torch.tensor([0, 1, 0, 1]), "idx": torch.arange(4)}


def test_the_conditions_are_the_ones_the_results_name(conditions: dict) -> None:
    assert list(conditions) == ["fft", "lora r4", "pc_lora λ=0.5 kd=0", "pc_lora λ=0 kd=0 (W skipped)",
                                "pc_lora λ=0.5 kd=0.5", "pc_lora λ=0 kd=0.5 (teacher needs W)",
                                "kd_lora 2L cached logits", "kd_lora 2L teacher fwd/step"]


def test_each_loss_is_the_recipes_own(conditions: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace each recipe's loss: every condition's loss must change with it (a copy in the benchmark would not)."""
    for name, recipe in recipes.RECIPES.items():
        monkeypatch.setattr(type(recipe), "loss", lambda self, s, name=name: (name, s.aux, s.model))
    owner = {"fft": "fft", "lora r4": "lora", "kd_lora 2L cached logits": "kd_lora",
             "kd_lora 2L teacher fwd/step": "kd_lora"}
    for name, (model, loss, _) in conditions.items():
        method, aux, seen = loss(batch())
        assert method == owner.get(name, "pc_lora") and seen is model, name
    _, cached, _ = conditions["kd_lora 2L cached logits"][1](batch())
    _, live, _ = conditions["kd_lora 2L teacher fwd/step"][1](batch())
    assert cached.logits is not None and cached.model is None and live.model is not None  # KD-LoRA's prepare()


def test_lambda_comes_from_the_recipes_before_step(conditions: dict) -> None:
    for name, lam in (("pc_lora λ=0.5 kd=0", 0.5), ("pc_lora λ=0 kd=0.5 (teacher needs W)", 0.0)):
        model, loss, before = conditions[name]
        before()
        assert {layer.lam for _, layer in pc_lora.pc_lora_layers(model)} == {lam}
        assert torch.isfinite(loss(batch()))
