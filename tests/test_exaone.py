"""EXAONE 4.0 and 4.5 as vLLM builds them (models/exaone4.py, exaone4_5.py): q/k norms, a 4096-token window on
three of every four layers, and (4.5) a Qwen2.5-VL tower with grouped K/V heads
(tests/fixtures/oracle/families/exaone.json)."""

from __future__ import annotations

import json
from pathlib import Path

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

MODELS = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "exaone.json").read_text())["models"]
E4, E45 = MODELS["EXAONE-4.0-32B-shaped"], MODELS["EXAONE-4.5-33B-shaped"]


def test_exaone_4_counts_and_caches_what_vllm_builds() -> None:
    meta = E4["vllm_meta"]
    spec = build_spec(E4["config"])
    r = estimate(spec, Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.32.0", block_size=16,
                                  max_model_len=meta["max_model_len"], kv_cache_memory_bytes=meta["kv_budget_bytes"]))
    assert not spec.generic
    assert spec.total_params == E4["hf_params"] == meta["params"]
    # parameters plus one llama3 rotary cache: 131,072 positions x 128 dims in bf16
    assert r.weights_bytes == meta["bytes"] + 131072 * 128 * 2
    assert r.kv.bytes_per_block == meta["bytes_per_block"]
    assert r.num_gpu_blocks == meta["num_blocks"]
    assert r.kv.num_groups == len(meta["groups"])


def test_exaone_4_windows_three_of_every_four_layers_from_its_pattern_alone() -> None:
    # sliding_window_pattern 4 without layer_types: layers 3, 7, ... are global, as transformers derives them
    spec = build_spec(E4["config"])
    assert spec.attention_kinds == {"sliding_window": 48, "full": 16}
    assert [layer.attention.kind for layer in spec.layers[:4]] == ["sliding_window"] * 3 + ["full"]
    lettered = build_spec({**E4["config"], "sliding_window_pattern": "LLLG"})
    assert [layer.attention.kind for layer in lettered.layers[:8]] == (["sliding_window"] * 3 + ["full"]) * 2


def test_exaone_4_5_counts_its_text_model_and_grouped_kv_vision_tower() -> None:
    spec = build_spec(E45["config"])
    assert not spec.generic
    assert spec.total_params == E45["hf_params"]
    assert sum(t.numel for t in spec.extra if t.kind == "vision") == E45["hf_visual_params"]
    assert spec.attention_kinds == {"sliding_window": 48, "full": 16}


def test_exaone_4_5_reads_a_vocab_size_kept_only_at_the_top_level() -> None:
    cfg = json.loads(json.dumps(E45["config"]))
    del cfg["text_config"]["vocab_size"]
    assert build_spec(cfg).total_params == E45["hf_params"]
