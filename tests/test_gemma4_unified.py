"""Gemma 4 Unified (gemma4_unified) as vLLM 0.33 builds it (models/gemma4_unified.py over gemma4.py): Gemma 4's text
model (40 sliding layers of 8 KV heads x 256, 8 full layers of one K=V head x 512) behind an encoder-free patch
embedder, no SigLIP and no audio tower (tests/fixtures/oracle/families/gemma4_unified.json, config source inside).
There is no vLLM 0.33 oracle for it: the KV and byte figures below are hand arithmetic from vLLM's source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_unified_vlms  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "gemma4_unified.json").read_text())
G12 = FX["models"]["google/gemma-4-12B"]
DEFAULT_TEXT = FX["models"]["transformers-default/gemma4_unified_text"]
ROPE = 262144 * 256 * 2 + 262144 * 512 * 2  # sliding (default RoPE) and full (proportional, whole head) bf16 caches


def _spec():
    return build_spec(G12["config"], "google/gemma-4-12B")


def test_gemma4_12b_is_a_gemma4_text_model_and_an_encoder_free_patch_embedder_of_transformers_size() -> None:
    spec = _spec()
    assert not spec.generic and spec.architecture == "Gemma4UnifiedForConditionalGeneration"
    assert spec.total_params == G12["hf_params"] == 11_959_730_176
    counts = spec.param_counts()
    # vision_embedder: LN(6912) + Linear(6912 -> 3840, bias) + LN(3840) + pos table 1120 x 2 x 3840 + LN(3840)
    assert counts["vision"] == 2 * 6912 + 6912 * 3840 + 3840 + 2 * 3840 + 1120 * 2 * 3840 + 2 * 3840 == 35_176_704
    # embed_vision 3840 -> 3840 and embed_audio 640 -> 3840, bias-free; transformers files the vision half under
    # "vision" and the audio one under "other": together 49,922,304 + 2,457,600 - 35,176,704
    assert counts["projector"] == 3840 * 3840 + 640 * 3840 == 17_203_200
    assert counts["vision"] + counts["projector"] == (G12["hf_by_category"]["vision"]
                                                     + G12["hf_by_category"]["other"])
    assert spec.attention_kinds == {"sliding_window": 40, "full": 8}
    full = next(x.attention for x in spec.layers if x.attention.kind == "full")
    sliding = spec.layers[0].attention
    assert (full.num_kv_heads, full.head_dim) == (1, 512) and (sliding.num_kv_heads, sliding.head_dim) == (8, 256)
    assert sliding.window == 1024


def test_gemma4_12b_weights_at_tp1_and_tp2() -> None:
    """TP=1: 11,959,730,176 parameters x 2 bytes = 23,919,460,352, plus the V slot vLLM's fused qkv_proj keeps on
    the 8 K=V full layers (filled with K, not in the checkpoint): 8 x 512 x 3840 x 2 = 31,457,280, plus two bf16
    cos/sin caches of 262,144 positions: 256 wide (sliding) and 512 wide (gemma4_rope.py builds the proportional
    cache over the whole head) = 402,653,184.  = 24,353,570,816.

    TP=2 per rank (vocab 262,144 needs no padding): embedding (tied) 131,072 x 3840 = 503,316,480; final norm 3840;
    40 sliding layers x (q 2048 x 3840 + k, v 1024 x 3840 each + o 3840 x 2048 + q/k norms 2 x 256 + MLP
    3 x 7680 x 3840 + 4 norms x 3840) = 40 x 112,082,432; 8 full layers x (q 4096 x 3840 + k and V slot 512 x 3840
    each, the single KV head replicated + o 3840 x 4096 + norms 2 x 512 + MLP 88,473,600 + 4 x 3840) =
    8 x 123,879,424; patch_dense split by rows 1920 x 6912 + 1920, the LayerNorms 29,184 and pos table 8,601,600
    whole, both embedders whole 14,745,600 + 2,457,600. = 6,016,759,936 parameters x 2 + 402,653,184 rope
    = 12,436,173,056."""
    spec = _spec()
    one = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=32768)
    assert one.weights_bytes == G12["hf_params"] * 2 + 8 * 512 * 3840 * 2 + ROPE == 24_353_570_816
    two = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    per_rank = (131072 * 3840 + 3840 + 40 * 112_082_432 + 8 * 123_879_424
                + 1920 * 6912 + 1920 + 29_184 + 8_601_600 + 14_745_600 + 2_457_600)
    assert per_rank == 6_016_759_936
    assert two.weights_bytes == per_rank * 2 + ROPE == 12_436_173_056


def test_gemma4_12b_kv_pages_groups_and_tokens_for_a_40_gib_budget() -> None:
    """vLLM 0.33 (bf16 KV, block 16): a sliding page is 16 x 2 (K, V) x 8 x 256 x 2 = 131,072 bytes, a full page
    16 x 2 x 1 x 512 x 2 = 32,768; unify_kv_cache_spec_page_size raises the full layers' block to 64 to match.
    _get_kv_cache_groups_uniform_page_size: group size = min(40, 8) = 8 -> 5 sliding groups + 1 full group of 8
    layers; one block of the pool is 8 x 131,072 = 1,048,576 bytes.
    40 GiB / 1 MiB = 40,960 blocks. A 32K request needs in each sliding group cdiv(1023 + 16,384, 16) + 1 = 1,089
    blocks (window - 1 + max_in_flight_tokens = 2 concurrent batches x 8,192 batched tokens; SlidingWindowSpec),
    and 32,768 / 64 = 512 in the full group: 5 x 1,089 + 512 = 5,957. Concurrency 40,960 / 5,957 = 6.88;
    tokens int(6.876 x 32,768) = 225,310."""
    r = estimate(_spec(), gpu="H100", tensor_parallel_size=1, max_model_len=32768, kv_cache_memory_bytes=40 * 2**30)
    assert r.max_num_batched_tokens == 8192
    assert r.kv.bytes_per_block == 8 * 2 * 16 * 8 * 256 * 2 == 1_048_576
    assert (r.kv.num_groups, r.kv.group_size) == (6, 8)
    full = next(g for g in r.kv.groups if g.kind == "full")
    sliding = next(g for g in r.kv.groups if g.kind == "sliding_window")
    assert (full.block_size, full.page_bytes, full.blocks_per_request) == (64, 131_072, 512)
    assert (sliding.block_size, sliding.page_bytes, sliding.blocks_per_request) == (16, 131_072, 5 * 1089)
    assert r.num_gpu_blocks == 40 * 2**30 // 1_048_576 == 40_960
    assert r.kv_cache_tokens == int(40_960 / 5_957 * 32768) == 225_310


def test_does_gemma4_12b_fit_one_l4_at_32k_no_two_do() -> None:
    """24.35 GB of bf16 weights on one 24 GB L4 leave nothing for the KV cache; at TP=2 each L4 holds 12.4 GB and
    the sliding layers' KV heads split (4 per rank: 65,536-byte pages, the full layers' single head replicated with
    32-token blocks to match)."""
    spec = _spec()
    one = estimate(spec, gpu="L4", tensor_parallel_size=1, max_model_len=32768)
    assert not one.fits
    two = estimate(spec, gpu="L4", tensor_parallel_size=2, max_model_len=32768)
    assert two.fits and two.kv_cache_tokens > 32768
    assert two.kv.bytes_per_block == 8 * 2 * 16 * 4 * 256 * 2
    assert next(g for g in two.kv.groups if g.kind == "full").block_size == 32


def test_transformers_default_unified_config_is_refused_and_its_text_config_counts_exactly() -> None:
    # AutoConfig.for_model("gemma4_unified") has no vision_config; Gemma4UnifiedForConditionalGeneration raises.
    with pytest.raises(ConfigError):
        build_spec({"model_type": "gemma4_unified", "architectures": ["Gemma4UnifiedForConditionalGeneration"],
                    "text_config": DEFAULT_TEXT["config"]}, "default")
    assert DEFAULT_TEXT["wrapper_has_vision_config"] is False
    # Its text_config alone, in transformers' per_layer_config form (full layers head_dim 512, 4 KV heads).
    spec = build_spec(DEFAULT_TEXT["config"], "gemma4_unified_text default")
    assert spec.total_params == DEFAULT_TEXT["hf_params"] == 3_010_758_400
    assert spec.attention_kinds == {"sliding_window": 25, "full": 5}
    full = next(x.attention for x in spec.layers if x.attention.kind == "full")
    assert (full.num_kv_heads, full.head_dim) == (4, 512)


def test_a_text_only_start_still_builds_the_patch_embedder() -> None:
    """Gemma4UnifiedForConditionalGeneration.__init__ calls nn.Module.__init__ (not Gemma 4's, whose towers are
    marked) and builds its vision embedder and both multimodal embedders unconditionally: --language-model-only
    saves nothing."""
    spec = _spec()
    full = estimate(spec, gpu="H100", max_model_len=32768)
    text_only = estimate(spec, gpu="H100", max_model_len=32768, language_model_only=True)
    assert text_only.weights_bytes == full.weights_bytes == 24_353_570_816
