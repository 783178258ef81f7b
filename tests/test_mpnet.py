"""MPNet (all-mpnet-base-v2, the 110 M encoder of issue 36) under every method: LoRA's attention names,
PC-LoRA's six linears per block, KD-LoRA's cut student, the parameter and FLOP accounting, and each recipe
run end to end on a tiny random MPNet with its own tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, MPNetConfig, MPNetForSequenceClassification

from methods import baselines, kd_lora, pc_lora
from methods.accounting import count_flops, count_params, example_inputs
from tests.tiny_text import run_here, tiny_config, tiny_mpnet_dir

LINEARS = ("attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o", "intermediate.dense",
           "output.dense")


def tiny_mpnet(layers: int = 4) -> MPNetForSequenceClassification:
    torch.manual_seed(0)
    return MPNetForSequenceClassification(MPNetConfig(vocab_size=100, hidden_size=32, num_hidden_layers=layers,
                                                      num_attention_heads=2, intermediate_size=64,
                                                      max_position_embeddings=66, num_labels=2))


def test_lora_adapts_mpnets_query_and_value() -> None:
    model = tiny_mpnet()
    assert baselines.lora_target_modules(model) == ["q", "v"]
    lora = baselines.attach_lora(model, 4)
    adapted = sorted({n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in lora.named_parameters() if ".lora_A" in n})
    assert adapted == ["q", "v"]
    trainable = {n.split(".")[2] for n, p in lora.named_parameters() if p.requires_grad and "lora_" not in n}
    assert trainable == {"classifier"}  # MPNet's head (dense + out_proj) trains in full; it has no pooler


def test_pc_lora_finds_all_six_linears_of_every_block_and_nothing_else() -> None:
    model = tiny_mpnet(layers=3)
    targets = pc_lora.find_targets(model)
    assert targets == [f"mpnet.encoder.layer.{i}.{name}" for i in range(3) for name in LINEARS]


def test_a_cut_mpnet_keeps_the_shared_relative_attention_bias_and_the_chosen_layers(tmp_path: Path) -> None:
    model = tiny_mpnet(layers=4).eval()
    student = kd_lora.cut_layers(model, 2).eval()
    assert student.config.num_hidden_layers == 2 and len(student.mpnet.encoder.layer) == 2
    # The bias table sits in the encoder, outside the layer list, and every kept layer still reads it.
    assert torch.equal(student.mpnet.encoder.relative_attention_bias.weight,
                       model.mpnet.encoder.relative_attention_bias.weight)
    for new, old in enumerate(kd_lora.student_layer_indices(4, 2)):
        assert torch.equal(student.mpnet.encoder.layer[new].attention.attn.q.weight,
                           model.mpnet.encoder.layer[old].attention.attn.q.weight)
    student.save_pretrained(tmp_path / "cut")
    ids = torch.randint(3, 100, (2, 9))
    back = AutoModelForSequenceClassification.from_pretrained(tmp_path / "cut").eval()
    with torch.no_grad():
        assert torch.allclose(back(input_ids=ids).logits, student(input_ids=ids).logits)


def test_accounting_leaves_mpnets_embeddings_out_of_the_encoder_basis() -> None:
    model = tiny_mpnet(layers=2)
    counts = count_params(model)
    embeddings = sum(p.numel() for p in model.mpnet.embeddings.parameters())
    bias_table = model.mpnet.encoder.relative_attention_bias.weight.numel()  # an nn.Embedding, like DeBERTa's
    assert counts["params_no_embeddings"] == counts["params"] - embeddings - bias_table
    inputs = example_inputs(model, seq_len=16)
    assert set(inputs) == {"input_ids", "attention_mask"}  # MPNet has no token types
    base = count_flops(model, inputs)
    # Per block: the six linears (4·32² + 2·32·64 multiply-adds per token) and the attention products.
    linears = 2 * 2 * 16 * (4 * 32 * 32 + 2 * 32 * 64)
    assert base >= linears
    pc_lora.attach(model, 4)
    pc_lora.compress(model)
    assert count_flops(model, inputs) < base


@pytest.fixture(scope="module")
def mpnet_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every method once on a tiny MPNet (the fft run is also KD-LoRA's teacher): metrics.json per method."""
    tmp = tmp_path_factory.mktemp("mpnet")
    model = tiny_mpnet_dir(tmp / "mpnet", layers=2)
    settings = {"fft": {}, "lora": {"method.rank": 4}, "pc_lora": {"method.rank": 4, "method.kd_weight": 0.5},  # feature KD on MPNet's hidden states
                "kd_lora": {"method.rank": 4, "method.student_layers": 1}}
    out = {}
    for method, values in settings.items():
        cfg = tiny_config(tmp, model, **{"method.name": method, **values})
        run_here(cfg, tmp / method, teacher_dir=tmp / "fft" if method == "kd_lora" else None,
                 emit_train_logits=method == "fft")
        out[method] = {**json.loads((tmp / method / "metrics.json").read_text()), "dir": tmp / method}
    return out


@pytest.mark.parametrize("method", ["fft", "lora", "pc_lora", "kd_lora"])
def test_every_method_trains_compresses_and_saves_a_tiny_mpnet(mpnet_runs: dict[str, dict], method: str) -> None:
    m = mpnet_runs[method]
    assert m["method"] == method and m["metric"] is not None and not m["diverged"]
    assert 0 < m["flops"] <= m["base_flops"] and 0 < m["params_no_embeddings"] <= m["base_params_no_embeddings"]
    folder = m["dir"] / "model"
    model = (pc_lora.load_compressed(folder) if method == "pc_lora"
             else AutoModelForSequenceClassification.from_pretrained(folder))
    assert type(model).__name__ == "MPNetForSequenceClassification"
    assert count_params(model)["params"] == m["params"]
    if method == "pc_lora":  # W and b of all 12 linears gone: far less than the base encoder
        assert m["params_no_embeddings"] < 0.6 * m["base_params_no_embeddings"] and m["flops"] < m["base_flops"]
    if method == "kd_lora":  # one of two layers kept
        assert model.config.num_hidden_layers == 1 and m["params_no_embeddings"] < m["base_params_no_embeddings"]
