"""Recursive Flint as vLLM 0.33 builds it (models/flint/model.py): 49 layers, 14 full attention + 35 sliding over 513
tokens, a learned float32 sink per query head, dense MLPs on layers 0 and 1, 47 MoE layers of 256 experts (top 6)
with an ungated shared expert, and one float32 RoPE table. Config: transformers' default FlintConfig (no published
config.json was found; tests/fixtures/oracle/families/flint.json says where everything came from)."""

from __future__ import annotations

import json
from pathlib import Path

import gpuplan.model.adapters_flint  # noqa: F401
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "flint.json").read_text())
FLINT = FX["models"]["flint/transformers-default"]
CFG = FLINT["config"]
ROPE = 262144 * 128 * 4  # the one float32 cos/sin table: max_position_embeddings x head_dim
DENSE_LAYER, MOE_LAYER = (
    56_627_488,
    831_000_864,
)  # transformers' per-layer counts (the fixture's layer groups)


def _h100(tp: int, **kw) -> Deployment:
    return Deployment(
        gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.33.0", tensor_parallel_size=tp, **kw
    )


def test_flint_has_the_39_8b_parameters_transformers_builds() -> None:
    spec = build_spec(CFG, "RecursiveSI/flint")
    assert not spec.generic
    assert spec.total_params == FLINT["hf_params"] == 39_785_287_456
    assert FLINT["hf_decoder_layer_groups"] == {str(DENSE_LAYER): 2, str(MOE_LAYER): 47}
    assert [sum(t.numel for t in layer.tensors) for layer in spec.layers] == [DENSE_LAYER] * 2 + [
        MOE_LAYER
    ] * 47
    counts = spec.param_counts()
    assert counts["experts"] == FLINT["hf_by_category"]["moe_experts"] == 47 * 256 * 3 * 512 * 2048
    assert counts["shared_experts"] == FLINT["hf_by_category"]["moe_shared"]


def test_why_the_generic_fallback_was_3_9_percent_over() -> None:
    """Read as an unknown MoE, Flint's 41,334,120,448 came from three things: MoE on layers 0 and 1 (it ignored
    mlp_only_layers: 812,122,112 - 37,748,736 more each), a Qwen2-MoE shared-expert gate per layer (+2,048), and no
    q/k norms (-256) or sinks (-32): 2 x 774,373,376 + 49 x 1,760 = 1,548,832,992."""
    generic = build_spec({**CFG, "model_type": "flint_unregistered"})
    assert generic.generic and generic.total_params == FLINT["generic_fallback_params"]
    assert generic.total_params - build_spec(CFG).total_params == 2 * (812_122_112 - 37_748_736) + 49 * 1_760


def test_flint_weights_on_one_gpu_are_bf16_params_with_fp32_sinks_and_a_fp32_rope_table() -> None:
    """TP=1: 39,785,287,456 x 2 bytes + 49 x 32 sinks x 2 more bytes (float32) + the 262,144 x 128 float32 table
    = 79,570,574,912 + 3,136 + 134,217,728 = 79,704,795,776 bytes (74.2 GiB)."""
    spec = build_spec(CFG)
    sinks = [t for t in spec.layers[0].tensors if t.name.endswith("sinks")]
    assert [(t.shape, t.parallel, t.dtype) for t in sinks] == [((32,), "head", "float32")]
    assert [(c.positions, c.rotary_dim, c.dtype) for c in spec.rope_caches] == [(262144, 128, "float32")]
    r = estimate(spec, _h100(1, max_model_len=8192))
    assert r.weights_bytes == 2 * FLINT["hf_params"] + 49 * 32 * 2 + ROPE == 79_704_795_776


