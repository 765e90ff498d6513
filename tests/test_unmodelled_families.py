"""vLLM 0.33 families whose KV layout gpuplan cannot plan yet are refused by name, not sized as a plain decoder.

Their configs carry the standard fields, so the generic fallback would answer, confidently and wrongly (QSA rings,
compressed caches, block-outermost packed groups). The list and its reasons live in data/unmodelled_model_types.json.
Every family listed there has an adapter now (DeepSeek-V4.1 was the last), so the refusal path is exercised with a
stand-in entry patched into the list.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from gpuplan.api.app import create_app
from gpuplan.cli import main
from gpuplan.datafiles import data_json
from gpuplan.errors import ConfigError
from gpuplan.model import adapters
from gpuplan.model.adapters import ADAPTERS, build_spec

# The fields of transformers 5.23's default Qwen4ExpTextConfig that matter here: hybrid layer types and the MoE.
QWEN4_EXP_TEXT = {
    "model_type": "qwen4_exp_text", "architectures": ["Qwen4ExpForCausalLM"], "hidden_size": 2560,
    "num_hidden_layers": 40, "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
    "vocab_size": 248320, "intermediate_size": 512, "num_experts": 512, "num_experts_per_tok": 10,
    "layer_types": ["linear_attention", "linear_attention", "linear_attention", "indexed_attention"] * 10,
}
UNMODELLED = data_json("unmodelled_model_types.json")["types"]
# A stand-in for a family vLLM serves and gpuplan cannot plan yet, with the same standard fields.
STAND_IN = {"future_family": "its compressed caches are not read (stand-in entry)"}
REFUSED = {**QWEN4_EXP_TEXT, "model_type": "future_family"}


@pytest.fixture(autouse=True)
def _listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapters, "_unmodelled_types", lambda: {**UNMODELLED, **STAND_IN})


@pytest.mark.parametrize("model_type", sorted({**UNMODELLED, **STAND_IN}))
def test_an_unmodelled_family_is_refused_with_its_reason(model_type: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_spec({**QWEN4_EXP_TEXT, "model_type": model_type})
    assert err.value.field == "model_type"
    assert "not modelled yet" in str(err.value) and {**UNMODELLED, **STAND_IN}[model_type] in str(err.value)


def test_no_family_is_both_refused_and_adapted() -> None:
    assert not set(UNMODELLED) & set(ADAPTERS)


def test_a_wrapper_whose_text_model_is_unmodelled_is_refused_too() -> None:
    inner = "future_family"
    wrapper = {"model_type": "some_new_wrapper", "architectures": ["SomeNewForConditionalGeneration"],
               "text_config": {**QWEN4_EXP_TEXT, "model_type": inner}}
    with pytest.raises(ConfigError, match=f"'{inner}' is not modelled yet"):
        build_spec(wrapper)


def test_an_unknown_family_still_falls_back_to_the_generic_decoder() -> None:
    spec = build_spec({**QWEN4_EXP_TEXT, "model_type": "brand_new_moe"})
    assert spec.generic and spec.is_moe


def test_the_cli_says_so_in_one_line_and_exits_non_zero(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(REFUSED))
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", str(path), "--gpu", "H100"])
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: model_type: 'future_family' is not modelled yet")


def test_the_api_answers_400_naming_the_field() -> None:
    client = TestClient(create_app(allow_network=False))
    r = client.post("/v1/estimate", json={"model": REFUSED, "gpu": "H100"})
    assert r.status_code == 400 and r.json()["field"] == "model_type"
    assert "not modelled yet" in json.dumps(r.json())
