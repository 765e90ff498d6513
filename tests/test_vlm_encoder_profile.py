"""Qwen2-VL / Qwen2.5-VL: vLLM's V1 profile run pushes one max-size image or video through the vision tower first.

The item's size comes from vLLM's Qwen2VLProcessingInfo (max_pixels, max_model_len, a frame cap), the tower's live
tensors from its block code; vlm_public.jsonl holds the public start-up that shows what it costs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpuplan.api_python import estimate
from gpuplan.cli import app
from gpuplan.engines.vllm import encoder_profile as E
from gpuplan.engines.vllm.profiles import get_profile
from gpuplan.model.adapters import build_spec
from gpuplan.planner.commands import commands_for_report
from gpuplan.units import GiB
from gpuplan.validation import deployment_of

LOGS = Path(__file__).parent / "fixtures" / "vllm_logs"
CONFIG = LOGS / "configs" / "Qwen__Qwen2.5-VL-7B-Instruct.json"


@pytest.fixture(scope="module")
def qwen25vl():
    return build_spec(json.loads(CONFIG.read_text()), name="Qwen/Qwen2.5-VL-7B-Instruct")


def _tokens(spec, version: str, max_model_len: int, max_pixels: int | None = None) -> dict[str, int]:
    items = E.largest_items(spec.multimodal.encoder, get_profile(version), max_model_len, max_pixels)
    return {m: it.counted for m, it in items.items()}


def test_the_largest_qwen_image_is_16384_tokens_and_a_video_grows_with_the_context(qwen25vl) -> None:
    assert _tokens(qwen25vl, "0.23.0", 128000) == {"image": 16384, "video": 114688}  # 14 frames, 7 pairs
    assert _tokens(qwen25vl, "0.23.0", 32768)["video"] == 32768
    assert _tokens(qwen25vl, "0.23.0", 8192)["video"] == 16384  # one frame pair, never fewer
    # Up to 0.10 the frame cap was 16, from 0.11 it is 14 (qwen2_vl.py _MAX_FRAMES_PER_VIDEO).
    assert _tokens(qwen25vl, "0.10.2", 200000)["video"] == 131072
    assert _tokens(qwen25vl, "0.23.0", 200000)["video"] == 114688
    # max_pixels 1003520 (1280 merged patches): the most nearly square factor pair, 32 x 40.
    assert _tokens(qwen25vl, "0.23.0", 8192, max_pixels=1003520)["image"] == 1280


def test_qwen25_vl_7b_at_128k_on_a100_with_util_022_fails_as_logged(qwen25vl) -> None:
    """vlm-001: vLLM 0.23 logged 'budget of 114688 tokens, profiled with 1 video' and -14.28 GiB of KV cache."""
    rec = json.loads((LOGS / "vlm_public.jsonl").read_text().splitlines()[0])
    report = estimate(qwen25vl, deployment=deployment_of(rec))
    assert report.fits is False
    tower = report.per_stage[0]["available_bytes"] / GiB
    assert tower == pytest.approx(rec["logged"]["available_kv_cache_gib"], abs=0.4)
    assert report.activation_peak_bytes > 15 * GiB
    assert any("114,688 tokens each, 458,752 patches" in w for w in report.warnings)


def test_images_only_smaller_images_or_no_profiling_give_back_the_kv_cache(qwen25vl) -> None:
    base = estimate(qwen25vl, gpu="H100", vllm_version="0.23.0")
    images = estimate(qwen25vl, gpu="H100", vllm_version="0.23.0", limit_mm_per_prompt={"video": 0})
    small = estimate(qwen25vl, gpu="H100", vllm_version="0.23.0", mm_processor_kwargs={"max_pixels": 1003520})
    skipped = estimate(qwen25vl, gpu="H100", vllm_version="0.23.0", skip_mm_profiling=True)
    assert base.activation_peak_bytes > 15 * GiB
    for other in (images, small, skipped):
        assert other.activation_peak_bytes < 2.5 * GiB
        assert other.kv.kv_cache_tokens > 1.3 * base.kv.kv_cache_tokens
    # The warning names the cheapest fix and what it would cost.
    hint = next(w for w in base.warnings if "vision tower" in w)
    assert """--limit-mm-per-prompt '{"video": 0}' (images only: 2.18 GiB tower pass, 0.11 GiB of outputs""" in hint


def test_tensor_parallelism_splits_the_tower_mlp_not_its_patches(qwen25vl) -> None:
    tp1 = estimate(qwen25vl, gpu="H100", vllm_version="0.23.0")
    tp2 = estimate(qwen25vl, gpu="H100", vllm_version="0.23.0", tensor_parallel_size=2)
    patches = 458752
    # Per patch: float32 pixels (1176 values), the rotary table, 4 hidden-width tensors whole and 3 MLP-width
    # tensors of 3420 / TP, in bf16.
    per_patch = lambda tp: 4 * 1176 + 2 * 40 * 4 + 2 * (4 * 1280 + 3 * -(-3420 // tp))  # noqa: E731
    assert tp1.activation_peak_bytes == patches * per_patch(1)
    assert tp2.activation_peak_bytes == patches * per_patch(2)


def test_the_v0_engine_keeps_its_calibrated_multimodal_term(qwen25vl) -> None:
    """V0 profiles multimodal inputs its own way (max_num_seqs dummy prompts); the V1 encoder pass is not applied."""
    v0 = estimate(qwen25vl, gpu="A100-80GB", vllm_version="0.6.6", max_model_len=32768)
    v0_images = estimate(qwen25vl, gpu="A100-80GB", vllm_version="0.6.6", max_model_len=32768,
                         limit_mm_per_prompt={"video": 0})
    assert v0.activation_peak_bytes == v0_images.activation_peak_bytes
    assert not any("vision tower" in w for w in v0.warnings)


def test_the_launch_command_keeps_the_multimodal_options(qwen25vl) -> None:
    report = estimate(qwen25vl, gpu="H100", limit_mm_per_prompt={"video": 0}, skip_mm_profiling=False,
                      mm_processor_kwargs={"max_pixels": 1003520})
    dep = deployment_of({"deployment": {"limit_mm_per_prompt": {"video": 0},
                                            "mm_processor_kwargs": {"max_pixels": 1003520}}})
    cmds = commands_for_report("Qwen/Qwen2.5-VL-7B-Instruct", report, dep)
    assert """--limit-mm-per-prompt '{"video": 0}' --mm-processor-kwargs '{"max_pixels": 1003520}'""" in cmds.vllm
    assert "limit_mm_per_prompt={'video': 0}" in cmds.python


def test_the_cli_takes_vllm_json_options() -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["estimate", str(CONFIG), "--gpu", "H100", "--limit-mm-per-prompt", '{"video": 0}',
                             "--json"])
    assert ok.exit_code == 0, ok.output
    default = runner.invoke(app, ["estimate", str(CONFIG), "--gpu", "H100", "--json"])
    assert json.loads(ok.output)["per_gpu"]["activation_peak_gib"] < 3.5
    assert json.loads(default.output)["per_gpu"]["activation_peak_gib"] > 15


def test_an_image_and_a_video_of_equal_size_profile_the_image_before_0_17(qwen25vl) -> None:
    """At 8k a Qwen2.5-VL video is one frame pair, as many tokens as the largest image. vLLM 0.16 and earlier keep
    the first modality on a tie (a public 0.11.0 start-up of Qwen2.5-VL-3B logged "profiled with 1 image items");
    0.17 on break it by name, so the video is profiled."""
    old = estimate(qwen25vl, gpu="H100", vllm_version="0.11.0", max_model_len=8192).encoder_profile
    new = estimate(qwen25vl, gpu="H100", vllm_version="0.19.0", max_model_len=8192).encoder_profile
    assert (old["modality"], old["item_tokens"]) == ("image", 16384)
    assert (new["modality"], new["item_tokens"]) == ("video", 16384)
