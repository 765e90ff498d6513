"""The worked cases people ask about, pinned to what vLLM logged (shared/data/vllm-logs, seed 003)."""

from __future__ import annotations

import pytest

import gpuplan
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate as engine_estimate
from gpuplan.units import GiB

H100 = 85_029_158_912
H200 = 150_121_545_728


def test_llama31_8b_bf16_on_one_h100_loads_14_99_gib():
    r = gpuplan.estimate("meta-llama/Llama-3.1-8B", gpu="H100", max_model_len=8192)
    # 8,030,261,248 params x 2 B + the 131072 x 128 bf16 rotary cache
    assert r.weights_bytes == 16_094_076_928
    assert round(r.weights_bytes / GiB, 2) == 14.99


def test_llama31_8b_on_h100_vllm_019_matches_the_log():
    # gt100: util 0.95, API server defaults: 58.11 GiB available, 476,016 tokens, 58.11x at 8192
    r = gpuplan.estimate("meta-llama/Llama-3.1-8B-Instruct", gpu="H100", vllm_version="0.19.0",
                         gpu_memory_utilization=0.95, max_model_len=8192)
    assert round(r.available_kv_cache_bytes / GiB, 2) == pytest.approx(58.11, abs=0.05)
    assert r.kv_cache_tokens == pytest.approx(476_016, rel=0.002)
    assert r.max_concurrency == pytest.approx(58.11, rel=0.002)
    assert r.fits


def _scout(**kw) -> gpuplan.MemoryReport:
    base = dict(gpu="H200", tensor_parallel_size=8, vllm_version="0.12.0", kv_cache_dtype="fp8_e4m3",
                max_model_len=10_000_000, gpu_memory_utilization=0.9)
    base.update(kw)
    return gpuplan.estimate("meta-llama/Llama-4-Scout-17B-16E-Instruct", **base)


def test_scout_tp8_h200_fp8_kv_hybrid_manager_on_gives_the_logged_tokens_and_concurrency():
    env = (("VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE", "1"),)
    # With vLLM's own 89.71 GiB (pinned through kv_cache_memory_bytes) the block arithmetic is exact.
    pinned = _scout(env=env, kv_cache_memory_bytes=96_325_337_088)
    assert pinned.kv.bytes_per_block == 12 * 4096  # 4 groups x 12 layers, 4 KiB page per layer
    assert pinned.num_gpu_blocks == 1_959_744
    assert pinned.kv_cache_tokens == 7_838_976
    assert pinned.max_concurrency == pytest.approx(3.12, abs=0.005)
    # ... and the full estimate lands on the logged 89.71 GiB within 1%.
    full = _scout(env=env)
    assert full.available_kv_cache_bytes / GiB == pytest.approx(89.71, rel=0.01)
    assert full.kv_cache_tokens == pytest.approx(7_838_976, rel=0.01)


def test_scout_with_the_hybrid_manager_off_has_the_same_tokens_but_0_78x():
    off = _scout(kv_cache_memory_bytes=96_325_337_088)  # 0.12 default: chunked local attention forces it off
    assert not off.kv.hybrid_manager
    assert off.kv_cache_tokens == 7_838_976
    assert off.max_concurrency == pytest.approx(0.78, abs=0.005)
    assert any("VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE" in w for w in off.warnings)


def test_qwen3_next_tp2_uses_544_token_blocks_and_logs_973760_tokens():
    # vLLM 0.10.2, TP=2 on H200, max_model_len 262,144; 44.59 GiB available (memory model reference §2.7)
    r = gpuplan.estimate("Qwen/Qwen3-Next-80B-A3B-Instruct", gpu="H200", tensor_parallel_size=2,
                         vllm_version="0.10.2", max_model_len=262_144, kv_cache_memory_bytes=47_878_721_024)
    assert r.kv.block_size == 544
    assert r.kv.bytes_per_block == 6_684_672
    assert r.num_gpu_blocks == 7162
    assert r.kv_cache_tokens == 973_760
    assert r.max_concurrency == pytest.approx(14.77, abs=0.005)


@pytest.mark.parametrize("tp", [1, 8])
def test_deepseek_v3_mla_page_does_not_shrink_with_tp(tp):
    spec = gpuplan.load_model("deepseek-ai/DeepSeek-V3")
    dep = Deployment(gpu_name="H200", gpu_memory_bytes=H200, tensor_parallel_size=tp, vllm_version="0.12.0",
                     max_model_len=8192, kv_cache_memory_bytes=10 * GiB)
    r = engine_estimate(spec, dep)
    # latent 512 + rope 64 = 576 values x 2 B, one "head", 64-token FlashMLA blocks on Hopper in 0.12
    assert r.kv.block_size == 64
    assert r.kv.bytes_per_block == 61 * 64 * 576 * 2
    fp8 = engine_estimate(spec, dep.with_(kv_cache_dtype="fp8"))
    assert fp8.kv.bytes_per_block == 61 * 64 * 576


