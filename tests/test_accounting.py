import pytest
import torch
import transformers
from torch import nn

from methods import pc_lora
from methods.accounting import count_flops, count_params, example_inputs

D, INTER, LAYERS, LABELS = 32, 64, 2, 2
VOCAB, POSITIONS, TYPES = 100, 64, 2


def tiny_bert(**overrides) -> transformers.BertForSequenceClassification:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        hidden_size=D,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        intermediate_size=INTER,
        vocab_size=VOCAB,
        max_position_embeddings=POSITIONS,
        type_vocab_size=TYPES,
        num_labels=LABELS,
        **overrides,
    )
    return transformers.BertForSequenceClassification(config)


def tiny_vit(image_size: int = 32, patch: int = 8) -> transformers.ViTForImageClassification:
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        hidden_size=D,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        intermediate_size=INTER,
        image_size=image_size,
        patch_size=patch,
        num_labels=LABELS,
    )
    return transformers.ViTForImageClassification(config)


def block_linear_flops(tokens: int, rank: int | None = None) -> int:
    """q, k, v, attention output (d -> d) and the two feed-forward layers; 2 FLOPs per multiply-add."""
    shapes = [(D, D)] * 4 + [(D, INTER), (INTER, D)]
    if rank is None:
        return sum(2 * tokens * i * o for i, o in shapes)
    return sum(2 * tokens * rank * (i + o) for i, o in shapes)  # A: in -> r, B: r -> out


def attention_flops(tokens: int) -> int:
    """Q·Kᵀ and P·V over all heads: 2 · 2 · L² · d per layer."""
    return 2 * 2 * tokens * tokens * D


def closed_form_flops_bert(seq_len: int, rank: int | None = None) -> int:
    blocks = LAYERS * (block_linear_flops(seq_len, rank) + attention_flops(seq_len))
    pooler_and_classifier = 2 * D * D + 2 * D * LABELS  # on the [CLS] token only
    return blocks + pooler_and_classifier


def closed_form_flops_vit(image_size: int, patch: int) -> int:
    patches = (image_size // patch) ** 2
    tokens = patches + 1  # + [CLS]
    patch_embedding = 2 * patches * D * (3 * patch * patch)  # the stride-`patch` conv
    blocks = LAYERS * (block_linear_flops(tokens) + attention_flops(tokens))
    return patch_embedding + blocks + 2 * D * LABELS


def test_count_params_bert_matches_hand_formula() -> None:
    embeddings = VOCAB * D + POSITIONS * D + TYPES * D + 2 * D  # + LayerNorm
    block = 4 * (D * D + D) + 2 * D + (D * INTER + INTER) + (INTER * D + D) + 2 * D
    head = (D * D + D) + (D * LABELS + LABELS)  # pooler + classifier
    model = tiny_bert()
    total = embeddings + LAYERS * block + head
    assert count_params(model) == {
        "params": total,
        "params_no_embeddings": total - embeddings,
        "trainable_params": total,
    }
    for p in model.bert.parameters():
        p.requires_grad = False
    assert count_params(model)["trainable_params"] == D * LABELS + LABELS


def test_count_params_counts_tied_weights_once() -> None:
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.out = nn.Linear(4, 10, bias=False)
            self.out.weight = self.embed.weight

    counts = count_params(Tied())
    assert counts["params"] == 40
    assert counts["params_no_embeddings"] == 0  # the nn.Embedding weight, wherever it is used


def test_count_params_vit_leaves_out_patch_embedding_cls_and_positions() -> None:
    model = tiny_vit()
    patches = (32 // 8) ** 2
    embeddings = (D * 3 * 8 * 8 + D) + D + (patches + 1) * D  # conv, cls token, positions
    counts = count_params(model)
    assert counts["params"] - counts["params_no_embeddings"] == embeddings


def test_count_params_dinov2_leaves_out_mask_token() -> None:
    torch.manual_seed(0)
    config = transformers.Dinov2Config(
        hidden_size=D, num_hidden_layers=1, num_attention_heads=4, mlp_ratio=2, image_size=32, patch_size=8
    )
    model = transformers.Dinov2ForImageClassification(config)
    embeddings = (D * 3 * 8 * 8 + D) + D + D + 17 * D  # conv, cls, mask token, positions
    counts = count_params(model)
    assert counts["params"] - counts["params_no_embeddings"] == embeddings


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("seq_len", [8, 16])
def test_count_flops_bert_matches_closed_form(seq_len: int, attn: str) -> None:
    # sdpa on the CPU needs the extra attention formula; eager attention runs plain matmuls
    model = tiny_bert(attn_implementation=attn)
    assert count_flops(model, example_inputs(model, seq_len=seq_len)) == closed_form_flops_bert(seq_len)


@pytest.mark.parametrize(("image_size", "patch"), [(32, 8), (32, 4)])
def test_count_flops_vit_matches_closed_form(image_size: int, patch: int) -> None:
    model = tiny_vit(image_size, patch)
    assert count_flops(model, example_inputs(model)) == closed_form_flops_vit(image_size, patch)


def test_compressed_flops_match_closed_form_and_are_lower() -> None:
    model = tiny_bert()
    inputs = example_inputs(model, seq_len=16)
    before = count_flops(model, inputs)
    pc_lora.attach(model, 4)
    pc_lora.compress(model)
    after = count_flops(model, inputs)
    assert after == closed_form_flops_bert(16, rank=4)
    assert after < before


def test_count_flops_restores_train_mode_and_needs_no_grad() -> None:
    model = tiny_bert().train()
    count_flops(model, example_inputs(model, seq_len=8))
    assert all(m.training for m in model.modules())


def test_example_inputs_shapes_and_keys() -> None:
    bert = tiny_bert()
    inputs = example_inputs(bert, seq_len=12)
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    assert inputs["input_ids"].shape == (1, 12) and int(inputs["input_ids"].max()) < VOCAB
    deberta = transformers.DebertaV2ForSequenceClassification(
        transformers.DebertaV2Config(
            hidden_size=D, num_hidden_layers=1, num_attention_heads=4, vocab_size=VOCAB
        )
    )
    assert set(example_inputs(deberta, seq_len=5)) == {"input_ids", "attention_mask"}  # no token types
    vit = tiny_vit()
    assert example_inputs(vit)["pixel_values"].shape == (1, 3, 32, 32)
    assert example_inputs(vit, image_size=64)["pixel_values"].shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="pass seq_len"):
        example_inputs(bert)
