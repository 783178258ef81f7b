"""The second round's serving options (issue 34) compute what the eager compressed model computes.

Fused q/k/v attention (methods/serving_attention.py), the kernel as a custom op, torch.compile checked
against eager, the all-ones mask dropped (methods/serving_runtime.py): BERT and MPNet tiny random models,
padding masks, float32 (exact up to rounding) and bf16 (its tolerance), and after save/load.
"""

import copy

import pytest
import torch
import transformers

from methods import pc_lora, serving, serving_attention
from methods.serving_runtime import CheckedCompile, DropFullMask
from tests.test_pc_lora import HIDDEN, INTER, LAYERS, RANK, tiny_bert
from tests.test_serving import compressed


def tiny_mpnet(seed: int = 0) -> transformers.MPNetForSequenceClassification:
    torch.manual_seed(seed)
    config = transformers.MPNetConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4,
                                      intermediate_size=INTER, vocab_size=100, max_position_embeddings=64,
                                      num_labels=2)
    return transformers.MPNetForSequenceClassification(config)


def padded_batch(seed: int = 1, bert: bool = True) -> dict[str, torch.Tensor]:
    """Three rows of 12 tokens, two of them padded (4 and 9 real tokens): masks that SDPA must apply."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    mask[2, 9:] = 0
    batch = {"input_ids": ids, "attention_mask": mask}
    if bert:
        batch["token_type_ids"] = torch.zeros_like(ids)
    return batch


def run(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    with torch.inference_mode():
        return model(**batch).logits.float().clone()


def rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).norm() / want.norm()).item()


def tiny_bert_eager_attention() -> transformers.BertForSequenceClassification:
    """BERT with transformers' eager attention: its mask is additive floats, not SDPA's bools."""
    model = tiny_bert()
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager"
    return model


BUILDS = {"bert": (tiny_bert, True), "bert-eager-attention": (tiny_bert_eager_attention, True),
          "mpnet": (tiny_mpnet, False)}


@pytest.mark.parametrize("arch", list(BUILDS))
@pytest.mark.parametrize("up", serving_attention.UP_MODES)
def test_fused_qkv_attention_computes_the_compressed_model_with_padding(arch, up) -> None:
    build, bert = BUILDS[arch]
    eager = compressed(build)
    served = serving.prepare(copy.deepcopy(eager), device="cpu", dtype=torch.float32, fuse_qkv=True, qkv_up=up)
    assert served.serving["fused_attention"].startswith(f"{LAYERS} blocks, up-projection {up}")
    assert sum(isinstance(m, serving_attention.LowRankQKV) for m in served.modules()) == LAYERS
    # q, k, v are gone as separate layers; the attention output (and MPNet's o) stays a LowRankLinear.
    assert served.serving["low_rank_linears"] == LAYERS
    batch = padded_batch(bert=bert)
    want = run(eager, batch)
    torch.testing.assert_close(run(served, batch), want, atol=1e-5, rtol=1e-5)
    # The padding matters: unmasked, the eager model gives other logits for the padded rows.
    unmasked = {k: v for k, v in batch.items() if k != "attention_mask"}
    assert rel(run(eager, unmasked)[1:], want[1:]) > 1e-3


def test_fused_qkv_in_bf16_stays_within_bf16_tolerance() -> None:
    eager = compressed(tiny_bert)
    served = serving.prepare(copy.deepcopy(eager), device="cpu", dtype=torch.bfloat16, fuse_qkv=True)
    assert {p.dtype for p in served.parameters()} == {torch.bfloat16}
    assert rel(run(served, padded_batch()), run(eager, padded_batch())) < 3e-2


@pytest.mark.parametrize("arch", list(BUILDS))
def test_fused_qkv_after_save_and_load(tmp_path, arch) -> None:
    build, bert = BUILDS[arch]
    eager = compressed(build)
    pc_lora.save_compressed(eager, tmp_path)
    served = serving.prepare(pc_lora.load_compressed(tmp_path), device="cpu", dtype=torch.float32, fuse_qkv=True)
    assert served.serving["fused_attention"].startswith(f"{LAYERS} blocks")
    batch = padded_batch(bert=bert)
    torch.testing.assert_close(run(served, batch), run(eager, batch), atol=1e-5, rtol=1e-5)


def test_the_stacked_projection_is_the_three_layers() -> None:
    eager = compressed(tiny_bert)
    attn = eager.bert.encoder.layer[0].attention.self
    x = torch.randn(2, 5, HIDDEN)
    for up in serving_attention.UP_MODES:
        qkv = serving_attention.LowRankQKV([attn.query, attn.key, attn.value], up)
        with torch.no_grad():
            for got, layer in zip(qkv(x), (attn.query, attn.key, attn.value), strict=True):
                torch.testing.assert_close(got, layer(x), atol=1e-5, rtol=1e-5)


def test_a_wrong_fused_attention_is_undone(monkeypatch) -> None:
    """prepare's check against the replaced module catches a broken replacement and puts the original back."""
    monkeypatch.setattr(serving_attention, "attend", lambda q, k, v, *a: q)  # attention skipped: wrong
    eager = compressed(tiny_bert)
    served = serving.prepare(copy.deepcopy(eager), device="cpu", dtype=torch.float32, fuse_qkv=True)
    assert served.serving["fused_attention"].startswith("off (check failed")
    assert not any(isinstance(m, serving_attention.LowRankQKV) for m in served.modules())
    torch.testing.assert_close(run(served, padded_batch()), run(eager, padded_batch()), atol=1e-5, rtol=1e-5)


