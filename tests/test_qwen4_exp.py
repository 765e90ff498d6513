"""Qwen4Exp (qwen4_exp_text, Qwen4ExpForCausalLM) as vLLM 0.33 builds it (vllm/models/qwen4_exp/nvidia): 36 Gated
DeltaNet layers and 12 QSA layers (linear x3 then QSA), every layer a 512-expert MoE, hyper-connections of 4 streams,
one per-layer-embedding block in decoder layer 1 whose n-gram table stays in pinned host memory. The config is
Qwen3.8-Flash-Next's text model (tests/fixtures/oracle/families/qwen4_exp.json, source inside)."""

from __future__ import annotations

import json
from math import ceil
from pathlib import Path

import pytest

import gpuplan.model.adapters_qwen4_exp  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.engines.vllm.weights import Sharding, stage_weights
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "qwen4_exp.json").read_text())
FLASH = FX["models"]["qwen4_exp/qwen3.8-flash-next"]
MNBT = 8192  # max_num_batched_tokens for the token-sized buffers in these hand sums
GIB = 1 << 30
L = 131072


def _spec(**changes):
    return build_spec({**FLASH["config"], **changes}, "Qwen/Qwen3.8-Flash-Next")


def _weights(tp: int) -> int:
    (stage,) = stage_weights(
        _spec(), Sharding(tp=tp, moe_tp=tp, ep=1), None, 2, 1, mla_absorbed=False, mnbt=MNBT
    )
    return stage.total


def _kv(tp: int, **options):
    gpu = "H200" if tp == 1 else "H100"
    opts = {"max_model_len": L, "kv_cache_memory_bytes": 20 * GIB, **options}
    return estimate(_spec(), gpu=gpu, tensor_parallel_size=tp, **opts).kv


def test_parameters_are_transformers_count_and_vllm_adds_the_hyper_connection_padding_rows() -> None:
    spec = _spec()
    assert not spec.generic and spec.model_type == "qwen4_exp_text"
    assert spec.total_params == FLASH["hf_params"] == 176_943_899_520
    # vLLM pads each merged down + block-inject projection from 320 + 4 rows to 336: 12 rows x 10240 x 2 per layer
    allocated = sum(t.numel for layer in spec.layers for t in layer.tensors if t.kind != "buffers")
    allocated += sum(t.numel for t in spec.embedding + spec.head)
    assert allocated - FLASH["hf_params"] == 12 * 10240 * 2 * 48 == 11_796_480


def test_the_ngram_table_lives_in_host_memory_not_in_model_loading() -> None:
    (ple,) = [x for x in _spec().layers if x.attention.state_kind == "ple_conv"]
    (table,) = [t for t in ple.tensors if t.kind == "ple_embedding"]
    # 16 heads take the 16 primes from 20,000,000 on: 320,001,521 rows, rounded up to 128
    assert table.shape == (320_001_536, 160) and table.host
    (stage,) = stage_weights(_spec(), Sharding(1, 1, 1), None, 2, 1, mla_absorbed=False, mnbt=MNBT)
    assert dict(stage.by_kind)["ple_embedding"] == 0


def test_weights_per_gpu_at_tp1_and_tp8_by_hand() -> None:
    """TP=1: every parameter but the n-gram table (51,200,245,760) in bf16, A_log in fp32 (36 x 48 x 2 more bytes),
    the 64-wide rotary cache of 262,144 positions (MRoPE, positions factor 1), 12 top-k buffers [mnbt, 2052] int32,
    the PLE prefetch ids [mnbt, 16] int64 and 35 int64 n-gram buffers."""
    gpu_params = 176_955_696_000 - 51_200_245_760
    assert gpu_params == 125_755_450_240
    buffers = MNBT * (12 * 2052 * 4 + 16 * 8) + 35 * 8
    rope = 262_144 * 64 * 2
    assert _weights(1) == 2 * gpu_params + 36 * 48 * 2 + rope + buffers == 252_352_386_456
    # TP=8, per rank. Replicated: hyper-connections (per HC 10240 + 336 x 10240 + 10240 x 320), the final mixer,
    # router, shared gate, the indexer's 640 rows and norms, the PLE block (kv_proj 12800 x 2560, 3 norms, conv).
    hc = 2 * (10240 + 336 * 10240 + 10240 * 320)
    moe = 512 * 2560 + (512 * (1280 * 2560 + 2560 * 640) + 1280 * 2560 + 2560 * 640) // 8 + 2560
    gdn = (10240 + 6144 + 96) * 2560 // 8 + 10240 * 4 // 8 + 6 + 128 + 2560 * 768  # A_log apart (fp32)
    qsa = 12288 * 2560 // 8 + 2 * 256 * 2560 + 2560 * 768 + 640 * 2560 + 2 * 256 + 2 * 128  # 1 KV head a rank
    ple = 12800 * 2560 + 3 * 10240 + 10240 * 4
    embed = 2 * 248320 // 8 * 2560
    mixer = 10240 + 2 * 320 * 10240
    params8 = 48 * (hc + moe) + 36 * gdn + 12 * qsa + ple + embed + mixer
    assert _weights(8) == 2 * params8 + 36 * 6 * 4 + rope + buffers


