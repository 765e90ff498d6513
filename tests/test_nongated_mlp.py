"""Nemotron, Apertus, Arcee and Jais-2: Llama-shaped, but the MLP is up -> activation -> down with no gate
(tests/fixtures/oracle/families/nongated.json: configs, transformers counts, vLLM 0.32's own build)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "nongated.json").read_text())
MODELS = FIXTURE["models"]


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_counts_what_transformers_builds(model_id: str) -> None:
    spec = build_spec(MODELS[model_id]["config"], model_id)
    assert not spec.generic
    assert spec.total_params == MODELS[model_id]["hf_params"]


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_feed_forward_is_two_matrices_not_three(model_id: str) -> None:
    cfg = MODELS[model_id]["config"]
    spec = build_spec(cfg, model_id)
    mlp = [t for t in spec.layers[0].tensors if t.kind == "mlp" and t.linear]
    assert sum(t.numel for t in mlp) == 2 * cfg["hidden_size"] * cfg["intermediate_size"]


@pytest.mark.parametrize("model_id", sorted(k for k in MODELS if "vllm_meta" in MODELS[k]))
def test_weights_and_kv_blocks_are_vllms(model_id: str) -> None:
    fx = MODELS[model_id]
    meta = fx["vllm_meta"]
    spec = build_spec(fx["config"])
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.32.0", block_size=16,
                     max_model_len=meta["max_model_len"], kv_cache_memory_bytes=meta["kv_budget_bytes"])
    r = estimate(spec, dep)
    assert spec.total_params == meta["params"]
    assert r.kv.bytes_per_block == meta["bytes_per_block"]
    assert r.num_gpu_blocks == meta["num_blocks"]


def test_arcee_on_vllm_0_32_transformers_backend_has_no_rotary_cache_but_0_31_native_does() -> None:
    # vLLM 0.32 moved ArceeForCausalLM to its Transformers backend, which keeps transformers' rotary embedding
    # (cos/sin computed per step) instead of vLLM's cached table.
    spec = build_spec(MODELS["arcee/default"]["config"])
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, max_model_len=4096)
    backend = estimate(spec, dep.with_(vllm_version="0.32.0"))
    native = estimate(spec, dep.with_(vllm_version="0.31.0"))
    assert backend.weights_bytes == spec.total_params * 2 == MODELS["arcee/default"]["vllm_meta"]["bytes"]
    # 4096 positions x 80 rotary dims (head_dim 80) in bf16
    assert native.weights_bytes - backend.weights_bytes == 4096 * 80 * 2


def test_nemotron_rotates_half_of_each_head() -> None:
    # partial_rotary_factor 0.5: RoPE over 64 of each head's 128 dimensions
    spec = build_spec(MODELS["nvidia/Nemotron-Mini-4B-Instruct"]["config"])
    assert spec.rope_caches[0].rotary_dim == 64
