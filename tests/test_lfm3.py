"""Liquid LFM3 / LFM3-VL: vLLM 0.33 cannot start them (no LFM3 class; the Transformers backend refuses the short-conv
layers), so gpuplan refuses them by name instead of sizing a model vLLM never builds
(tests/fixtures/oracle/families/lfm3.json: transformers 5.23 defaults)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_lfm3  # noqa: F401
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "lfm3.json").read_text())
MODELS = FX["models"]


@pytest.mark.parametrize("key", sorted(MODELS))
def test_can_i_serve_lfm3_on_vllm_says_no_instead_of_a_generic_guess(key: str) -> None:
    # Before: the generic fallback sized LFM3 as a plain decoder (1.646B for transformers' 1.729B) and planned its
    # conv layers as attention. vLLM 0.33 has no class to start, so there is no start-up to size.
    cfg = MODELS[key]["config"]
    assert MODELS[key]["hf_params"] > 1_700_000_000
    assert "conv" in json.dumps(cfg)  # the short-conv layers the Transformers backend cannot dispatch
    with pytest.raises(ConfigError, match="vLLM 0.33 cannot serve LFM3") as e:
        build_spec(cfg, key)
    assert "Transformers backend" in str(e.value)


def test_lfm2_is_still_sized_normally() -> None:
    # the refusal is LFM3's alone: an LFM2 config keeps its adapter (short-conv state + attention)
    cfg = {k: v for k, v in MODELS["lfm3/transformers-default"]["config"].items()
           if k not in ("layer_types", "rope_parameters", "sliding_window")}
    cfg.update(model_type="lfm2", architectures=["Lfm2ForCausalLM"], full_attn_idxs=[2, 6, 10, 14, 18, 22],
               block_auto_adjust_ff_dim=False, rope_theta=1_000_000.0)
    spec = build_spec(cfg, "lfm2")
    assert not spec.generic and spec.model_type == "lfm2"