def test_flint_weights_per_gpu_at_tp2_and_tp8_by_hand() -> None:
    """Per rank, bf16 (2 bytes) except sinks (4) and the RoPE table (4, whole on every rank).
    TP=2: embedding + LM head 2 x 150144/2 x 2048 x 2 = 614,989,824; final norm 4,096;
    49 x attention (q 2048 x 2048, k and v 2 heads x 128 x 2048, o 2048 x 2048, q/k norms 2 x 128: 9,437,440 x 2;
    16 sinks x 4; two norms 2 x 2048 x 2) = 49 x 18,883,136 = 925,273,664;
    2 x dense MLP 3 x 3072 x 2048 x 2 = 75,497,472;
    47 x MoE (experts 256 x 3 x 256 x 2048, shared 3 x 512 x 2048, router 256 x 2048, all x 2) = 47 x 812,646,400
    = 38,194,380,800; RoPE 134,217,728. Total 39,944,363,584.
    TP=8 (4 KV heads: one per rank, replicated): embedding + head 153,747,456; final norm 4,096;
    49 x (2,621,696 x 2 + 4 sinks x 4 + 8,192) = 257,328,400; 2 x 3 x 768 x 2048 x 2 = 18,874,368;
    47 x (256 x 3 x 64 x 2048 + 3 x 128 x 2048 + 256 x 2048) x 2 = 9,585,557,504; RoPE 134,217,728.
    Total 10,149,729,552."""
    spec = build_spec(CFG)
    assert estimate(spec, _h100(2, max_model_len=8192)).weights_bytes == 39_944_363_584
    assert estimate(spec, _h100(8, max_model_len=8192)).weights_bytes == 10_149_729_552


def test_flint_kv_layout_in_vllm_0_33_at_tp2_with_a_40_gb_budget() -> None:
    """Attention(per_layer_sliding_window=513) on the 35 sliding layers gives SlidingWindowSpec(513), the 14 others
    FullAttentionSpec; both pages are 16 tokens x 2 KV heads (TP=2) x (128 K + 128 V) x 2 bytes = 16,384 bytes, so
    _get_packed_kv_cache_groups (mixed page sizes only) does not apply and _get_kv_cache_groups_uniform_page_size
    buckets them by spec: group size min(14, 35) = 14 (35 >= 1.5 x 14), so 1 full group of 14 and cdiv(35, 14) = 3
    sliding groups (12, 12, 11 layers; 7 padding slots). Bytes per block = the largest group's pages = 14 x 16,384 =
    229,376; 40e9 // 229,376 = 174,386 blocks.
    A 131,072-token request: full 131,072 / 16 = 8,192 blocks; each sliding group
    cdiv(min(513 - 1 + 2 x 8,192 in flight (async scheduling: two batches of the H100's default 8,192), 131,072),
    16) + 1 = 1,057, x 3 = 3,171; 11,363 in all. Concurrency 174,386 / 11,363 = 15.35; "GPU KV cache size"
    int(15.347 x 131,072) = 2,011,539 tokens."""
    spec = build_spec(CFG)
    assert spec.attention_kinds == {"full": 14, "sliding_window": 35}
    assert {layer.attention.window for layer in spec.layers} == {None, 513}
    full = [i for i, layer in enumerate(spec.layers) if layer.attention.kind == "full"]
    assert full == [0, 1, *range(5, 48, 4), 48]  # the first two, every fourth from 1, and the last
    r = estimate(spec, _h100(2, max_model_len=131072, kv_cache_memory_bytes=40_000_000_000))
    assert r.max_num_batched_tokens == 8192
    assert (r.kv.num_groups, r.kv.group_size, r.kv.padding_layers) == (4, 14, 7)
    assert [
        (g.kind, g.num_layers, g.page_bytes, g.block_size, g.blocks_per_request) for g in r.kv.groups
    ] == [("full", 14, 16_384, 16, 8_192), ("sliding_window", 35, 16_384, 16, 3 * 1_057)]
    assert r.kv.bytes_per_block == 14 * 16 * 2 * 256 * 2 == 229_376
    assert r.num_gpu_blocks == 40_000_000_000 // 229_376 == 174_386
    assert r.kv.blocks_per_request == 11_363
    assert r.kv_cache_tokens == int(174_386 / 11_363 * 131_072) == 2_011_539
    assert r.max_concurrency == 15.35


def test_flint_kv_heads_stop_shrinking_past_tp4() -> None:
    # 4 KV heads: at TP=8 each rank keeps one (replicated), so a block is the same 114,688 bytes as at TP=4.
    spec = build_spec(CFG)
    per_block = {tp: estimate(spec, _h100(tp, max_model_len=8192)).kv.bytes_per_block for tp in (4, 8)}
    assert per_block == {4: 14 * 16 * 1 * 256 * 2, 8: 114_688}


def test_does_flint_fit_on_one_h100_at_128k() -> None:
    # No: 74.2 GiB of weights leave nothing for the KV cache on an 80 GB card; two H100s hold 37.2 GiB each.
    spec = build_spec(CFG)
    assert not estimate_on(spec, gpu="H100", tensor_parallel_size=1, max_model_len=131072).fits
    two = estimate_on(spec, gpu="H100", tensor_parallel_size=2, max_model_len=131072)
    assert two.fits and two.max_concurrency > 10


