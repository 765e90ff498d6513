"""StepFun's Step-3.5-Flash, Step-3.7-Flash and Step3 as vLLM builds them (models/step3p5.py, step3p7.py,
step_vl.py, step3_text.py, step3_vl.py). Fixture: tests/fixtures/oracle/families/step.json, whose _meta and
config_source say where each config comes from and which oracle checked it."""

from __future__ import annotations

import json
from pathlib import Path

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "step.json").read_text())
FLASH, SEVEN = FX["models"]["step3p5/Step-3.5-Flash"], FX["models"]["step3p7/Step-3.7-Flash"]
STEP3, STEP3_VL = FX["models"]["step3_text/step3"], FX["models"]["step3_vl/step3"]
H200 = dict(gpu_name="H200", gpu_memory_bytes=150_117_941_248)
ROUTER_BIAS = 42 * 288  # fp32 parameters in vLLM, a buffer in transformers
ROPE_3P5 = 262_144 * (64 + 128) * 2  # full layers rotate 64 of 128 dims (theta 5e6), sliding all 128 (theta 1e4)


def _oracle_run(model: dict, **kw):
    meta = model["vllm_meta"]
    spec = build_spec(model["config"])
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=85_029_158_912, vllm_version="0.33.0", block_size=16,
                     max_model_len=meta["max_model_len"], kv_cache_memory_bytes=meta["kv_budget_bytes"], **kw)
    return spec, estimate(spec, dep)


def test_step_3_5_flash_serves_196_96b_parameters_as_vllm_and_transformers_count_them() -> None:
    spec = build_spec(FLASH["config"])
    assert not spec.generic
    assert spec.total_params == FLASH["vllm_meta"]["params"] == 196_956_130_368
    assert spec.total_params == FLASH["hf_params"] + ROUTER_BIAS
    # fp32 router: 42 MoE layers x (288 x 4096 weights + 288 biases).
    assert spec.param_counts()["router"] == 42 * (288 * 4096 + 288)


def test_the_checkpoint_adds_three_dense_mtp_layers_that_plain_serving_skips() -> None:
    """804 tensors, 398,768,626,944 bytes: bf16 everywhere but the fp32 router_bias, with MTP layers 45-47."""
    spec = build_spec(FLASH["config"])
    mtp = sum(t.numel for t in spec.extra_not_loaded)
    assert mtp == FLASH["checkpoint"]["mtp_params"] == 2_428_171_008
    ckpt = spec.total_params + mtp
    assert ckpt == FLASH["checkpoint"]["params"]
    assert 2 * ckpt + 2 * ROUTER_BIAS == FLASH["checkpoint"]["safetensors_bytes"]


def test_step_3_5_flash_weights_at_tp1_are_vllms_parameter_bytes_plus_two_rotary_caches() -> None:
    spec, r = _oracle_run(FLASH)
    assert r.weights_bytes == FLASH["vllm_meta"]["bytes"] + ROPE_3P5
    assert [(c.rotary_dim, c.theta) for c in spec.rope_caches] == [(64, 5e6), (128, 1e4)]


