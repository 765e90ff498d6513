"""Xiaomi MiMo-V2-Flash / V2.5-Pro / V2.6-Flash (model_types mimo_v2_flash, mimo_v2): vLLM's models/mimo_v2.py.

Bytes and the KV layout are pinned to vLLM 0.32's meta-device build and planner (tests/fixtures/oracle/kvspec/
XiaomiMiMo__MiMo-V2-Flash__*.json), the V2.5-Pro count to its checkpoint's weight table, and a whole start-up to
the public MiMo-V2.6-Flash log kept in tests/fixtures/vllm_logs/heldout_public.jsonl (ghr-001).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faces_support import catalog_spec

from gpuplan.catalog import find_model
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import CHUNKED_ENV, estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec
from gpuplan.units import GiB

FIXTURES = Path(__file__).parent / "fixtures"
H100 = dict(gpu_name="H100", gpu_memory_bytes=85_029_158_912)
H200 = dict(gpu_name="H200", gpu_memory_bytes=150_117_941_248)


def _flash(quantized: bool = True):
    return catalog_spec("mimo-v2-flash", quantized=quantized)


def _v26_record() -> dict:
    lines = (FIXTURES / "vllm_logs" / "heldout_public.jsonl").read_text().splitlines()
    return next(r for r in map(json.loads, lines) if r["id"] == "ghr-001")


def test_mimo_v2_flash_has_its_own_adapter_and_vllms_parameter_bytes() -> None:
    """Float32 routers and correction biases, bf16 sinks on the 39 SWA layers: our bf16 bytes less the two
    rotary caches (buffers, not in weights_meta) equal vLLM's meta build."""
    spec = _flash(quantized=False)
    assert not spec.generic
    meta = json.loads((FIXTURES / "oracle" / "kvspec" / "XiaomiMiMo__MiMo-V2-Flash__auto.json").read_text())
    r = estimate(spec, Deployment(**H100, vllm_version="0.32.0", max_model_len=8192))
    rope = 2 * 262_144 * 64 * 2  # full-layer and SWA-layer bases, [positions, int(192 * 0.334)] bf16 each
    assert spec.total_params == meta["weights_meta"]["params"] == 308_778_780_864
    assert r.weights_bytes - rope == meta["weights_meta"]["bytes"]


def test_swa_layers_hold_twice_the_kv_heads_so_full_layers_get_32_token_blocks() -> None:
    """9 full layers with 4 KV heads and 39 SWA layers with 8, K 192 and V 128 wide: vLLM doubles the full
    layers' block to equalise pages, groups the SWA layers in fives of 9 slots and pads 6."""
    r = estimate(_flash(), Deployment(**H100, vllm_version="0.32.0", max_model_len=8192, block_size=16,
                                      kv_cache_memory_bytes=40_000_000_000))
    kinds = {g.kind: g for g in r.kv.groups}
    assert kinds["full"].block_size == 32 and kinds["sliding_window"].block_size == 16
    assert r.kv.bytes_per_block == 9 * 8 * (192 + 128) * 2 * 16
    assert r.kv.num_groups == 6 and r.kv.padding_layers == 6


def test_before_vllm_0_20_values_were_padded_to_the_key_head_size() -> None:
    """mimo_v2_flash.py padded V to 192 until the DiffKV backends (0.20) cached it at 128."""
    dep = dict(**H200, tensor_parallel_size=4, max_model_len=131_072)
    old = estimate(_flash(), Deployment(**dep, vllm_version="0.19.0"))
    new = estimate(_flash(), Deployment(**dep, vllm_version="0.20.0"))
    assert old.kv.bytes_per_token * (192 + 128) == new.kv.bytes_per_token * (192 + 192)