def test_gemma3_27b_sliding_window_groups_match_the_019_log():
    # gt091: 62 layers = 52 sliding + 10 full -> 7 groups of 10; 15,997 blocks -> 36,560 tokens, 4.46x
    r = gpuplan.estimate("google/gemma-3-27b-it", gpu="H100", vllm_version="0.19.0", gpu_memory_utilization=0.95,
                         max_model_len=8192, kv_cache_memory_bytes=15_997 * 10 * 131_072)
    assert r.kv.num_groups == 7 and r.kv.group_size == 10
    assert r.kv_cache_tokens == 36_560
    assert r.max_concurrency == pytest.approx(4.46, abs=0.005)


def test_tokens_line_becomes_concurrency_times_length_from_021():
    kw = dict(gpu="H100", max_model_len=131_072, kv_cache_memory_bytes=20 * GiB)
    old = gpuplan.estimate("google/gemma-3-27b-it", vllm_version="0.19.0", **kw)
    new = gpuplan.estimate("google/gemma-3-27b-it", vllm_version="0.21.0", **kw)
    assert new.kv_cache_tokens == pytest.approx(new.max_concurrency * 131_072, rel=0.005)  # conc is rounded
    # (blocks // groups) x block size under-counts what sliding-window groups can hold at long context
    assert new.kv_cache_tokens > 2 * old.kv_cache_tokens


def test_a_too_long_context_fails_with_vllms_message_and_the_longest_length_that_fits():
    r = gpuplan.estimate("meta-llama/Llama-3.1-8B", gpu="RTX 3090", max_model_len=131_072)
    assert not r.fits
    assert "max seq len" in r.reason
    assert 10_000 < r.max_model_len_fit < 131_072
    ok = gpuplan.estimate("meta-llama/Llama-3.1-8B", gpu="RTX 3090", max_model_len=r.max_model_len_fit)
    assert ok.fits


def test_gpt_oss_20b_at_095_runs_out_of_memory_warming_up_the_sampler():
    # gt118 (failed) vs gt120 (ok at 0.9, TP=2): the sampler warm-up needs room outside the budget
    bad = gpuplan.estimate("openai/gpt-oss-20b", gpu="H100", vllm_version="0.19.0", gpu_memory_utilization=0.95,
                           max_model_len=8192)
    assert not bad.fits and "sampler" in bad.reason
    ok = gpuplan.estimate("openai/gpt-oss-20b", gpu="H100", vllm_version="0.19.0", tensor_parallel_size=2,
                          gpu_memory_utilization=0.9, max_model_len=8192)
    assert ok.fits


def test_weights_alone_too_big_is_the_reason():
    r = gpuplan.estimate("meta-llama/Llama-4-Scout-17B-16E-Instruct", gpu="H100 NVL", tensor_parallel_size=2,
                         gpu_memory_utilization=0.99, max_model_len=1000, kv_cache_dtype="fp8")
    assert not r.fits and r.reason.startswith("weights alone")


def test_every_component_says_whether_it_is_exact():
    r = gpuplan.estimate("Qwen/Qwen3-8B", gpu="H100")
    names = {c.name: c.exact for c in r.components}
    assert names["weights"] is True
    assert names["activation_peak"] is False and names["non_torch"] is False and names["cudagraph"] is False


def test_the_smallest_gpu_for_qwen15_14b_fp16_at_32k_is_larger_than_a_48_gib_card():
    # gt055 (GPU not stated) failed with 15,248 tokens of KV for a 32,768-token max_model_len.
    from gpuplan.engines.vllm.estimate import min_gpu_memory

    spec = gpuplan.load_model("Qwen/Qwen1.5-14B-Chat")
    dep = Deployment(max_model_len=32_768, dtype="float16", compute_capability=8.0, vllm_version="0.6.6")
    need = min_gpu_memory(spec, dep)
    assert need > 48 * GiB
    assert engine_estimate(spec, dep.with_(gpu_memory_bytes=need)).fits
    assert not engine_estimate(spec, dep.with_(gpu_memory_bytes=need - 2**20)).fits


def test_gpt_oss_20b_on_an_a100_pays_for_marlins_moe_workspace_but_not_on_an_h100():
    # No Triton MXFP4 kernels below compute capability 9.0: the A100 runs gpt-oss's experts through Marlin, whose
    # workspaces sit in the profile peak; the H100's Triton kernels allocate theirs inside the kernel.
    kw = dict(vllm_version="0.19.0", max_model_len=8192, max_num_batched_tokens=2048, max_num_seqs=256)
    a100 = gpuplan.estimate("openai/gpt-oss-20b", gpu="A100-80GB", **kw)
    h100 = gpuplan.estimate("openai/gpt-oss-20b", gpu="H100", **kw)
    marlin = 2048 * 4 * (3072 + 5888) * 2  # N 2880 -> 2944, K 2880 -> 3072; max(N, K) + max(2N, K)
    assert a100.activation_peak_bytes - h100.activation_peak_bytes == marlin
