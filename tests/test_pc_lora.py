import copy
import json
import math

import pytest
import torch
import transformers
from safetensors import safe_open
from torch import nn

from methods import pc_lora, pc_lora_loss
from methods.accounting import count_params
from methods.pc_lora import PCLoRALinear

HIDDEN, INTER, LAYERS, RANK = 32, 64, 2, 4
BERT_BLOCK = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
]
BERT_TARGETS = [f"bert.encoder.layer.{i}.{n}" for i in range(LAYERS) for n in BERT_BLOCK]
VIT_BLOCK = [
    "attention.q_proj",
    "attention.k_proj",
    "attention.v_proj",
    "attention.o_proj",
    "mlp.fc1",
    "mlp.fc2",
]


def tiny_bert(seed: int = 0) -> transformers.BertForSequenceClassification:
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        intermediate_size=INTER,
        vocab_size=100,
        max_position_embeddings=64,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def tiny_dinov2(seed: int = 0) -> transformers.Dinov2ForImageClassification:
    torch.manual_seed(seed)
    config = transformers.Dinov2Config(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        mlp_ratio=2,
        image_size=32,
        patch_size=8,
        num_labels=3,
    )
    return transformers.Dinov2ForImageClassification(config)


def tiny_vit(seed: int = 0) -> transformers.ViTForImageClassification:
    torch.manual_seed(seed)
    config = transformers.ViTConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        intermediate_size=INTER,
        image_size=32,
        patch_size=8,
        num_labels=3,
    )
    return transformers.ViTForImageClassification(config)


def text_batch(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 100, (3, 10), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 1])}


def image_batch(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"pixel_values": torch.randn(2, 3, 32, 32, generator=g), "labels": torch.tensor([0, 2])}


def randomize_adapters(model: nn.Module) -> None:
    torch.manual_seed(123)
    for _, layer in pc_lora.pc_lora_layers(model):
        nn.init.normal_(layer.lora_B, std=0.1)
        nn.init.normal_(layer.lora_C, std=0.1)


def train_steps(model: nn.Module, batch: dict, lam: float, steps: int = 3, kd_weight: float = 0.5) -> None:
    pc_lora.set_lambda(model, lam)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        teacher = pc_lora_loss.teacher_forward(model, **batch)
        out = model(**batch, output_hidden_states=True)
        total = pc_lora_loss.loss(out.loss, out.hidden_states[1:], teacher.hidden_states[1:], kd_weight)
        opt.zero_grad()
        total.backward()
        opt.step()


