"""Meta Muse Glimmer (muse_glimmer) as vLLM builds it (models/muse_glimmer.py): 52 layers, 3 sliding (2048) : 1
full, an output gate as wide as q, four norms per layer, an untied LM head, and a vision tower vLLM builds whenever
the config has a vision_config (tests/fixtures/oracle/families/muse_glimmer.json, config source inside)."""

from __future__ import annotations

import json
from pathlib import Path

from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "muse_glimmer.json").read_text())
MUSE = FX["models"]["muse_glimmer/Muse-Glimmer-30B"]
META = MUSE["vllm_meta"]
TOWER = 1_921_845_760  # encoder 1,852,639,744 + adapter 41,943,040 + projection 27,262,976 (fixture notes)
ROPE = 131072 * 128 * 2


def _oracle_run():
    spec = build_spec(MUSE["config"], "meta-models/Muse-Glimmer-30B")
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.32.0", block_size=16,
                     max_model_len=META["max_model_len"], kv_cache_memory_bytes=META["kv_budget_bytes"])
    return spec, estimate(spec, dep)


def test_muse_glimmer_30b_counts_its_vision_tower_as_vllm_loads_it() -> None:
    spec, _ = _oracle_run()
    assert not spec.generic
    assert spec.total_params == MUSE["hf_params"] == META["params"] == 29_776_626_688
    counts = spec.param_counts()
    assert counts["vision"] + counts["projector"] == TOWER


def test_muse_glimmer_text_only_config_has_no_tower() -> None:
    # A flat muse_glimmer_text config (MuseGlimmerForCausalLM) carries no vision_config, so vLLM builds no tower.
    text = {**MUSE["config"]["text_config"], "architectures": ["MuseGlimmerForCausalLM"]}
    spec = build_spec(text)
    assert spec.total_params == META["params"] - TOWER
    assert spec.multimodal is None


def test_muse_glimmer_weights_at_tp1_are_vllms_bytes_plus_its_rotary_cache() -> None:
    _, r = _oracle_run()
    assert r.weights_bytes == META["bytes"] + ROPE


def test_muse_glimmer_kv_is_39_sliding_and_13_full_layers_of_2_kv_heads() -> None:
    spec, r = _oracle_run()
    assert spec.attention_kinds == {"sliding_window": 39, "full": 13}
    assert {a.window for a in (layer.attention for layer in spec.layers)} == {2048, None}
    assert r.kv.bytes_per_block == META["bytes_per_block"] == 13 * 16 * 2 * 128 * 2 * 2
    assert r.num_gpu_blocks == META["num_blocks"]
    assert r.kv.num_groups == len(META["groups"]) == 4


def test_muse_glimmer_on_two_h100s_by_hand() -> None:
    """Per rank at TP=2 (bf16):
    embedding + LM head 2 x 202048/2 x 6656; final norm 6656;
    52 x (q and gate 2 x 2048 x 6656, k and v 1 KV head x 128 x 6656, o 6656 x 2048, four norms 4 x 6656,
    MLP 3 x 9984 x 6656); rotary cache 131072 x 128;
    tower: q/k/v/o with their biases (except o's) halved, 50 x (4 x 1536^2 + 3 x 1536) / 2; the rest whole:
    50 x (o bias, two LayerNorms, fc1 and fc2 with biases) + patch Linear 1176 x 1536 + 1024 x 1536 positions
    + ln_pre/ln_post, adapter 6144 x 4096 + 4096 x 4096 and projection 4096 x 6656.
    = 31,261,328,384 bytes."""
    spec = build_spec(MUSE["config"], "meta-models/Muse-Glimmer-30B")
    r = estimate_on(spec, gpu="H100", tensor_parallel_size=2, max_model_len=131072)
    assert r.weights_bytes == 31_261_328_384
    assert r.fits
