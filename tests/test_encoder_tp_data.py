"""--mm-encoder-tp-mode data (vLLM 0.10.2+): a model class that sets supports_encoder_tp_data keeps its vision tower
whole on every tensor-parallel rank and hands each rank a share of the images; any other class falls back to
splitting the tower's weights, as vLLM's ModelConfig does (src/gpuplan/data/vllm_towers.json, encoder_tp_data)."""

from __future__ import annotations

import pytest

from gpuplan.api_python import estimate, load_model
from gpuplan.deployment import Deployment
from gpuplan.errors import GpuplanError
from gpuplan.planner.commands import commands_for_report

QWEN3_VL = "Qwen/Qwen3-VL-8B-Instruct"


@pytest.fixture(scope="module")
def qwen3_vl():
    return load_model(QWEN3_VL, allow_network=False)


def _tower(report) -> int:
    kinds = report.per_stage[0]["weights_by_kind"]
    return kinds.get("vision", 0) + kinds.get("projector", 0)


def test_qwen3_vl_at_tp2_in_data_mode_holds_the_whole_tower_on_each_gpu(qwen3_vl) -> None:
    one_gpu = estimate(qwen3_vl, gpu="H100", vllm_version="0.19.0", max_model_len=32768)
    split = estimate(qwen3_vl, gpu="H100", vllm_version="0.19.0", max_model_len=32768, tensor_parallel_size=2)
    whole = estimate(qwen3_vl, gpu="H100", vllm_version="0.19.0", max_model_len=32768, tensor_parallel_size=2,
                     mm_encoder_tp_mode="data")
    assert _tower(whole) == _tower(one_gpu) > _tower(split)
    assert whole.weights_bytes - split.weights_bytes == _tower(whole) - _tower(split)
    # The rank that takes the profile's one image runs it through unsplit MLPs.
    assert whole.encoder_profile["tower_bytes"] > split.encoder_profile["tower_bytes"]


def test_a_model_without_data_mode_falls_back_to_split_weights_and_says_so() -> None:
    gemma3 = load_model("google/gemma-3-27b-it", allow_network=False)
    split = estimate(gemma3, gpu="H100", tensor_parallel_size=2)
    asked = estimate(gemma3, gpu="H100", tensor_parallel_size=2, mm_encoder_tp_mode="data")
    assert asked.weights_bytes == split.weights_bytes
    assert any("does not support it and falls back" in w for w in asked.warnings)


@pytest.mark.parametrize(("mode", "version", "says"), [("dat", None, "unknown mode"),
                                                       ("data", "0.10.1", "came in 0.10.2")])
def test_an_unknown_mode_or_an_older_vllm_is_refused_naming_the_field(qwen3_vl, mode, version, says) -> None:
    with pytest.raises(GpuplanError) as err:
        estimate(qwen3_vl, gpu="H100", tensor_parallel_size=2, mm_encoder_tp_mode=mode, vllm_version=version)
    assert err.value.field == "mm_encoder_tp_mode" and says in err.value.message


def test_the_launch_command_carries_the_mode_unquoted(qwen3_vl) -> None:
    dep = Deployment(tensor_parallel_size=2, mm_encoder_tp_mode="data")
    cmds = commands_for_report(QWEN3_VL, estimate(qwen3_vl, gpu="H100", deployment=dep), dep)
    assert "--mm-encoder-tp-mode data" in cmds.vllm and "mm_encoder_tp_mode='data'" in cmds.python