# --- schedules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "half", "before_q"),
    [
        ("linear", 0.5, 1 / 80),
        ("sine", 1 - math.sin(math.pi / 4), 1 - math.sin(math.pi / 2 * 79 / 80)),
        ("cosine", math.cos(math.pi / 4), math.cos(math.pi / 2 * 79 / 80)),
    ],
)
def test_decay_factor_hand_values(schedule: str, half: float, before_q: float) -> None:
    total, decay_end = 101, 0.8  # q = 0.8 * (101 - 1) = 80
    assert pc_lora.decay_factor(0, total, schedule, decay_end) == 1.0
    assert pc_lora.decay_factor(40, total, schedule, decay_end) == pytest.approx(half, abs=1e-12)
    assert pc_lora.decay_factor(79, total, schedule, decay_end) == pytest.approx(before_q, abs=1e-12)
    assert pc_lora.decay_factor(79, total, schedule, decay_end) > 0.0
    for step in (80, 81, 100, 1000):
        value = pc_lora.decay_factor(step, total, schedule, decay_end)
        assert value == 0.0 and type(value) is float
    values = [pc_lora.decay_factor(s, total, schedule, decay_end) for s in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_decay_end_one_reaches_zero_at_the_last_step() -> None:
    # 96 steps, decay_end 1: q = 95, the last step the loop runs. The old q = 96 left 1/96 here.
    assert pc_lora.decay_factor(95, 96, "linear", 1.0) == 0.0
    assert pc_lora.decay_factor(94, 96, "linear", 1.0) == pytest.approx(1 / 95)
    assert pc_lora.decay_factor(99, 100, "cosine", 1.0) == 0.0
    assert pc_lora.decay_factor(98, 100, "cosine", 1.0) == pytest.approx(math.cos(math.pi / 2 * 98 / 99))


@pytest.mark.parametrize("schedule", pc_lora.SCHEDULES)
@pytest.mark.parametrize("total", [2, 3, 7, 26, 96, 100])
@pytest.mark.parametrize("decay_end", [0.01, 0.28, 0.5, 0.8, 0.99, 1.0])
def test_lambda_is_zero_on_the_last_step_for_every_decay_end(
    schedule: str, total: int, decay_end: float
) -> None:
    values = [pc_lora.decay_factor(s, total, schedule, decay_end) for s in range(total)]
    assert values[-1] == 0.0
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    q = round(decay_end * (total - 1), 9)  # 0.28 * 25 is 7.000000000000001; the step is 7
    if q > 0:
        assert values[0] == 1.0
    # λ is still > 0 on the last step before q (q itself may fall between steps)
    last_before_q = math.ceil(q) - 1
    if last_before_q >= 0:
        assert values[last_before_q] > 0.0
    assert all(v == 0.0 for v in values[last_before_q + 1 :])


@pytest.mark.parametrize("schedule", pc_lora.SCHEDULES)
def test_a_single_step_runs_at_lambda_zero(schedule: str) -> None:
    for decay_end in (0.1, 1.0):
        assert pc_lora.decay_factor(0, 1, schedule, decay_end) == 0.0


def test_q_that_floats_put_just_above_a_step_still_zeroes_it() -> None:
    # 0.28 * 25 is 7.000000000000001: step 7 must still get an exact 0.0, step 6 is 1 - 6/7.
    assert 0.28 * 25 > 7
    assert pc_lora.decay_factor(7, 26, "cosine", 0.28) == 0.0
    assert pc_lora.decay_factor(6, 26, "linear", 0.28) == pytest.approx(1 / 7)


def test_decay_factor_refuses_bad_schedule_and_decay_end_at_once() -> None:
    with pytest.raises(ValueError, match="method.decay_schedule='exp'.*linear, sine, cosine") as info:
        pc_lora.decay_factor(0, 10, "exp", 0.5)
    assert "decay_end" not in str(info.value)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="method.decay_end"):
            pc_lora.decay_factor(0, 10, "sine", bad)
    errors = pc_lora.schedule_errors("exp", 2.0)
    assert len(errors) == 2 and "method.decay_schedule" in errors[0] and "method.decay_end" in errors[1]
    assert pc_lora.schedule_errors("sine", 1.0) == []


# --- attach: targets, freezing, refusals -------------------------------------------------------


def test_attach_bert_targets_every_block_linear_and_not_head_or_embeddings() -> None:
    model = tiny_bert()
    names = pc_lora.attach(model, RANK)
    assert names == BERT_TARGETS
    assert [n for n, _ in pc_lora.pc_lora_layers(model)] == BERT_TARGETS
    assert type(model.classifier) is nn.Linear
    assert type(model.bert.pooler.dense) is nn.Linear
    assert all(type(m) is not PCLoRALinear for n, m in model.named_modules() if "embeddings" in n)
    layer = model.get_submodule(BERT_TARGETS[4])  # intermediate.dense
    assert (layer.in_features, layer.out_features, layer.scaling) == (HIDDEN, INTER, 1.0)
    assert layer.lora_A.shape == (RANK, HIDDEN)
    assert layer.lora_B.shape == (INTER, RANK)
    assert layer.lora_C.shape == (INTER,)


def test_attach_trains_only_adapters_and_head() -> None:
    model = tiny_bert()
    pc_lora.attach(model, RANK)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    adapters = {f"{t}.lora_{x}" for t in BERT_TARGETS for x in "ABC"}
    head = {"classifier.weight", "classifier.bias", "bert.pooler.dense.weight", "bert.pooler.dense.bias"}
    assert trainable == adapters | head


