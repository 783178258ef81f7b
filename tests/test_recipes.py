"""The per-method recipes: one place per method, per-method defaults, the paper's KD-LoRA student,
the teacher on the student's own augmented view, divergence as a result, and per-method search ranges."""

from __future__ import annotations

import math
import re
from pathlib import Path
from unittest.mock import patch

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from orchestrator import recipes
from orchestrator.config.schema import ConfigError, with_values
from orchestrator.recipes.kd_lora import KDTeacher
from orchestrator.spec.load import load_config, with_method_defaults
from orchestrator.spec.space import grid_points, sample_point
from orchestrator.tasks import get_task
from tests.conftest import REPO

BASE = {"name": "t", "task": "glue/stsb", "model": "bert-base-uncased"}


def tiny_bert_dir(path: Path, *, layers: int = 4, seed: int = 0, num_labels: int = 1) -> Path:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels)
    BertForSequenceClassification(config).save_pretrained(path)
    return path


def test_no_module_outside_the_recipes_compares_a_method_name() -> None:
    """A method is known by name only in orchestrator/recipes/ (the teacher is 'the FFT recipe', by constant)."""
    pattern = re.compile(r"""(==|!=|\bin)\s*\(?["'](pc_lora|kd_lora|lora|fft)["']|["'](pc_lora|kd_lora|lora|fft)["']\s*(==|!=)""")
    offenders = []
    for path in (REPO / "orchestrator").rglob("*.py"):
        if "recipes" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []


def test_every_recipe_declares_what_the_sweep_and_reports_need() -> None:
    assert recipes.METHODS == ("fft", "lora", "pc_lora", "kd_lora", "distil_compress")
    assert recipes.BASELINES == ("fft", "lora")
    for recipe in recipes.RECIPES.values():
        low, high = recipe.lr_range
        assert 0 < low < high and low <= recipe.defaults["train.lr"] <= high
        assert all(k.startswith("method.") for k in recipe.keys)
    owners = recipes.method_specific_keys()
    assert owners["method.decay_schedule"] == ("pc_lora", "distil_compress")
    assert owners["method.student_init"] == ("kd_lora", "distil_compress")
    assert set(owners["method.rank"]) == {"lora", "pc_lora", "kd_lora", "distil_compress"}


def test_learning_rate_null_means_the_methods_own_and_an_explicit_one_wins() -> None:
    cfg = load_config(None, base=BASE)
    assert cfg.train.lr is None
    lrs = {m: with_method_defaults(with_values(cfg, {"method.name": m})).train.lr for m in recipes.METHODS}
    # defaults_for, not defaults: PC-LoRA's follows the width of a bert-base-uncased the hub cache may hold.
    assert lrs == {m: r.defaults_for(with_values(cfg, {"method.name": m}))["train.lr"] for m, r in recipes.RECIPES.items()}
    assert lrs["fft"] < lrs["lora"] < lrs["pc_lora"]  # FFT 10x below adapters, PC-LoRA hotter still
    explicit = load_config(None, ["train.lr=3e-4"], base=BASE)
    assert with_method_defaults(explicit).train.lr == 3e-4


def test_the_default_learning_rate_follows_the_model_width() -> None:
    from orchestrator.recipes.base import width_scaled_lr

    assert width_scaled_lr(2e-3, 384) == 2e-3 and width_scaled_lr(2e-3, None) == 2e-3  # MiniLM, unknown
    assert width_scaled_lr(2e-3, 768) == 1e-3 and width_scaled_lr(1e-3, 768) == 5e-4  # mpnet-base, bert-base
    assert width_scaled_lr(1e-3, 1024) == 3.75e-4 and width_scaled_lr(2e-3, 1152) == 6.67e-4
    assert width_scaled_lr(2e-3, 32) == 2e-3  # never above the measured rate
    assert width_scaled_lr(2e-3, 8192) == 2.5e-4  # nor below an eighth of it


