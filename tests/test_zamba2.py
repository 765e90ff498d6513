"""Zamba2: Mamba-2 on every layer, with one or two shared transformer blocks reused at the hybrid layers
(tests/fixtures/oracle/families/zamba2.json: transformers' counts and vLLM 0.32's own KV plan). A generic reading
sized Zamba2-2.7B at 5.7B parameters with 54 attention layers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

MODELS = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "zamba2.json").read_text())["models"]


@pytest.mark.parametrize("key", sorted(MODELS))
def test_shared_blocks_count_once_and_each_use_counts_its_adapters(key: str) -> None:
    spec = build_spec(MODELS[key]["config"])
    assert not spec.generic and spec.tie_word_embeddings
    assert spec.total_params == MODELS[key]["hf_params"] == MODELS[key]["vllm_meta"]["params"]


@pytest.mark.parametrize("key", sorted(MODELS))
def test_each_hybrid_layer_has_its_own_kv_and_every_layer_a_mamba_state(key: str) -> None:
    meta = MODELS[key]["vllm_meta"]
    r = estimate(build_spec(MODELS[key]["config"]),
                 Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.32.0", max_model_len=4096))
    assert sum(g.num_layers for g in r.kv.groups if g.kind == "full") == meta["attention_layers"]
    assert sum(g.num_layers for g in r.kv.groups if g.kind == "mamba") == meta["mamba_layers"]


@pytest.mark.parametrize("key", sorted(MODELS))
def test_zamba2_block_plan_tokens_and_concurrency_are_vllms(key: str) -> None:
    meta = MODELS[key]["vllm_meta"]
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.32.0",
                     block_size=meta["block_size"], max_model_len=meta["max_model_len"],
                     kv_cache_memory_bytes=meta["kv_budget_bytes"])
    r = estimate(build_spec(MODELS[key]["config"]), dep)
    assert r.kv.num_groups == meta["num_groups"]
    assert r.kv.bytes_per_block == meta["bytes_per_block"]
    assert r.num_gpu_blocks == meta["num_blocks"]
    # 0.32 align mode: 3 Mamba-2 states per request per group (running, block-aligned, prefill checkpoint)
    assert r.kv_cache_tokens == meta["kv_cache_size_tokens"]
    assert r.max_concurrency == pytest.approx(meta["max_concurrency"], abs=0.01)


def test_the_shared_block_sits_in_its_first_hybrid_layer_so_tensor_parallelism_shards_it() -> None:
    spec = build_spec(MODELS["zamba2/two-blocks-with-adapters"]["config"])
    qkv = [(i, t) for i, layer in enumerate(spec.layers) for t in layer.tensors if "self_attn.qkv_proj" in t.name]
    # two blocks used in turn: each block's weights once, on the first hybrid layer that uses it (5, then 11)
    assert [(i, t.name) for i, t in qkv] == [(5, "model.blocks.0.self_attn.qkv_proj"),
                                             (11, "model.blocks.1.self_attn.qkv_proj")]
    assert all(t.parallel == "column" for _, t in qkv)
    assert not any("blocks" in t.name for t in spec.extra)
