import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from transformers import (
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    Dinov2Config,
    DistilBertConfig,
    ViTConfig,
)

from methods.kd_lora import TeacherLogits, cut_layers, distillation_loss, kd_loss, student_layer_indices


def tiny_bert(num_labels: int = 3, layers: int = 4) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        vocab_size=100,
        num_labels=num_labels,
    )
    return BertForSequenceClassification(config).eval()


# ---- kd_loss ------------------------------------------------------------------------------------


def hand_kd_classification(s, t, y, w, temp):
    """The paper's loss written out with explicit sums, one example at a time."""
    total = 0.0
    for i in range(s.shape[0]):
        zs = [v / temp for v in s[i].tolist()]
        zt = [v / temp for v in t[i].tolist()]
        ps = [math.exp(v) / sum(math.exp(u) for u in zs) for v in zs]
        pt = [math.exp(v) / sum(math.exp(u) for u in zt) for v in zt]
        kl = sum(pt[c] * (math.log(pt[c]) - math.log(ps[c])) for c in range(len(ps)))
        logits = s[i].tolist()
        ce = -(logits[y[i]] - math.log(sum(math.exp(v) for v in logits)))
        total += (1 - w) * ce + w * temp**2 * kl
    return total / s.shape[0]


@pytest.mark.parametrize("w,temp", [(0.5, 2.0), (0.3, 1.0), (1.0, 4.0)])
def test_kd_loss_classification_matches_formula(w, temp):
    g = torch.Generator().manual_seed(1)
    s, t = (
        torch.randn(5, 3, generator=g, dtype=torch.float64),
        torch.randn(5, 3, generator=g, dtype=torch.float64),
    )
    y = torch.tensor([0, 2, 1, 1, 0])
    got = kd_loss(s, t, y, kd_weight=w, temperature=temp, regression=False)
    assert got.item() == pytest.approx(hand_kd_classification(s, t, y.tolist(), w, temp), rel=1e-10)


def test_kd_loss_regression_matches_formula():
    s = torch.tensor([[0.5], [2.0], [-1.0]])
    t = torch.tensor([[1.0], [1.5], [0.0]])
    y = torch.tensor([0.0, 3.0, -1.0])
    mse_y = ((0.5 - 0.0) ** 2 + (2.0 - 3.0) ** 2 + 0.0) / 3
    mse_t = ((0.5 - 1.0) ** 2 + (2.0 - 1.5) ** 2 + (-1.0 - 0.0) ** 2) / 3
    got = kd_loss(s, t, y, kd_weight=0.25, temperature=3.0, regression=True)
    assert got.item() == pytest.approx(0.75 * mse_y + 0.25 * mse_t)


@pytest.mark.parametrize("w", [0.25, 1.0])
def test_temperature_does_not_change_the_regression_loss(w):
    # STS-B: the KD term is MSE(z_s, z_t) with no T^2, so every T gives the same loss.
    s = torch.tensor([[0.5], [2.0], [-1.0]])
    t = torch.tensor([[1.0], [1.5], [0.0]])
    y = torch.tensor([0.0, 3.0, -1.0])
    mse_y = (0.25 + 1.0 + 0.0) / 3
    mse_t = (0.25 + 0.25 + 1.0) / 3  # = 0.5, not 0.5 * T^2
    losses = [
        kd_loss(s, t, y, kd_weight=w, temperature=temp, regression=True) for temp in (0.5, 1.0, 2.0, 8.0)
    ]
    assert all(torch.equal(loss, losses[0]) for loss in losses)
    assert losses[0].item() == pytest.approx((1 - w) * mse_y + w * mse_t)
    for temp in (1.0, 4.0):
        assert distillation_loss(s, t, temperature=temp, regression=True).item() == pytest.approx(0.5)


def test_distillation_loss_classification_hand_value():
    # T = 2: z_s / T = [0, 0] -> p_s = [1/2, 1/2]; z_t / T = [ln 3, 0] -> p_t = [3/4, 1/4]
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[2 * math.log(3.0), 0.0]])
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert distillation_loss(s, t, temperature=2.0, regression=False).item() == pytest.approx(4 * kl)
    # kd_loss at kd_weight 1 is exactly this term
    full = kd_loss(s, t, torch.tensor([1]), kd_weight=1.0, temperature=2.0, regression=False)
    assert full.item() == pytest.approx(4 * kl)


def test_regression_needs_one_output():
    with pytest.raises(ValueError, match="regression task needs 1 output"):
        kd_loss(
            torch.zeros(2, 2),
            torch.zeros(2, 2),
            torch.zeros(2),
            kd_weight=0.5,
            temperature=1.0,
            regression=True,
        )