def test_pc_lora_reads_the_width_from_the_config_alone(tmp_path: Path, shared_models: Path) -> None:
    from orchestrator.recipes.base import model_width

    BertConfig(hidden_size=768, num_attention_heads=12).save_pretrained(tmp_path / "wide")  # no weights
    assert model_width(str(tmp_path / "wide")) == 768
    assert model_width(str(shared_models / "minilm-l6-h384")) == 384
    assert model_width("no-such-org/no-such-model") is None  # no network: the default stays
    base = with_values(load_config(None, base=BASE), {"method.name": "pc_lora"})

    def lr(model: Path, **values: object) -> float:
        return with_method_defaults(with_values(base, {"model": str(model), **values})).train.lr

    assert lr(tmp_path / "wide") == 5e-4 and lr(tmp_path / "wide", **{"method.adapter_init": "zero"}) == 1e-3
    assert lr(shared_models / "minilm-l6-h384") == 1e-3  # MiniLM's measured defaults: svd 1e-3, zero 2e-3
    assert lr(shared_models / "minilm-l6-h384", **{"method.adapter_init": "zero"}) == 2e-3
    assert lr(tmp_path / "wide", **{"train.lr": 3e-3}) == 3e-3  # an explicit rate wins


def test_with_values_refuses_a_value_of_the_wrong_type() -> None:
    with pytest.raises(ConfigError, match="method.rank: expected an integer"):
        with_values(load_config(None, base=BASE), {"method.rank": "eight"})


def per_method_space(sampler: str = "grid") -> dict:
    return {**BASE, "search": {"sampler": sampler}, "space": {
        "method.name": {"grid": ["fft", "pc_lora"]},
        "train.lr": {"per_method": {"fft": {"grid": [5e-5, 1e-4]}, "pc_lora": {"grid": [2e-3]}}},
        "method.decay_end": {"grid": [0.5, 0.8]}}}


def test_a_per_method_dimension_expands_per_method_in_a_grid() -> None:
    points = grid_points(load_config(None, base=per_method_space()))
    assert points == [{"method.name": "fft", "train.lr": 5e-5}, {"method.name": "fft", "train.lr": 1e-4},
                      {"method.name": "pc_lora", "train.lr": 2e-3, "method.decay_end": 0.5},
                      {"method.name": "pc_lora", "train.lr": 2e-3, "method.decay_end": 0.8}]


def test_optuna_draws_a_per_method_range_under_a_per_method_name() -> None:
    import optuna

    raw = per_method_space("tpe")
    raw["space"] = {"method.name": {"choice": ["fft", "pc_lora"]},
                    "train.lr": {"per_method": {"fft": {"loguniform": [2e-5, 1e-4]},
                                                "pc_lora": {"loguniform": [1e-3, 5e-3]}}}}
    cfg = load_config(None, base=raw)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {}
    for _ in range(20):
        trial = study.ask()
        point = sample_point(trial, cfg)
        seen.setdefault(point["method.name"], []).append(point["train.lr"])
        assert f"train.lr[{point['method.name']}]" in trial.params
        study.tell(trial, 0.0)
    assert all(2e-5 <= v <= 1e-4 for v in seen["fft"]) and all(1e-3 <= v <= 5e-3 for v in seen["pc_lora"])


@pytest.mark.parametrize(("space", "expected"), [
    ({"train.lr": {"per_method": {"nope": {"grid": [1e-4]}}}}, "space.train.lr.per_method: unknown method 'nope'"),
    ({"train.lr": {"per_method": {"fft": {"loguniform": [1e-3, 1e-5]}}}}, "space.train.lr.per_method.fft.loguniform"),
    ({"train.lr": {"per_method": {"fft": {"grid": [-1.0]}}}}, "space.train.lr.per_method.fft: value -1.0"),
    ({"train.lr": {"per_method": []}}, "space.train.lr.per_method: give a mapping"),
])
def test_a_bad_per_method_dimension_names_the_key(space: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, base={**BASE, "space": space})
    assert expected in str(info.value)