def test_step_3_5_flash_at_tp4_splits_heads_experts_and_vocab_but_keeps_the_fp32_router_whole() -> None:
    """Per GPU at TP=4 (bf16 = 2 bytes, fp32 = 4): q/o/g split by heads (16 of 64 full, 24 of 96 sliding), 2 of 8
    KV heads, dense MLP and experts split in their 11264 / 1280 / 1280 inner dims, the router replicated."""
    h, hd = 4096, 128
    full = 2 * (2 * 16 * hd * h + 2 * 2 * hd * h + 16 * h)
    sliding = 2 * (2 * 24 * hd * h + 2 * 2 * hd * h + 24 * h)
    norms = 45 * 2 * (2 * h + 2 * hd) + 2 * h
    dense = 3 * 2 * (3 * h * 11264 // 4)
    moe = 42 * (2 * 288 * 3 * h * 320 + 2 * 3 * h * 320 + 4 * (288 * h + 288))
    vocab = 2 * 2 * (128_896 // 4) * h
    expected = 12 * full + 33 * sliding + norms + dense + moe + vocab + ROPE_3P5
    r = estimate(build_spec(FLASH["config"]), Deployment(**H200, vllm_version="0.33.0", tensor_parallel_size=4))
    assert r.weights_bytes == expected == 98_752_755_456


def test_step_3_5_flash_kv_pages_and_groups_are_vllms() -> None:
    """12 full + 33 sliding-window (512) layers, all 8 KV heads of 128: 16 x 8 x 128 x 2 x 2 = 65,536 bytes a
    page (4 KiB a token a layer); vLLM groups them 12 / 11 / 11 / 11 with 12 pages per block."""
    spec, r = _oracle_run(FLASH)
    meta = FLASH["vllm_meta"]
    assert spec.attention_kinds == {"full": 12, "sliding_window": 33}
    assert meta["layer_kinds"] == {"FullAttentionSpec": 12, "SlidingWindowSpec": 33}
    assert {(a.num_heads, a.num_kv_heads, a.head_dim, a.window)
            for a in (layer.attention for layer in spec.layers)} == {(64, 8, 128, None), (96, 8, 128, 512)}
    assert r.kv.bytes_per_block == meta["bytes_per_block"] == 12 * meta["page_size_bytes"]
    assert r.num_gpu_blocks == meta["num_blocks"]
    assert r.kv.num_groups == len(meta["groups"]) == 4


def test_without_this_adapter_step_3_5_flash_is_a_generic_moe_with_8x_its_full_attention_kv() -> None:
    """The generic fallback reads the sliding layers from layer_types, but not num_attention_groups (so 64 KV heads),
    the dense first layers nor the shared expert: 210.99B parameters and, on each of the 12 full layers, 32,768 KV
    bytes a token against vLLM's 4,096. (Before it read layer_types it cached all 45 layers in full: 30x.)"""
    generic = build_spec({**FLASH["config"], "model_type": "step3p5_unregistered"})
    before = FLASH["generic_before"]
    assert generic.generic and generic.total_params == before["total_params"]
    assert before["attention_kinds"] == {"full": 45}
    assert generic.attention_kinds == {"full": 12, "sliding_window": 33}
    full = [a for a in (x.attention for x in generic.layers) if a.kind == "full"]
    assert sum(2 * a.num_kv_heads * a.head_dim * 2 for a in full) == 12 * 64 * 128 * 2 * 2 == 8 * 12 * 4096
    assert before["kv_bytes_per_token"] == 45 * 64 * 128 * 2 * 2 == 30 * 12 * 4096
    assert build_spec(FLASH["config"]).total_params == before["total_params"] - 14_036_214_720


def test_a_config_saved_by_transformers_builds_the_same_model() -> None:
    """transformers 5.23 rewrites the hub config: num_key_value_heads, num_sliding_attention_heads,
    mlp_layer_types, mtp_layer_types, per-type rope_parameters, per_layer_config keyed "01", "02", ..."""
    hub, saved = build_spec(FLASH["config"]), build_spec(FLASH["config_saved_by_transformers"])
    assert saved.total_params == hub.total_params
    assert [x.attention for x in saved.layers] == [x.attention for x in hub.layers]
    assert saved.rope_caches == hub.rope_caches
    assert sum(t.numel for t in saved.extra_not_loaded) == sum(t.numel for t in hub.extra_not_loaded)


def test_step_3_5_flash_on_four_h200s_holds_its_full_262k_context() -> None:
    spec = build_spec(FLASH["config"], "stepfun-ai/Step-3.5-Flash")
    r = estimate(spec, Deployment(**H200, vllm_version="0.33.0", tensor_parallel_size=4))
    assert r.fits and r.max_model_len == 262_144
    assert r.weights_bytes == 98_752_755_456  # 91.97 GiB a GPU
    # TP=4 leaves 2 of the 8 KV heads a GPU: 12 layers x 16 x 2 x 128 x 2 x 2 bytes a block.
    assert r.kv.bytes_per_block == 12 * 16 * 2 * 128 * 2 * 2
    assert r.available_kv_cache_bytes > 30 * 2**30


def test_step_3_7_flash_adds_its_perception_encoder_as_transformers_counts_it() -> None:
    """Vision 1,955,848,960 = 47 blocks x 36,988,160 (qkv 3w^2+3w, out w^2+w, fc1/fc2 2 x 1536 x 8960 + 8960
    + 1536, two LayerNorms and two layer scales) + patch conv 903,168 + ln_pre 3,072 + positions 2704 x 1536
    + convolutions 42,470,400 and 169,875,456; projector 6144 x 4096 without bias."""
    spec = build_spec(SEVEN["config"])
    counts = spec.param_counts()
    assert (counts["vision"], counts["projector"]) == (1_955_848_960, 25_165_824)
    assert counts["vision"] == SEVEN["hf_by_category"]["vision"]
    assert spec.total_params == SEVEN["hf_params"] + ROUTER_BIAS
    assert spec.total_params + sum(t.numel for t in spec.extra_not_loaded) == SEVEN["checkpoint"]["params"]
    assert spec.multimodal.tokens_per_item == 169  # 52 x 52 patches, two stride-2 convolutions: 13 x 13


def test_step_3_7_flash_keeps_step_3_5s_kv_layout_and_a_2d_rope_table_per_vision_block() -> None:
    flash, seven = build_spec(FLASH["config"]), build_spec(SEVEN["config"])
    assert [x.attention for x in seven.layers] == [x.attention for x in flash.layers]
    dep = Deployment(**H200, vllm_version="0.33.0", tensor_parallel_size=8)
    w_flash, w_seven = estimate(flash, dep).weights_bytes, estimate(seven, dep).weights_bytes
    # Tower and projector split 8 ways where vLLM splits them, the rest whole, plus 47 fp32 [2704, 96] tables.
    column, row = 47 * (3 * 1536**2 + 3 * 1536 + 1536 * 8960 + 8960), 47 * (1536**2 + 1536 * 8960)
    whole = 1_955_848_960 - column - row
    assert column + row + whole == 1_955_848_960
    tower = 2 * (column // 8 + row // 8 + whole + 25_165_824 // 8) + 47 * 2704 * 96 * 4
    assert w_seven - w_flash == tower


def test_step3_text_is_316b_with_one_256_wide_kv_head_per_layer() -> None:
    """MFA: 61 layers x 1 KV head x 256 x 2 (K, V) x 2 bytes = 62,464 KV bytes a token; vLLM's count pads the
    vocabulary 128,815 -> 128,832 for the embedding and the LM head."""
    spec, r = _oracle_run(STEP3)
    meta = STEP3["vllm_meta"]
    assert not spec.generic and spec.total_params == 316_294_538_240  # README: "316B" for the LLM
    assert spec.total_params + 2 * 17 * 7168 == meta["params"]
    assert r.weights_bytes == meta["bytes"] + 65_536 * 256 * 2  # + the rotary cache
    assert spec.attention_kinds == {"full": 61} and meta["page_size_bytes"] == 16 * 256 * 2 * 2
    assert r.kv.bytes_per_block == meta["bytes_per_block"] == 61 * 16 * 256 * 2 * 2
    assert r.num_gpu_blocks == meta["num_blocks"]
    assert r.kv_cache_tokens == meta["kv_cache_size_tokens"]


def test_step3_keeps_its_fused_qkv_and_single_kv_head_whole_on_every_gpu() -> None:
    """At TP=8 only wq, o_proj, the MLPs, experts and the vocabulary split; q/k/v (2048 + 2 x 256 rows) and
    the gate stay whole, and the one KV head is stored on every GPU."""
    spec = build_spec(STEP3["config"])
    tp1 = estimate(spec, Deployment(**H200, vllm_version="0.33.0"))
    tp8 = estimate(spec, Deployment(**H200, vllm_version="0.33.0", tensor_parallel_size=8))
    assert tp8.kv.bytes_per_block == tp1.kv.bytes_per_block == 61 * 16 * 256 * 2 * 2
    replicated = 2 * (61 * ((2048 + 512) * 7168 + 2048 + 2 * 7168) + 7168 + 56 * 48 * 7168) + 65_536 * 256 * 2
    split = tp1.weights_bytes - replicated  # everything else divides by 8 (the vocabulary pads to 128,832)
    assert split % 8 == 0 and tp8.weights_bytes == replicated + split // 8


def test_step3_vl_adds_its_vision_tower_convolutions_and_projector() -> None:
    """Step3VisionTransformer at vLLM's defaults (63 blocks of 1792, MLP 3072, 728 px / 14), a 2x2 convolution
    to 4096 and a 3x3 stride-2 one to 8192, then an nn.Linear to 7168: 1,900,075,520 parameters, 26 x 26 tokens
    an image. The README's 321B says the real tower is bigger than these defaults."""
    spec = build_spec(STEP3_VL["config"])
    assert spec.total_params == STEP3_VL["hand_count"]["total"] == 316_294_538_240 + 1_900_075_520
    assert spec.param_counts()["vision"] == STEP3_VL["hand_count"]["vision_and_projector"]
    assert spec.multimodal.tokens_per_item == 676
    assert [x.attention for x in spec.layers] == [x.attention for x in build_spec(STEP3["config"]).layers]