def test_the_stray_attention_chunk_size_turned_the_hybrid_manager_off_until_0_16() -> None:
    """MiMo-V2-Flash's config.json carries attention_chunk_size: 128, which no layer uses. vLLM 0.14-0.15 read it
    as chunked attention and kept the hybrid KV cache manager off (every SWA layer charged full length) unless
    VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE=1; 0.16 made that the default, 0.21 strips the key."""
    dep = dict(**H200, tensor_parallel_size=4, max_model_len=131_072)
    off = estimate(_flash(), Deployment(**dep, vllm_version="0.14.0"))
    allowed = estimate(_flash(), Deployment(**dep, vllm_version="0.14.0", env=((CHUNKED_ENV, "1"),)))
    assert not off.kv.hybrid_manager and allowed.kv.hybrid_manager
    assert any("attention_chunk_size" in w for w in off.warnings)
    # Off, the SWA layers join the full ones in one group of two head shapes, each charged the whole 128K; vLLM
    # counts a request's blocks once for the group (UniformTypeKVCacheSpecs: the most any shape needs).
    assert 5 * off.max_concurrency < allowed.max_concurrency < 7 * off.max_concurrency
    assert estimate(_flash(), Deployment(**dep, vllm_version="0.16.0")).kv.hybrid_manager
    # Setting the variable to 0 still turns the manager off on 0.20, but no longer on 0.21 for MiMo
    env0 = ((CHUNKED_ENV, "0"),)
    assert not estimate(_flash(), Deployment(**dep, vllm_version="0.20.0", env=env0)).kv.hybrid_manager
    assert estimate(_flash(), Deployment(**dep, vllm_version="0.21.0", env=env0)).kv.hybrid_manager


def test_mimo_v2_6_flash_on_8_h100s_matches_its_public_start_up_log() -> None:
    """tant2tls/Deepseek-serving (vLLM 0.31.1rc1, TP8 + EP, 256k context, MXFP4 experts via store_dtype):
    'Model loading took 20.1 GiB', 'Add 6 padding layers', and from the logged 49.2 GiB of KV cache
    'GPU KV cache size: 6,972,745 tokens, Maximum concurrency for 262,144 tokens per request: 26.60x'."""
    rec = _v26_record()
    spec = build_spec(rec["hf_config"], rec["model_id"])
    assert spec.quant is not None and spec.quant.experts_format == "mxfp4"
    d = rec["deployment"]
    dep = Deployment(**H100, vllm_version="0.31.0", tensor_parallel_size=8, enable_expert_parallel=True,
                     max_model_len=d["max_model_len"], max_num_seqs=d["max_num_seqs"],
                     max_num_batched_tokens=d["max_num_batched_tokens"],
                     kv_cache_memory_bytes=int(rec["logged"]["available_kv_cache_gib"] * GiB))
    r = estimate(spec, dep)
    assert round(r.weights_bytes / GiB, 1) == rec["logged"]["weights_gib"]
    assert r.kv.padding_layers == 6
    assert round(r.max_concurrency, 2) == rec["logged"]["max_concurrency"]
    assert r.kv_cache_tokens == pytest.approx(rec["logged"]["kv_cache_tokens"], rel=5e-4)  # 49.2 is rounded


def test_mimo_v2_5_pro_counts_its_checkpoint_less_mtp_and_scales() -> None:
    """Weight table of the V2.5-Pro snapshot: 1,023,244,718,976 parameters, of which 3 MTP layers
    (1,934,715,264, skipped by vLLM's main model) and FP8 block scales (61,877,376)."""
    spec = build_spec(find_model("mimo-v2.5-pro").hf_config)
    assert spec.total_params == 1_023_244_718_976 - 1_934_715_264 - 61_877_376
    assert sum(layer.attention.kind == "full" for layer in spec.layers) == 10


def test_a_hybrid_pattern_of_the_wrong_length_is_refused() -> None:
    cfg = dict(find_model("mimo-v2-flash").hf_config, hybrid_layer_pattern=[0, 1, 1])
    with pytest.raises(ConfigError, match="hybrid_layer_pattern"):
        build_spec(cfg)