def test_pc_lora_logit_kd_needs_a_fine_tuned_teacher() -> None:
    with pytest.raises(ConfigError, match="method.logit_kd_weight: logit KD needs a fine-tuned teacher"):
        load_config(None, ["method.name=pc_lora", "method.logit_kd_weight=0.3"], base=BASE)
    cfg = load_config(None, ["method.name=pc_lora", "method.logit_kd_weight=0.3", "method.kd_teacher=finetuned"],
                      base=BASE)
    assert [aux.role for aux in recipes.get_recipe("pc_lora").auxiliary_models(cfg)] == ["teacher"]
    assert not recipes.get_recipe("pc_lora").auxiliary_models(with_values(cfg, {"method.kd_teacher": "pretrained",
                                                                                 "method.logit_kd_weight": 0.0}))


def test_kd_lora_student_is_the_pretrained_model_cut_unless_the_teacher_cut_is_asked_for(tmp_path: Path) -> None:
    pretrained = tiny_bert_dir(tmp_path / "pretrained", seed=0)
    teacher_dir = tmp_path / "teacher"
    tiny_bert_dir(teacher_dir / "model", seed=1)  # stands for the fine-tuned teacher: other weights
    recipe, task = recipes.get_recipe("kd_lora"), get_task("glue/stsb")
    cfg = with_values(load_config(None, base={**BASE, "model": str(pretrained)}),
                      {"method.name": "kd_lora", "method.student_layers": 2, "method.rank": 2})

    def first_query(model: torch.nn.Module) -> torch.Tensor:
        return next(p for n, p in model.named_parameters() if "layer.0.attention.self.query.base_layer.weight" in n)

    reference = BertForSequenceClassification.from_pretrained(pretrained).bert.encoder.layer[0]
    fine_tuned = BertForSequenceClassification.from_pretrained(teacher_dir / "model").bert.encoder.layer[0]
    student = recipe.build_model(cfg, task, str(teacher_dir))
    assert student.base_model.model.config.num_hidden_layers == 2
    assert torch.equal(first_query(student), reference.attention.self.query.weight)
    cut_teacher = recipe.build_model(with_values(cfg, {"method.student_init": "finetuned_teacher"}), task,
                                     str(teacher_dir))
    assert torch.equal(first_query(cut_teacher), fine_tuned.attention.self.query.weight)
    assert "fine-tuned teacher" in recipe.label({"method.name": "kd_lora", "method.student_layers": 2,
                                                 "method.student_init": "finetuned_teacher"})


def test_kd_lora_with_augmentation_distils_from_the_teacher_on_the_same_batch(tmp_path: Path) -> None:
    """Cached logits describe one crop; with augmentation the teacher must see the student's own batch."""
    from transformers import ViTConfig, ViTForImageClassification

    from orchestrator.recipes.base import StepInputs

    teacher_dir = tmp_path / "teacher"
    torch.manual_seed(1)
    ViTForImageClassification(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=64, image_size=16, patch_size=8, num_labels=10)
                              ).save_pretrained(teacher_dir / "model")
    recipe, task = recipes.get_recipe("kd_lora"), get_task("cifar10")
    cfg = with_values(load_config(None, base={**BASE, "task": "cifar10"}),
                      {"method.name": "kd_lora", "train.augment": True, "method.kd_weight": 1.0})
    aux = recipe.prepare(cfg, task, torch.device("cpu"), str(teacher_dir), train_size=4)
    assert isinstance(aux, KDTeacher) and aux.logits is None and aux.model is not None
    student = ViTForImageClassification.from_pretrained(teacher_dir / "model")
    batch = {"pixel_values": torch.randn(4, 3, 16, 16), "labels": torch.arange(4), "idx": torch.arange(4)}
    loss = recipe.loss(StepInputs(cfg, student, student, dict(batch), aux, regression=False))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)  # same weights, same batch: nothing to distil
    shuffled = {**batch, "pixel_values": batch["pixel_values"].flip(0)}
    other = recipe.loss(StepInputs(cfg, student, student, dict(shuffled), aux, regression=False))
    assert other.item() == pytest.approx(0.0, abs=1e-6)  # the teacher follows the batch, not an index
    # Text is never augmented: a text task keeps its cached logits (the teacher may tokenize differently).
    with pytest.raises(FileNotFoundError):
        recipe.prepare(with_values(cfg, {"task": "glue/stsb"}), get_task("glue/stsb"), torch.device("cpu"),
                       str(teacher_dir), train_size=4)


