"""Meta Muse Spark (model_type muse_spark, text_config muse_spark_text) as vLLM 0.33 builds it
(models/muse_spark/nvidia/model.py, common/{layers,omni,vision,audio}.py): 62 gated-attention layers (46 sliding-window
RoPE, 16 full NoPE), every one a MoE of 256 experts run at a 4096-wide pooled width, a float32 router, a float32
residual stream with float32 gate coefficients, one float32 rotary table per RoPE layer, and the NaViT vision and
audio towers (tests/fixtures/oracle/families/muse_spark.json, config source inside).

No vLLM 0.33 oracle exists for this family: the parameter counts come from transformers 5.23 on the meta device, the
bytes and the KV plan from reading vLLM 0.33, with the arithmetic written below.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_muse_spark  # noqa: F401
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import UnservableDeployment
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "muse_spark.json").read_text())
RELEASE = FX["models"]["muse_spark/Muse-Spark-1.2-816B-A42B"]
TINY = FX["models"]["muse_spark/tiny"]
ROPE_TABLE = 1048576 * 64 * 4  # one layer's float32 cos/sin table: max_position_embeddings x head_dim
VISION_ROPE = 129 * 129 * 48 * 2  # NaViT's float32 precomputed_freqs_cis, elements


def _release():
    return build_spec(RELEASE["config"], "meta-models/Muse-Spark-1.2-816B-A42B")


def _checkpoint_params(spec) -> int:
    """Parameters the checkpoint holds: every tensor but the buffers vLLM makes itself."""
    per_layer = sum(t.numel for layer in spec.layers for t in layer.tensors if t.in_checkpoint)
    return per_layer + sum(t.numel for t in spec.embedding + spec.head + spec.extra if t.in_checkpoint)


def test_muse_spark_release_is_transformers_count_plus_the_expert_bias_buffers() -> None:
    spec = _release()
    assert not spec.generic and spec.architecture == "MuseSparkForConditionalGeneration"
    # transformers (and vLLM) keep mlp.gate.e_score_correction_bias as a buffer; the checkpoint holds 62 x 256
    assert _checkpoint_params(spec) == RELEASE["hf_params"] + 62 * 256 == 822_036_529_664
    towers = sum(v for k, v in RELEASE["by_module"].items() if k not in ("language_model", "lm_head"))
    assert spec.multimodal.params == towers == 2_045_977_600
    # the vision tower's float32 RoPE grid is a buffer vLLM allocates, not a checkpoint parameter
    assert spec.total_params == _checkpoint_params(spec)
    assert sum(t.numel for t in spec.extra if not t.in_checkpoint) == VISION_ROPE


def test_muse_spark_layers_are_three_sliding_to_one_full_nope_and_all_moe() -> None:
    spec = _release()
    assert spec.attention_kinds == {"sliding_window": 46, "full": 16}
    for i, layer in enumerate(spec.layers):
        full = (
            i % 4 == 1
        )  # the released layer_types: S F S S repeating, full layers NoPE (layer_rope_theta 0)
        assert layer.attention.kind == ("full" if full else "sliding_window")
        assert layer.attention.window == (None if full else 2048)
        assert layer.mlp.kind == "moe" and layer.mlp.num_experts == 256 and layer.mlp.top_k == 8
        roped = [t for t in layer.tensors if t.kind == "rope_cache"]
        assert roped == [] if full else [(t.shape, t.dtype) for t in roped] == [((1048576, 64), "float32")]
    t = {x.name.rsplit("{i}.", 1)[-1]: x for x in spec.layers[0].tensors}
    assert (
        t["mlp.gate.weight"].dtype == "float32" and t["mlp.gate.e_score_correction_bias"].dtype == "float32"
    )
    # pooler / unpooler are ReplicatedLinear with quant_config=None: whole on every rank, never quantized
    for name in ("mlp.pre_expert_proj", "mlp.post_expert_proj"):
        assert t[name].parallel == "replicated" and not t[name].linear
    assert t["mlp.experts.w13_weight"].shape == (256, 2 * 4096, 4096)
    assert (
        t["self_attn.gate_proj"].shape == (128 * 64, 8192) and t["self_attn.gate_proj"].parallel == "column"
    )


def test_muse_spark_weights_at_tp1_tp8_and_tp16() -> None:
    """Bytes per GPU (bf16 2 bytes; router, expert bias, gate coefficients and rotary tables float32).

    Per layer at TP=t: q, o and output gate 3 x 8192 x 8192/t, k and v 2 x 16/t x 64 x 8192; five [8192] weights
    (three norms, two residual gates); alpha/beta of both gated connections 4 x 8192 float32; router 256 x 8192
    and bias 256 float32; pooler 4096 x 8192 and unpooler 8192 x 4096 whole; pre/post expert norms 2 x 4096;
    experts 256 x (2 x 4096/t x 4096 + 4096 x 4096/t).
      t=1: 436,207,616 attention bytes, 26,348,848,128 per layer; t=8: 54,525,952 and 3,418,588,160;
      t=16: 27,262,976 and 1,780,712,448.
    46 RoPE layers x 1,048,576 x 64 x 4 = 12,348,030,976 (268,435,456 each, on every GPU).
    Embedding and LM head 2 x 202048/t x 8192 x 2 + final norm 8192 x 2.
    Towers: NaViT column part (patch 1176 x 1536, 50 x (QKV 3 x 1536^2 + bias, c_fc 8960 x 1536 + bias), adapter
    c_fc 4096 x 6144) / t, row part (50 x (1536^2 + 1536 x 8960), adapter c_proj 4096^2, vision_projection
    8192 x 4096) / t, whole part (positions 1024 x 1536, ln_pre/ln_post, 50 x (two LayerNorms + two row biases)),
    the float32 RoPE grid 129 x 129 x 48 x 2 x 4 = 6,390,144 bytes, and the audio tower's 117,840,384 parameters
    whole (built with TP disabled).
      t=1: 62 x 26,348,848,128 + 12,348,030,976 + 6,620,725,248 + 4,098,345,344 = 1,656,695,685,504
      t=8: 62 x 3,418,588,160 + 12,348,030,976 + 827,604,992 + 491,994,112 + 235,680,768 = 225,855,776,768
      t=16: 62 x 1,780,712,448 + 12,348,030,976 + 413,810,688 + 251,231,936 + 235,680,768 = 123,652,926,144
    """
    spec = _release()
    got = {
        tp: estimate_on(spec, gpu="H200", tensor_parallel_size=tp, max_model_len=131072) for tp in (1, 8, 16)
    }
    assert got[1].weights_bytes == 1_656_695_685_504
    assert got[8].weights_bytes == 225_855_776_768
    assert got[16].weights_bytes == 123_652_926_144
    assert dict(got[16].per_stage[0]["weights_by_kind"])["rope_cache"] == 46 * ROPE_TABLE


@pytest.mark.parametrize(("tp", "page", "tokens"), [(8, 8192, 1_474_540), (16, 4096, 2_949_080)])
def test_muse_spark_kv_plan_is_one_full_and_three_sliding_groups_of_16(
    tp: int, page: int, tokens: int
) -> None:
    """vLLM 0.33's plan (v1/core/kv_cache_planning.py, kv_cache_utils.py, kv_cache_interface.py).

    Every layer is a plain Attention with 16/t KV heads of 64: FullAttentionSpec on the 16 full layers,
    SlidingWindowSpec(2048) on the 46 others, one page size 16 x 2 x (16/t) x 64 x 2 bytes (8,192 at TP=8, 4,096
    at TP=16), so the packed (block-outermost) planner returns None whatever the layout and
    _get_kv_cache_groups_uniform_page_size groups them: min 16 layers, 46 >= 1.5 x 16, so group_size 16: one full
    group and cdiv(46, 16) = 3 sliding groups (16, 15, 15 layers; 2 padding slots). bytes_per_block = 16 pages
    (131,072 / 65,536), num_blocks = 16 GiB // bytes_per_block = 131,072 / 262,144.
    A 131,072-token request takes 131072 / 16 = 8,192 full blocks and, per sliding group,
    cdiv(min(2047 + 2 x 8192 in-flight tokens, 131072), 16) + 1 = 1,153 blocks: 8,192 + 3 x 1,153 = 11,651.
    Tokens = int(num_blocks / 11,651 x 131,072): 1,474,540 at TP=8, 2,949,080 at TP=16.
    """
    dep = Deployment(
        gpu_name="H200",
        gpu_memory_bytes=141 * 10**9,
        vllm_version="0.33.0",
        block_size=16,
        tensor_parallel_size=tp,
        max_model_len=131072,
        max_num_batched_tokens=8192,
        kv_cache_memory_bytes=16 * 2**30,
    )
    r = estimate(_release(), dep)
    assert r.kv.num_groups == 4 and r.kv.group_size == 16 and r.kv.padding_layers == 2
    assert {g.kind: g.page_bytes for g in r.kv.groups} == {"sliding_window": page, "full": page}
    assert r.kv.bytes_per_block == 16 * page
    assert r.num_gpu_blocks == 16 * 2**30 // (16 * page)
    assert r.kv.blocks_per_request == 8192 + 3 * 1153
    assert r.kv_cache_tokens == tokens


def test_does_muse_spark_in_bf16_fit_on_eight_h200s_at_128k() -> None:
    # No: 225.9 GB of weights per GPU at TP=8 is more than an H200 holds; TP=16 (two nodes) leaves room for KV.
    spec = _release()
    eight = estimate_on(spec, gpu="H200", tensor_parallel_size=8, max_model_len=131072)
    assert not eight.fits
    sixteen = estimate_on(spec, gpu="H200", tensor_parallel_size=16, max_model_len=131072)
    assert sixteen.fits and sixteen.kv_cache_tokens > 131072
    # the 46 per-layer rotary tables alone are 11.5 GiB on every GPU
    assert 46 * ROPE_TABLE == 11.5 * 2**30


def test_muse_spark_tp_must_divide_the_16_kv_heads_and_the_16_vision_heads() -> None:
    spec = _release()
    assert (16, "num_key_value_heads (the fused q/k/v/output-gate projection cannot replicate KV heads)") in (
        spec.tp_divides
    )
    assert spec.multimodal.tp_heads == 16
    with pytest.raises(UnservableDeployment, match="16 attention heads"):
        estimate_on(spec, gpu="H200", tensor_parallel_size=32, max_model_len=131072)


def test_tiny_muse_spark_with_a_dense_layer_and_default_layer_types_matches_transformers() -> None:
    spec = build_spec(TINY["config"], "tiny")
    # three MoE layers of 8 experts add their expert-bias buffers to transformers' parameter count
    assert _checkpoint_params(spec) == TINY["hf_params"] + 3 * 8
    towers = sum(v for k, v in TINY["by_module"].items() if k not in ("language_model", "lm_head"))
    assert spec.multimodal.params == towers
    # transformers' defaults: the last layer and every fourth before it full and NoPE
    assert [
        (x.attention.kind, x.mlp.kind, any(t.kind == "rope_cache" for t in x.tensors)) for x in spec.layers
    ] == [
        ("sliding_window", "dense", True),
        ("sliding_window", "moe", True),
        ("sliding_window", "moe", True),
        ("full", "moe", False),
    ]


def test_a_bare_text_config_is_the_decoder_without_towers_and_says_so() -> None:
    text = RELEASE["config"]["text_config"]
    for cfg in ({"text_config": text}, text):
        spec = build_spec(cfg, "text-only")
        assert spec.multimodal is None
        assert (
            spec.total_params
            == RELEASE["by_module"]["language_model"] + RELEASE["by_module"]["lm_head"] + 62 * 256
        )
        assert any("always builds the vision and audio towers" in n for n in spec.notes)
