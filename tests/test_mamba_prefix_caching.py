"""Prefix caching on hybrid Mamba / linear-attention models, as each vLLM version sizes it.

Up to 0.27 vLLM leaves prefix caching off for hybrid models (one Mamba state per request). From 0.28
(vllm#50991) it is on by default in mamba_cache_mode "align": two states per request in every Mamba group.
0.32 adds a prefill-checkpoint state to every Mamba-2 mixer, 0.33 to Qwen's Gated DeltaNet where FlashInfer's
kernel exports checkpoints (which also puts blocks on its 64-token grid).
Asked for explicitly before 0.28, models that implement SupportsMambaPrefixCaching got mode "all": a state
per block, with blocks aligned to the Mamba chunk. The 0.32 numbers are pinned against vLLM's own planner in
test_oracle_fixtures.py (Qwen3-Next fixtures).
"""

from __future__ import annotations

import pytest

import gpuplan
from gpuplan.units import cdiv

NEXT = "Qwen/Qwen3-Next-80B-A3B-Instruct"
KV = dict(gpu="H200", tensor_parallel_size=2, max_model_len=32_768, kv_cache_memory_bytes=40 * 2**30)


def _next(version: str, **kw) -> gpuplan.MemoryReport:
    return gpuplan.estimate(NEXT, vllm_version=version, **{**KV, **kw})


def test_qwen3_next_on_0_27_keeps_one_state_per_request():
    r = _next("0.27.1")
    assert r.kv.mamba_cache_mode == "none"
    assert r.kv.blocks_per_request == cdiv(32_768, 544) + 3 * 1  # 12 full layers in 1 group, 36 GDN in 3


def test_from_0_28_prefix_caching_is_on_and_each_gdn_group_holds_two_states():
    old, new = _next("0.27.1"), _next("0.28.0")
    assert new.kv.mamba_cache_mode == "align"
    assert new.kv.block_size == old.kv.block_size == 544
    assert new.num_gpu_blocks == old.num_gpu_blocks  # the pool is the same; each request takes more of it
    assert new.kv.blocks_per_request == old.kv.blocks_per_request + 3
    assert new.max_concurrency < old.max_concurrency
    assert any("--no-enable-prefix-caching" in w for w in new.warnings)


def test_no_enable_prefix_caching_gives_back_the_0_27_sizing_on_0_32():
    off = _next("0.32.0", enable_prefix_caching=False)
    assert off.kv.mamba_cache_mode == "none"
    assert off.kv.blocks_per_request == _next("0.27.1").kv.blocks_per_request
    assert not any("prefix caching" in w for w in off.warnings)


def test_0_33_on_hopper_adds_a_checkpoint_state_and_a_64_token_grid():
    r = _next("0.33.0")
    assert r.kv.block_size == 576  # 544 rounded up to the checkpoint grid: 64 x cdiv(GDN page, 64 x attention/token)
    assert r.kv.blocks_per_request == cdiv(32_768, 576) + 3 * 3


def test_0_33_on_an_a100_uses_triton_gdn_and_no_checkpoint():
    r = _next("0.33.0", gpu="A100-80GB")
    assert r.kv.block_size == 544
    assert r.kv.blocks_per_request == cdiv(32_768, 544) + 3 * 2


def test_enabling_prefix_caching_on_jamba_before_0_28_keeps_a_state_per_chunk_aligned_block():
    kw = dict(gpu="H100", max_model_len=32_768, kv_cache_memory_bytes=20 * 2**30, vllm_version="0.22.0")
    off = gpuplan.estimate("ai21labs/Jamba-v0.1", **kw)
    on = gpuplan.estimate("ai21labs/Jamba-v0.1", enable_prefix_caching=True, **kw)
    assert on.kv.mamba_cache_mode == "all"
    assert on.kv.block_size == 2048  # Mamba1 has no chunk: vLLM aligns to 2048
    mamba = next(g for g in on.kv.groups if g.kind == "mamba")
    assert mamba.blocks_per_request == 7 * cdiv(32_768, 2048)  # 28 Mamba layers in 7 groups, a state per block
    assert on.max_concurrency < off.max_concurrency / 5


def test_prefix_caching_before_mamba_support_is_ignored_with_a_warning():
    r = gpuplan.estimate(NEXT, vllm_version="0.10.2", enable_prefix_caching=True, **KV)
    assert r.kv.mamba_cache_mode == "none"
    assert any("no prefix caching for Mamba" in w for w in r.warnings)


@pytest.mark.parametrize("version", ["0.27.1", "0.33.0"])
def test_dense_models_are_unaffected(version):
    a = gpuplan.estimate("meta-llama/Llama-3.1-8B", gpu="H100", vllm_version=version, max_model_len=8192)
    b = gpuplan.estimate("meta-llama/Llama-3.1-8B", gpu="H100", vllm_version=version, max_model_len=8192,
                         enable_prefix_caching=False)
    assert a.kv.mamba_cache_mode == b.kv.mamba_cache_mode == "none"
    assert a.max_concurrency == b.max_concurrency
