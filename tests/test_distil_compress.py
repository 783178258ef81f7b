"""Distil, then compress (issue 33's fifth method): the KD-LoRA student compressed by PC-LoRA, learning features
from its own pre-trained weights and logits from the fine-tuned teacher. A tiny MPNet teacher and a tiny BERT
student that tokenize differently, as at paper scale (mpnet-base -> MiniLM)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from methods import pc_lora as pc
from methods import pc_lora_loss
from methods.kd_lora import TeacherLogits
from orchestrator import recipes
from orchestrator.config.records import TrialFiles
from orchestrator.config.schema import with_values
from orchestrator.recipes.auxiliary import STUDENT_CEILING, TEACHER, teacher_config
from orchestrator.recipes.base import StepInputs
from orchestrator.spec.load import with_method_defaults
from orchestrator.tasks import build_dataset, get_task
from tests.tiny_text import run_here, tiny_bert_dir, tiny_config, tiny_mpnet_dir

METHOD = "distil_compress"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("dc")
    teacher, student = tiny_mpnet_dir(tmp / "teacher", seed=1), tiny_bert_dir(tmp / "student", layers=2, seed=2)
    cfg = tiny_config(tmp, teacher, **{"method.name": METHOD, "method.student": str(student), "method.rank": 2,
                                       "method.kd_weight": 0.25, "method.logit_kd_weight": 0.5})
    teacher_dir = tmp / "teacher-run"
    run_here(with_method_defaults(teacher_config(cfg)), teacher_dir, emit_train_logits=True)
    return {"cfg": cfg, "teacher_dir": teacher_dir, "tmp": tmp, "teacher": teacher, "student": student}


def student_batch(cfg, student: Path, rows: list[int]) -> dict:
    dataset, collate = build_dataset(get_task(cfg.task), "train", model_name_or_path=str(student),
                                     data_dir=cfg.data_dir, max_length=cfg.train.max_length, max_examples=None,
                                     seed=cfg.train.seed, train=True)
    return collate([dataset[i] for i in rows])


def test_it_is_registered_and_reads_both_methods_keys() -> None:
    recipe = recipes.get_recipe(METHOD)
    assert METHOD in recipes.METHODS and not recipe.is_baseline
    assert {"method.student", "method.student_layers", "method.decay_schedule", "method.adapter_init",
            "method.logit_kd_weight"} <= set(recipe.keys)
    # a space over several methods draws the student for it and the decay schedule too
    assert recipes.applies("method.student", METHOD) and recipes.applies("method.decay_end", METHOD)
    row = {"method.name": METHOD, "method.student": "/m/minilm-l3-h384", "method.rank": 8, "method.decay_schedule":
           "sine", "method.decay_end": 0.8, "method.kd_weight": 0.25, "method.logit_kd_weight": 0.5,
           "method.adapter_init": "svd", "method.kd_teacher": "pretrained"}
    assert recipe.label(row) == "student=minilm-l3-h384, r=8, sine to 0.8, kd=0.25, svd start, logit kd=0.5"
    assert recipe.student_model(row) == "/m/minilm-l3-h384"


def test_it_declares_the_teacher_and_the_students_ceiling_and_takes_its_rate_from_the_student(
        setup: dict, tmp_path: Path) -> None:
    cfg, recipe = setup["cfg"], recipes.get_recipe(METHOD)
    assert [a.role for a in recipe.auxiliary_models(cfg)] == [TEACHER, STUDENT_CEILING]
    assert recipe.data_reference(cfg) == str(setup["student"])
    # A 1536-wide teacher would scale PC-LoRA's rate to a quarter; the network compressed here is the student,
    # 32 wide, which keeps the rate measured at 384.
    wide = tmp_path / "wide"
    wide.mkdir()
    (wide / "config.json").write_text(json.dumps({"hidden_size": 1536}))
    on_wide = with_values(cfg, {"model": str(wide)})
    pc_rate = recipes.get_recipe("pc_lora").defaults_for(on_wide)["train.lr"]
    assert recipe.defaults_for(on_wide)["train.lr"] == pc_rate * 4 == recipes.get_recipe("pc_lora").defaults["train.lr"]


def test_the_student_gets_pc_lora_layers_and_ships_without_its_weights(setup: dict) -> None:
    cfg, recipe = setup["cfg"], recipes.get_recipe(METHOD)
    model = recipe.build_model(cfg, get_task(cfg.task), str(setup["teacher_dir"]))
    assert model.config.model_type == "bert" and model.config.num_hidden_layers == 2  # the student, not mpnet
    layers = [m for m in model.modules() if isinstance(m, pc.PCLoRALinear)]
    assert len(layers) == 2 * 6  # every linear of every block: q, k, v, attention out, intermediate, output
    before = sum(p.numel() for p in model.parameters())
    recipe.before_step(cfg, model, 10, 10)  # λ reaches 0 at the end of training
    shipped = recipe.deployable(cfg, model)
    assert all(layer.base is None for _, layer in pc.pc_lora_layers(shipped))  # W and b deleted
    assert sum(p.numel() for p in shipped.parameters()) < before


def test_the_loss_is_feature_kd_from_the_students_own_weights_and_logit_kd_from_the_teacher(setup: dict) -> None:
    cfg, recipe, task = setup["cfg"], recipes.get_recipe(METHOD), get_task(setup["cfg"].task)
    teacher_dir = setup["teacher_dir"]
    model = recipe.build_model(cfg, task, str(teacher_dir))
    aux = recipe.prepare(cfg, task, torch.device("cpu"), str(teacher_dir), 16)
    recipe.before_step(cfg, model, 2, 10)  # λ between 1 and 0: W and the adapters both count
    rows = [7, 2, 11]
    batch = student_batch(cfg, setup["student"], rows)
    got = recipe.loss(StepInputs(cfg, model, model, dict(batch), aux, regression=False))
    inputs = {k: v for k, v in batch.items() if k not in ("idx", "labels")}
    with torch.no_grad():
        out = model(**inputs, labels=batch["labels"], output_hidden_states=True)
        own = pc_lora_loss.teacher_forward(model, **inputs)  # the student itself at λ = 1, adapters off
    cached = TeacherLogits.load(teacher_dir / TrialFiles.TEACHER_LOGITS).logits[rows]
    expected = pc_lora_loss.loss(out.loss, out.hidden_states[1:], own.hidden_states[1:], 0.25,
                       attention_mask=inputs["attention_mask"], student_logits=out.logits, teacher_logits=cached,
                       logit_kd_weight=0.5, temperature=cfg.method.temperature)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    # the teacher's logits matter: a confident other teacher gives another loss
    other = torch.tensor([[4.0, -4.0]]).expand_as(cached)
    wrong = pc_lora_loss.loss(out.loss, out.hidden_states[1:], own.hidden_states[1:], 0.25,
                    attention_mask=inputs["attention_mask"], student_logits=out.logits, teacher_logits=other,
                    logit_kd_weight=0.5, temperature=cfg.method.temperature)
    assert wrong.item() != pytest.approx(got.item(), rel=1e-3)


def test_a_whole_run_saves_a_compressed_student_that_reloads(setup: dict) -> None:
    cfg, tmp = setup["cfg"], setup["tmp"]
    run_here(cfg, tmp / "dc-run", teacher_dir=setup["teacher_dir"])
    metrics = json.loads((tmp / "dc-run" / TrialFiles.METRICS).read_text())
    assert metrics["method"] == METHOD and metrics["metric"] is not None
    student_params = sum(p.numel() for p in pc.load_compressed(tmp / "dc-run" / TrialFiles.MODEL).parameters())
    assert metrics["params"] == student_params < metrics["base_params"]