def test_kd_weight_zero_is_plain_cross_entropy():
    s, t = torch.randn(4, 2), torch.randn(4, 2)
    y = torch.tensor([0, 1, 1, 0])
    got = kd_loss(s, t, y, kd_weight=0.0, temperature=2.0, regression=False)
    assert torch.equal(got, F.cross_entropy(s, y))


def test_kd_loss_gradient_reaches_student_only():
    s = torch.randn(4, 2, requires_grad=True)
    t = torch.randn(4, 2, requires_grad=True)
    kd_loss(s, t, torch.tensor([0, 1, 1, 0]), kd_weight=0.5, temperature=2.0, regression=False).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"kd_weight": 1.5, "temperature": 2.0}, "method.kd_weight"),
        ({"kd_weight": -0.1, "temperature": 2.0}, "method.kd_weight"),
        ({"kd_weight": 0.5, "temperature": 0.0}, "method.temperature"),
    ],
)
def test_kd_loss_bad_params_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        kd_loss(torch.zeros(2, 2), torch.zeros(2, 2), torch.tensor([0, 1]), regression=False, **kwargs)


def test_kd_loss_shape_mismatch_names_the_teacher():
    with pytest.raises(ValueError, match="method.teacher"):
        kd_loss(
            torch.zeros(2, 2),
            torch.zeros(2, 3),
            torch.tensor([0, 1]),
            kd_weight=0.5,
            temperature=1.0,
            regression=False,
        )


# ---- TeacherLogits --------------------------------------------------------------------------------


class TokenDataset(Dataset):
    """Rows like the orchestrator's: model inputs, labels and the row's own position `idx`."""

    def __init__(self, n: int, seq: int = 6) -> None:
        g = torch.Generator().manual_seed(2)
        self.input_ids = torch.randint(1, 100, (n, seq), generator=g)
        self.labels = torch.randint(0, 3, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids[i],
            "attention_mask": torch.ones_like(self.input_ids[i]),
            "labels": self.labels[i],
            "idx": torch.tensor(i),
        }


def teacher_logits_of(teacher, batch):
    with torch.no_grad():
        return teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def test_teacher_logits_follow_examples_under_shuffled_sharded_loader():
    teacher = tiny_bert()
    data = TokenDataset(22)
    store = TeacherLogits.compute(teacher, DataLoader(data, batch_size=5), "cpu")
    assert store.logits.shape == (22, 3)

    positional_mismatches = 0
    for rank in (0, 1):
        sampler = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=3)
        sampler.set_epoch(1)
        for step, batch in enumerate(DataLoader(data, batch_size=4, sampler=sampler)):
            expected = teacher_logits_of(teacher, batch)
            torch.testing.assert_close(store.lookup(batch["idx"]), expected, rtol=1e-5, atol=1e-6)
            # What the paper's code does in spirit: take the rows in the order they were computed.
            positional = store.logits[step * 4 : step * 4 + len(expected)]
            positional_mismatches += not torch.allclose(positional, expected, atol=1e-6)
    assert positional_mismatches > 0, "positional alignment should be wrong under a shuffled loader"


def test_teacher_logits_compute_restores_train_mode_and_skips_labels():
    teacher = tiny_bert().train()
    seen: list[set[str]] = []
    teacher.register_forward_pre_hook(lambda m, args, kwargs: seen.append(set(kwargs)), with_kwargs=True)
    TeacherLogits.compute(teacher, DataLoader(TokenDataset(6), batch_size=4), "cpu")
    assert teacher.training
    assert seen and all(keys == {"input_ids", "attention_mask"} for keys in seen)


def test_teacher_logits_refuse_missing_and_repeated_rows():
    teacher, data = tiny_bert(), TokenDataset(8)
    sharded = DataLoader(data, batch_size=4, sampler=DistributedSampler(data, num_replicas=2, rank=0))
    with pytest.raises(ValueError, match="4 missing"):
        TeacherLogits.compute(teacher, sharded, "cpu")
    # DistributedSampler pads 7 examples to 2 x 4 by repeating one.
    data7 = TokenDataset(7)
    both_ranks = [
        b for r in (0, 1) for b in DataLoader(data7, batch_size=4, sampler=DistributedSampler(data7, 2, r))
    ]
    with pytest.raises(ValueError, match="1 repeated"):
        TeacherLogits.compute(teacher, both_ranks, "cpu", num_examples=7)


def test_teacher_logits_save_load_roundtrip(tmp_path):
    store = TeacherLogits(torch.randn(10, 3))
    store.save(tmp_path / "teacher_logits.safetensors")
    loaded = TeacherLogits.load(tmp_path / "teacher_logits.safetensors")
    assert torch.equal(loaded.logits, store.logits)
    assert torch.equal(loaded.lookup(torch.tensor([7, 2])), store.logits[[7, 2]])