def test_does_flint_fit_on_one_h200_at_its_full_256k_context() -> None:
    # Yes: the same 79,704,795,776 bytes of weights leave ~50 GiB of KV; a 262,144-token request needs 16,384 full
    # blocks + 3 x 1,057 sliding ones (19,555) and the full layers dominate.
    r = estimate_on(build_spec(CFG), gpu="H200", tensor_parallel_size=1, max_model_len=262144)
    assert r.fits and r.weights_bytes == 79_704_795_776
    assert r.kv.blocks_per_request == 16_384 + 3 * 1_057
    assert r.max_concurrency > 5


def test_vllm_fills_an_omitted_layout_differently_from_transformers() -> None:
    """vLLM's own FlintConfig: no layer_types -> every layer full attention; no mlp_only_layers -> every layer MoE
    (transformers would make 14 full / 35 sliding and layers 0-1 dense)."""
    bare = {k: v for k, v in CFG.items() if k not in ("layer_types", "mlp_only_layers")}
    spec = build_spec(bare)
    assert spec.attention_kinds == {"full": 49}
    assert spec.total_params == FLINT["hf_params"] + 2 * (MOE_LAYER - DENSE_LAYER)
    r = estimate(spec, _h100(2, max_model_len=8192, kv_cache_memory_bytes=40_000_000_000))
    assert r.kv.num_groups == 1 and r.kv.bytes_per_block == 49 * 16_384


def test_a_bare_flint_config_takes_vllms_flintconfig_defaults() -> None:
    # head_dim 128 (not 2048 / 32), 49 full-attention MoE layers, 256 experts of 512, shared expert 1024
    spec = build_spec({"model_type": "flint", "architectures": ["FlintForCausalLM"]})
    assert spec.attention_kinds == {"full": 49} and spec.head_dim == 128
    assert spec.total_params == FLINT["hf_params"] + 2 * (MOE_LAYER - DENSE_LAYER)


def test_use_sliding_window_false_makes_every_layer_full() -> None:
    spec = build_spec({**CFG, "use_sliding_window": False})
    assert spec.attention_kinds == {"full": 49}


def test_rope_table_follows_no_rope_layer_indices() -> None:
    # Full layers NoPE (transformers' modeling): the sliding layers still share one table. Every layer NoPE: none.
    full = [i for i, t in enumerate(CFG["layer_types"]) if t == "full_attention"]
    assert len(build_spec({**CFG, "no_rope_layer_indices": full}).rope_caches) == 1
    spec = build_spec({**CFG, "no_rope_layer_indices": list(range(49))})
    assert spec.rope_caches == ()
    assert estimate(spec, _h100(1, max_model_len=8192)).weights_bytes == 79_704_795_776 - ROPE


def test_flint_warns_that_vllm_needs_flashinfer_and_a_bf16_kv_cache() -> None:
    r = estimate_on(build_spec(CFG), gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    assert r.fits
    assert any("--attention-backend FLASHINFER" in w for w in r.warnings)


def test_flint_cannot_start_with_an_fp8_kv_cache_or_on_ampere_or_ada() -> None:
    """FlintAttention asserts FlashInfer, a bf16 model and a bf16 KV cache; FlashInfer serves its sinks on SM 9.0,
    10.x and 12.x only. So four A100s (SM 8.0) or L40S (8.9) cannot serve it, nor can H100s with an fp8 cache,
    while a B200 (10.0) and an RTX PRO 6000 (12.0) can."""
    spec = build_spec(CFG)
    fp8 = estimate_on(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768, kv_cache_dtype="fp8")
    assert not fp8.fits and "bfloat16 KV cache" in (fp8.reason or "") and "fp8" in fp8.reason
    for gpu in ("A100-80GB", "L40S"):
        r = estimate_on(spec, gpu=gpu, tensor_parallel_size=4, max_model_len=32768)
        assert not r.fits and "compute capability 9.0, 10.x, 12.x only" in (r.reason or ""), gpu
    for gpu in ("B200", "RTX PRO 6000"):
        assert estimate_on(spec, gpu=gpu, tensor_parallel_size=2, max_model_len=32768).fits, gpu
    f16 = estimate_on(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768, dtype="float16")
    assert not f16.fits and "bfloat16 model" in (f16.reason or "")
