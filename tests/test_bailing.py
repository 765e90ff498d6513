"""inclusionAI's Ling / Ring ("Bailing") models as vLLM builds them (models/bailing_moe.py, bailing_moe_linear.py,
bailing_moe_v3.py), against vLLM 0.32's own meta-device build and KV plan (tests/fixtures/oracle/families/
bailing.json; transformers cannot build these remote-code models, so the parameter totals are vLLM's).

Before this adapter gpuplan sized them as a generic Llama-style MoE: Ling-lite-1.5 with full attention where vLLM
uses a 4096-token window, Ling-mini-2.0 without its float32 router (15.7 MB light), and every hybrid as an all-MLA
stack: Ring-2.5's class-default config got 1,736,096 KV tokens in 40 GB where vLLM plans 6,944,358, Ling-3.0-flash
826,704 where vLLM plans 2,115,993.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import ConfigError, GpuplanError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "bailing.json").read_text())["models"]
LITE, MINI = FX["bailing_moe/ling-lite-1.5"], FX["bailing_moe/ling-mini-2.0"]
RING, RING_Q = FX["bailing_hybrid/ring-2.5-class-defaults"], FX["bailing_hybrid/ring-2.5-qlora-variant"]
TINY, FLASH3 = FX["bailing_hybrid/ling-3.0-tiny"], FX["bailing_hybrid/ling-3.0-flash"]
GiB = 2**30


def _oracle_run(model: dict, **kw):
    """The deployment the oracle planned: 40e9 bytes of KV, 16-token blocks, max_model_len 8192."""
    meta = model["vllm_meta"]
    spec = build_spec(model["config"])
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * GiB, vllm_version="0.32.0", block_size=16,
                     max_model_len=meta["max_model_len"], kv_cache_memory_bytes=meta["kv_budget_bytes"],
                     enable_prefix_caching=meta["engine_args_extra"].get("enable_prefix_caching"), **kw)
    return spec, estimate(spec, dep)


def _rope_bytes(spec) -> int:
    return sum(c.positions * c.rotary_dim * 2 for c in spec.rope_caches)


def _assert_kv_plan_is_vllms(model: dict, r) -> None:
    meta = model["vllm_meta"]
    assert r.kv.bytes_per_block == meta["bytes_per_block"]
    assert r.num_gpu_blocks == meta["num_blocks"]
    assert r.kv.num_groups == len(meta["groups"])


# ----------------------------------------------------------------------------- Ling 1.x


def test_ling_lite_1_5_is_the_16_8b_model_vllm_builds() -> None:
    spec, r = _oracle_run(LITE)
    assert not spec.generic
    # 16.8B on the model card; 28 layers of 64 experts + 2 shared (2 x 1408 wide), no dense layer.
    assert spec.total_params == LITE["vllm_meta"]["params"] == 16_801_974_272
    assert sum(layer.mlp.kind == "moe" for layer in spec.layers) == 28
    # No router_dtype: the gate is bf16 like everything else; plus one full-width rotary cache (32768 x 128).
    assert r.weights_bytes == LITE["vllm_meta"]["bytes"] + 32768 * 128 * 2


def test_ling_lite_is_served_with_its_config_classs_4096_token_window_on_every_layer() -> None:
    """BailingMoeConfig defaults sliding_window to 4096 and vLLM's cache config takes it (use_sliding_window is
    not read): 28 SlidingWindowSpec layers of 4 KV heads x 128, 32 KiB pages."""
    spec, r = _oracle_run(LITE)
    assert spec.attention_kinds == {"sliding_window": 28}
    assert {layer.attention.window for layer in spec.layers} == {4096}
    assert any("4096" in n for n in spec.notes)
    _assert_kv_plan_is_vllms(LITE, r)
    # A config.json that spells sliding_window null gets full attention.
    assert build_spec({**LITE["config"], "sliding_window": None}).attention_kinds == {"full": 28}


# ----------------------------------------------------------------------------- Ling / Ring 2.0


def test_ling_mini_2_0_keeps_its_first_dense_layer_and_an_fp32_router() -> None:
    spec, r = _oracle_run(MINI)
    assert spec.total_params == MINI["vllm_meta"]["params"] == 16_255_643_392  # the card's 16.26B
    assert [layer.mlp.kind for layer in spec.layers[:2]] == ["dense", "moe"]
    # router_dtype fp32: 19 gates [256, 2048] and their expert_bias in float32, the rest bf16.
    fp32 = 19 * (256 * 2048 + 256)
    assert MINI["vllm_meta"]["bytes"] == 2 * spec.total_params + 2 * fp32
    # Half RoPE: a 32768 x 64 cache.
    assert r.weights_bytes == MINI["vllm_meta"]["bytes"] + 32768 * 64 * 2
    _assert_kv_plan_is_vllms(MINI, r)
    assert r.kv_cache_tokens == MINI["vllm_meta"]["kv_cache_size_tokens"]


def test_ling_mini_2_0_on_four_gpus_splits_everything_but_the_router_and_norms() -> None:
    spec = build_spec(MINI["config"])
    r = estimate(spec, Deployment(gpu_name="H100", gpu_memory_bytes=80 * GiB, vllm_version="0.33.0",
                                  tensor_parallel_size=4, max_model_len=8192))
    h, tp = 2048, 4
    embed = 157184 // tp * h * 2  # the vocabulary is already a multiple of 64
    attn = (16 // tp * 128 * h + 2 * (4 // tp) * 128 * h + h * 16 * 128 // tp) * 2 + 2 * 128 * 2 + 2 * h * 2
    dense = 3 * h * 5120 // tp * 2
    moe = (256 * 3 * h * 512 + 3 * h * 512) // tp * 2 + (256 * h + 256) * 4
    assert r.weights_bytes == 2 * embed + h * 2 + 20 * attn + dense + 19 * moe + 32768 * 64 * 2
    # One KV head of 128 per GPU: 512 bytes per token per layer, 20 layers.
    assert r.kv.bytes_per_block == 16 * 20 * 2 * 128 * 2


def test_ling_1t_style_rotary_dim_and_four_dense_layers() -> None:
    """Ling-1T names its rotary width (rotary_dim) instead of a factor, and keeps four dense layers."""
    cfg = {**MINI["config"], "rotary_dim": 64, "first_k_dense_replace": 4}
    del cfg["partial_rotary_factor"]
    spec = build_spec(cfg)
    assert [c.rotary_dim for c in spec.rope_caches] == [64]
    assert [layer.mlp.kind for layer in spec.layers].count("dense") == 4


def test_mtp_layers_in_the_checkpoint_are_not_loaded() -> None:
    spec = build_spec({**MINI["config"], "num_nextn_predict_layers": 1})
    r = estimate(spec, Deployment(gpu_name="H100", gpu_memory_bytes=80 * GiB, vllm_version="0.33.0",
                                  max_model_len=8192))
    base = estimate(build_spec(MINI["config"]), Deployment(gpu_name="H100", gpu_memory_bytes=80 * GiB,
                                                           vllm_version="0.33.0", max_model_len=8192))
    assert spec.extra_not_loaded and r.weights_bytes == base.weights_bytes


# ----------------------------------------------------------------------------- Ring / Ling 2.5 (hybrid)


def test_ring_2_5_puts_mla_on_every_fifth_layer_and_lightning_attention_elsewhere() -> None:
    spec, r = _oracle_run(RING)
    assert spec.total_params == RING["vllm_meta"]["params"]
    kinds = [layer.attention.kind for layer in spec.layers]
    assert [i for i, k in enumerate(kinds) if k == "mla"] == [4, 9, 14, 19]
    # Weights: vLLM's parameters (fp32 gates and biases) plus two rotary caches (the linear layers' NeoX 64 of
    # 128, the MLA layers' GPT-J 64). MLA's W_UK_T / W_UV are views of the bf16 kv_b_proj: no copy.
    assert r.weights_bytes == RING["vllm_meta"]["bytes"] + 2 * 32768 * 64 * 2
    # The linear layers' state is one [16, 128, 128] bf16 matrix per request (512 KiB), padded to the MLA page of
    # 512 tokens x 576 x 2 bytes; five groups of 4 layers.
    _assert_kv_plan_is_vllms(RING, r)
    assert r.kv.block_size == RING["vllm_meta"]["block_size"] == 512
    assert r.kv_cache_tokens == RING["vllm_meta"]["kv_cache_size_tokens"]


def test_ring_2_5_with_a_q_lora_keeps_the_fused_q_a_projection_whole_on_every_gpu() -> None:
    spec, r = _oracle_run(RING_Q)
    assert spec.total_params == RING_Q["vllm_meta"]["params"]
    assert [i for i, layer in enumerate(spec.layers) if layer.attention.kind == "mla"] == [7, 15, 23]
    assert r.weights_bytes == RING_Q["vllm_meta"]["bytes"] + 2 * 131072 * 64 * 2
    _assert_kv_plan_is_vllms(RING_Q, r)
    names = {t.name: t for t in spec.layers[7].tensors}
    assert names["model.layers.{i}.attention.q_a_proj"].parallel == "replicated"
    assert spec.extra_not_loaded  # the MTP layer


def test_ring_2_5_linear_state_splits_its_heads_over_tp() -> None:
    spec = build_spec(RING["config"])
    rs = [estimate(spec, Deployment(gpu_name="H100", gpu_memory_bytes=80 * GiB, vllm_version="0.33.0",
                                    tensor_parallel_size=tp, max_model_len=8192, enable_prefix_caching=False))
          for tp in (1, 2)]
    # Per GPU: MLA's latent row is whole (576 x 2 bytes a token), the state halves with the heads.
    assert [r.kv.block_size for r in rs] == [512, 256]
    assert rs[1].kv.bytes_per_block * 2 == rs[0].kv.bytes_per_block


def test_ring_2_5_has_no_tail_rule() -> None:
    """is_linear_layer only looks at (i + 1) % layer_group_size: layers past the last whole group stay linear."""
    spec = build_spec({**RING["config"], "num_hidden_layers": 22})
    assert [i for i, layer in enumerate(spec.layers) if layer.attention.kind == "mla"] == [4, 9, 14, 19]


# ----------------------------------------------------------------------------- Ling 3.0 (hybrid KDA + MLA)


def test_ling_3_0_flash_is_124b_with_kda_state_in_float32() -> None:
    spec, r = _oracle_run(FLASH3)
    assert spec.total_params == FLASH3["vllm_meta"]["params"] == 124_414_211_552  # the recipe's 124B
    assert [i for i, layer in enumerate(spec.layers) if layer.attention.kind == "mla"] == list(range(5, 42, 6))
    assert r.weights_bytes == FLASH3["vllm_meta"]["bytes"] + 32768 * 64 * 2
    # KDA state: a (3, 3 x 32 x 128) bf16 conv window and a (32, 128, 128) float32 recurrent state.
    state = spec.layers[0].attention.state
    assert [(s.shape, s.dtype) for s in state] == [((3, 12288), "conv"), ((32, 128, 128), "float32")]
    _assert_kv_plan_is_vllms(FLASH3, r)
    assert r.kv.block_size == 1920
    assert r.kv_cache_tokens == FLASH3["vllm_meta"]["kv_cache_size_tokens"]


def test_ling_3_0_tiny_and_the_tail_rule() -> None:
    spec, r = _oracle_run(TINY)
    assert spec.total_params == TINY["vllm_meta"]["params"]
    assert r.weights_bytes == TINY["vllm_meta"]["bytes"] + 131072 * 64 * 2
    _assert_kv_plan_is_vllms(TINY, r)
    # _is_kda_layer: layers past the last whole group of 4 are MLA too.
    longer = build_spec({**TINY["config"], "num_hidden_layers": 26})
    assert [i for i, layer in enumerate(longer.layers) if layer.attention.kind == "mla"] == [3, 7, 11, 15, 19, 23,
                                                                                              24, 25]


def test_ling_3_0_flash_on_four_h100s() -> None:
    spec = build_spec(FLASH3["config"])
    r = estimate(spec, Deployment(gpu_name="H100", gpu_memory_bytes=80 * GiB, vllm_version="0.33.0",
                                  tensor_parallel_size=4, max_model_len=32768))
    assert r.fits
    assert 58 * GiB < r.weights_bytes < 58.2 * GiB
    assert r.kv_cache_tokens > 32768


# ----------------------------------------------------------------------------- what vLLM cannot serve


def test_ring_linear_2_0_has_no_vllm_class() -> None:
    cfg = {"architectures": ["BailingMoeLinearV2ForCausalLM"], "model_type": "bailing_moe_linear",
           "hidden_size": 2048, "num_hidden_layers": 20, "num_attention_heads": 16, "vocab_size": 157184}
    with pytest.raises(ConfigError, match="no vLLM model"):
        build_spec(cfg)


# ----------------------------------------------------------------------------- MTP drafters (0.25+ / 0.28+)

MTP1 = {"speculative_method": "mtp", "num_speculative_tokens": 1}


def _tp2(model: dict, version: str, **kw):
    spec = build_spec(model["config"])
    return estimate(spec, Deployment(gpu_name="H100", gpu_memory_bytes=80 * GiB, vllm_version=version,
                                     tensor_parallel_size=2, max_model_len=32768, **kw))


def test_ring_2_5_mtp_loads_one_mla_moe_layer_and_a_bf16_eh_proj() -> None:
    """bailing_moe_mtp.py at TP=2 in bf16: layer 24's MLA (the fused q_a + kv_a projection [1536 + 576, 2048] and
    its two norms whole, q_b_proj [16 x 192, 1536], kv_b_proj [16 x 256, 512] and the output [2048, 16 x 128]
    halved), its MoE (the fp32 gate [256, 2048] and expert bias whole, 256 experts and the 512-wide shared expert
    of 3 x 512 x 2048 halved) and two norms; beside it enorm, hnorm, final_layernorm and eh_proj [2048, 4096], a
    plain nn.Linear kept whole."""
    h = 2048
    mla = (1536 + 576) * h + 1536 + 512 + (16 * 192 * 1536 + 16 * 256 * 512 + h * 16 * 128) // 2
    moe = (257 * 3 * 512 * h) // 2
    layer = 2 * (mla + moe + 2 * h) + 4 * (256 * h + 256)
    own = 2 * (3 * h + h * 2 * h)
    added = (_tp2(RING_Q, "0.33.0", **MTP1).weights_bytes
             - _tp2(RING_Q, "0.33.0").weights_bytes)
    assert added == layer + own == 847_012_864


def test_ring_2_5_mtp_layer_joins_the_mla_group_and_needs_vllm_0_25() -> None:
    base, mtp = _tp2(RING_Q, "0.33.0"), _tp2(RING_Q, "0.33.0", **MTP1)
    # vLLM pads a hybrid's groups to the largest: 3 MLA layers and 21 linear ones made groups of 3 (7 linear
    # groups); with the fourth MLA layer they regroup
    assert sum(g.num_layers for g in base.kv.groups if g.kind == "mla") == 3
    assert sum(g.num_layers for g in mtp.kv.groups if g.kind == "mla") == 4
    assert mtp.kv_cache_tokens < base.kv_cache_tokens
    with pytest.raises(GpuplanError) as e:
        _tp2(RING_Q, "0.24.0", **MTP1)
    assert "vllm_version >= 0.25" in e.value.accepted


def test_ling_3_0_mtp_eh_proj_takes_the_checkpoints_quantization_and_needs_vllm_0_28() -> None:
    cfg = {**FLASH3["config"], "num_nextn_predict_layers": 1}
    spec = build_spec(cfg)
    assert spec.mtp is not None and spec.mtp.since == "0.28"
    eh = next(t for t in spec.mtp.tensors if t.name.endswith("eh_proj"))
    assert eh.linear and eh.shape == (2560, 5120)
    assert spec.extra_not_loaded[0].numel == (sum(t.numel for t in spec.mtp.tensors)
                                              + sum(t.numel for t in spec.mtp.layers[0].tensors))
    dep = dict(gpu_name="H100", gpu_memory_bytes=80 * GiB, tensor_parallel_size=4, max_model_len=32768, **MTP1)
    with pytest.raises(GpuplanError) as e:
        estimate(spec, Deployment(vllm_version="0.27.0", **dep))
    assert "vllm_version >= 0.28" in e.value.accepted
    r = estimate(spec, Deployment(vllm_version="0.28.0", **dep))
    assert sum(g.num_layers for g in r.kv.groups if g.kind == "mla") == 8  # layers 5, 11, ..., 41 and the draft


def test_ling_2_0_has_no_vllm_mtp_drafter() -> None:
    spec = build_spec({**MINI["config"], "num_nextn_predict_layers": 1})
    assert spec.mtp is None and spec.extra_not_loaded
