"""Kimi-Linear-48B-A3B: KDA linear-attention layers (a per-request recurrent state) beside NoPE MLA layers.

The layout at TP=1 is pinned to vLLM 0.32's own planning by tests/fixtures/oracle/kvspec/moonshotai__Kimi-Linear-*
(test_oracle_fixtures.py) and the parameter count to transformers by tests/fixtures/oracle/params. Below: what
changes with the deployment, by hand from vLLM's source (models/kimi_linear.py, layers/kda.py, mamba_utils.py
kda_state_shape / kda_state_dtype; the hybrid block alignment in models/config.py up to 0.19 and
platforms/interface.py from 0.20).
"""

from __future__ import annotations

import pytest

from gpuplan.catalog import find_model
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import GpuplanError
from gpuplan.model.adapters import build_spec
from gpuplan.units import GiB

H100 = dict(gpu_name="H100", gpu_memory_bytes=85_029_158_912)
MLA_BYTES_PER_TOKEN = (512 + 64) * 2  # the latent row, bf16, on every GPU


def _kimi(**dep):
    spec = build_spec(find_model("kimi-linear").hf_config, "moonshotai/Kimi-Linear-48B-A3B-Instruct")
    return estimate(spec, Deployment(**{**H100, "tensor_parallel_size": 2, "max_model_len": 131072, **dep}))


def _kda_state_bytes(tp: int) -> int:
    """One request's KDA state on one GPU: a 3-position short-conv window over q, k and v (bf16) and a
    [heads, 128, 128] float32 recurrent state, heads split over TP."""
    return 3 * (3 * 32 * 128 // tp) * 2 + (32 // tp) * 128 * 128 * 4


def test_kimi_linear_has_20_kda_and_7_mla_layers() -> None:
    spec = build_spec(find_model("kimi-linear").hf_config)
    kinds = [layer.attention.kind for layer in spec.layers]
    assert kinds.count("mamba") == 20 and kinds.count("mla") == 7
    assert [i + 1 for i, k in enumerate(kinds) if k == "mla"] == [4, 8, 12, 16, 20, 24, 27]
    assert not spec.generic


@pytest.mark.parametrize("version,step", [("0.19.0", 64), ("0.24.0", 16), ("0.32.0", 128)])
def test_kimi_linear_mla_block_grows_to_hold_one_kda_state(version: str, step: int) -> None:
    """At TP=2 one KDA state is 1,085,440 bytes; vLLM raises the MLA block to the smallest multiple of its
    alignment step whose page holds it: 64 (0.12-0.19), the backend's kernel block (FlashAttention-MLA: 16) on
    0.20-0.26, at least 128 from 0.27."""
    r = _kimi(vllm_version=version, enable_prefix_caching=False)
    state = _kda_state_bytes(2)
    assert state == 1_085_440
    assert r.kv.block_size % step == 0
    assert r.kv.block_size * MLA_BYTES_PER_TOKEN >= state > (r.kv.block_size - step) * MLA_BYTES_PER_TOKEN
    assert r.kv.block_size == {"0.19.0": 960, "0.24.0": 944, "0.32.0": 1024}[version]
    # four groups of seven layers (3 KDA groups of 7/7/6 + one padding slot, one MLA group); a block id spans one
    # page in each of the seven per-position tensors, every page padded to the MLA one
    assert r.kv.num_groups == 4 and r.kv.group_size == 7 and r.kv.padding_layers == 1
    assert r.kv.bytes_per_block == 7 * r.kv.block_size * MLA_BYTES_PER_TOKEN


def test_a_larger_block_size_than_the_state_needs_is_kept() -> None:
    r = _kimi(vllm_version="0.19.0", block_size=2048, enable_prefix_caching=False)
    assert r.kv.block_size == 2048


def test_prefix_caching_on_by_default_keeps_two_kda_states_per_request() -> None:
    on = _kimi(vllm_version="0.32.0")
    off = _kimi(vllm_version="0.32.0", enable_prefix_caching=False)
    # three KDA groups: one state block each without prefix caching, two (running + last aligned) with it
    assert {g.kind: g.blocks_per_request for g in off.kv.groups}["mamba"] == 3
    assert {g.kind: g.blocks_per_request for g in on.kv.groups}["mamba"] == 6
    assert on.kv.blocks_per_request > off.kv.blocks_per_request


def test_kimi_linear_cannot_split_32_heads_over_3_gpus() -> None:
    with pytest.raises(GpuplanError) as e:
        _kimi(tensor_parallel_size=3)
    assert e.value.field == "tensor_parallel_size"


def test_kimi_linear_at_tp4_needs_far_less_kv_per_token_than_an_all_mla_model() -> None:
    """Only the 7 MLA layers grow with context: per GPU, 7 x 1,152 bytes per token, whatever the TP size."""
    r = _kimi(tensor_parallel_size=4, vllm_version="0.32.0", enable_prefix_caching=False)
    mla_groups = [g for g in r.kv.groups if g.kind == "mla"]
    assert sum(g.num_layers for g in mla_groups) == 7
    assert r.fits


def test_vllm_before_kimi_linear_says_it_has_no_implementation() -> None:
    r = _kimi(vllm_version="0.10.2")
    assert any("no implementation of KimiLinearForCausalLM" in w and "v0.12.0" in w for w in r.warnings)
    assert not any("no implementation" in w for w in _kimi(vllm_version="0.12.0").warnings)


def test_kimi_linear_awq_on_two_3090s_matches_vllm_28228() -> None:
    """vllm#28228 (2x RTX 3090, TP=2, max_model_len 120000, a 0.11 nightly that turned prefix caching off for the
    hybrid): 'Setting attention block size to 960 tokens', 'Padding mamba page size by 1.89%', 'Add 1 padding
    layers', and with 'Available KV cache memory: 2.30 GiB': 'GPU KV cache size: 75,840 tokens', 'Maximum
    concurrency for 120,000 tokens per request: 2.48x'. The available memory is the log's (2.30 GiB, rounded; 2.48x
    puts it below 319 blocks); the layout from it is exact and does not depend on the weight format."""
    r = _kimi(gpu_name="RTX 3090", gpu_memory_bytes=25_318_832_210, compute_capability=8.6, vllm_version="0.12.0",
              max_model_len=120_000, max_num_seqs=8, max_num_batched_tokens=64_000, enable_prefix_caching=False,
              kv_cache_memory_bytes=int(2.297 * GiB))
    assert r.kv.block_size == 960 and r.kv.padding_layers == 1
    assert round(100 * (960 * MLA_BYTES_PER_TOKEN / _kda_state_bytes(2) - 1), 2) == 1.89
    assert r.kv.kv_cache_tokens == 75_840
    assert r.kv.max_concurrency == 2.48


def test_kimi_linear_bf16_on_one_gpu_sets_1920_token_blocks_as_vllm_30092_logs() -> None:
    """vllm#30092 (0.11.2 nightly, TP=1): 'Setting attention block size to 1920 tokens' (64 x 30: one 2,170,880-byte
    KDA state over 1,152-byte MLA rows)."""
    r = _kimi(tensor_parallel_size=1, vllm_version="0.12.0", max_model_len=32768, enable_prefix_caching=False)
    assert r.kv.block_size == 1920