@pytest.mark.parametrize(
    ("build", "prefix"), [(tiny_dinov2, "dinov2.encoder.layer"), (tiny_vit, "vit.layers")]
)
def test_attach_finds_vision_targets(build, prefix: str) -> None:
    model = build()
    names = pc_lora.attach(model, RANK)
    assert names == [f"{prefix}.{i}.{n}" for i in range(LAYERS) for n in VIT_BLOCK]
    assert type(model.classifier) is nn.Linear
    embeddings = model.get_submodule(prefix.split(".")[0]).embeddings
    assert type(embeddings.patch_embeddings.projection) is nn.Conv2d
    assert not any(p.requires_grad for p in embeddings.parameters())
    out = model(**image_batch())
    assert out.logits.shape == (2, 3)


@pytest.mark.parametrize(
    ("build", "names"),
    [
        (
            lambda: transformers.RobertaForSequenceClassification(
                transformers.RobertaConfig(
                    hidden_size=32,
                    num_hidden_layers=1,
                    num_attention_heads=4,
                    intermediate_size=64,
                    vocab_size=100,
                )
            ),
            [f"roberta.encoder.layer.0.{n}" for n in BERT_BLOCK],
        ),
        (
            lambda: transformers.DebertaV2ForSequenceClassification(
                transformers.DebertaV2Config(
                    hidden_size=32,
                    num_hidden_layers=1,
                    num_attention_heads=4,
                    intermediate_size=64,
                    vocab_size=100,
                )
            ),
            [
                f"deberta.encoder.layer.0.{n}"
                for n in ["attention.self.query_proj", "attention.self.key_proj", "attention.self.value_proj"]
                + BERT_BLOCK[3:]
            ],
        ),
    ],
)
def test_attach_finds_roberta_and_deberta_targets(build, names: list[str]) -> None:
    model = build()
    assert pc_lora.attach(model, RANK) == names
    assert not any(isinstance(m, PCLoRALinear) for n, m in model.named_modules() if "classifier" in n)


def test_target_patterns_select_only_matching_layers_never_the_head() -> None:
    model = tiny_bert()
    names = pc_lora.attach(model, RANK, target_patterns=[r"self\.(query|value)$", "classifier"])
    assert names == [
        f"bert.encoder.layer.{i}.attention.self.{n}" for i in range(LAYERS) for n in ("query", "value")
    ]
    replaced = {n for n, _ in pc_lora.pc_lora_layers(model)}
    assert replaced == set(names)
    assert type(model.bert.encoder.layer[0].attention.self.key) is nn.Linear
    assert type(model.classifier) is nn.Linear


def test_target_pattern_matching_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\['qeury'\] match no nn.Linear"):
        pc_lora.attach(tiny_bert(), RANK, target_patterns=["qeury"])
    with pytest.raises(ValueError, match="found no nn.Linear to compress"):
        pc_lora.attach(tiny_bert(), RANK, target_patterns=["classifier"])


def test_rank_too_large_is_refused_naming_the_layer_and_nothing_changes() -> None:
    model = tiny_bert()
    with pytest.raises(ValueError) as info:
        pc_lora.attach(model, 33)
    message = str(info.value)
    assert "method.rank=33" in message
    assert "'bert.encoder.layer.0.attention.self.query' (32x32)" in message
    assert "choose a rank <= 32" in message
    assert not pc_lora.pc_lora_layers(model)
    assert all(p.requires_grad for p in model.parameters())
    # only intermediate.dense (32 -> 64) chosen: its max is min(32, 64) = 32
    with pytest.raises(
        ValueError, match=r"intermediate.dense' \(32x64\) allows \(max 32; 1 more layer too small"
    ):
        pc_lora.attach(tiny_bert(), 40, target_patterns=["intermediate"])
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="method.rank=.* must be an integer >= 1"):
            pc_lora.attach(tiny_bert(), bad)
    assert pc_lora.attach(tiny_bert(), 32)  # the largest allowed rank works


def test_attach_twice_is_refused() -> None:
    model = tiny_bert()
    pc_lora.attach(model, RANK)
    with pytest.raises(ValueError, match="already has PC-LoRA layers"):
        pc_lora.attach(model, RANK)


# --- forward ---------------------------------------------------------------------------------


