"""DeepSeek-V4: compressed sparse MLA with a sliding window, as vLLM 0.20+ lays out its KV cache.

The anchor is vllm-project/vllm#44376 (record gt070 in shared/data/vllm-logs): DeepSeek-V4-Flash on two GH200,
TP=2 + EP, fp8 KV, --block-size 256, max_model_len 30000, offline LLM(): vLLM refused with "6.66 GiB KV cache is
needed ... available KV cache memory (5.44 GiB) ... the estimated maximum model length is 13528".
"""

from __future__ import annotations

import pytest

import gpuplan
from gpuplan.api_python import with_gpu
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import request_kv_bytes
from gpuplan.errors import GpuplanError
from gpuplan.units import GiB

MODEL = "deepseek-ai/DeepSeek-V4-Flash"
# The smallest pool with which vLLM's binary search lands on 13528 (22 tuples x 47,808 B x 5,554 pages); it prints
# as 5.44 GiB, the logged figure.
LOGGED_AVAILABLE = 22 * 47_808 * 5_554


def _kw(**kw) -> dict:
    base = dict(gpu="GH200", tensor_parallel_size=2, enable_expert_parallel=True, max_model_len=30_000,
                gpu_memory_utilization=0.95, kv_cache_dtype="fp8", block_size=256, api_server=False,
                vllm_version="0.22.0")
    return {**base, **kw}


def _gh200(**kw) -> gpuplan.MemoryReport:
    return gpuplan.estimate(MODEL, **_kw(**kw))


def test_one_30k_request_needs_the_logged_6_66_gib_and_13528_tokens_fit():
    r = _gh200(kv_cache_memory_bytes=LOGGED_AVAILABLE)
    assert not r.fits
    assert "6.66 GiB KV cache is needed" in r.reason
    assert r.max_model_len_fit == 13_528
    assert _gh200(kv_cache_memory_bytes=LOGGED_AVAILABLE - 1).max_model_len_fit < 13_528


def test_flash_kv_layout_is_five_groups_of_22_layer_tuples():
    r = _gh200(kv_cache_memory_bytes=LOGGED_AVAILABLE)
    kv = r.kv
    # full-length group: 21 ratio-4 caches (64 x 584 B -> 37,440), 20 ratio-128 (2 x 584 -> 1,728), 21 indexer
    # caches (64 x 132 -> 8,640); one block of each page size is a 47,808-byte layer tuple; 22 tuples per block.
    assert kv.bytes_per_block == 22 * (37_440 + 1_728 + 8_640)
    assert kv.num_groups == 5  # full, window (split 22 + 21), ratio-4 states, ratio-128 states
    assert sorted(g.num_layers for g in kv.groups) == [20, 21, 22, 42, 62]
    assert kv.padding_layers == 1 + 1 + 2  # window 43 -> 44, ratio-4 states 21 -> 22, ratio-128 states 20 -> 22
    assert r.num_gpu_blocks == LOGGED_AVAILABLE // (22 * 47_808)


def _deployment() -> Deployment:
    kw = _kw()
    dep, _ = with_gpu(Deployment(**{k: v for k, v in kw.items() if k != "gpu"}), kw["gpu"], None)
    return dep


def test_window_and_compressor_state_caches_do_not_grow_past_the_batch():
    # Beyond max_num_batched_tokens (16384 offline on a >70 GiB GPU) only the compressed caches grow.
    spec, dep = gpuplan.load_model(MODEL), _deployment()
    a, b = request_kv_bytes(spec, dep, 30_000), request_kv_bytes(spec, dep, 60_000)
    assert a == 22 * 47_808 * 6_800
    assert b - a == 22 * 47_808 * (235 - 118)  # ratio-4/128 caches: one 256-token block more per 256 tokens


def test_deepseek_v4_needs_an_fp8_kv_cache():
    r = _gh200(kv_cache_dtype="auto")
    assert not r.fits
    assert "fp8" in r.reason


def test_vllm_before_0_20_cannot_serve_deepseek_v4():
    with pytest.raises(GpuplanError) as e:
        _gh200(vllm_version="0.19.0")
    assert e.value.field == "vllm_version"