def test_a_non_finite_step_is_reported_and_leaves_the_weights_alone(tmp_path: Path) -> None:
    from orchestrator.engine.loop import StepState, make_optimizer, train_step

    path = tiny_bert_dir(tmp_path / "m")
    cfg = with_method_defaults(with_values(load_config(None, base={**BASE, "model": str(path)}),
                                           {"method.name": "fft"}))
    model = BertForSequenceClassification.from_pretrained(path)
    optimizer, scheduler, trainable = make_optimizer(cfg, model, total_steps=4)
    state = StepState(cfg, recipes.get_recipe("fft"), model, model, None, optimizer, scheduler, trainable,
                      torch.device("cpu"), False, 1, True)
    batch = {"input_ids": torch.randint(0, 100, (2, 8)), "attention_mask": torch.ones(2, 8, dtype=torch.long),
             "labels": torch.tensor([float("nan"), 1.0]), "idx": torch.arange(2)}
    before = [p.detach().clone() for p in trainable]
    value, finite = train_step(state, dict(batch))
    assert not finite and math.isnan(value)
    assert all(torch.equal(a, b) for a, b in zip(before, trainable, strict=True))
    good = {**batch, "labels": torch.tensor([0.5, 1.0])}
    value, finite = train_step(state, dict(good))
    assert finite and math.isfinite(value)
    assert not all(torch.equal(a, b) for a, b in zip(before, trainable, strict=True))


def test_metrics_json_is_strict_json_and_a_diverged_run_has_no_metric(tmp_path: Path) -> None:
    import json

    from orchestrator.config.records import RunMetrics

    raw = {"task": "glue/stsb", "method": "pc_lora", "metric_name": "pearson_spearman", "metric": None,
           "params": 1, "params_no_embeddings": 1, "base_params": 2, "base_params_no_embeddings": 2, "flops": 1,
           "base_flops": 2, "trainable_params": 1, "train_seconds": 1.0, "world_size": 1, "epoch": 1, "step": 3,
           "loss": float("nan"), "full_budget": False, "stopped_early": False, "diverged": True,
           "lambda": 0.5, "pearson": float("nan"), "worker_start_unix": 1.0}
    RunMetrics.from_json(raw, ("pearson",)).write(tmp_path)
    text = (tmp_path / "metrics.json").read_text()
    assert "NaN" not in text
    back = json.loads(text)
    assert back["metric"] is None and back["loss"] is None and back["diverged"] is True
    assert back["lambda"] == 0.5 and back["worker_start_unix"] == 1.0 and back["pearson"] is None
    with pytest.raises(TypeError):  # a record without its sizes is refused where it is written
        RunMetrics.from_json({k: v for k, v in raw.items() if k != "params"}, ())


