"""Tencent Hunyuan v4 (hy_v4, Hy4-preview) as vLLM 0.33 builds it (vllm/models/hy_v4/nvidia): gated sparse MLA with a
learnable sink, a DSA indexer on the "full" indexer layers only, a dense first layer then sigmoid-routed MoE, and
hc_mult residual streams. Parameter counts are transformers 5.23's (tests/fixtures/oracle/families/hy_v4.json, config
sources inside); the KV layout is worked by hand from vLLM 0.33's source, as no 0.33 oracle exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_hy_v4  # noqa: F401
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "hy_v4.json").read_text())
DEFAULT = FX["models"]["hy_v4/default"]
HY4 = FX["models"]["hy_v4/Hy4-preview-reconstructed"]
GiB = 2**30


def _default():
    return build_spec(DEFAULT["config"], "hy_v4-default")


def test_default_hy_v4_has_transformers_parameters_plus_the_expert_biases_vllm_holds_as_parameters() -> None:
    """transformers' count is 58,278,193,133 (odd: hc_head_scale has one element). It keeps each MoE layer's
    e_score_correction_bias as a buffer; vLLM loads it into an fp32 `expert_bias` parameter: 33 MoE layers x 256."""
    spec = _default()
    assert not spec.generic
    assert DEFAULT["hf_params"] == 58_278_193_133 and DEFAULT["hf_buffers"] == 33 * 256
    assert spec.total_params == DEFAULT["hf_params"] + 33 * 256 == 58_278_201_581
    # the generic fallback treated it as plain attention and missed 705M parameters
    assert spec.total_params - 57_572_919_552 == 705_282_029


def test_only_full_indexer_layers_carry_an_indexer_and_its_cache() -> None:
    """indexer_types defaults to layer 0 and every fourth layer from 1 (0, 1, 5, ..., 33): 10 of 34 layers; the other 24
    reuse those top-k indices, so vLLM builds neither the indexer nor its DeepseekV32IndexerCache there."""
    spec = _default()
    with_idx = [i for i, layer in enumerate(spec.layers) if layer.attention.indexer_head_dim]
    assert with_idx == [0, 1, 5, 9, 13, 17, 21, 25, 29, 33]
    assert all(layer.attention.sparse and layer.attention.kind == "mla" for layer in spec.layers)
    assert [layer.mlp.kind for layer in spec.layers[:2]] == ["dense", "moe"]
    assert spec.residual_streams == 4


def test_weights_at_tp1_by_hand() -> None:
    """Parameters 58,278,201,581, of which fp32: router 33 x 256 x 2816 = 23,789,568, expert bias 8,448,
    iHC 34 x 2 x (8 x 11264 + 8 + 2) = 6,128,296, hc_head 4 x 11264 + 4 + 1 = 45,061, sinks 34 x 32 = 1,088,
    indexer k_norm 10 x 256 = 2,560: 29,975,021 fp32 -> 116,496,453,120 + 119,900,084 = 116,616,353,204 bytes.
    + nothing for MLA's W_UK_T/W_UV: views of the bf16 kv_b_proj (a quantized one would be dequantized and kept)
    + one bf16 rotary cache shared by attention and indexer: 262144 x 64 x 2 = 33,554,432
    + topk_indices_buffer [8192 tokens, 2048] int32 = 67,108,864
    = 116,717,016,500 bytes: more than one H100 holds."""
    r = estimate_on(_default(), gpu="H100", tensor_parallel_size=1, max_model_len=131072)
    assert r.weights_bytes == 116_717_016_500
    assert not r.fits


def test_weights_at_tp8_by_hand() -> None:
    """Per rank at TP=8 (bf16 unless said):
    embedding + LM head 2 x 15104 x 2816 x 2 = 170,131,456; final norm 5,632; hc_head fp32 180,244;
    34 x attention: fused q_a/kv_a 2112 x 2816 (replicated), norms 1536 + 512, q_b 1024 x 1536, kv_b 1792 x 512,
    o_proj 2816 x 1024, linear_gate 1024 x 2816 = 28,413,952 bytes + 4 fp32 sinks = 28,413,968 -> 966,074,912;
    10 x indexer (replicated): wq_b 2048 x 1536 + wk_weights_proj 144 x 2816, k_norm 256 fp32 -> 71,034,880;
    34 x two norms 11,264 -> 382,976; 34 x iHC fp32 720,976 -> 24,513,184; layer 0 MLP 3 x 864 x 2816 -> 14,598,144;
    33 x MoE: router 2,883,584 + bias 1,024 (fp32) + experts 256 x 3 x 96 x 2816 x 2 + shared 3 x 96 x 2816 x 2
    = 419,742,720 -> 13,851,509,760; rope 33,554,432 (MLA's W_UK_T/W_UV are views of kv_b_proj);
    top-k buffer 67,108,864
    = 15,199,094,484 bytes."""
    r = estimate_on(_default(), gpu="H100", tensor_parallel_size=8, max_model_len=131072)
    assert r.weights_bytes == 15_199_094_484


def test_kv_page_sizes_and_tokens_for_a_10_gib_budget() -> None:
    """vLLM 0.33: every layer's MLAAttention is an MLAAttentionSpec of one 576-value latent (kv_lora 512 + rope 64),
    bf16 under "auto" on FlashMLA-sparse: 1152 bytes a token; each full-indexer layer adds DeepseekV32IndexerCache's
    MLAAttentionSpec of 128 + 128/128 x 4 = 132 uint8. All MLAAttentionSpec: one UniformTypeKVCacheSpecs group on
    the sparse backends' 64-token blocks. Page per block: 10 x 64 x 1284 + 24 x 64 x 1152 = 821,760 + 1,769,472
    = 2,591,232 bytes. 10 GiB / 2,591,232 = 4143 blocks. A 131072-token request needs cdiv(131072, 64) = 2048
    blocks of the group (max pages x summed page), so concurrency 4143 / 2048 = 2.02 and
    "GPU KV cache size" int(2.0229 x 131072) = 265,152 tokens."""
    dep = Deployment(
        gpu_name="H100",
        gpu_memory_bytes=80 * GiB,
        vllm_version="0.33.0",
        max_model_len=131072,
        kv_cache_memory_bytes=10 * GiB,
    )
    kv = estimate(_default(), dep).kv
    assert kv.block_size == 64 and kv.kv_cache_dtype == "auto"
    assert kv.bytes_per_token == 10 * 1284 + 24 * 1152 == 40_488
    assert kv.bytes_per_block == 2_591_232 and kv.num_groups == 1
    assert sorted(g.page_bytes for g in kv.groups) == [64 * 1152, 64 * 1284]
    assert kv.num_gpu_blocks == 4143
    assert kv.blocks_per_request == 2048
    assert kv.kv_cache_tokens == 265_152 and kv.max_concurrency == 2.02


def test_fp8_kv_becomes_fp8_ds_mla_rows_and_the_indexer_stays_132_bytes() -> None:
    """FLASHMLA_SPARSE (which HY V4's sink backend subclasses, keeping its name) stores a quantized cache as
    fp8_ds_mla: 656 bytes a token; the indexer cache is uint8 either way: 10 x 788 + 24 x 656 = 23,624 bytes."""
    r = estimate_on(
        _default(), gpu="H100", tensor_parallel_size=8, max_model_len=131072, kv_cache_dtype="fp8"
    )
    assert r.kv.kv_cache_dtype == "fp8_ds_mla"
    assert r.kv.bytes_per_token == 23_624


def test_does_the_default_hy_v4_fit_on_8_h100s_at_128k() -> None:
    """Yes: 15.3 GB of weights per GPU; the MLA latent is not split over TP, so each GPU holds 40,488 bytes a token
    for all 34 layers and the rest of the budget gives 22,849 blocks: 1,462,336 tokens, 11.16 requests of 128K."""
    r = estimate_on(_default(), gpu="H100", tensor_parallel_size=8, max_model_len=131072)
    assert r.fits
    assert r.kv.bytes_per_block == 2_591_232
    assert r.kv.num_gpu_blocks == 22_849
    assert r.kv.kv_cache_tokens == 22_849 * 64
    assert r.kv.max_concurrency == 11.16


def test_hy4_preview_is_770b_and_needs_more_than_8_h200s_in_bf16() -> None:
    """The README's 770B backbone (+10B MTP, left in the checkpoint): 78 layers, 21 with an indexer. In bf16 that
    is 182.6 GiB of weights per GPU on 8 GPUs, more than an H200's 141 GB."""
    spec = build_spec(HY4["config"], "tencent/Hy4-preview")
    assert HY4["hf_buffers"] == 77 * 256
    assert spec.total_params == HY4["hf_params"] + 77 * 256 == 769_907_408_797
    assert sum(t.numel for t in spec.extra_not_loaded) == 10_044_212_032
    assert sum(1 for layer in spec.layers if layer.attention.indexer_head_dim) == 21
    r = estimate_on(spec, gpu="H200", tensor_parallel_size=8, max_model_len=131072)
    assert not r.fits
    assert r.weights_bytes == 195_794_907_700  # no copy of the bf16 kv_b_proj (78 x 8 x 448 x 512 x 2 if there were)
    # 64 heads: the per-head sink and q/kv_b/o/gate split, the latent does not; 21 x 1284 + 57 x 1152 a token
    assert r.kv.bytes_per_token == 21 * 1284 + 57 * 1152


def test_a_config_without_layer_types_is_dense_mla_as_vllms_own_config_class_leaves_it() -> None:
    """vLLM registers its own HYV4Config, which does not fill layer_types: no layer is sparse, no indexer is built,
    and no CUDA dense-MLA backend takes sinks, so the sink stays a bf16 parameter."""
    cfg = {k: v for k, v in DEFAULT["config"].items() if k != "layer_types"}
    spec = build_spec(cfg, "dense")
    assert not any(layer.attention.sparse or layer.attention.indexer_head_dim for layer in spec.layers)
    sinks = [t for t in spec.layers[0].tensors if t.name.endswith("learnable_sink_param")]
    assert [t.dtype for t in sinks] == ["bfloat16"]
    # the 10 indexers (wq_b 2048 x 1536, wk + weights_proj 144 x 2816, k_norm 2 x 128) are gone
    assert _default().total_params - spec.total_params == 10 * (2048 * 1536 + 144 * 2816 + 256)
    assert spec.notes


def test_ihc_off_drops_the_stream_parameters() -> None:
    """enable_ihc false: no hc_attn/hc_mlp pre blocks (34 x 180,244) and no hc_head (45,061), one residual stream."""
    spec = build_spec({**DEFAULT["config"], "enable_ihc": False}, "no-ihc")
    assert _default().total_params - spec.total_params == 34 * 180_244 + 45_061
    assert spec.residual_streams == 1


def test_bad_indexer_types_are_refused() -> None:
    with pytest.raises(ConfigError):
        build_spec({**DEFAULT["config"], "indexer_types": ["full"] * 3}, "bad")
