"""Intel AutoRound checkpoints (quant_method "auto-round"), which vLLM serves as its INC method: integer weights
through GPTQ-Marlin or AWQ-Marlin by packing_format, 8-bit block FP8 as FP8, only under block_name_to_quantize, and
extra_config entries of 16 bits or more left in the model dtype (vLLM 0.33 quantization/inc/inc.py and
config_parser.py; auto_round.py before 0.15, the same rules)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import ConfigError, GpuplanError
from gpuplan.model.adapters import build_spec
from gpuplan.model.quant_config import parse_quant_config

LOGS = Path(__file__).parent / "fixtures" / "vllm_logs" / "families_public.jsonl"
OMNI = next(json.loads(line)["hf_config"] for line in LOGS.read_text().splitlines()
            if json.loads(line)["id"] == "fam-103")  # Intel/Qwen2.5-Omni-7B-int4-AutoRound
GIB = 1 << 30


def _weights(config: dict, **dep) -> int:
    d = dict(gpu_name="RTX 4090", gpu_memory_bytes=25_756_172_288, max_model_len=8192, vllm_version="0.21.0",
             **dep)
    return estimate(build_spec(config, "test"), Deployment(**d)).weights_bytes


def test_the_intel_checkpoint_reads_as_4_bit_gptq_on_the_text_layers_only() -> None:
    q = parse_quant_config(OMNI["quantization_config"])
    assert (q.method, q.bits, q.group_size, q.desc_act, q.symmetric) == ("gptq", 4, 128, False, True)
    assert q.only == ("thinker.model.layers",) and q.origin == "auto-round"


def test_qwen2_5_omni_7b_autoround_quantizes_the_decoder_and_keeps_the_towers_and_head_in_bf16() -> None:
    """The same checkpoint config without its quantization block is the bf16 model: the difference is the 28
    decoder layers' linears going from 2 bytes to 4 bits plus one fp16 scale per 128 inputs, 0.516 bytes a weight.
    Those linears hold 28 x (3584 x (3584 + 2 x 512 + 3584) + 3 x 3584 x 18944) = 6,525,288,448 weights, so the
    saving is 6,525,288,448 x (2 - 0.515625) = 9,685,975,040 bytes (the q/k/v biases stay bf16 in both)."""
    bf16 = {k: v for k, v in OMNI.items() if k != "quantization_config"}
    assert _weights(bf16) - _weights(OMNI) == 9_685_975_040


def test_the_public_start_up_of_that_checkpoint_loads_what_gpuplan_says() -> None:
    """fam-103: vLLM 0.21.0 on an RTX 4090 logged 'Model loading took 7.75 GiB'."""
    assert abs(_weights(OMNI) / GIB - 7.75) / 7.75 < 0.015


def test_awq_packing_serves_through_awq_marlin() -> None:
    q = parse_quant_config({"quant_method": "auto-round", "bits": 4, "group_size": 128, "sym": False,
                            "packing_format": "auto_round:auto_awq"})
    assert (q.method, q.symmetric) == ("awq", False)


def test_block_fp8_reads_as_fp8_with_its_block() -> None:
    q = parse_quant_config({"quant_method": "auto-round", "bits": 8, "data_type": "fp", "group_size": [128, 128]})
    assert (q.method, q.weight_block) == ("fp8", (128, 128))


def test_a_16_bit_extra_config_entry_stays_in_the_model_dtype() -> None:
    """lm_head-style overrides are common; a mixed 2/4/8-bit recipe is refused rather than guessed."""
    q = parse_quant_config({"quant_method": "auto-round", "bits": 4, "group_size": 128,
                            "extra_config": {"model.layers.0.mlp.down_proj": {"bits": 16}}})
    assert "model.layers.0.mlp.down_proj" in q.ignore
    with pytest.raises(ConfigError) as e:
        parse_quant_config({"quant_method": "auto-round", "bits": 4, "group_size": 128,
                            "extra_config": {"model.layers.0.mlp.down_proj": {"bits": 8}}})
    assert e.value.field == "quantization_config.extra_config"


@pytest.mark.parametrize("bad, field", [
    ({"bits": 3}, "quantization_config.bits"),
    ({"bits": 4, "sym": False}, "quantization_config.sym"),
    ({"bits": 4, "data_type": "mx_fp4"}, "quantization_config.data_type"),
])
def test_what_vllm_cannot_serve_is_refused_naming_the_field(bad: dict, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_quant_config({"quant_method": "auto-round", "group_size": 128, **bad})
    assert e.value.field == field


def test_quantization_inc_names_the_checkpoint_and_is_refused_without_one() -> None:
    assert _weights(OMNI, quantization="inc") == _weights(OMNI)
    bf16 = {k: v for k, v in OMNI.items() if k != "quantization_config"}
    with pytest.raises(GpuplanError) as e:
        _weights(bf16, quantization="inc")
    assert e.value.field == "quantization"


def test_block_names_keep_a_qwen2_5_vl_tower_out_of_block_fp8() -> None:
    """An AutoRound block-FP8 Qwen2.5-VL-7B whose block_name_to_quantize names only the text layers: vLLM builds
    the tower with the FP8 quant_config (qwen2_5_vl.py), but INC quantizes a layer only under a named block, so the
    tower's Linears stay bf16; naming the tower's blocks too puts them in FP8."""
    cfg = json.loads((LOGS.parent / "configs" / "Qwen__Qwen2.5-VL-7B-Instruct.json").read_text())
    cfg = cfg.get("hf_config", cfg)
    qc = {"quant_method": "auto-round", "bits": 8, "data_type": "fp", "group_size": [128, 128],
          "packing_format": "auto_round:fp8"}
    text_only = _weights({**cfg, "quantization_config": {**qc, "block_name_to_quantize": "model.language_model.layers"}})
    with_tower = _weights({**cfg, "quantization_config": {
        **qc, "block_name_to_quantize": "model.language_model.layers,visual.blocks"}})
    assert text_only - with_tower > 0.4 * GIB  # ~0.6 GiB of tower Linears, 2 bytes -> 1 byte
