import pytest
import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import (
    AutoModelForImageClassification,
    AutoModelForSequenceClassification,
    BertConfig,
    DebertaV2Config,
    Dinov2Config,
    DistilBertConfig,
    GPT2Config,
    GPT2ForSequenceClassification,
    RobertaConfig,
    ViTConfig,
)

from methods.baselines import (
    attach_lora,
    head_module_names,
    lora_target_modules,
    merge_lora,
    prepare_fft,
    save_model,
)

# PEFT 0.21 calls transformers' deprecated `is_gradient_checkpointing`; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

TEXT = {"input_ids": torch.tensor([[3, 14, 15, 92, 65, 35], [2, 7, 18, 28, 1, 0]])}
IMAGES = {"pixel_values": torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))}


def tiny(family: str, num_labels: int = 3) -> nn.Module:
    torch.manual_seed(0)
    text = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=100
    )
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, image_size=16, patch_size=8)
    if family == "bert":
        return AutoModelForSequenceClassification.from_config(BertConfig(num_labels=num_labels, **text))
    if family == "roberta":
        return AutoModelForSequenceClassification.from_config(RobertaConfig(num_labels=num_labels, **text))
    if family == "deberta-v2":
        return AutoModelForSequenceClassification.from_config(DebertaV2Config(num_labels=num_labels, **text))
    if family == "distilbert":
        config = DistilBertConfig(
            dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=100, num_labels=num_labels
        )
        return AutoModelForSequenceClassification.from_config(config)
    if family == "vit":
        return AutoModelForImageClassification.from_config(
            ViTConfig(intermediate_size=64, num_labels=num_labels, **vision)
        )
    if family == "dinov2":
        return AutoModelForImageClassification.from_config(
            Dinov2Config(mlp_ratio=2, num_labels=num_labels, **vision)
        )
    raise AssertionError(family)


def inputs_for(family: str) -> dict[str, torch.Tensor]:
    return IMAGES if family in ("vit", "dinov2") else TEXT


CASES = [
    ("bert", ["query", "value"], ["classifier"]),
    ("roberta", ["query", "value"], ["classifier"]),
    ("distilbert", ["q_lin", "v_lin"], ["pre_classifier", "classifier"]),
    ("deberta-v2", ["query_proj", "value_proj"], ["pooler", "classifier"]),
    ("vit", ["q_proj", "v_proj"], ["classifier"]),
    ("dinov2", ["q_proj", "v_proj"], ["classifier"]),
]


@pytest.mark.parametrize("family,targets,heads", CASES)
def test_default_targets_and_heads(family, targets, heads):
    model = tiny(family)
    assert lora_target_modules(model) == targets
    assert head_module_names(model) == heads

    lora = attach_lora(model, 4)
    adapted = [n for n, m in lora.named_modules() if isinstance(m, LoraLayer)]
    # query and value projections of each of the 2 layers, nothing else
    assert len(adapted) == 4 and all(n.rsplit(".", 1)[-1] in targets for n in adapted)
    assert lora(**inputs_for(family)).logits.shape == (2, 3)


def test_override_targets():
    model = tiny("bert")
    assert lora_target_modules(model, ["key", "attention.output.dense"]) == ["key", "attention.output.dense"]
    lora = attach_lora(model, 2, targets=["key"])
    adapted = [n for n, m in lora.named_modules() if isinstance(m, LoraLayer)]
    assert len(adapted) == 2 and all(n.endswith(".key") for n in adapted)


def test_unknown_model_type_and_bad_override_name_the_key():
    gpt2 = GPT2ForSequenceClassification(GPT2Config(n_embd=32, n_layer=1, n_head=4, vocab_size=100))
    with pytest.raises(ValueError, match=r"method.target_modules") as err:
        lora_target_modules(gpt2)
    assert "gpt2" in str(err.value)
    assert lora_target_modules(gpt2, ["c_attn"]) == ["c_attn"]
    with pytest.raises(ValueError, match=r"method.target_modules.*\['qeury'\]"):
        lora_target_modules(tiny("bert"), ["qeury", "value"])


@pytest.mark.parametrize("rank", [0, -1, 33])
def test_bad_rank_names_the_key(rank):
    # hidden size 32: a rank above 32 cannot be used on a 32 x 32 projection
    with pytest.raises(ValueError, match=r"method\.rank"):
        attach_lora(tiny("bert"), rank)


