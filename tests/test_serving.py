"""The serving path (methods/serving.py) computes what the eager deployable model computes.

On this CPU the fused feed-forward runs as its torch reference (the Triton kernel needs a GPU, where
prepare() checks it against that reference before using it); the folding, the fusion's structure and
the dtype change are what is tested here.
"""

import copy

import pytest
import torch

from methods import pc_lora, serving
from tests.test_pc_lora import (
    LAYERS,
    RANK,
    image_batch,
    randomize_adapters,
    text_batch,
    tiny_bert,
    tiny_dinov2,
)


def compressed(build) -> torch.nn.Module:
    model = build()
    pc_lora.attach(model, RANK)
    randomize_adapters(model)
    with torch.no_grad():
        for _, layer in pc_lora.pc_lora_layers(model):
            torch.nn.init.normal_(layer.lora_A, std=0.3)
    return pc_lora.compress(model).eval()


def logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.inference_mode():
        return model(**inputs).logits.float()


@pytest.mark.parametrize("build, batch", [(tiny_bert, text_batch), (tiny_dinov2, image_batch)])
def test_folded_and_fused_model_computes_the_compressed_model(build, batch) -> None:
    eager = compressed(build)
    served = serving.prepare(copy.deepcopy(eager), device="cpu", dtype=torch.float32, fuse_qkv=False)
    assert served.serving["fused_mlps"] == LAYERS
    assert served.serving["low_rank_linears"] == 4 * LAYERS  # q, k, v and the attention output
    assert served.serving["fused_kernel"] == "torch (no GPU)" and not served.serving["cuda_graphs"]
    assert not pc_lora.pc_lora_layers(served)
    torch.testing.assert_close(logits(served, batch()), logits(eager, batch()), atol=1e-5, rtol=1e-5)
    # prepare()'s defaults add the second round's fused q/k/v where the attention is BERT-like (ViTs keep theirs)
    default = serving.prepare(copy.deepcopy(eager), device="cpu", dtype=torch.float32)
    fused = default.serving["fused_attention"].startswith(f"{LAYERS} blocks")
    assert fused == (build is tiny_bert) and default.serving["drop_full_mask"]
    torch.testing.assert_close(logits(default, batch()), logits(eager, batch()), atol=1e-5, rtol=1e-5)


def test_bf16_serving_stays_within_bf16_tolerance() -> None:
    eager = compressed(tiny_bert)
    served = serving.prepare(copy.deepcopy(eager), device="cpu", dtype=torch.bfloat16)
    assert {p.dtype for p in served.parameters()} == {torch.bfloat16}
    want, got = logits(eager, text_batch()), logits(served, text_batch())
    assert ((got - want).norm() / want.norm()) < 3e-2


def test_serving_after_save_and_load_matches_the_trained_model(tmp_path) -> None:
    eager = compressed(tiny_bert)
    pc_lora.save_compressed(eager, tmp_path)
    served = serving.prepare(pc_lora.load_compressed(tmp_path), device="cpu", dtype=torch.float32)
    torch.testing.assert_close(logits(served, text_batch()), logits(eager, text_batch()), atol=1e-5, rtol=1e-5)


def test_the_fused_feed_forward_is_its_definition() -> None:
    eager = compressed(tiny_bert)
    block = eager.bert.encoder.layer[0]
    up, down = block.intermediate.dense, block.output.dense
    mlp = serving.LowRankMLP(up, down)
    x = torch.randn(7, up.in_features)
    with torch.no_grad():
        want = down.lora_A @ torch.nn.functional.gelu(up(x)).T  # A₂ · gelu(B₁ A₁ x + C₁)
        torch.testing.assert_close(mlp(x), want.T, atol=1e-5, rtol=1e-5)


def test_a_model_without_pc_lora_only_changes_dtype_and_device() -> None:
    model = tiny_bert().eval()
    served = serving.prepare(copy.deepcopy(model), device="cpu", dtype=torch.float32)
    assert served.serving["fused_mlps"] == served.serving["low_rank_linears"] == 0
    torch.testing.assert_close(logits(served, text_batch()), logits(model, text_batch()))


def test_an_uncompressed_pc_lora_model_is_refused() -> None:
    model = tiny_bert()
    pc_lora.attach(model, RANK)
    with pytest.raises(ValueError, match="compress"):
        serving.LowRankLinear(pc_lora.pc_lora_layers(model)[0][1])


def test_the_kernels_padded_weights_compute_the_same_product() -> None:
    """tl.dot needs ranks of 16 or more; the zero padding pad_ranks adds must change nothing."""
    torch.manual_seed(0)
    z, b1, c1, a2 = torch.randn(5, 4), torch.randn(12, 4), torch.randn(12), torch.randn(4, 12)
    pb1, pa2 = serving.pad_ranks(b1, a2)
    assert pb1.shape == (12, 16) and pa2.shape == (16, 12)
    padded_z = torch.nn.functional.pad(z, (0, 12))
    got = serving.low_rank_mlp_reference(padded_z, pb1, c1, pa2)[:, :4]
    torch.testing.assert_close(got, serving.low_rank_mlp_reference(z, b1, c1, a2))
    assert serving.pad_ranks(torch.randn(8, 20), torch.randn(20, 8))[0].shape == (8, 32)
