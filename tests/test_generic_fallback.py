"""Model types without an adapter fall back to a generic decoder that says so, and MoE configs stay MoE.

Fixtures: transformers' default configs for MoE model_types gpuplan has no adapter for, with the parameter
count transformers builds for them (tests/fixtures/oracle/generic, made with the oracle venv).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.model.adapters import build_spec

GENERIC = sorted((Path(__file__).parent / "fixtures" / "oracle" / "generic").glob("*.json"))


@pytest.mark.parametrize("path", GENERIC, ids=[p.stem for p in GENERIC])
def test_an_unknown_moe_is_sized_as_a_moe_within_a_tenth_of_a_percent(path: Path) -> None:
    fx = json.loads(path.read_text())
    spec = build_spec(fx["config"])
    assert spec.generic and spec.is_moe
    assert any("not known to gpuplan" in n for n in spec.notes)
    assert spec.total_params == pytest.approx(fx["total_params"], rel=0.001)


DEFAULTS = sorted((Path(__file__).parent / "fixtures" / "oracle" / "defaults").glob("*.json"))


@pytest.mark.parametrize("path", DEFAULTS, ids=[p.stem for p in DEFAULTS])
def test_every_adapter_counts_transformers_default_config_exactly(path: Path) -> None:
    fx = json.loads(path.read_text())
    spec = build_spec(fx["config"])
    assert not spec.generic
    assert spec.total_params == fx["total_params"]


@pytest.mark.parametrize("name", ["qwen2_vl", "qwen2_5_vl"])
def test_qwen_vl_flat_configs_count_the_same_as_nested_ones(name: str) -> None:
    fx = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "defaults" / f"{name}.json").read_text())
    nested = fx["config"]
    flat = {**{k: v for k, v in nested.items() if k != "text_config"}, **nested["text_config"],
            "model_type": name}  # transformers 4 wrote the text fields at the top level
    spec = build_spec(flat)
    assert spec.total_params == fx["total_params"]
    assert spec.param_counts()["vision"] == fx["_meta"]["visual_params"]
