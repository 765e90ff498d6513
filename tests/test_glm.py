"""GLM-4.5 / 4.5-Air / 4.7 (glm4_moe) as vLLM 0.19 builds them (vllm/model_executor/models/glm4_moe.py).

Configs and transformers' exact counts: tests/fixtures/oracle/families/glm4_moe.json (sources inside).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.api_python import estimate
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import request_kv_bytes
from gpuplan.errors import UnservableDeployment
from gpuplan.model.adapters import build_spec

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "glm4_moe.json").read_text())
MODELS = FIXTURE["models"]


def _spec(model_id: str):
    return build_spec(MODELS[model_id]["config"], model_id)


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_glm_moe_counts_what_transformers_builds_plus_the_router_correction_bias(model_id: str) -> None:
    # transformers keeps e_score_correction_bias as a buffer; the checkpoint has it and vLLM loads it.
    cfg = MODELS[model_id]["config"]
    spec = _spec(model_id)
    moe_layers = cfg["num_hidden_layers"] - cfg["first_k_dense_replace"]
    assert not spec.generic
    assert spec.total_params == MODELS[model_id]["hf_params"] + moe_layers * cfg["n_routed_experts"]
    assert sum(1 for layer in spec.layers if layer.mlp.kind == "moe") == moe_layers


def test_glm_4_5_air_routes_in_fp32_as_vllm_does() -> None:
    spec = _spec("zai-org/GLM-4.5-Air")
    router = [t for t in spec.layers[-1].tensors if t.kind == "router"]
    assert {t.dtype for t in router} == {"float32"}
    assert {t.name.rsplit(".", 1)[-1] for t in router} == {"weight", "e_score_correction_bias"}


def test_glm_4_5_air_kv_cache_is_46_layers_of_8_heads_of_128() -> None:
    # one 16-token block of bf16 K and V
    spec = _spec("zai-org/GLM-4.5-Air")
    assert request_kv_bytes(spec, Deployment(tensor_parallel_size=1, gpu_name="H100", gpu_memory_bytes=80 * 2**30), 16) == 16 * 46 * 2 * 8 * 128 * 2


def test_glm_rotates_half_of_each_head_even_when_the_config_is_silent() -> None:
    cfg = {k: v for k, v in MODELS["zai-org/GLM-4.5-Air"]["config"].items() if k != "partial_rotary_factor"}
    assert build_spec(cfg).rope_caches[0].rotary_dim == 64


def test_glm_4_5_air_in_bf16_does_not_fit_two_h100s_but_starts_on_four() -> None:
    spec = _spec("zai-org/GLM-4.5-Air")
    two = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    four = estimate(spec, gpu="H100", tensor_parallel_size=4, max_model_len=32768)
    assert not two.fits and four.fits
    # 106.85B bf16 parameters over 4 ranks: ~49.8 GiB of weights per GPU.
    assert four.weights_bytes / 2**30 == pytest.approx(106.85e9 * 2 / 4 / 2**30, rel=0.01)


def test_glm_4_7_flash_is_mla_and_matches_vllms_own_build() -> None:
    # GLM-4.7-Flash (glm4_moe_lite) caches DeepSeek's latent: 512 + 64 values per token per layer, one "head".
    fx = MODELS["zai-org/GLM-4.7-Flash"]
    spec = _spec("zai-org/GLM-4.7-Flash")
    assert spec.attention_kinds == {"mla": 47}
    assert spec.total_params == fx["vllm_meta"]["params"]  # vLLM 0.32's own module count
    per_token = request_kv_bytes(spec, Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, block_size=16), 16)
    assert per_token == fx["vllm_meta"]["bytes_per_block"] == 16 * 47 * 576 * 2


# ----------------------------------------------------------------------------- GLM-4.1V / 4.5V (models/glm4_1v.py)

VL = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "glm4v.json").read_text())["models"]


def _vl_spec(model_id: str):
    return build_spec(VL[model_id]["config"], model_id)


def test_glm_4_5v_counts_its_checkpoint_tensor_table_vision_tower_included() -> None:
    # 107,710,933,120 in the checkpoint = transformers' count + the 45 x 128 router correction biases it keeps as
    # buffers; the vision tower is 858,681,856 of it (transformers: everything under model.visual).
    fx = VL["zai-org/GLM-4.5V"]
    spec = _vl_spec("zai-org/GLM-4.5V")
    assert not spec.generic
    assert spec.total_params == fx["checkpoint_params"] == fx["hf_params"] + 45 * 128
    assert sum(t.numel for t in spec.extra if t.kind == "vision") == fx["hf_visual_params"]
    assert spec.multimodal is not None and spec.multimodal.params == fx["hf_visual_params"]


def test_glm_4_1v_is_a_glm4_text_model_behind_the_same_tower() -> None:
    fx = VL["zai-org/GLM-4.1V-9B-Thinking"]
    spec = _vl_spec("zai-org/GLM-4.1V-9B-Thinking")
    assert not spec.generic
    assert spec.total_params == fx["hf_params"]
    # GLM-4 text layers: four RMSNorms each
    assert sum(1 for t in spec.layers[0].tensors if t.kind == "norm") == 4


def test_glm_4_5v_vision_tower_is_split_over_tp_except_its_convolutions_norms_and_positions() -> None:
    spec = _vl_spec("zai-org/GLM-4.5V")
    one = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=8192)
    four = estimate(spec, gpu="H100", tensor_parallel_size=4, max_model_len=8192)
    vis1 = one.per_stage[0]["weights_by_kind"]["vision"]
    vis4 = four.per_stage[0]["weights_by_kind"]["vision"]
    whole = next(t.numel for t in spec.extra if t.name == "visual.replicated") * 2
    assert vis1 == 858_681_856 * 2
    assert vis4 == (vis1 - whole) // 4 + whole


def test_glm_4_5v_in_bf16_does_not_fit_two_h100s_but_starts_on_four() -> None:
    spec = _vl_spec("zai-org/GLM-4.5V")
    assert not estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=65536).fits
    four = estimate(spec, gpu="H100", tensor_parallel_size=4, max_model_len=65536)
    assert four.fits
    assert four.weights_bytes / 2**30 == pytest.approx(107.71e9 * 2 / 4 / 2**30, rel=0.01)


def test_glm_4_5v_cannot_start_at_tp8_because_its_vision_tower_has_12_heads() -> None:
    # vllm#24004: "AssertionError: 12 is not divisible by 8"
    spec = _vl_spec("zai-org/GLM-4.5V")
    with pytest.raises(UnservableDeployment) as err:
        estimate(spec, gpu="H100", tensor_parallel_size=8, max_model_len=8192)
    assert err.value.field == "tensor_parallel_size"
    assert "12 attention heads" in str(err.value)
    assert "8" not in err.value.accepted and "4" in err.value.accepted
