"""Nemotron and Apertus: Llama-shaped, but the MLP is up -> activation -> down with no gate
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


def test_nemotron_mini_weights_and_kv_blocks_are_vllms() -> None:
    fx = MODELS["nvidia/Nemotron-Mini-4B-Instruct"]
    meta = fx["vllm_meta"]
    spec = build_spec(fx["config"])
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.32.0", block_size=16,
                     max_model_len=meta["max_model_len"], kv_cache_memory_bytes=meta["kv_budget_bytes"])
    r = estimate(spec, dep)
    assert spec.total_params == meta["params"]
    assert r.kv.bytes_per_block == meta["bytes_per_block"]
    assert r.num_gpu_blocks == meta["num_blocks"]
    # partial_rotary_factor 0.5: RoPE over 64 of each head's 128 dimensions
    assert spec.rope_caches[0].rotary_dim == 64
