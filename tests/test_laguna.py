"""Poolside Laguna as vLLM builds it (models/laguna.py): per-layer query-head counts, a per-head softplus gate,
3:1 sliding:full layers with their own RoPE, a dense first layer, sigmoid-routed experts with a shared expert and
an fp32 correction bias (tests/fixtures/oracle/families/laguna.json, config sources inside)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import UnservableDeployment
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "laguna.json").read_text())
MODELS = FX["models"]


def _oracle_run(key: str):
    m = MODELS[key]
    spec = build_spec(m["config"], key)
    meta = m["vllm_meta"]
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.32.0", block_size=16,
                     max_model_len=meta["max_model_len"], kv_cache_memory_bytes=meta["kv_budget_bytes"])
    return spec, meta, estimate(spec, dep)


@pytest.mark.parametrize("key", sorted(MODELS))
def test_laguna_counts_what_transformers_and_vllm_build(key: str) -> None:
    # XS-2.1: the 33.4B of the card; S-2.1: 117.6B (its 235 GB BF16 download)
    spec, meta, r = _oracle_run(key)
    assert not spec.generic
    assert spec.total_params == MODELS[key]["hf_params"] == meta["params"]
    # the correction biases are float32 in vLLM: 2 bytes more per expert per MoE layer than the parameter count x 2
    assert meta["bytes"] == 2 * meta["params"] + 2 * 256 * (spec.num_layers - 1)
    # plus the rotary caches vLLM keeps as buffers: full layers' YaRN cache (original positions x factor, half the
    # head rotated) and the sliding layers' default cache (max_position_embeddings, whole head)
    assert r.weights_bytes == meta["bytes"] + sum(c.positions * c.rotary_dim * 2 for c in spec.rope_caches)


@pytest.mark.parametrize("key", sorted(MODELS))
def test_laguna_kv_pages_and_groups_are_vllms(key: str) -> None:
    spec, meta, r = _oracle_run(key)
    kinds = {"FullAttentionSpec": "full", "SlidingWindowSpec": "sliding_window"}
    assert spec.attention_kinds == {kinds[s["class"]]: s["n_layers"] for s in meta["layer_specs"]}
    assert r.kv.bytes_per_block == meta["bytes_per_block"]
    assert r.num_gpu_blocks == meta["num_blocks"]
    assert r.kv.num_groups == len(meta["groups"])


def test_laguna_xs_2_1_slides_30_of_40_layers_over_512_tokens_with_64_query_heads() -> None:
    spec, _, r = _oracle_run("laguna/XS-2.1")
    assert spec.attention_kinds == {"full": 10, "sliding_window": 30}
    assert [(a.kind, a.num_heads, a.window) for a in (spec.layers[0].attention, spec.layers[1].attention)] == [
        ("full", 48, None), ("sliding_window", 64, 512)]
    # one page per 16 tokens holds 8 KV heads x 128 x (K + V) x 2 bytes for each of the 10 layers of a group
    assert r.kv.bytes_per_block == 10 * 16 * 8 * 128 * 2 * 2


def test_transformers_default_laguna_has_no_sliding_layers() -> None:
    # LagunaConfig() leaves layer_types unset: transformers and vLLM run all 40 layers as full attention
    spec, meta, _ = _oracle_run("laguna/transformers-default")
    assert spec.attention_kinds == {"full": 40}
    assert meta["groups"] == ["FullAttentionSpec"]


def test_laguna_s_2_1_on_eight_h100s_by_hand() -> None:
    """Per rank at TP=8 (bf16; the correction bias fp32):
    embedding + LM head 2 x 100352/8 x 3072; final norm 3072;
    12 full layers: q 48 x 128/8 x 3072, k and v 1 KV head x 128 x 3072, o 3072 x 768, g_proj 48/8 x 3072, q/k norms
    2 x 128, two norms 2 x 3072; 36 sliding layers the same with 72 heads (q 1152 rows, g_proj 9);
    layer 0's MLP 3 x 12288/8 x 3072; 47 x MoE: experts 256 x 3 x 1024/8 x 3072, shared 3 x 1024/8 x 3072,
    router 256 x 3072 (bf16), bias 256 (fp32);
    rotary caches 1048576 x 64 (YaRN 8192 x 128) and 1048576 x 128.
    = 29,858,419,712 bytes."""
    spec = build_spec(MODELS["laguna/S-2.1"]["config"], "poolside/Laguna-S-2.1")
    r = estimate_on(spec, gpu="H100", tensor_parallel_size=8, max_model_len=65536)
    assert r.weights_bytes == 29_858_419_712
    assert r.fits


def test_laguna_s_2_1_cannot_split_72_query_heads_over_16_gpus() -> None:
    # 48 and 72 heads: TP must divide both (vLLM asserts per layer); 16 divides 48 but not 72
    spec = build_spec(MODELS["laguna/S-2.1"]["config"], "poolside/Laguna-S-2.1")
    with pytest.raises(UnservableDeployment):
        estimate_on(spec, gpu="H100", tensor_parallel_size=16, max_model_len=8192)


def test_laguna_sliding_layers_with_sinks_carry_one_logit_per_head() -> None:
    cfg = {**MODELS["laguna/XS-2.1"]["config"], "swa_attention_sink_enabled": True}
    spec = build_spec(cfg)
    assert spec.total_params == MODELS["laguna/XS-2.1"]["hf_params"] + 30 * 64