def test_pc_lora_with_the_fine_tuned_teacher_adds_logit_kd_on_padded_batches(tmp_path: Path) -> None:
    from methods import pc_lora_loss
    from orchestrator.recipes.base import StepInputs

    pretrained = tiny_bert_dir(tmp_path / "pretrained", seed=0)
    teacher_dir = tmp_path / "teacher"
    tiny_bert_dir(teacher_dir / "model", seed=1)
    recipe, task = recipes.get_recipe("pc_lora"), get_task("glue/stsb")
    cfg = with_values(load_config(None, base={**BASE, "model": str(pretrained)}),
                      {"method.name": "pc_lora", "method.rank": 2, "method.kd_teacher": "finetuned",
                       "method.kd_weight": 0.25, "method.logit_kd_weight": 0.5})
    model = recipe.build_model(cfg, task, None)
    teacher = recipe.prepare(cfg, task, torch.device("cpu"), str(teacher_dir), train_size=4)
    assert teacher is not None and not any(p.requires_grad for p in teacher.model.parameters())
    assert recipe.before_step(cfg, model, 0, 10) == {"lambda": 1.0}
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    batch = {"input_ids": torch.randint(0, 100, (2, 8)), "attention_mask": mask, "labels": torch.tensor([0.2, 0.9]),
             "idx": torch.arange(2)}
    loss = recipe.loss(StepInputs(cfg, model, model, dict(batch), teacher, regression=True))
    out = model(**{k: v for k, v in batch.items() if k != "idx"}, output_hidden_states=True)
    t = teacher.model(input_ids=batch["input_ids"], attention_mask=mask, output_hidden_states=True)
    feature = pc_lora_loss.feature_kd_loss(out.hidden_states[1:], t.hidden_states[1:], mask)
    logit = torch.nn.functional.mse_loss(out.logits.squeeze(-1), t.logits.squeeze(-1))
    assert loss.item() == pytest.approx((0.25 * out.loss + 0.25 * feature + 0.5 * logit).item(), rel=1e-5)
    # Without a separate teacher the model's own λ = 1 pass teaches features only: its head is being trained.
    own = with_values(cfg, {"method.kd_teacher": "pretrained"})
    own_teacher = recipe.prepare(own, task, torch.device("cpu"), None, train_size=4)
    assert own_teacher.model is None
    loss_own = recipe.loss(StepInputs(own, model, model, dict(batch), own_teacher, regression=True))
    t_own = pc_lora_loss.teacher_forward(model, input_ids=batch["input_ids"], attention_mask=mask)
    feature_own = pc_lora_loss.feature_kd_loss(out.hidden_states[1:], t_own.hidden_states[1:], mask)
    assert loss_own.item() == pytest.approx((0.75 * out.loss + 0.25 * feature_own).item(), rel=1e-5)
    # Both teachers are frozen: a later epoch reads their outputs from the cache, the same loss though the
    # examples now come in the other order and padded to 12 tokens.
    assert len(teacher.cache) == 2 and len(own_teacher.cache) == 2
    later = {"input_ids": torch.cat([batch["input_ids"].flip(0), torch.zeros(2, 4, dtype=torch.long)], 1),
             "attention_mask": torch.cat([mask.flip(0), torch.zeros(2, 4, dtype=torch.long)], 1),
             "labels": batch["labels"].flip(0), "idx": torch.tensor([1, 0])}
    for teacher_side, expected, c in ((teacher, loss, cfg), (own_teacher, loss_own, own)):
        with patch.object(teacher_side.cache, "put", side_effect=AssertionError("computed again")):
            cached = recipe.loss(StepInputs(c, model, model, dict(later), teacher_side, regression=True))
        assert cached.item() == pytest.approx(expected.item(), rel=1e-5)


def test_a_sweeps_first_points_are_keyed_by_config_keys() -> None:
    """Ray's OptunaSearch hands a points_to_evaluate entry to the trial as its config, so a seeded point
    must use dotted config keys (an Optuna name like `train.lr[kd_lora]` failed every seeded trial)."""
    from orchestrator.config.schema import field_type
    from orchestrator.search.tune import first_points

    cfg = load_config(REPO / "search_spaces" / "quickstart.yaml")
    points = first_points(cfg, prefer_config=True)
    assert {p["method.name"] for p in points} == {"pc_lora", "kd_lora"}
    for point in points:
        for key in point:
            field_type(key)  # KeyError for anything but a config key
        assert point["train.lr"] == recipes.get_recipe(point["method.name"]).defaults["train.lr"]


def test_a_trials_point_drops_the_names_optuna_captured() -> None:
    """Ray's OptunaSearch returns {**captured Optuna params, **sample_point(...)}: a per-method dimension then
    arrives twice, as `train.lr[pc_lora]` and `train.lr`; only the config key may reach with_values."""
    from orchestrator.spec.space import trial_point

    config = {"method.name": "pc_lora", "train.lr[pc_lora]": 2e-3, "train.lr": 2e-3, "method.rank": 8}
    point = trial_point(config)
    assert point == {"method.name": "pc_lora", "train.lr": 2e-3, "method.rank": 8}
    assert with_values(load_config(None, base=BASE), point).train.lr == 2e-3
    assert trial_point({"point": {"method.rank": 4}}) == {"method.rank": 4} and trial_point(None) == {}