def test_kv_layout_at_tp1_is_six_groups_of_1600_token_blocks() -> None:
    """Block size (_align_hybrid_block_size): attention page per token 2 KV heads x (256 + 256) x 2 B = 2048; Mamba
    page = max(GDN 10240 x 3 x 2 + 48 x 128 x 128 x 4 = 3,207,168, PLE 9 x 10240 x 2 = 184,320); prefix caching's
    align mode on Hopper puts blocks on the 64-token checkpoint grid: 64 x cdiv(3,207,168, 64 x 2048) = 1600.
    Pages: main 1600 x 2048 = 3,276,800; compressed key 1600 / 4 x 128 x 2 = 102,400; ring 4 x 140 x 2 = 1,120
    (128 key + 3 int64 MRoPE positions); both Mamba states padded to 3,276,800.
    Groups (_get_packed_kv_cache_groups): buckets GDN 36, PLE 1 (tp_replicated), rings 12, main + compressed 12 + 12;
    repeats = _approximate_gcd([36, 1, 12, 12], lower 12) = 12; the anchor block 12 x (3,276,800 + 102,400) =
    40,550,400 holds 12 GDN states: 3 GDN groups, PLE, rings, QSA = 6 groups. A request takes cdiv(L, 1600) QSA
    blocks, 3 per Mamba group (running, last aligned, prefill checkpoint) and one ring block: + 9 + 3 + 1.
    20 GiB: 21,474,836,480 // 40,550,400 = 529 blocks; 131,072 tokens: 82 + 13 = 95 a request; 529 / 95 x 131,072."""
    kv = _kv(1)
    assert (kv.block_size, kv.bytes_per_block, kv.num_groups) == (1600, 40_550_400, 6)
    assert sorted((g.kind, g.num_layers, g.page_bytes) for g in kv.groups) == sorted(
        [("gdn", 12, 3_276_800)] * 3
        + [("ple_conv", 1, 3_276_800), ("qsa_ring", 12, 1120), ("qsa_compressed+qsa", 24, 3_276_800)]
    )
    assert kv.blocks_per_request == ceil(L / 1600) + 13 == 95
    assert kv.num_gpu_blocks == 529
    assert kv.kv_cache_tokens == int(529 / 95 * L) == 729_864


def test_kv_layout_at_tp8() -> None:
    """TP=8: 1 KV head a rank, 1024 B a token; GDN state 1280 x 3 x 2 + 6 x 128 x 128 x 4 = 400,896 beats the PLE
    state (184,320, whole on every rank): 64 x cdiv(400,896, 65,536) = 448. Block: 12 x (448 x 1024 + 112 x 256) =
    12 x (458,752 + 28,672) = 5,849,088. 20 GiB: 3671 blocks; 293 + 13 = 306 a request; 12.00 x 131,072 tokens."""
    kv = _kv(8)
    assert (kv.block_size, kv.bytes_per_block, kv.num_groups) == (448, 5_849_088, 6)
    assert kv.num_gpu_blocks == 3671 and kv.blocks_per_request == ceil(L / 448) + 13 == 306
    assert kv.kv_cache_tokens == int(3671 / 306 * L) == 1_572_435 and kv.max_concurrency == 12.0


def test_without_prefix_caching_one_state_per_request_and_no_checkpoint_grid() -> None:
    """mamba_cache_mode none: block 16 x cdiv(3,207,168, 16 x 2048) = 1568; 1 block per Mamba group."""
    kv = _kv(1, enable_prefix_caching=False)
    assert kv.block_size == 1568 and kv.bytes_per_block == 12 * (1568 * 2048 + 392 * 256)
    assert kv.blocks_per_request == ceil(L / 1568) + 3 + 1 + 1


def test_does_qwen3_8_flash_next_fit_on_one_h200_at_256k() -> None:
    """No: its GPU-resident weights alone are 235 GiB (the 95 GiB n-gram table stays in host memory)."""
    r = estimate(_spec(), gpu="H200", tensor_parallel_size=1, max_model_len=262144)
    assert not r.fits and r.weights_bytes > 139 * GIB and "weights" in (r.reason or "")


def test_the_vision_wrapper_is_refused_rather_than_sized_without_its_tower() -> None:
    outer = {
        "model_type": "qwen4_exp",
        "architectures": ["Qwen4ExpForConditionalGeneration"],
        "text_config": FLASH["config"],
        "vision_config": {"depth": 27},
    }
    with pytest.raises(ConfigError, match="vision tower"):
        build_spec(outer, "Qwen/Qwen3.8-Flash-Next")