def test_fresh_adapters_at_lambda_one_equal_the_original_exactly() -> None:
    original = tiny_bert().eval()
    model = copy.deepcopy(original)
    pc_lora.attach(model, RANK)
    model.eval()
    batch = text_batch()
    with torch.no_grad():
        want = original(**batch, output_hidden_states=True)
        got = model(**batch, output_hidden_states=True)
    assert torch.equal(got.logits, want.logits)
    for g, w in zip(got.hidden_states, want.hidden_states, strict=True):
        assert torch.equal(g, w)


def test_forward_is_lambda_base_plus_scaled_adapter() -> None:
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    layer = PCLoRALinear(copy.deepcopy(base), rank=3, alpha=6.0)
    nn.init.normal_(layer.lora_B)
    nn.init.normal_(layer.lora_C)
    layer.lam = 0.25
    x = torch.randn(4, 6)
    want = 0.25 * base(x) + 2.0 * (x @ layer.lora_A.T @ layer.lora_B.T) + layer.lora_C
    assert layer.scaling == 2.0
    torch.testing.assert_close(layer(x), want)
    assert not any(p.requires_grad for p in layer.base.parameters())


def test_base_linear_is_not_called_when_lambda_is_zero() -> None:
    model = tiny_bert()
    pc_lora.attach(model, RANK)
    calls = []
    for _, layer in pc_lora.pc_lora_layers(model):
        layer.base.register_forward_hook(lambda *_: calls.append(1))
    pc_lora.set_lambda(model, 0.5)
    model(**text_batch())
    assert len(calls) == len(BERT_TARGETS)
    calls.clear()
    pc_lora.set_lambda(model, 0.0)
    model(**text_batch())
    assert calls == []


def test_set_lambda_reaches_every_layer_and_drop_base_pins_it_to_zero() -> None:
    model = tiny_bert()
    pc_lora.attach(model, RANK)
    pc_lora.set_lambda(model, 0.3)
    assert {layer.lam for _, layer in pc_lora.pc_lora_layers(model)} == {0.3}
    layer = pc_lora.pc_lora_layers(model)[0][1]
    layer.drop_base()
    assert layer.base is None and layer.lam == 0.0
    assert not any(k.startswith("base.") for k in layer.state_dict())
    with pytest.raises(ValueError, match="drop_base"):
        layer.lam = 0.5
    with pytest.raises(ValueError, match="no PC-LoRA layers"):
        pc_lora.set_lambda(tiny_bert(), 0.5)


# --- training --------------------------------------------------------------------------------


def test_training_leaves_frozen_weights_bit_identical_and_moves_adapters() -> None:
    model = tiny_bert()
    pc_lora.attach(model, RANK)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model, text_batch(), lam=0.5)
    for name, p in model.named_parameters():
        if ".lora_" in name or "classifier" in name or "pooler" in name:
            assert not torch.equal(p, before[name]), f"{name} did not train"
        else:  # W, b of the targets, embeddings, norms
            assert torch.equal(p, before[name]), f"{name} changed"
            assert p.grad is None, f"{name} got a gradient"


# --- teacher and losses ----------------------------------------------------------------------


def test_teacher_forward_is_the_original_and_restores_state() -> None:
    original = tiny_bert().eval()
    model = copy.deepcopy(original)
    pc_lora.attach(model, RANK)
    randomize_adapters(model)
    pc_lora.set_lambda(model, 0.3)
    model.train()
    model.bert.embeddings.dropout.eval()  # a module in its own mode must come back that way
    batch = text_batch()
    with torch.no_grad():
        want = original(**batch, output_hidden_states=True).hidden_states
    got = pc_lora_loss.teacher_forward(model, **batch).hidden_states
    assert len(got) == LAYERS + 1
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)
        assert not g.requires_grad
    layers = [layer for _, layer in pc_lora.pc_lora_layers(model)]
    assert all(layer.lam == 0.3 and layer.adapter_enabled for layer in layers)
    assert model.training and model.bert.encoder.layer[0].attention.self.training
    assert not model.bert.embeddings.dropout.training
    # the student (adapters on) differs from the teacher
    model.eval()
    student = model(**batch, output_hidden_states=True).hidden_states
    assert not torch.allclose(student[-1], got[-1])


