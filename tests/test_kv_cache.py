"""KV cache layouts per layer kind, as vLLM plans them (reference/vllm-memory-model.md §2)."""

from __future__ import annotations

import pytest

import gpuplan
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec
from gpuplan.units import GiB

H100 = dict(gpu_name="H100", gpu_memory_bytes=85_029_158_912)


def test_fp8_ds_mla_is_656_bytes_per_token_per_layer():
    spec = gpuplan.load_model("deepseek-ai/DeepSeek-V3")
    dep = Deployment(**H100, tensor_parallel_size=8, max_model_len=4096, kv_cache_dtype="fp8_ds_mla",
                     kv_cache_memory_bytes=GiB, vllm_version="0.19.0")
    r = estimate(spec, dep)
    assert r.kv.bytes_per_block == 61 * 656 * r.kv.block_size


def test_jamba_mamba_state_sets_the_attention_block_size():
    spec = gpuplan.load_model("ai21labs/Jamba-v0.1")
    r = estimate(spec, Deployment(**H100, tensor_parallel_size=2, max_model_len=8192, kv_cache_memory_bytes=10 * GiB,
                                  vllm_version="0.19.0"))
    kinds = {g.kind for g in r.kv.groups}
    assert kinds == {"full", "mamba"}
    # Mamba1 state per layer at TP=2: conv (8192/2 x 3) + ssm (8192/2 x 16), both in the model dtype
    state = 4096 * 3 * 2 + 4096 * 16 * 2
    attn_per_token = 8 // 2 * 128 * 2 * 2
    assert r.kv.block_size == 16 * -(-state // (16 * attn_per_token)) == 80
    assert r.kv.groups[0].page_bytes >= state
    # vLLM reads a config's mamba_ssm_dtype only through Qwen3.5's config hook; Jamba has none, so the key changes
    # nothing (cache_config's "auto", the model dtype, stands)
    cfg = {**spec_config("ai21labs/Jamba-v0.1"), "mamba_ssm_dtype": "float32"}
    r32 = estimate(build_spec(cfg), Deployment(**H100, tensor_parallel_size=2, max_model_len=8192,
                                               kv_cache_memory_bytes=10 * GiB, vllm_version="0.19.0"))
    assert r32.kv.block_size == r.kv.block_size == 80


def spec_config(name: str) -> dict:
    from gpuplan.catalog import find_model

    return dict(find_model(name).hf_config)


def test_sliding_window_needs_window_plus_batch_tokens_per_request():
    spec = gpuplan.load_model("google/gemma-2-2b")
    dep = Deployment(**H100, max_model_len=8192, kv_cache_memory_bytes=10 * GiB, vllm_version="0.19.0",
                     gpu_memory_utilization=0.95)
    r = estimate(spec, dep)
    sw = next(g for g in r.kv.groups if g.kind == "sliding_window")
    full = next(g for g in r.kv.groups if g.kind == "full")
    assert full.blocks_per_request == 512
    assert sw.blocks_per_request == -(-min(4095 + 8192, 8192) // 16) + 1  # gt088: 81.73x at 8192


def test_async_scheduling_doubles_the_window_need_from_028():
    spec = gpuplan.load_model("google/gemma-3-27b-it")
    kw = dict(**H100, max_model_len=131072, kv_cache_memory_bytes=20 * GiB, max_num_batched_tokens=8192)
    old = estimate(spec, Deployment(vllm_version="0.25.0", **kw))
    new = estimate(spec, Deployment(vllm_version="0.28.0", **kw))
    sw_old = next(g for g in old.kv.groups if g.kind == "sliding_window")
    sw_new = next(g for g in new.kv.groups if g.kind == "sliding_window")
    assert sw_old.blocks_per_request == 6 * (-(-(1023 + 8192) // 16) + 1)
    assert sw_new.blocks_per_request == 6 * (-(-(1023 + 16384) // 16) + 1)


def test_kv_dtype_fp8_halves_the_page_and_doubles_tokens():
    spec = gpuplan.load_model("meta-llama/Llama-3.1-8B")
    base = Deployment(**H100, max_model_len=8192, kv_cache_memory_bytes=40 * GiB)
    assert estimate(spec, base).kv.bytes_per_block == 2 * estimate(spec, base.with_(kv_cache_dtype="fp8")).kv.bytes_per_block


def test_v0_allocates_windows_full_length_and_caps_by_tokens():
    spec = gpuplan.load_model("google/gemma-2-2b")
    r = estimate(spec, Deployment(**H100, max_model_len=8192, vllm_version="0.6.6", kv_cache_memory_bytes=10 * GiB))
    assert not r.kv.hybrid_manager and r.kv.num_groups == 1
    assert r.kv_cache_tokens == r.num_gpu_blocks * 16


@pytest.mark.parametrize("bad", ["fp4", "int8"])
def test_unknown_kv_dtype_is_refused_with_the_accepted_values(bad):
    from gpuplan.errors import GpuplanError

    with pytest.raises(GpuplanError) as e:
        gpuplan.estimate("meta-llama/Llama-3.1-8B", gpu="H100", kv_cache_dtype=bad)
    assert e.value.field == "kv_cache_dtype" and "fp8" in e.value.accepted


def test_unknown_model_type_with_standard_fields_falls_back_and_says_so():
    cfg = {"model_type": "brand_new_lm", "hidden_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 8,
           "vocab_size": 32000, "intermediate_size": 2048}
    spec = build_spec(cfg)
    assert spec.generic and any("generic" in n for n in spec.notes)


def test_a_config_that_cannot_be_interpreted_is_an_error_not_a_guess():
    from gpuplan.errors import ConfigError

    with pytest.raises(ConfigError):
        build_spec({"model_type": "mystery", "hidden_size": 1024})


def test_layers_that_share_another_layers_kv_store_nothing():
    from gpuplan.catalog import find_model

    rec = find_model("google/gemma-4-26B-A4B")
    if rec is None:
        pytest.skip("gemma-4 not in the catalog")
    cfg = dict(rec.hf_config)
    text = dict(cfg["text_config"])
    n = text["num_hidden_layers"]
    shared = {**cfg, "text_config": {**text, "num_kv_shared_layers": 10}}
    dep = Deployment(**H100, max_model_len=8192, kv_cache_memory_bytes=10 * GiB, vllm_version="0.19.0")
    full = estimate(build_spec(cfg), dep)
    less = estimate(build_spec(shared), dep)
    assert sum(g.num_layers for g in less.kv.groups) == sum(g.num_layers for g in full.kv.groups) - 10 < n
