"""Aria (AriaForConditionalGeneration) as vLLM 0.33 builds it (models/aria.py): a 28-layer MoE language model of 64
experts plus shared experts and a bare router weight, an Idefics3 vision tower without its post LayerNorm and a
learned-query cross-attention projector (tests/fixtures/oracle/families/aria.json, config source and oracle
commands inside)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_aria  # noqa: F401
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import ConfigError, GpuplanError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "aria.json").read_text())
ARIA = FX["models"]["aria/rhymes-ai-Aria"]
DEFAULT = FX["models"]["aria/transformers-default"]
ROPE = 65536 * 128 * 2  # one bf16 cos/sin cache: max_position_embeddings x head_dim


def _aria():
    return build_spec(ARIA["config"], "rhymes-ai/Aria")


def _oracle_run(case: dict):
    spec = build_spec(case["config"], "aria")
    meta = case["vllm_meta"]
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, block_size=16, max_model_len=meta["max_model_len"],
                     kv_cache_memory_bytes=meta["kv_budget_bytes"])
    return spec, estimate(spec, dep)


@pytest.mark.parametrize("case", [ARIA, DEFAULT], ids=["rhymes-ai/Aria", "transformers-default"])
def test_aria_holds_vllms_parameters_which_are_transformers_less_the_dropped_post_layernorm(case) -> None:
    spec, _ = _oracle_run(case)
    assert not spec.generic
    # vLLM swaps the vision tower's post LayerNorm (weight + bias of the 1152-wide vision hidden) for an identity
    assert spec.total_params == case["vllm_meta"]["params"] == case["hf_params"] - 2 * 1152
    assert [t.name for t in spec.extra_not_loaded] == ["vision_tower.post_layernorm"]
    # no shared-expert gate (the generic MoE fallback added one)
    assert not any("shared_expert_gate" in t.name for t in spec.layers[0].tensors)


def test_published_aria_is_25_3b_and_the_parts_match_transformers_module_by_module() -> None:
    """transformers' categories for rhymes-ai/Aria: 28 x 64 experts x 3 x 1664 x 2560 = 22,900,899,840;
    shared 28 x 3 x 3328 x 2560 = 715,653,120; router 28 x 64 x 2560 = 4,587,520 (bf16 in vLLM: a bare Parameter);
    vision 417,792,240 (vLLM 2,304 fewer); projector 256 x 1152 + 8 x 1152^2 + 11 x 1152 + 2560 x 1152 +
    2560^2 = 20,427,136."""
    spec = _aria()
    assert spec.total_params == 25_307_308_912
    hf = ARIA["hf_by_category"]
    by_kind: dict[str, int] = {}
    for layer in spec.layers:
        for t in layer.tensors:
            by_kind[t.kind] = by_kind.get(t.kind, 0) + t.numel
    for t in spec.extra:
        by_kind[t.kind] = by_kind.get(t.kind, 0) + t.numel
    assert by_kind["experts"] == hf["moe_experts"] == 22_900_899_840
    assert by_kind["shared_experts"] == hf["moe_shared"] == 715_653_120
    assert by_kind["router"] == hf["router"] == 4_587_520
    assert by_kind["vision"] == hf["vision"] - 2304 == 417_789_936
    assert by_kind["projector"] == hf["projector"] == 20_427_136
    router = [t for t in spec.layers[0].tensors if t.kind == "router"]
    assert [(t.shape, t.dtype, t.parallel) for t in router] == [((64, 2560), None, "replicated")]


def test_aria_weights_at_tp1_are_vllms_parameter_bytes_plus_its_rotary_cache() -> None:
    """Every parameter bf16: 25,307,308,912 x 2 = 50,614,617,824 bytes (vLLM's own meta build), plus the
    65536 x 128 bf16 rotary cache (16,777,216) = 50,631,395,040."""
    spec, r = _oracle_run(ARIA)
    assert r.weights_bytes == ARIA["vllm_meta"]["bytes"] + ROPE == 50_631_395_040


def test_aria_at_tp2_splits_text_tower_and_projector_mlp_but_keeps_the_cross_attention_whole() -> None:
    """Per rank at TP=2 (bf16):
    text: embedding + LM head 2 x 100352/2 x 2560 = 256,901,120; final norm 2,560;
    28 x [q/k/v/o 4 x 2560 x 2560/2 = 13,107,200; two norms 5,120; router 64 x 2560 = 163,840 (whole);
          experts 64 x 3 x 1664/2 x 2560 = 408,944,640; shared 3 x 3328/2 x 2560 = 12,779,520] = 12,180,008,960;
    vision (1152 wide, 4304 MLP, 27 layers): 27 x [(3 x 1152^2 + 3 x 1152 + 4304 x 1152 + 4304)/2 = 4,473,640
          + (1152^2 + 1152 x 4304)/2 = 3,142,656 + biases and LayerNorms 6 x 1152 = 6,912] = 205,826,616;
          patch conv 3 x 14^2 x 1152 + 1152 = 678,528; positions 70^2 x 1152 = 5,644,800;
    projector: queries, cross-attention and LayerNorm whole 256 x 1152 + 8 x 1152^2 + 11 x 1152 = 10,924,416;
          linear_in 2560/2 x 1152 = 1,474,560; linear_out 2560 x 2560/2 = 3,276,800;
    = 12,664,738,360 parameters = 25,329,476,720 bytes, + rotary cache 16,777,216 = 25,346,253,936."""
    spec = _aria()
    r = estimate_on(spec, gpu="H100", tensor_parallel_size=2, max_model_len=8192)
    assert r.weights_bytes == 25_346_253_936


def test_aria_kv_is_28_full_layers_of_20_heads_of_128_280_kib_per_token() -> None:
    """One FullAttentionSpec group: page 16 x 2 x 20 x 128 x 2 = 163,840 bytes a layer, 28 layers = 4,587,520 bytes
    a block; 40e9 // 4,587,520 = 8,719 blocks = 139,504 tokens, 139,504 / 8,192 = 17.03 requests (vLLM's own
    planner on the meta build: the fixture)."""
    for case in (ARIA, DEFAULT):
        spec, r = _oracle_run(case)
        meta = case["vllm_meta"]
        assert set(spec.attention_kinds) == {"full"}
        assert r.kv.num_groups == len(meta["groups"]) == 1
        assert r.kv.bytes_per_block == meta["bytes_per_block"]
        assert r.num_gpu_blocks == meta["num_blocks"]
        assert r.kv_cache_tokens == meta["kv_cache_size_tokens"]
    _, r = _oracle_run(ARIA)
    assert r.kv.bytes_per_block == 16 * 28 * 2 * 20 * 128 * 2 == 4_587_520
    assert r.kv_cache_tokens == 139_504


def test_does_aria_fit_on_one_h100_at_64k_and_on_one_l40s() -> None:
    """47.15 GiB of bf16 weights (50,631,395,040 bytes) leave an 80 GB H100 room for 64K tokens at 280 KiB each
    (17.5 GiB): one 64K request fits, with the block count what the free KV memory buys. An L40S (48 GB) cannot
    even load the weights; two L40S at TP=2 (25,346,253,936 bytes each) hold 64K with KV pages half as big."""
    spec = _aria()
    h100 = estimate_on(spec, gpu="H100", tensor_parallel_size=1, max_model_len=65536)
    assert h100.fits
    assert h100.weights_bytes == 50_631_395_040
    assert h100.num_gpu_blocks == h100.available_kv_cache_bytes // h100.kv.bytes_per_block
    assert h100.kv_cache_tokens == 16 * h100.num_gpu_blocks >= 65536
    assert 1 <= h100.max_concurrency < 2

    l40s = estimate_on(spec, gpu="L40S", tensor_parallel_size=1, max_model_len=65536)
    assert not l40s.fits
    assert "weights alone need 47.15 GiB" in l40s.reason

    two = estimate_on(spec, gpu="L40S", tensor_parallel_size=2, max_model_len=65536)
    assert two.fits and two.kv_cache_tokens >= 65536
    assert two.kv.bytes_per_block == 4_587_520 // 2


def test_a_text_only_start_skips_the_marked_image_tower_and_projector() -> None:
    """vLLM builds vision_tower and multi_modal_projector inside _mark_tower_model("image"): with images off they
    are not built, and loading takes (417,789,936 + 20,427,136) x 2 = 876,434,144 bytes less."""
    spec = _aria()
    full = estimate_on(spec, gpu="H100", tensor_parallel_size=1, max_model_len=65536)
    text = estimate_on(spec, gpu="H100", tensor_parallel_size=1, max_model_len=65536, language_model_only=True)
    assert full.weights_bytes - text.weights_bytes == 876_434_144
    assert text.kv_cache_tokens > full.kv_cache_tokens


def test_aria_tp_must_divide_the_20_text_heads_and_the_16_vision_heads() -> None:
    spec = _aria()
    with pytest.raises(GpuplanError, match="16 attention heads"):
        estimate_on(spec, gpu="H100", tensor_parallel_size=5, max_model_len=4096)
    with pytest.raises(GpuplanError, match="20 attention heads"):
        estimate_on(spec, gpu="H100", tensor_parallel_size=8, max_model_len=4096)


def test_a_remote_code_era_aria_config_whose_experts_vllm_would_misread_is_refused() -> None:
    """Aria-Chat / Aria-Base configs (text model_type aria_moe_lm) say intermediate_size 13568 and keep the expert
    width in moe_intermediate_size 1664; AriaTextConfig drops that key, so vLLM would build 13568-wide experts."""
    cfg = json.loads(json.dumps(ARIA["config"]))
    cfg["text_config"].update(model_type="aria_moe_lm", intermediate_size=13568, moe_intermediate_size=1664)
    with pytest.raises(ConfigError, match="moe_intermediate_size"):
        build_spec(cfg, "rhymes-ai/Aria-Chat")