def test_default_alpha_is_twice_the_rank():
    lora = attach_lora(tiny("bert"), 4)
    layer = next(m for m in lora.modules() if isinstance(m, LoraLayer))
    assert layer.scaling["default"] == 2.0
    assert attach_lora(tiny("bert"), 4, alpha=4).peft_config["default"].lora_alpha == 4


def test_fft_makes_everything_trainable():
    model = tiny("bert")
    for p in model.parameters():
        p.requires_grad_(False)
    model = prepare_fft(model)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("family", ["bert", "distilbert", "vit"])
def test_lora_trains_only_adapters_and_head(family):
    lora = attach_lora(tiny(family), 4)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable
    assert all("lora_" in n or ".modules_to_save." in n for n in trainable)
    assert any("lora_B" in n for n in trainable)
    for head in head_module_names(lora.get_base_model()):
        assert any(f"{head}.modules_to_save." in n for n in trainable), head


def train_a_few_steps(model: nn.Module, inputs: dict[str, torch.Tensor], steps: int = 5) -> None:
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    labels = torch.tensor([0, 2])
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(**inputs).logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.mark.parametrize("family", ["bert", "deberta-v2", "vit"])
def test_merged_equals_unmerged_and_head_survives(tmp_path, family):
    base = tiny(family)
    head_before = {n: p.detach().clone() for n, p in base.named_parameters() if n.startswith("classifier.")}
    n_base_params = sum(p.numel() for p in base.parameters())
    inputs = inputs_for(family)

    lora = attach_lora(base, 4)
    train_a_few_steps(lora, inputs)
    assert all(
        m.lora_B["default"].weight.abs().max() > 0 for m in lora.modules() if isinstance(m, LoraLayer)
    ), "training should move every B away from its zero init"
    with torch.no_grad():
        unmerged = lora(**inputs).logits

    merged = merge_lora(lora)
    assert not isinstance(merged, PeftModel)
    assert not any(isinstance(m, LoraLayer) for m in merged.modules())
    assert sum(p.numel() for p in merged.parameters()) == n_base_params
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, unmerged, atol=1e-5, rtol=0)
    # the trained head, not the initial one, is what the merged model carries
    for n, before in head_before.items():
        assert not torch.equal(merged.get_parameter(n), before), n

    save_model(merged, tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    auto = AutoModelForImageClassification if family == "vit" else AutoModelForSequenceClassification
    reloaded = auto.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, unmerged, atol=1e-5, rtol=0)


def test_save_model_refuses_unmerged_lora(tmp_path):
    with pytest.raises(TypeError, match="merge_lora"):
        save_model(attach_lora(tiny("bert"), 2), tmp_path)


def test_lora_trains_the_backbones_pooler_which_a_checkpoint_may_lack():
    """paraphrase-MiniLM-L3 ships no pooler: frozen, a fresh one is a fixed random projection under the head."""
    lora = attach_lora(tiny("bert"), 4)
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert any("bert.pooler.modules_to_save." in n for n in trainable)
    with torch.no_grad():
        for n, p in lora.named_parameters():
            if "bert.pooler.modules_to_save." in n and n.endswith("dense.bias"):
                p.fill_(0.5)  # stands for a trained update
    merged = merge_lora(lora)
    assert torch.equal(merged.bert.pooler.dense.bias, torch.full_like(merged.bert.pooler.dense.bias, 0.5))
    assert attach_lora(tiny("vit"), 4) is not None  # no pooler: nothing extra to train


def test_vision_lora_targets_accept_the_names_of_earlier_transformers_releases() -> None:
    """transformers 5.17 (the lent GPU's) names DINOv2's projections query/value; 5.23 q_proj/v_proj."""
    from types import SimpleNamespace

    from torch import nn

    from methods.baselines import lora_target_modules

    class Attention(nn.Module):
        def __init__(self, names: tuple[str, ...]) -> None:
            super().__init__()
            for n in names:
                self.add_module(n, nn.Linear(4, 4))

    for names, want in ((("query", "key", "value"), ["query", "value"]),
                        (("q_proj", "k_proj", "v_proj"), ["q_proj", "v_proj"])):
        model = nn.Sequential(Attention(names))
        model.config = SimpleNamespace(model_type="dinov2")
        assert lora_target_modules(model) == want
    model = nn.Sequential(Attention(("qkv",)))
    model.config = SimpleNamespace(model_type="dinov2")
    with pytest.raises(ValueError, match="match no module"):
        lora_target_modules(model)
