"""Mistral-format checkpoints (params.json, no config.json) are read as vLLM reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec
from gpuplan.model.adapters_mla import mistral_large_3_config
from gpuplan.model.mistral_params import config_from_mistral_params

FX = json.loads((Path(__file__).parent / "fixtures/oracle/families/mla.json").read_text())["models"]
LARGE_3 = FX["mistralai/Mistral-Large-3-675B-Instruct-2512"]
# Mistral-7B-v0.3's consolidated params.json; its HF config.json says the same with max_position_embeddings 32768.
MISTRAL_7B = {"dim": 4096, "n_layers": 32, "head_dim": 128, "hidden_dim": 14336, "n_heads": 32, "n_kv_heads": 8,
              "norm_eps": 1e-05, "vocab_size": 32768, "rope_theta": 1000000.0}
H100 = {"gpu": "H100", "max_model_len": 8192, "vllm_version": "0.33.0"}


def _dir(tmp_path: Path, params: dict) -> str:
    (tmp_path / "params.json").write_text(json.dumps(params))
    return str(tmp_path)


def test_a_mistral_large_3_directory_without_config_json_is_sized_from_params_json(tmp_path: Path) -> None:
    """The same bytes as the converted config that tests/test_mla.py pins to vLLM 0.32's own build."""
    from_dir = gpuplan.estimate(_dir(tmp_path, LARGE_3["params_json"]), **H100, tensor_parallel_size=8)
    spec = build_spec(mistral_large_3_config(LARGE_3["params_json"]), "mistralai/Mistral-Large-3-675B-Instruct-2512")
    from_config = gpuplan.estimate(spec, **H100, tensor_parallel_size=8)
    assert gpuplan.load_model(str(tmp_path)).model_type == "deepseek_v3"
    assert from_dir.weights_bytes == from_config.weights_bytes > 0
    assert from_dir.kv_cache_tokens == from_config.kv_cache_tokens
    assert any("params.json" in w for w in from_dir.warnings)


def test_mistral_7b_from_params_json_matches_its_config_json_but_for_the_rotary_cache(tmp_path: Path) -> None:
    """params.json states no max_position_embeddings, so vLLM takes 128,000, and the rotary cache (bf16 here)
    grows by (128,000 - 32,768) x 128 x 2 bytes; every other byte is the same."""
    mine = gpuplan.estimate(_dir(tmp_path, MISTRAL_7B), **H100)
    hf = gpuplan.estimate("mistralai/Mistral-7B-v0.3", **H100)
    assert mine.weights_bytes - hf.weights_bytes == (128_000 - 32_768) * 128 * 2
    assert gpuplan.load_model(str(tmp_path)).max_model_len_limit == 128_000


def test_a_moe_params_json_is_a_mixtral(tmp_path: Path) -> None:
    """Mixtral-8x7B's params.json layout: vLLM builds MixtralForCausalLM from its moe block."""
    params = {**MISTRAL_7B, "vocab_size": 32000, "moe": {"num_experts": 8, "num_experts_per_tok": 2}}
    cfg, _ = config_from_mistral_params(params)
    assert cfg["model_type"] == "mixtral" and cfg["num_local_experts"] == 8
    mine = gpuplan.estimate(_dir(tmp_path, params), **H100, tensor_parallel_size=2)
    hf = gpuplan.estimate("mistralai/Mixtral-8x7B-v0.1", **H100, tensor_parallel_size=2)
    assert mine.weights_bytes - hf.weights_bytes == (128_000 - 32_768) * 128 * 2


def test_a_sliding_window_list_becomes_layer_types() -> None:
    cfg, _ = config_from_mistral_params({**MISTRAL_7B, "sliding_window": [4096, 4096, 4096, None]})
    assert cfg["sliding_window"] == 4096 and cfg["layer_types"][:4] == ["sliding_attention"] * 3 + ["full_attention"]
    assert len(cfg["layer_types"]) == 32


@pytest.mark.parametrize("params, says", [
    ({**MISTRAL_7B, "vision_encoder": {"hidden_size": 1024}}, "vision or audio encoder"),
    ({"dim": 4096, "n_layers": 32, "n_heads": 32}, "vocab_size"),
    ({**MISTRAL_7B, "sliding_window": [4096, 2048]}, "several window sizes"),
    ({**MISTRAL_7B, "quantization": {"qformat_weight": "int4"}}, "fp8_e4m3"),
])
def test_params_json_it_cannot_read_is_a_clear_error(tmp_path: Path, params: dict, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as e:
        gpuplan.estimate(_dir(tmp_path, params), **H100)
    assert e.value.field == "params.json"