def test_block_size_below_256_cannot_hold_the_window_pages():
    with pytest.raises(GpuplanError) as e:
        _gh200(block_size=128)
    assert e.value.field == "block_size"


def test_weights_count_fp4_experts_fp8_linears_and_runtime_buffers():
    r = _gh200(kv_cache_memory_bytes=LOGGED_AVAILABLE)
    w = r.per_stage[0]["weights_by_kind"]
    # 128 of 256 experts per GPU under EP=2, MXFP4: 4.25 bits per weight, 43 layers x 3 x 2048 x 4096 each
    assert w["experts"] == 43 * 128 * (3 * 2048 * 4096 // 2 + 3 * 2048 * 4096 // 32)
    # two fp32 YaRN rotary caches (rope_theta and compress_rope_theta), 1,048,576 x 64 each
    assert w["rope_cache"] == 2 * 1_048_576 * 64 * 4
    # topk indices [16384, 512] int32 + the MTP hidden buffer [16384, 4 x 4096] bf16
    assert w["buffers"] == 16_384 * 512 * 4 + 16_384 * 16_384 * 2
    assert 74 < r.weights_bytes / GiB < 75


def test_vllm_020_reports_tokens_per_group_at_the_smallest_block():
    r = _gh200(vllm_version="0.20.0", kv_cache_memory_bytes=LOGGED_AVAILABLE)
    assert r.kv_cache_tokens == r.num_gpu_blocks // 5 * 4


def test_pipeline_stages_cut_the_model_wide_groups_into_11_tuple_pools():
    # vLLM groups all 43 layers (22 tuples), then projects the groups on each stage: stage 0 holds layers 0-21
    # (10 ratio-4, 10 ratio-128, the window sub-groups 11 + 11 layers), so its pool is cut in 11 tuples.
    r = _gh200(pipeline_parallel_size=2, kv_cache_memory_bytes=LOGGED_AVAILABLE)
    assert r.kv.bytes_per_block == 11 * 47_808
    assert r.num_gpu_blocks == LOGGED_AVAILABLE // (11 * 47_808)


def test_deepseek_v4_does_not_start_on_an_a100():
    r = gpuplan.estimate(MODEL, gpu="A100-80GB", tensor_parallel_size=8, kv_cache_dtype="fp8", max_model_len=8192)
    assert not r.fits
    assert "FlashMLA" in r.reason


def test_mxfp4_experts_on_hopper_run_through_marlin_and_its_workspace_counts():
    # DeepSeek-V4's MXFP4 experts have no Triton path: on Hopper vLLM picks Marlin, whose two shared workspaces are
    # M*topk*max(N, K) and M*topk*max(2N, K) in bf16 (MarlinExperts.workspace_shapes), M = 16384 profile tokens.
    r = _gh200()
    note = next(c.note for c in r.components if c.name == "activation_peak")
    assert f"MoE workspace {16_384 * 6 * (4096 + 4096) * 2 / GiB:.2f}" in note  # 1.50 GiB


def test_flash_at_30k_on_two_gh200_is_predicted_not_to_start():
    # vLLM refused (5.44 GiB available, 6.66 needed). The profile run's padded-head attention buffers (below) put
    # gpuplan's budget at ~5.8 GiB: the verdict agrees with most of a GiB to spare, no longer by a hair.
    r = _gh200()
    assert not r.fits
    assert "6.66 GiB KV cache is needed" in r.reason
    assert 5.44 < r.available_kv_cache_bytes / GiB < 6.0


def test_the_profile_run_holds_q_and_two_padded_head_buffers():
    # vllm/models/deepseek_v4/attention.py: at TP=2 each GPU has 32 of the 64 heads; the profile run keeps q
    # [T, 32, 512], q padded to FlashMLA's 64 heads and the output buffer [T, 64, 512], all bf16, T = 16384.
    r = _gh200()
    note = next(c.note for c in r.components if c.name == "activation_peak")
    fwd = float(note.split("forward ")[1].split(",")[0])
    attn = 16_384 * (32 + 2 * 64) * 512 * 2
    hidden = 16_384 * 2 * 4.8 * 4096 * 4  # the hidden-state buffers over hc_mult=4 residual streams
    assert fwd == pytest.approx((attn + hidden) / GiB, abs=0.01)
