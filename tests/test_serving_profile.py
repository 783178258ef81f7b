"""benchmarks/profile_serving.py: the name rule puts kernels in the right families, and a real (CPU) profile
of a served forward is grouped completely."""

import argparse

import pytest
import torch

from benchmarks import profile_serving as ps


@pytest.mark.parametrize("name, want", [
    ("void pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64, 128, 128, 4>, false>(Flash_fwd_params)",
     "attention"),
    ("fmha_cutlassF_bf16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel<...>::Params)", "attention"),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"),
    ("low_rank_mlp_kernel", "fused feed-forward"),
    ("pc_lora_serving::low_rank_mlp", "fused feed-forward"),
    ("nvjet_tst_128x64_64x8_2x1_v_bz_coopA_TNT", "GEMMs"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1", "GEMMs"),
    ("void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_16x16_128x2_tn_align8>", "GEMMs"),
    ("aten::addmm", "GEMMs"),
    ("void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<at::native::direct_copy_kernel_cuda"
     "(at::TensorIteratorBase&)::{lambda()#3}>", "copies"),
    ("Memcpy HtoD (Pageable -> Device)", "copies"),
    ("triton_per_fused_add_native_layer_norm_0", "norms + elementwise"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::BFloat16>, "
     "at::detail::Array<char*, 3> >", "norms + elementwise"),
    ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16, float>", "norms + elementwise"),
    ("void at::native::(anonymous namespace)::indexSelectLargeIndex<c10::BFloat16, long, unsigned int, 2, 2, -2, true>",
     "other"),
])
def test_kernel_names_fall_in_their_family(name, want) -> None:
    assert ps.family(name) == want


def test_a_real_cpu_profile_is_grouped_completely(tmp_path) -> None:
    args = argparse.Namespace(arch="tiny", ranks=[8], batches=[2], seq_len=16, runtimes=["served", "fast"],
                              steps=2, warmup=1, top=3, graphs=None)
    results = ps.run(args, torch.device("cpu"))
    assert set(results) == {f"{m} · {rt} · b=2" for m in ("uncompressed", "pc_lora r8") for rt in ("served", "fast")}
    for key, r in results.items():
        fam = r["families_s"]
        assert set(fam) == set(ps.FAMILY_NAMES)
        assert sum(fam.values()) == pytest.approx(r["kernel_s"]) and r["kernel_s"] > 0
        assert fam["GEMMs"] > 0 and fam["attention"] > 0 and fam["norms + elementwise"] > 0, key
        assert sum(r["kernels_s"].values()) == pytest.approx(r["kernel_s"])
    # The served PC-LoRA model's projections are two thin products each (aten::mm), the base's one addmm each.
    assert "aten::mm" in results["pc_lora r8 · served · b=2"]["kernels_s"]
    assert results["pc_lora r8 · fast · b=2"]["serving"]["fused_attention"].startswith("4 blocks")
    info = {"device": "cpu", "cpu": "x", "nproc": 2, "torch": torch.__version__, "torch_threads": 1}
    md = ps.render(results, args, info, "abc1234")
    assert "Commit: abc1234" in md and "| pc_lora r8 · fast · b=2 |" in md and "Command: `" in md
