"""AFMoE (Arcee Trinity) as vLLM builds it (models/afmoe.py): gated attention with q/k norms, 3:1 sliding:full
layers, fp32 router and expert bias, shared experts (tests/fixtures/oracle/families/afmoe.json)."""

from __future__ import annotations

import json
from pathlib import Path

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "afmoe.json").read_text())
MODEL = FX["models"]["afmoe/default"]
META = MODEL["vllm_meta"]


def _run(**kw):
    spec = build_spec(MODEL["config"])
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.32.0", block_size=16,
                     max_model_len=META["max_model_len"], kv_cache_memory_bytes=META["kv_budget_bytes"], **kw)
    return spec, estimate(spec, dep)


def test_trinity_counts_what_transformers_and_vllm_build() -> None:
    spec, r = _run()
    assert not spec.generic
    assert spec.total_params == MODEL["hf_params"] == META["params"]
    # vLLM's parameter bytes (fp32 router and expert bias included) plus the rotary cache it keeps as a buffer:
    # 16,384 positions x 128 dimensions in bf16, for the sliding layers (full layers use no position encoding).
    assert r.weights_bytes == META["bytes"] + 16384 * 128 * 2


def test_trinity_kv_pages_and_groups_are_vllms() -> None:
    spec, r = _run()
    assert spec.attention_kinds == {"sliding_window": 24, "full": 8}
    assert r.kv.bytes_per_block == META["bytes_per_block"]
    assert r.num_gpu_blocks == META["num_blocks"]
    assert r.kv.num_groups == len(META["groups"])


def test_trinity_without_sliding_layers_has_no_rotary_cache() -> None:
    cfg = {**MODEL["config"], "layer_types": ["full_attention"] * MODEL["config"]["num_hidden_layers"]}
    assert build_spec(cfg).rope_caches == ()