# ---- cut_layers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_layers,k,expected",
    [
        (12, 6, [0, 2, 4, 7, 9, 11]),  # DistilBERT's choice from BERT-base
        (6, 3, [0, 3, 5]),
        (4, 2, [0, 3]),
        (12, 3, [0, 6, 11]),
        (5, 5, [0, 1, 2, 3, 4]),
        (6, 1, [0]),
    ],
)
def test_student_layer_indices(num_layers, k, expected):
    assert student_layer_indices(num_layers, k) == expected


def kept_teacher_layers(teacher, student):
    """Which teacher layer each student layer is a copy of, found by comparing weights."""
    t_layers, s_layers = teacher.bert.encoder.layer, student.bert.encoder.layer
    return [
        next(
            i
            for i, t in enumerate(t_layers)
            if torch.equal(t.attention.self.query.weight, s.attention.self.query.weight)
        )
        for s in s_layers
    ]


@pytest.mark.parametrize("num_layers,k,expected", [(6, 3, [0, 3, 5]), (12, 6, [0, 2, 4, 7, 9, 11])])
def test_cut_layers_keeps_the_documented_layers(num_layers, k, expected):
    teacher = tiny_bert(layers=num_layers)
    student = cut_layers(teacher, k)
    assert kept_teacher_layers(teacher, student) == expected
    assert f"{num_layers} → {k} keeps {expected}" in cut_layers.__doc__


@pytest.mark.parametrize("k", [0, 5])
def test_student_layers_out_of_range_names_the_key(k):
    with pytest.raises(ValueError, match="method.student_layers"):
        cut_layers(tiny_bert(layers=4), k)


def test_cut_bert_copies_layers_and_roundtrips(tmp_path):
    teacher = tiny_bert(layers=4)
    student = cut_layers(teacher, 2)
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    assert len(student.bert.encoder.layer) == 2 and len(teacher.bert.encoder.layer) == 4
    for new_i, old_i in enumerate([0, 3]):
        src, dst = (
            teacher.bert.encoder.layer[old_i].state_dict(),
            student.bert.encoder.layer[new_i].state_dict(),
        )
        assert src.keys() == dst.keys()
        assert all(torch.equal(src[key], dst[key]) for key in src)
        # a copy, not shared storage: training the student must not move the teacher
        assert all(src[key].data_ptr() != dst[key].data_ptr() for key in src)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert student.bert.encoder.layer[1].attention.self.layer_idx == 1  # renumbered from 3

    ids = torch.randint(1, 100, (2, 7))
    out = student(input_ids=ids).logits
    assert out.shape == (2, 3)
    student.save_pretrained(tmp_path)
    reloaded = BertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_hidden_layers == 2
    torch.testing.assert_close(reloaded(input_ids=ids).logits, out)


def roundtrip_logits(model, tmp_path, auto_cls, inputs):
    model.save_pretrained(tmp_path)
    reloaded = auto_cls.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded(**inputs).logits, model(**inputs).logits)
    return reloaded


def test_cut_distilbert(tmp_path):
    torch.manual_seed(0)
    config = DistilBertConfig(dim=32, n_layers=4, n_heads=4, hidden_dim=64, vocab_size=100, num_labels=2)
    teacher = AutoModelForSequenceClassification.from_config(config).eval()
    student = cut_layers(teacher, 3)
    assert student.config.n_layers == 3
    w = lambda m, i: m.distilbert.transformer.layer[i].attention.q_lin.weight  # noqa: E731
    assert torch.equal(w(student, 1), w(teacher, 2))
    reloaded = roundtrip_logits(
        student, tmp_path, AutoModelForSequenceClassification, {"input_ids": torch.tensor([[5, 6, 7]])}
    )
    assert len(reloaded.distilbert.transformer.layer) == 3


@pytest.mark.parametrize("family", ["vit", "dinov2"])
def test_cut_vision_models(tmp_path, family):
    torch.manual_seed(0)
    common = dict(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=4, image_size=16, patch_size=8, num_labels=5
    )
    config = (
        ViTConfig(intermediate_size=64, **common) if family == "vit" else Dinov2Config(mlp_ratio=2, **common)
    )
    teacher = AutoModelForImageClassification.from_config(config).eval()
    student = cut_layers(teacher, 2)
    base = "vit.layers" if family == "vit" else "dinov2.encoder.layer"
    for new_i, old_i in enumerate([0, 3]):
        src = teacher.get_submodule(f"{base}.{old_i}").state_dict()
        dst = student.get_submodule(f"{base}.{new_i}").state_dict()
        assert all(torch.equal(src[key], dst[key]) for key in src)
    reloaded = roundtrip_logits(
        student, tmp_path, AutoModelForImageClassification, {"pixel_values": torch.randn(2, 3, 16, 16)}
    )
    assert reloaded.config.num_hidden_layers == 2
    assert len(reloaded.get_submodule(base)) == 2
