"""MiniMax-M3's language model (minimax_m3_text) as vLLM 0.33 builds it (models/minimax_m3/nvidia/model.py): 60 GQA
layers (64 query / 4 KV heads of 128), the first 3 with plain attention and a dense MLP, the other 57 with block-sparse
attention (a lightning indexer fused into the QKV projection, with its own key-only cache) and a 128-expert MoE.
The config is the published checkpoint's text_config (tests/fixtures/oracle/families/minimax_m3.json, source inside);
the KV numbers are derived from vLLM 0.33's source (no 0.33 oracle exists): see kv_recipes/minimax_m3.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.engines.vllm.kv_recipes.minimax_m3  # noqa: F401
import gpuplan.model.adapters_minimax_m3  # noqa: F401
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import ConfigError, GpuplanError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "minimax_m3.json").read_text())
M3 = FX["models"]["minimax_m3_text/MiniMax-M3"]
ROPE = 1048576 * 64 * 2  # one bf16 cos/sin cache: max_position_embeddings x (128 x partial_rotary_factor 0.5)
TOPK_BUFFER = 8192 * 16 * 4  # [max_num_batched_tokens 8192, one index head per rank, top-16 blocks] int32
PARAMS = 426_174_572_928


def _spec():
    return build_spec(M3["config"], "MiniMaxAI/MiniMax-M3")


def test_minimax_m3_is_426b_transformers_count_plus_the_expert_bias_vllm_holds_as_parameters() -> None:
    spec = _spec()
    assert not spec.generic
    # transformers keeps the 57 x 128 correction biases as buffers; vLLM's MiniMaxM3MoE makes them fp32 Parameters
    assert spec.total_params == M3["hf_params"] + 57 * 128 == PARAMS
    assert sum(1 for layer in spec.layers if layer.mlp.kind == "moe") == 57
    sparse = [i for i, layer in enumerate(spec.layers) if dict(layer.attention.recipe_args).get("index_dim")]
    assert sparse == list(range(3, 60))


def test_minimax_m3_weights_at_tp1_are_its_parameter_bytes_plus_rotary_cache_and_topk_buffer() -> None:
    """bf16 parameters, the router (128 x 6144) and correction bias (128) of the 57 MoE layers in fp32:
    2 x 426,174,572,928 + 2 x 57 x (786,432 + 128) = 852,438,813,696 bytes, + the rotary cache 1048576 x 64 x 2
    + the top-k buffer 8192 x 16 x 4 = 852,573,555,712. (At TP=1 vLLM's buffer holds all 4 index heads, 1.5 MiB more:
    gpuplan sizes it for TP >= 4, the only sizes whose weights fit a GPU.)"""
    r = estimate_on(_spec(), gpu="H200", tensor_parallel_size=1, max_model_len=4096)
    assert r.weights_bytes == 2 * PARAMS + 2 * 57 * (786_432 + 128) + ROPE + TOPK_BUFFER == 852_573_555_712
    assert not r.fits  # 794 GiB of weights


def test_minimax_m3_weights_per_gpu_at_tp8() -> None:
    """Per rank at TP=8 (bf16; router and bias fp32):
    embedding + LM head 2 x 200064/8 x 6144 x 2 = 614,596,608; final norm 6144 x 2;
    3 plain layers: qkv (8 q heads + the K and V head the 4 KV heads replicate to) 1280 x 6144, o 6144 x 1024,
    q/k norms 2 x 128, dense MLP 3 x 1536 x 6144, two norms 2 x 6144: 42,479,872 params = 84,959,744 bytes each;
    57 sparse MoE layers: qkv + index_q (one head, like KV) + index_k (one head on every rank) 1536 x 6144,
    o 6144 x 1024, four head norms 4 x 128, experts 128 x 3 x 384 x 6144, shared expert 3 x 384 x 6144, two norms:
    928,788,992 bf16 params, + router 786,432 and bias 128 fp32 = 1,860,724,224 bytes each;
    + rotary cache 134,217,728 + top-k buffer 524,288 = 107,065,510,912 bytes."""
    r = estimate_on(_spec(), gpu="H200", tensor_parallel_size=8, max_model_len=131072)
    by_hand = 614_596_608 + 6144 * 2 + 3 * 84_959_744 + 57 * 1_860_724_224 + ROPE + TOPK_BUFFER
    assert r.weights_bytes == by_hand == 107_065_510_912


def test_minimax_m3_kv_is_one_group_of_60_main_pages_and_57_indexer_pages_of_128_token_blocks() -> None:
    """Block size 128 (the M3 sparse and indexer backends' only kernel block). Every cache is a FullAttentionSpec
    by type with one block size, so vLLM makes one UniformTypeKVCacheSpecs group of all 117 caches (layer-outermost
    LBNHC layout, each layer its own page). At TP=8 one KV head per rank:
    main page 128 x 1 x (128 + 128) x 2 = 65,536 bytes (60 layers); indexer page 128 x 128 x 2 (bf16, key only)
    = 32,768 bytes (57 layers); bytes per block 60 x 65,536 + 57 x 32,768 = 5,799,936."""
    r = estimate_on(_spec(), gpu="H200", tensor_parallel_size=8, max_model_len=131072)
    kv = r.kv
    assert kv.block_size == 128
    assert kv.num_groups == 1 and kv.groups[0].num_layers == 117
    assert kv.bytes_per_block == 60 * 65_536 + 57 * 32_768 == 5_799_936
    assert kv.blocks_per_request == 131072 // 128 == 1024
    # the report's per-token figure: 60 x 512 + 57 x 256 bytes
    assert kv.bytes_per_token == 45_312


def test_minimax_m3_kv_at_tp1_keeps_all_4_heads() -> None:
    # 60 x 128 x 4 x 256 x 2 + 57 x 128 x 128 x 2 = 15,728,640 + 1,867,776
    r = estimate_on(_spec(), gpu="H200", tensor_parallel_size=1, max_model_len=4096)
    assert r.kv.bytes_per_block == 17_596_416


def test_minimax_m3_tokens_for_a_20_gib_kv_budget_at_128k() -> None:
    """20 GiB // 5,799,936 = 3,702 blocks; one 131072-token request takes 1,024 blocks of every layer, so
    concurrency 3,702 / 1,024 = 3.62 and "GPU KV cache size" int(3.615 x 131072) = 473,856 tokens."""
    dep = Deployment(gpu_name="H200", gpu_memory_bytes=141 * 10**9, tensor_parallel_size=8, max_model_len=131072,
                     kv_cache_memory_bytes=20 * 2**30)
    r = estimate(_spec(), dep)
    assert r.num_gpu_blocks == 3702
    assert r.kv_cache_tokens == 473_856
    assert r.kv.max_concurrency == 3.62


def test_minimax_m3_fp8_kv_halves_the_main_pages_but_not_the_bf16_indexer_cache() -> None:
    # indexer_kv_dtype "auto" is bf16 for M3 whatever --kv-cache-dtype says: 60 x 128 x 256 + 57 x 128 x 256
    r = estimate_on(_spec(), gpu="H200", tensor_parallel_size=8, max_model_len=131072, kv_cache_dtype="fp8")
    assert r.kv.bytes_per_block == 60 * 32_768 + 57 * 32_768 == 3_833_856


def test_minimax_m3_block_size_must_be_a_multiple_of_128() -> None:
    r = estimate_on(_spec(), gpu="H200", tensor_parallel_size=8, max_model_len=131072, block_size=256)
    assert r.kv.bytes_per_block == 2 * 5_799_936 and r.kv.blocks_per_request == 512
    with pytest.raises(GpuplanError) as e:
        estimate_on(_spec(), gpu="H200", tensor_parallel_size=8, max_model_len=131072, block_size=64)
    assert e.value.field == "block_size"


def test_does_minimax_m3_fit_on_8_h200s_at_128k_yes_but_not_on_8_h100s() -> None:
    spec = _spec()
    h200 = estimate_on(spec, gpu="H200", tensor_parallel_size=8, max_model_len=131072)
    assert h200.fits and h200.kv.max_concurrency >= 1
    assert h200.kv_cache_tokens == int(h200.num_gpu_blocks / 1024 * 131072)
    # ~99.7 GiB of weights per GPU do not fit an 80 GiB H100
    h100 = estimate_on(spec, gpu="H100", tensor_parallel_size=8, max_model_len=131072)
    assert h100.weights_bytes == h200.weights_bytes > 80 * 2**30
    assert not h100.fits


def test_vllm_defaults_fill_a_bare_minimax_m3_text_config() -> None:
    # MiniMaxM3TextConfig's defaults are the 60-layer checkpoint's (max_position_embeddings 524288)
    spec = build_spec({"model_type": "minimax_m3_text", "architectures": ["MiniMaxM3SparseForCausalLM"]})
    assert spec.total_params == PARAMS
    assert spec.rope_caches[0].positions == 524288 and spec.rope_caches[0].rotary_dim == 64


def test_vision_and_transformers_schemas_are_refused_with_a_reason() -> None:
    vl = {"model_type": "minimax_m3_vl", "architectures": ["MiniMaxM3SparseForConditionalGeneration"],
          "text_config": M3["config"], "vision_config": {"hidden_size": 1280}}
    with pytest.raises(ConfigError, match="vision tower"):
        build_spec(vl)
    with pytest.raises(ConfigError, match="minimax_m3_text"):
        build_spec({**M3["config"], "model_type": "minimax_m3_vl_text"})
    with pytest.raises(ConfigError, match="swigluoai"):
        build_spec({**M3["config"], "hidden_act": "silu"})