def test_the_kernel_op_computes_the_reference() -> None:
    """The fused feed-forward as a custom op (its CPU body; on a GPU it launches the Triton kernel)."""
    eager = compressed(tiny_bert)
    served = serving.prepare(copy.deepcopy(eager), device="cpu", dtype=torch.float32)
    mlp = next(m for m in served.modules() if isinstance(m, serving.LowRankMLP))
    mlp.use_kernel()
    z = torch.randn(2, 7, RANK)
    want = serving.low_rank_mlp_reference(z, mlp.up.b, mlp.up.c, mlp.a2)
    torch.testing.assert_close(mlp.fused(z), want, atol=1e-5, rtol=1e-5)
    assert mlp.fused(z).shape == (2, 7, RANK) and mlp.fused(z).is_contiguous()


def test_dropping_an_all_ones_mask_keeps_the_function() -> None:
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, **inputs):
            seen.append(sorted(inputs))
            return inputs["input_ids"]

    model = DropFullMask(Spy())
    full = {"input_ids": torch.ones(2, 3), "attention_mask": torch.ones(2, 3, dtype=torch.long)}
    model(**full)
    model(**padded_batch(bert=False))
    assert seen == [["input_ids"], ["attention_mask", "input_ids"]]


def test_compiled_served_model_is_checked_and_matches(monkeypatch) -> None:
    """torch.compile (Inductor on this CPU) over the fused model, the kernel op forced on, mask dropped."""
    eager = compressed(tiny_bert)
    served = serving.prepare(copy.deepcopy(eager), device="cpu", dtype=torch.float32, fuse_qkv=True,
                             compile=True, drop_full_mask=True)
    for m in served.modules():
        if isinstance(m, serving.LowRankMLP):
            m.use_kernel()
    monkeypatch.setattr(serving, "FUSED_MIN_TOKENS", 1)  # the op inside the compiled graph
    batch = padded_batch()
    got = run(served, batch)
    assert served.serving["compile"].startswith("inductor, checked against eager on 1 input shapes")
    torch.testing.assert_close(got, run(eager, batch), atol=1e-4, rtol=1e-4)
    full = {**batch, "attention_mask": torch.ones_like(batch["attention_mask"])}
    torch.testing.assert_close(run(served, full), run(eager, full), atol=1e-4, rtol=1e-4)
    assert "on 2 input shapes" in served.serving["compile"]  # the mask dropped: another graph


def test_a_compile_that_disagrees_falls_back_to_eager() -> None:
    class Wrong(torch.nn.Module):
        def forward(self, x):
            return (x + 1 if torch.compiler.is_compiling() else x,)

    report: dict = {}
    model = CheckedCompile(Wrong(), report, tol=1e-4)
    x = torch.randn(4)
    torch.testing.assert_close(model(x=x)[0], x)
    assert report["compile"].startswith("eager (compile failed: relative error")
    torch.testing.assert_close(model(x=x)[0], x)


@pytest.mark.parametrize("fuse_qkv", [False, True])
def test_a_dropped_mask_reaches_sdpa_as_none_while_capturing(monkeypatch, fuse_qkv: bool) -> None:
    """transformers up to 5.17 materialised a missing mask while a CUDA graph was captured (it cannot tell
    capture from tracing), which sent SDPA down its float32 math path; the served model must pass none."""
    import transformers.masking_utils as masking

    monkeypatch.setattr(masking, "_ignore_bidirectional_mask_sdpa", lambda *a, **k: False)  # 5.17 while capturing
    masks = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, attn_mask=None, **kwargs):
        masks.append(attn_mask)
        return sdpa(*args, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    eager = compressed(tiny_bert)
    batch = padded_batch()
    full = {**batch, "attention_mask": torch.ones_like(batch["attention_mask"])}
    want = run(eager, full)
    assert masks and all(m is not None for m in masks)  # the simulation holds: the plain model gets a mask
    served = serving.prepare(copy.deepcopy(eager), device="cpu", dtype=torch.float32, fuse_qkv=fuse_qkv,
                             drop_full_mask=True)
    assert served.serving["attention_implementation"] == "sdpa_unpadded"
    assert served.serving["fused_attention"].startswith(f"{LAYERS} blocks") == fuse_qkv
    masks.clear()
    torch.testing.assert_close(run(served, full), want, atol=1e-4, rtol=1e-4)
    assert len(masks) == LAYERS and all(m is None for m in masks)
    masks.clear()  # padding still reaches SDPA as a mask, and is applied
    torch.testing.assert_close(run(served, batch), run(eager, batch), atol=1e-4, rtol=1e-4)
    assert masks[0] is not None