def test_teacher_forward_is_refused_after_compress() -> None:
    model = tiny_bert()
    pc_lora.attach(model, RANK)
    pc_lora.compress(model)
    with pytest.raises(RuntimeError, match="needs the original weights"):
        pc_lora_loss.teacher_forward(model, **text_batch())


def test_feature_kd_loss_and_loss_hand_values() -> None:
    student = [torch.ones(2, 3, 4), torch.full((2, 3, 4), 2.0)]
    teacher = [torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)]
    # block MSEs 1 and 4 -> mean 2.5
    assert pc_lora_loss.feature_kd_loss(student, teacher).item() == pytest.approx(2.5)
    task = torch.tensor(2.0)
    assert pc_lora_loss.loss(task, student, teacher, 0.25).item() == pytest.approx(0.75 * 2.0 + 0.25 * 2.5)
    assert pc_lora_loss.loss(task, [], [], 0.0) is task  # no KD computed at kd_weight 0
    assert pc_lora_loss.loss(task, student, teacher, 1.0).item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="one teacher block output per student block"):
        pc_lora_loss.feature_kd_loss(student, teacher[:1])
    with pytest.raises(ValueError, match="method.kd_weight"):
        pc_lora_loss.loss(task, student, teacher, 1.5)


def test_feature_kd_loss_sends_no_gradient_to_the_teacher() -> None:
    s = torch.ones(3, requires_grad=True)
    t = torch.zeros(3, requires_grad=True)
    pc_lora_loss.feature_kd_loss([s], [t]).backward()
    assert s.grad is not None and t.grad is None


def test_feature_kd_loss_ignores_padded_positions() -> None:
    # batch 2, seq 3, hidden 2; example 0 has 2 real tokens, example 1 has 1.
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    teacher = torch.zeros(2, 3, 2)
    student = torch.zeros(2, 3, 2)
    student[0, 0] = torch.tensor([1.0, 1.0])  # squared errors 1 + 1
    student[0, 1] = torch.tensor([2.0, 0.0])  # 4 + 0
    student[1, 0] = torch.tensor([0.0, 3.0])  # 0 + 9
    # (2 + 4 + 9) / (3 real tokens * 2 hidden) = 2.5
    clean = pc_lora_loss.feature_kd_loss([student], [teacher], mask)
    assert clean.item() == pytest.approx(2.5)
    garbage = student.clone()
    garbage[0, 2] = 1e6
    garbage[1, 1:] = float("nan")
    assert torch.equal(pc_lora_loss.feature_kd_loss([garbage], [teacher], mask), clean)
    # without the mask the padding counts: (15 + 2 * 1e12 + nan) / 12 is nan, not 2.5
    assert not torch.isfinite(pc_lora_loss.feature_kd_loss([garbage], [teacher]))
    # and loss() passes the mask through
    task = torch.tensor(2.0)
    got = pc_lora_loss.loss(task, [garbage], [teacher], 0.5, mask)
    assert got.item() == pytest.approx(0.5 * 2.0 + 0.5 * 2.5)


def test_feature_kd_loss_with_all_ones_mask_is_the_plain_mse() -> None:
    g = torch.Generator().manual_seed(0)
    student = [torch.randn(2, 5, 4, generator=g) for _ in range(2)]
    teacher = [torch.randn(2, 5, 4, generator=g) for _ in range(2)]
    ones = torch.ones(2, 5, dtype=torch.long)
    plain = pc_lora_loss.feature_kd_loss(student, teacher)
    torch.testing.assert_close(pc_lora_loss.feature_kd_loss(student, teacher, ones), plain)
    want = sum(((s - t) ** 2).mean() for s, t in zip(student, teacher, strict=True)) / 2
    torch.testing.assert_close(plain, want)


def test_feature_kd_loss_mask_gradient_and_refusals() -> None:
    s = torch.ones(1, 2, 3, requires_grad=True)
    pc_lora_loss.feature_kd_loss([s], [torch.zeros(1, 2, 3)], torch.tensor([[1, 0]])).backward()
    # d/ds mean((s - 0)^2) over the 3 real values = 2 s / 3; padding gets no gradient
    torch.testing.assert_close(s.grad, torch.tensor([[[2 / 3] * 3, [0.0] * 3]]))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 3\)"):
        pc_lora_loss.feature_kd_loss([s], [s], torch.ones(1, 3))
    with pytest.raises(ValueError, match="every position as padding"):
        pc_lora_loss.feature_kd_loss([s], [s], torch.zeros(1, 2))


