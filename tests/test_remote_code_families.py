"""Qwen 1.0, ChatGLM2/3, GLM-4-9B and Baichuan2 ship remote code on the Hub, but vLLM builds them with its own
classes (vllm/model_executor/models/{qwen,chatglm,baichuan}.py, 0.19). gpuplan reads their configs with the
same layouts and never runs the remote code.

Fixture: tests/fixtures/oracle/families/remote_code.json (configs with their sources, and the tensor sums
derived from vLLM's layouts, which equal the published model sizes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec
from gpuplan.units import GiB

MODELS = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "remote_code.json").read_text())[
    "models"]
H100 = dict(gpu_name="H100", gpu_memory_bytes=85_029_158_912, vllm_version="0.19.0")


def _spec(key: str):
    return build_spec(MODELS[key]["config"])


@pytest.mark.parametrize("key", sorted(MODELS))
def test_each_checkpoint_counts_its_published_size_without_the_generic_fallback(key: str) -> None:
    spec = _spec(key)
    assert not spec.generic
    assert spec.total_params == MODELS[key]["hf_params"]


def test_qwen_7b_mlp_is_half_its_intermediate_size_wide() -> None:
    # QWenBlock builds QWenMLP(hidden, intermediate_size // 2): the generic reading would give 12.0B, not 7.7B.
    for key in ("Qwen/Qwen-7B", "Qwen/Qwen-7B-Chat"):
        spec = _spec(key)
        assert spec.layers[0].mlp.intermediate_size == 11008
        mlp = sum(t.numel for t in spec.layers[0].tensors if t.kind == "mlp")
        assert mlp == 3 * 4096 * 11008


def test_qwen_7b_first_release_is_limited_to_its_seq_length_of_2048() -> None:
    # vLLM takes the smallest length key present: n_positions 8192, seq_length 2048.
    r = estimate(_spec("Qwen/Qwen-7B"), Deployment(**H100, kv_cache_memory_bytes=GiB))
    assert r.max_model_len == 2048
    chat = estimate(_spec("Qwen/Qwen-7B-Chat"), Deployment(**H100, kv_cache_memory_bytes=GiB))
    assert chat.max_model_len == 8192


def test_glm_4_9b_chat_caches_two_kv_groups_and_replicates_them_beyond_tp2() -> None:
    spec = _spec("THUDM/glm-4-9b-chat")
    assert spec.num_kv_heads == 2 and spec.vocab_size == 151552
    for tp, heads_per_gpu in ((1, 2), (2, 1), (4, 1)):
        r = estimate(spec, Deployment(**H100, tensor_parallel_size=tp, max_model_len=32768,
                                      kv_cache_memory_bytes=GiB))
        assert r.kv.bytes_per_token == 2 * 40 * heads_per_gpu * 128 * 2
    r = estimate(spec, Deployment(**H100, kv_cache_memory_bytes=GiB))
    assert r.max_model_len == 131072  # seq_length
    # RoPE covers half of each 128-wide head (partial_rotary_factor 0.5 in chatglm.py)
    assert [(c.positions, c.rotary_dim) for c in spec.rope_caches] == [(131072, 64)]


def test_chatglm_with_layernorm_and_linear_biases_counts_their_bias_vectors() -> None:
    cfg = {**MODELS["THUDM/chatglm3-6b"]["config"], "rmsnorm": False, "add_bias_linear": True}
    base = _spec("THUDM/chatglm3-6b").total_params
    # per layer: 2 LayerNorm biases, the dense bias, both halves of dense_h_to_4h and dense_4h_to_h; final norm
    extra = 28 * (2 * 4096 + 4096 + 2 * 13696 + 4096) + 4096
    assert build_spec(cfg).total_params == base + extra


def test_glm_4v_and_the_first_chatglm_are_refused_rather_than_guessed() -> None:
    with pytest.raises(ConfigError, match="vision"):
        build_spec({**MODELS["THUDM/glm-4-9b-chat"]["config"], "vision_config": {"hidden_size": 1792}})
    with pytest.raises(ConfigError, match="ChatGLM-6B"):
        build_spec({"model_type": "chatglm", "hidden_size": 4096, "inner_hidden_size": 16384, "num_layers": 28,
                    "num_attention_heads": 32, "vocab_size": 130528})


def test_baichuan2_13b_uses_alibi_and_7b_rope() -> None:
    assert _spec("baichuan-inc/Baichuan2-13B-Chat").rope_caches == ()
    assert [(c.positions, c.rotary_dim) for c in _spec("baichuan-inc/Baichuan2-7B-Chat").rope_caches] == [(4096, 128)]
    r = estimate(_spec("baichuan-inc/Baichuan2-13B-Chat"), Deployment(**H100, kv_cache_memory_bytes=GiB))
    assert r.max_model_len == 4096  # model_max_length, the only length key in its config
    assert r.kv.bytes_per_token == 2 * 40 * 40 * 128 * 2


@pytest.mark.parametrize("version, warned", [("0.23.0", False), ("0.24.0", True), ("0.33.0", True)])
def test_baichuan2_on_a_vllm_that_dropped_it_says_so_and_names_the_last_release(version: str, warned: bool) -> None:
    # vLLM 0.24 moved BaichuanForCausalLM to _PREVIOUSLY_SUPPORTED_MODELS ("supported until v0.23.0").
    r = estimate(_spec("baichuan-inc/Baichuan2-7B-Chat"),
                 Deployment(**{**H100, "vllm_version": version}, max_model_len=4096))
    notes = [w for w in r.warnings if "dropped its own BaichuanForCausalLM after v0.23.0" in w]
    assert bool(notes) == warned
    if warned:
        assert "--vllm-version 0.23.0" in notes[0]


def test_architectures_vllm_still_builds_get_no_such_warning() -> None:
    r = estimate(_spec("Qwen/Qwen-7B-Chat"), Deployment(**{**H100, "vllm_version": "0.23.0"}, max_model_len=2048))
    assert not any("dropped its own" in w for w in r.warnings)
