"""Serving a vision-language model text only: --limit-mm-per-prompt 0 for every modality, or --language-model-only.

vLLM then profiles no encoder pass and, where the model class builds its towers under a limit guard (0.10.1-0.14) or
inside _mark_tower_model (0.15+), loads no tower or projector weights at all. Under pipeline parallelism towers sit
on every stage until 0.33, whose _mark_tower_model leaves them off later stages under Model Runner V2. The
per-class facts are src/gpuplan/data/vllm_towers.json, read from the wheels by tools/vllm/tower_marks.py.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gpuplan.api_python import estimate, load_model
from gpuplan.cli import app, main
from gpuplan.errors import GpuplanError
from gpuplan.planner.commands import commands_for_report

GEMMA3 = "google/gemma-3-27b-it"
QWEN3_VL = "Qwen/Qwen3-VL-8B-Instruct"


@pytest.fixture(scope="module")
def gemma3():
    return load_model(GEMMA3, allow_network=False)


def _tower_bytes(report, stage: int = 0) -> int:
    kinds = report.per_stage[stage]["weights_by_kind"]
    return kinds.get("vision", 0) + kinds.get("projector", 0)


def test_gemma3_27b_text_only_on_0_19_loads_no_siglip_tower_and_gains_its_memory_as_kv(gemma3) -> None:
    full = estimate(gemma3, gpu="H100", vllm_version="0.19.0", max_model_len=32768)
    text = estimate(gemma3, gpu="H100", vllm_version="0.19.0", max_model_len=32768,
                    limit_mm_per_prompt=(("image", 0),))
    tower = _tower_bytes(full)
    assert 0.7 * 2**30 < tower < 0.9 * 2**30  # SigLIP-So400m and the projector, bf16
    assert _tower_bytes(text) == 0
    assert text.weights_bytes == full.weights_bytes - tower
    # No encoder pass or encoder cache in the profile run either, so KV gains more than the tower.
    assert text.activation_peak_bytes < full.activation_peak_bytes
    assert text.available_kv_cache_bytes - full.available_kv_cache_bytes > tower
    assert any("does not build the image tower" in w for w in text.warnings)


def test_language_model_only_is_the_same_start_up_as_every_limit_at_zero(gemma3) -> None:
    by_flag = estimate(gemma3, gpu="H100", vllm_version="0.19.0", language_model_only=True)
    by_limits = estimate(gemma3, gpu="H100", vllm_version="0.19.0", limit_mm_per_prompt=(("image", 0),))
    assert by_flag.weights_bytes == by_limits.weights_bytes
    assert by_flag.available_kv_cache_bytes == by_limits.available_kv_cache_bytes


def test_language_model_only_before_0_17_is_refused_naming_the_field(gemma3) -> None:
    with pytest.raises(GpuplanError) as err:
        estimate(gemma3, gpu="H100", vllm_version="0.16.0", language_model_only=True)
    assert err.value.field == "language_model_only"
    assert "limit_mm_per_prompt" in err.value.message


def test_gemma3_on_0_12_still_loads_its_tower_text_only_but_profiles_no_encoder(gemma3) -> None:
    # Gemma3ForConditionalGeneration had no limit guard before 0.15; the registry's text-only check (0.10.1+)
    # already kept the encoder out of the profile run.
    full = estimate(gemma3, gpu="H100", vllm_version="0.12.0")
    text = estimate(gemma3, gpu="H100", vllm_version="0.12.0", limit_mm_per_prompt=(("image", 0),))
    assert text.weights_bytes == full.weights_bytes
    assert text.activation_peak_bytes < full.activation_peak_bytes
    assert any("still loads the tower" in w for w in text.warnings)


def test_qwen3_vl_with_only_images_off_keeps_its_tower_for_video() -> None:
    spec = load_model(QWEN3_VL, allow_network=False)
    full = estimate(spec, gpu="H100", vllm_version="0.19.0", max_model_len=32768)
    no_images = estimate(spec, gpu="H100", vllm_version="0.19.0", max_model_len=32768,
                         limit_mm_per_prompt=(("image", 0),))
    text = estimate(spec, gpu="H100", vllm_version="0.19.0", max_model_len=32768,
                    limit_mm_per_prompt=(("image", 0), ("video", 0)))
    assert no_images.weights_bytes == full.weights_bytes
    assert no_images.encoder_profile is not None and no_images.encoder_profile["modality"] == "video"
    assert text.weights_bytes == full.weights_bytes - _tower_bytes(full)
    assert text.encoder_profile is None


def test_qwen3_vl_guarded_its_tower_from_0_11_before_the_marks_of_0_15() -> None:
    spec = load_model(QWEN3_VL, allow_network=False)
    off = (("image", 0), ("video", 0))
    assert _tower_bytes(estimate(spec, gpu="H100", vllm_version="0.11.0", limit_mm_per_prompt=off)) == 0
    assert _tower_bytes(estimate(spec, gpu="H100", vllm_version="0.10.2", limit_mm_per_prompt=off)) > 0


def test_under_pipeline_parallelism_every_stage_holds_the_tower_until_0_33_model_runner_v2(gemma3) -> None:
    old = estimate(gemma3, gpu="H100", vllm_version="0.19.0", pipeline_parallel_size=2)
    assert _tower_bytes(old, 1) == _tower_bytes(old, 0) > 0
    new = estimate(gemma3, gpu="H100", vllm_version="0.33.0", pipeline_parallel_size=2)
    assert _tower_bytes(new, 0) > 0 and _tower_bytes(new, 1) == 0
    v1_runner = estimate(gemma3, gpu="H100", vllm_version="0.33.0", pipeline_parallel_size=2,
                         env=(("VLLM_USE_V2_MODEL_RUNNER", "0"),))
    assert _tower_bytes(v1_runner, 1) > 0


def test_the_launch_command_carries_language_model_only(gemma3) -> None:
    from gpuplan.deployment import Deployment

    dep = Deployment(language_model_only=True)
    report = estimate(gemma3, gpu="H100", deployment=dep)
    cmds = commands_for_report(GEMMA3, report, dep)
    assert "--language-model-only" in cmds.vllm


def test_the_cli_takes_language_model_only_and_refuses_it_on_an_old_vllm(capsys) -> None:
    ok = CliRunner().invoke(app, ["estimate", GEMMA3, "--gpu", "H100", "--language-model-only", "--json"],
                            env={"HF_HUB_OFFLINE": "1"})
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["per_gpu"]["weights_gib"] < 51
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", GEMMA3, "--gpu", "H100", "--language-model-only", "--vllm-version", "0.15.0"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: language_model_only:") and "Traceback" not in err


def test_the_api_takes_language_model_only_and_answers_400_naming_it_on_an_old_vllm() -> None:
    from fastapi.testclient import TestClient

    from gpuplan.api.app import create_app

    client = TestClient(create_app(allow_network=False))
    ok = client.post("/v1/estimate", json={"model": GEMMA3, "gpu": "H100", "language_model_only": True})
    assert ok.status_code == 200
    assert ok.json()["per_gpu"]["weights_gib"] < 51 and "--language-model-only" in ok.json()["commands"]["vllm"]
    bad = client.post("/v1/estimate", json={"model": GEMMA3, "gpu": "H100", "language_model_only": True,
                                            "vllm_version": "0.16.0"})
    assert bad.status_code == 400 and bad.json()["field"] == "language_model_only"


def test_qwen3_vl_text_only_drops_its_deepstack_buffers_from_0_28() -> None:
    """Qwen3VLForConditionalGeneration allocates one [max_num_batched_tokens, 4096] bf16 buffer per deepstack level
    (3) at load; from 0.28 use_deepstack is false when the tower is a StageMissingLayer, so a text-only start has
    none: 3 x 8192 x 4096 x 2 = 201,326,592 bytes fewer than the 0.27 start."""
    qwen = load_model(QWEN3_VL, allow_network=False)
    kinds = {v: estimate(qwen, gpu="H100", vllm_version=v, max_model_len=32768,
                         language_model_only=True).per_stage[0]["weights_by_kind"] for v in ("0.27.1", "0.28.0")}
    assert kinds["0.27.1"].get("buffers", 0) == 3 * 8192 * 4096 * 2
    assert kinds["0.28.0"].get("buffers", 0) == 0
