"""Gemma-4 E-series and Gemma-3n: per-layer embeddings, AltUp / Laurel, double-wide MLPs and KV-shared layers.

Fixtures: tests/fixtures/oracle/families/{gemma4,gemma3n}.json, transformers 5.23's exact counts on the meta
device and vLLM 0.32's own KV planning for the same configs (how each was obtained is in the file's _meta).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.engines.vllm import kv as K
from gpuplan.engines.vllm.profiles import get_profile
from gpuplan.engines.vllm.weights import Sharding, stage_weights
from gpuplan.model.adapters import build_spec

FAMILIES = Path(__file__).parent / "fixtures" / "oracle" / "families"
GEMMA4 = json.loads((FAMILIES / "gemma4.json").read_text())
GEMMA3N = json.loads((FAMILIES / "gemma3n.json").read_text())
CASES = [(m, fx) for src in (GEMMA4, GEMMA3N) for m, fx in src.items() if m != "_meta"]
DATA = Path(__file__).parents[1] / "src" / "gpuplan" / "data" / "models"


@pytest.mark.parametrize("model,fx", CASES, ids=[m for m, _ in CASES])
def test_e_series_and_gemma3n_count_exactly_what_transformers_builds(model: str, fx: dict) -> None:
    spec = build_spec(fx["config"])
    assert not spec.generic
    assert spec.total_params == fx["total_params"]
    assert build_spec(fx["config"]["text_config"]).total_params == fx["text_params"]


def test_gemma4_e4b_counts_its_per_layer_embeddings() -> None:
    fx = GEMMA4["gemma-4-E4B-it"]
    spec = build_spec(fx["config"])
    t = fx["config"]["text_config"]
    ple = {x.name: x for x in spec.embedding}["model.embed_tokens_per_layer.weight"]
    assert ple.shape == (t["vocab_size_per_layer_input"], t["num_hidden_layers"] * t["hidden_size_per_layer_input"])
    assert all(any("per_layer_input_gate" in x.name for x in layer.tensors) for layer in spec.layers)


def test_gemma4_e2b_doubles_the_mlp_of_its_kv_shared_layers() -> None:
    spec = build_spec(GEMMA4["gemma-4-E2B-it"]["config"])
    widths = [layer.mlp.intermediate_size for layer in spec.layers]
    assert widths == [6144] * 15 + [12288] * 20


@pytest.mark.parametrize("model", ["gemma-4-E2B-it", "gemma-4-E4B-it"])
def test_kv_shared_layers_get_no_kv_cache_as_in_vllm(model: str) -> None:
    """vLLM gives the last num_kv_shared_layers layers a kv_sharing_target_layer_name and no cache
    (vllm/model_executor/models/gemma4.py: Gemma4Attention); pages and groups equal vLLM's own planning."""
    fx = GEMMA4[model]
    spec = build_spec(fx["config"])
    ctx = K.KVContext(tp=1, kv_bytes=2, kv_cache_dtype="auto", model_dtype_bytes=2, block_size=16,
                      max_model_len=8192, mnbt=8192, in_flight_factor=1, hybrid_manager=True,
                      compute_capability=9.0)
    plan = K.plan_for(spec, 0, spec.num_layers, ctx, 2, get_profile("0.19.0"))
    want = fx["vllm_kv"]
    assert sum(n for _, n, _ in plan.types) == want["num_kv_layers"]
    assert (plan.num_groups, plan.group_size, plan.bytes_per_block) == (
        want["groups"], want["group_size"], want["bytes_per_block"])
    assert int(40e9 // plan.bytes_per_block) == want["num_blocks_at_40e9"]


def test_gemma3n_keeps_one_kv_cache_per_unshared_layer() -> None:
    spec = build_spec(GEMMA3N["gemma-3n-E4B-it"]["config"])
    assert sum(layer.attention.needs_kv for layer in spec.layers) == 35 - 15


def test_vllm_holds_more_than_transformers_counts_for_an_e_series_model() -> None:
    """Before 0.30 vLLM keeps the K/V slots of the shared layers' qkv_proj (loaded from the checkpoint, which
    transformers drops); from 0.30 those layers build only q_proj (models/gemma4.py, gemma3n.py). The multimodal
    wrapper pre-allocates per_layer_embeddings [max_num_batched_tokens, layers, ple] (models/gemma4_mm.py)."""
    fx = GEMMA4["gemma-4-E2B-it"]
    spec = build_spec(fx["config"])
    t = fx["config"]["text_config"]
    hidden, hd, kv_heads = t["hidden_size"], t["head_dim"], t["num_key_value_heads"]
    ghd = 512
    shared = spec.layers[-t["num_kv_shared_layers"]:]
    extra = sum(2 * kv_heads * (ghd if layer.attention.kind == "full" else hd) * hidden
                + (ghd if layer.attention.kind == "full" else hd) for layer in shared)
    for version, kv_slots in (("0.29.0", extra), ("0.30.0", 0), ("0.33.0", 0)):
        w = stage_weights(spec, Sharding(1, 1, 1), None, 2, 1, mla_absorbed=False, mnbt=8192,
                          at_least=get_profile(version).at_least)[0]
        by = dict(w.by_kind)
        assert by["buffers"] == 8192 * t["num_hidden_layers"] * t["hidden_size_per_layer_input"] * 2
        held = w.total - by["buffers"] - by["rope_cache"]
        assert held == (fx["total_params"] + kv_slots) * 2, version
    assert extra > 0


def test_the_audio_tower_is_loaded_when_the_config_has_one() -> None:
    fx = GEMMA4["gemma-4-E4B-it"]
    counts = build_spec(fx["config"]).param_counts()
    m = fx["by_module"]
    assert counts["vision"] == m["vision_tower"] + m["audio_tower"]
    assert counts["projector"] == m["embed_vision"] + m["embed_audio"]


@pytest.mark.parametrize("name", ["google__gemma-4-26B-A4B", "nvidia__Gemma-4-31B-IT-NVFP4"])
def test_big_gemma4_models_have_no_per_layer_embeddings(name: str) -> None:
    cfg = json.loads((DATA / f"{name}.json").read_text())["hf_config"]
    spec = build_spec(cfg)
    names = [x.name for x in spec.embedding] + [x.name for layer in spec.layers for x in layer.tensors]
    assert not any("per_layer" in n for n in names)
    assert not spec.token_buffers
    assert all(layer.attention.needs_kv for layer in spec.layers)


@pytest.mark.parametrize("name", ["google__gemma-4-26B-A4B", "nvidia__Gemma-4-31B-IT-NVFP4"])
def test_gemma4_towers_stay_whole_on_every_tensor_parallel_rank(name: str) -> None:
    # gemma4_mm.py builds the vision tower with transformers' AutoModel and embed_vision as a ReplicatedLinear.
    spec = build_spec(json.loads((DATA / f"{name}.json").read_text())["hf_config"])
    by_tp = [dict(stage_weights(spec, Sharding(tp, tp, 1), None, 2, 1, mla_absorbed=False)[0].by_kind)
             for tp in (1, 2)]
    assert by_tp[1]["vision"] == by_tp[0]["vision"] > 0
    assert by_tp[1]["projector"] == by_tp[0]["projector"] > 0


def test_gemma4_full_layers_cache_rotary_cos_sin_over_the_whole_512_wide_head() -> None:
    """Gemma-4's full layers use "proportional" RoPE with partial_rotary_factor 0.25, which vLLM (0.19+) builds as
    Gemma4RotaryEmbedding (rotary_embedding/gemma4_rope.py): the unrotated frequencies are zero-padded and the
    cos/sin cache spans the whole global head, rotary_dim = head_size = 512, not 512 x 0.25 = 128. At 262,144
    positions in bf16 that table is 262,144 x 512 x 2 = 268,435,456 bytes (256 MiB), 192 MiB more than a 128-wide
    one; the sliding layers' default RoPE keeps its 256-wide table. (gemma-4-26B-A4B's logged 48.5 GiB of weights:
    48.47 with it, 48.28 without.)"""
    cfg = json.loads((DATA / "google__gemma-4-26B-A4B.json").read_text())["hf_config"]
    widths = sorted(rc.rotary_dim for rc in build_spec(cfg).rope_caches)
    assert widths == [256, 512]
    partial = {**cfg, "text_config": {**cfg["text_config"], "rope_parameters": {
        **cfg["text_config"]["rope_parameters"],
        "full_attention": {"rope_type": "default", "partial_rotary_factor": 0.25, "rope_theta": 1e6}}}}
    assert sorted(rc.rotary_dim for rc in build_spec(partial).rope_caches) == [128, 256]


def test_gemma4_is_a_multimodal_start_whose_text_only_mode_leaves_the_towers_unbuilt() -> None:
    """gemma4_mm.py marks the vision (and audio) tower as towers (_mark_tower_model, 0.19+): --language-model-only
    builds neither, and the profile run then holds no encoder cache; with them on, V1's profile run keeps the
    encoder cache and the input embeddings beside the language model's pass (the calibrated multimodal term)."""
    import gpuplan

    kw = dict(gpu="H100", max_model_len=32768, max_num_batched_tokens=8192, vllm_version="0.19.1")
    full = gpuplan.estimate("google/gemma-4-26B-A4B", **kw)
    text = gpuplan.estimate("google/gemma-4-26B-A4B", **kw, language_model_only=True)
    spec = build_spec(json.loads((DATA / "google__gemma-4-26B-A4B.json").read_text())["hf_config"])
    assert spec.multimodal is not None and spec.multimodal.tokens_per_item == 280
    towers = sum(t.numel for t in spec.extra) * 2
    assert full.weights_bytes - text.weights_bytes == towers
    # multimodal_factor 2.0 (calibration.json) x 8192 tokens x 2816 x 2 bytes
    assert full.activation_peak_bytes - text.activation_peak_bytes == 2 * 8192 * 2816 * 2
    assert any("text only (--language-model-only)" in w for w in text.warnings)