def test_masked_feature_kd_on_a_padded_bert_batch_ignores_the_padding() -> None:
    # The real use: a tiny BERT whose second example is padded. Changing the padding token ids
    # changes the hidden states at the padded positions but not the masked KD loss.
    model = tiny_bert()
    pc_lora.attach(model, RANK)
    randomize_adapters(model)
    pc_lora.set_lambda(model, 0.5)
    model.eval()
    batch = text_batch()
    batch["attention_mask"][1, 6:] = 0
    other = {**batch, "input_ids": batch["input_ids"].clone()}
    other["input_ids"][1, 6:] = (other["input_ids"][1, 6:] + 7) % 100
    losses = []
    for inputs in (batch, other):
        with torch.no_grad():
            teacher = pc_lora_loss.teacher_forward(model, **inputs).hidden_states[1:]
            student = model(**inputs, output_hidden_states=True).hidden_states[1:]
        losses.append(
            (
                pc_lora_loss.feature_kd_loss(student, teacher, inputs["attention_mask"]),
                pc_lora_loss.feature_kd_loss(student, teacher),
            )
        )
    (masked_a, plain_a), (masked_b, plain_b) = losses
    torch.testing.assert_close(masked_a, masked_b, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(plain_a, plain_b, rtol=1e-5, atol=1e-7)


def test_logit_kd_hand_values() -> None:
    hidden_s = [torch.ones(1, 2, 2)]
    hidden_t = [torch.zeros(1, 2, 2)]  # feature KD = 1
    task = torch.tensor(2.0)
    # one example, two classes; T = 2: z_s / T = [0, 0], z_t / T = [ln 3, 0] -> p_t = [3/4, 1/4]
    z_s = torch.tensor([[0.0, 0.0]])
    z_t = torch.tensor([[2 * math.log(3.0), 0.0]])
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # KL(p_t || [1/2, 1/2])
    logit_kd = 4 * kl  # T^2 = 4
    got = pc_lora_loss.loss(
        task, hidden_s, hidden_t, 0.25, student_logits=z_s, teacher_logits=z_t, logit_kd_weight=0.5
    )
    assert got.item() == pytest.approx(0.25 * 2.0 + 0.25 * 1.0 + 0.5 * logit_kd)
    # T = 1: z_t = [2 ln 3, 0] -> p_t = [9/10, 1/10]; no feature KD, so the hidden states may be empty
    kl1 = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    got = pc_lora_loss.loss(
        task, [], [], 0.0, student_logits=z_s, teacher_logits=z_t, logit_kd_weight=1.0, temperature=1.0
    )
    assert got.item() == pytest.approx(kl1)
    # logit_kd_weight 0 (the default) ignores the logits: the paper's loss
    assert pc_lora_loss.loss(task, hidden_s, hidden_t, 0.25).item() == pytest.approx(0.75 * 2.0 + 0.25)
    assert pc_lora_loss.loss(task, [], [], 0.0, student_logits=z_s, teacher_logits=z_t) is task


def test_logit_kd_regression_is_mse_without_temperature() -> None:
    task = torch.tensor(1.0)
    z_s = torch.tensor([[1.0], [3.0]])
    z_t = torch.tensor([[0.0], [1.0]])
    mse = (1.0 + 4.0) / 2
    for temperature in (1.0, 2.0, 5.0):  # no T^2 on the MSE: T changes nothing
        got = pc_lora_loss.loss(
            task,
            [],
            [],
            0.0,
            student_logits=z_s,
            teacher_logits=z_t,
            logit_kd_weight=0.4,
            temperature=temperature,
            regression=True,
        )
        assert got.item() == pytest.approx(0.6 * 1.0 + 0.4 * mse)


def test_logit_kd_sends_no_gradient_to_the_teacher() -> None:
    z_s = torch.tensor([[1.0, -1.0]], requires_grad=True)  # not [0.5, -0.5]: same softmax as z_t
    z_t = torch.tensor([[1.0, 0.0]], requires_grad=True)
    pc_lora_loss.loss(
        torch.tensor(0.0), [], [], 0.0, student_logits=z_s, teacher_logits=z_t, logit_kd_weight=1.0
    ).backward()
    assert z_s.grad is not None and z_s.grad.abs().sum() > 0 and z_t.grad is None


def test_loss_refuses_kd_weights_summing_above_one_and_missing_logits() -> None:
    task, h = torch.tensor(1.0), [torch.zeros(1, 2, 2)]
    z = torch.zeros(1, 2)
    with pytest.raises(ValueError, match=r"method.kd_weight \+ method.logit_kd_weight = 0.6 \+ 0.5"):
        pc_lora_loss.loss(task, h, h, 0.6, student_logits=z, teacher_logits=z, logit_kd_weight=0.5)
    with pytest.raises(ValueError, match="method.logit_kd_weight=-0.1"):
        pc_lora_loss.loss(task, h, h, 0.5, logit_kd_weight=-0.1)
    with pytest.raises(ValueError, match="needs student_logits and teacher_logits"):
        pc_lora_loss.loss(task, h, h, 0.5, student_logits=z, logit_kd_weight=0.5)
    with pytest.raises(ValueError, match="method.temperature"):
        pc_lora_loss.loss(task, h, h, 0.5, student_logits=z, teacher_logits=z, logit_kd_weight=0.5, temperature=0)
    # the weights may add up to exactly 1: no task loss left
    got = pc_lora_loss.loss(task, h, h, 0.7, student_logits=z, teacher_logits=z, logit_kd_weight=0.3)
    assert got.item() == 0.0


# --- compression, saving, loading ------------------------------------------------------------


@pytest.mark.parametrize(("build", "batch"), [(tiny_bert, text_batch), (tiny_dinov2, image_batch)])
def test_compressed_model_equals_trained_one_and_survives_save_load(tmp_path, build, batch) -> None:
    model = build()
    pc_lora.attach(model, RANK)
    inputs = batch()
    train_steps(model, inputs, lam=0.5)
    assert all(layer.lora_B.abs().sum() > 0 for _, layer in pc_lora.pc_lora_layers(model))
    inputs.pop("labels", None)
    pc_lora.set_lambda(model, 0.0)
    model.eval()
    with torch.no_grad():
        trained = model(**inputs).logits
        assert pc_lora.compress(model) is model
        assert all(layer.base is None for _, layer in pc_lora.pc_lora_layers(model))
        assert torch.equal(model(**inputs).logits, trained)

    pc_lora.save_compressed(model, tmp_path / "model")
    with safe_open(str(tmp_path / "model" / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert not any(".base." in k for k in keys)
    assert {k for k in keys if ".lora_" in k} == {
        f"{n}.lora_{x}" for n, _ in pc_lora.pc_lora_layers(model) for x in "ABC"
    }
    meta = json.loads((tmp_path / "model" / "pc_lora.json").read_text())
    assert meta["rank"] == RANK and meta["targets"] == [n for n, _ in pc_lora.pc_lora_layers(model)]
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["architectures"] == [type(model).__name__]

    loaded = pc_lora.load_compressed(tmp_path / "model")
    assert type(loaded) is type(model) and not loaded.training
    with torch.no_grad():
        assert (loaded(**inputs).logits - trained).abs().max().item() < 1e-5


def test_save_refuses_an_uncompressed_model(tmp_path) -> None:
    model = tiny_bert()
    pc_lora.attach(model, RANK)
    with pytest.raises(ValueError, match=r"call compress\(model\) first"):
        pc_lora.save_compressed(model, tmp_path)


def test_compressed_param_count_matches_formula() -> None:
    model = tiny_bert()
    base = count_params(model)["params"]
    pc_lora.attach(model, RANK)
    pc_lora.compress(model)
    shapes = [(HIDDEN, HIDDEN)] * 4 + [(HIDDEN, INTER), (INTER, HIDDEN)]  # (in, out) per block
    removed = LAYERS * sum(i * o + o for i, o in shapes)
    added = LAYERS * sum(RANK * i + RANK * o + o for i, o in shapes)
    assert count_params(model)["params"] == base - removed + added
