"""Seed 002's estimator: sizes parsed from names, and configs whose parameter count hits the target."""

from __future__ import annotations

import pytest

from gpuplan.arch_estimate import config_from_params, llama_param_count, params_from_name
from gpuplan.catalog import list_models

LLAMA_LIKE = {"llama", "mistral", "qwen2", "qwen3"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("foo-13b", 13e9),
        ("7B", 7e9),
        ("1.5b", 1.5e9),
        ("70b-instruct", 70e9),
        ("350m", 350e6),
        ("meta-llama/Llama-3.1-8B-Instruct", 8e9),
        ("Qwen3-30B-A3B", 30e9),  # the A3B active-parameter tag is not the size
        ("stablelm-2-1_6b", 1.6e9),
        ("Llama 2 7B", 7e9),
    ],
)
def test_params_from_name(name: str, expected: float) -> None:
    assert params_from_name(name) == pytest.approx(expected)


def test_moe_names_count_shared_weights_once() -> None:
    # Mixtral-8x7B has 46.7B parameters, not 8 x 7 = 56B: only the FFN is replicated per expert.
    assert params_from_name("Mixtral-8x7B") == pytest.approx(46.7e9, rel=0.01)
    assert params_from_name("mixtral-8x22b") == pytest.approx(140.6e9, rel=0.05)


@pytest.mark.parametrize("name", ["gpt-4", "phi-2", "claude-3-opus", "model-8bit", ""])
def test_params_from_name_none_without_size(name: str) -> None:
    assert params_from_name(name) is None


def _llama_like_exact_entries():
    return [
        e for e in list_models() if e.exact and e.total_params and e.hf_config.get("model_type") in LLAMA_LIKE
    ]


def test_param_count_formula_matches_catalog_totals() -> None:
    entries = _llama_like_exact_entries()
    assert len(entries) >= 30
    for entry in entries:
        assert llama_param_count(entry.hf_config) == entry.total_params, entry.id


@pytest.mark.parametrize("entry", _llama_like_exact_entries(), ids=lambda e: e.id)
def test_config_from_true_total_is_within_10_percent(entry) -> None:
    config = config_from_params(entry.total_params, entry.id)
    assert llama_param_count(config) == pytest.approx(entry.total_params, rel=0.10)


@pytest.mark.parametrize(
    "params", [70e6, 350e6, 1e9, 3e9, 7e9, 13e9, 34e9, 70e9, 123e9, 180e9, 405e9, 1.8e12]
)
def test_config_shape_is_sane(params: float) -> None:
    c = config_from_params(params, "x")
    assert c["model_type"] == "llama"
    assert c["hidden_size"] % 128 == 0 and c["intermediate_size"] % 256 == 0
    assert c["num_attention_heads"] * c["head_dim"] == c["hidden_size"]
    assert c["num_attention_heads"] % c["num_key_value_heads"] == 0
    assert c["num_key_value_heads"] in (1, 2, 4, 8)  # as open GQA models have
    assert llama_param_count(c) == pytest.approx(params, rel=0.10)
    if params >= 7e9:  # whole groups of 8 heads: 8 KV heads, and TP 2/4/8 split evenly
        assert c["num_attention_heads"] % 8 == 0 and c["num_key_value_heads"] == 8


@pytest.mark.parametrize("entry", [e for e in list_models() if not e.exact and e.total_params], ids=lambda e: e.id)
def test_a_closed_model_stand_in_splits_over_eight_gpus(entry) -> None:
    """'How many H100s would a GPT-4-sized model need?' gets an answer at TP=8, not a head-count refusal."""
    from gpuplan.api_python import estimate

    tp = 8 if entry.total_params >= 7e9 else 2
    r = estimate(entry.id, gpu="H100", tensor_parallel_size=tp, allow_network=False)
    assert r.weights_bytes > 0
    assert entry.hf_config["num_key_value_heads"] % 2 == 0


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_config_rejects_non_positive(bad: float) -> None:
    with pytest.raises(ValueError):
        config_from_params(bad)
