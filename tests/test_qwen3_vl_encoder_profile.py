"""Qwen3-VL: which image or video vLLM's profile run pushes through the tower, and how long its outputs are cached.

The item sizes follow Qwen3VLProcessingInfo version by version; the start-ups in vlm_public.jsonl (vLLM 0.11 on four
RTX 3090s, 0.13 on an H100 NVL) show what they cost. Each case also quotes the encoder line a public log printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.api_python import estimate
from gpuplan.engines.vllm import encoder_profile as E
from gpuplan.engines.vllm.profiles import get_profile
from gpuplan.model.adapters import build_spec
from gpuplan.units import GiB
from gpuplan.validation import deployment_of

LOGS = Path(__file__).parent / "fixtures" / "vllm_logs"


def _spec(name: str):
    return build_spec(json.loads((LOGS / "configs" / f"Qwen__{name}.json").read_text()), name=f"Qwen/{name}")


@pytest.fixture(scope="module")
def vl8b():
    return _spec("Qwen3-VL-8B-Instruct")


@pytest.fixture(scope="module")
def vl30b():
    return _spec("Qwen3-VL-30B-A3B-Instruct")


def _record(rid: str) -> dict:
    lines = (LOGS / "vlm_public.jsonl").read_text().splitlines()
    return next(r for r in map(json.loads, lines) if r["id"] == rid)


def _items(spec, version: str, max_model_len: int, max_pixels: int | None = None) -> dict[str, tuple[int, int]]:
    found = E.largest_items(spec.multimodal.encoder, get_profile(version), max_model_len, max_pixels)
    return {m: (it.counted, it.tokens) for m, it in found.items()}


def _plan(spec, version: str, **deployment) -> dict:
    """The encoder pass the estimate plans (what vLLM's 'Encoder cache will be initialized' line reports)."""
    return estimate(spec, gpu="H100", vllm_version=version, **deployment).encoder_profile


def test_a_qwen3_vl_video_counts_12_5x_its_tokens_in_0_11_and_the_image_wins_from_0_13(vl8b) -> None:
    # 0.11 - 0.12: up to 24,576 frames of a 25,165,824-pixel budget; 12,288 embeddings counted as 153,600 tokens.
    assert _items(vl8b, "0.11.0", 32768) == {"image": (16384, 16384), "video": (153600, 12288)}
    assert _items(vl8b, "0.12.0", 262144)["video"] == (153600, 12288)
    # At 8k the frame loop stops at two frames: 2 x 3520 x 3520 pixels, 12,100 embeddings.
    assert _items(vl8b, "0.11.0", 8192)["video"] == (151250, 12100)
    # 0.13 - 0.14 drop the 12.5x; 0.15 on profile two frames at half the video budget, whatever the context.
    assert _items(vl8b, "0.13.0", 262144)["video"] == (12288, 12288)
    assert _items(vl8b, "0.15.0", 8192)["video"] == (12288, 12288)
    assert _items(vl8b, "0.33.0", 262144) == {"image": (16384, 16384), "video": (12288, 12288)}


def test_max_pixels_shrinks_the_profiled_video_from_0_17(vl8b) -> None:
    """0.15 - 0.16 size the video from the video processor alone; 0.17 - 0.31 resize its two frames to max_pixels;
    from 0.32 max_pixels is the video budget itself (two frames of half of it)."""
    assert _items(vl8b, "0.16.0", 4096, 1003520) == {"image": (980, 980), "video": (12288, 12288)}
    assert _items(vl8b, "0.20.0", 4096, 1003520)["video"] == (475, 475)  # 608 x 800 pixels
    assert _items(vl8b, "0.32.0", 4096, 1003520)["video"] == (490, 490)


def test_the_encoder_lines_public_logs_printed(vl8b, vl30b) -> None:
    # vllm#27992 (0.11.0, Qwen3-VL-8B-FP8, --max-model-len 32768): "budget of 153600 tokens, ... 1 video items".
    p = _plan(vl8b, "0.11.0", max_model_len=32768, max_num_batched_tokens=2048, max_num_seqs=256)
    assert (p["budget_tokens"], p["items"], p["modality"]) == (153600, 1, "video")
    # vlm-003 (0.13.0, 8k context, 8192 batched tokens): "budget of 16384 tokens, ... 1 image items".
    p = _plan(vl30b, "0.13.0", max_model_len=8192)
    assert (p["budget_tokens"], p["items"], p["modality"]) == (16384, 1, "image")
    # A 2026 main build, max_pixels 1003520 (980 tokens), max_num_seqs 5, one image per prompt: "budget of 8192
    # tokens, and profiled with 5 image items" -- the decoder side (5 requests x 1 image) caps the count.
    p = _plan(vl8b, "0.20.0", max_model_len=4096, max_num_seqs=5, max_num_batched_tokens=8192,
              limit_mm_per_prompt={"image": 1}, mm_processor_kwargs={"max_pixels": 1003520})
    assert (p["budget_tokens"], p["items"], p["modality"], p["item_tokens"]) == (8192, 5, "image", 980)


def test_0_11_caches_each_profiled_video_at_the_full_budget(vl30b) -> None:
    """The 24,576-frame video yields 12,288 embeddings, but 0.11 copies them into a 153,600-row tensor of four
    text widths (the merger and three deepstack levels): 153,600 x 4 x 2048 x 2 bytes."""
    p = _plan(vl30b, "0.11.0", max_model_len=65536, max_num_batched_tokens=2048, max_num_seqs=256)
    assert p["cached_output_bytes"] == 153600 * 4 * 2048 * 2
    # 0.12 pads to what the item counts (the same 153,600 here); 0.13 caches the 12,288 rows it has.
    p12 = _plan(vl30b, "0.12.0", max_model_len=65536, max_num_batched_tokens=2048)
    assert p12["cached_output_bytes"] == p["cached_output_bytes"]
    p13 = _plan(vl30b, "0.13.0", max_model_len=65536, max_num_batched_tokens=2048, limit_mm_per_prompt={"image": 0})
    assert p13["cached_output_bytes"] == 12288 * 4 * 2048 * 2


def test_qwen3_vl_30b_on_four_3090s_with_vllm_0_11_leaves_the_logged_kv_cache(vl30b) -> None:
    """vlm-002 logged 'Model loading took 14.7708 GiB' and 'Available KV cache memory: 2.31 GiB' per rank."""
    rec = _record("vlm-002")
    rep = estimate(vl30b, deployment=deployment_of(rec))
    assert rep.weights_bytes / GiB == pytest.approx(14.7708, abs=0.01)
    assert rep.per_stage[0]["available_bytes"] / GiB == pytest.approx(2.31, abs=0.1)
    assert rep.kv.kv_cache_tokens == pytest.approx(100752, rel=0.03)


def test_qwen3_vl_30b_on_an_h100_nvl_with_vllm_0_13_leaves_the_logged_kv_cache(vl30b) -> None:
    rec = _record("vlm-003")
    rep = estimate(vl30b, deployment=deployment_of(rec))
    assert rep.weights_bytes / GiB == pytest.approx(58.2299, abs=0.02)
    assert rep.per_stage[0]["available_bytes"] / GiB == pytest.approx(19.40, rel=0.03)


def test_the_mrope_cache_holds_4x_the_positions_until_qwen3_vl_asks_for_1x_in_0_32(vl8b) -> None:
    """MRotaryEmbedding caches 4 x max_position_embeddings (262,144 x 4 x 128 x bf16 = 256 MiB); from 0.32 Qwen3-VL
    passes positions_factor=1 unless video pruning is on."""
    old = estimate(vl8b, gpu="H100", vllm_version="0.31.0").per_stage[0]["weights_by_kind"]["rope_cache"]
    new = estimate(vl8b, gpu="H100", vllm_version="0.32.0").per_stage[0]["weights_by_kind"]["rope_cache"]
    assert (old, new) == (4 * 262144 * 128 * 2, 262144 * 128 * 2)


def test_one_max_size_image_costs_the_tower_more_than_eight_small_ones(vl8b) -> None:
    """One 16,384-token image is 65,536 patches; per patch: float32 pixels (1,536 values), the rotary table, four
    hidden-width and two MLP-width tensors; plus three deepstack outputs per token. With max_pixels 1003520 the
    8192-token budget holds eight 980-token images instead: fewer patches at once."""
    p = _plan(vl8b, "0.19.0", max_model_len=8192)
    per_patch = 4 * 1536 + 36 * 4 + 2 * (4 * 1152 + 2 * 4304)
    assert (p["items"], p["patches"]) == (1, 65536)
    assert p["tower_bytes"] == 65536 * per_patch + 3 * 16384 * 4096 * 2
    small = _plan(vl8b, "0.19.0", max_model_len=8192, mm_processor_kwargs={"max_pixels": 1003520})
    assert (small["items"], small["patches"]) == (8, 8 * 980 * 4)
    assert small["tower_bytes"] < p["tower_bytes"] / 2


def test_a_model_directory_s_processor_configs_size_the_profiled_items(tmp_path: Path) -> None:
    """preprocessor_config.json and video_preprocessor_config.json sit beside config.json; their pixel limits are the
    ones vLLM's processor uses (max_pixels wins over size, as in transformers' Qwen2-VL image processor)."""
    (tmp_path / "config.json").write_text((LOGS / "configs" / "Qwen__Qwen3-VL-8B-Instruct.json").read_text())
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"size": {"longest_edge": 16777216, "shortest_edge": 65536}, "max_pixels": 1003520, "patch_size": 16}))
    (tmp_path / "video_preprocessor_config.json").write_text(json.dumps(
        {"size": {"longest_edge": 4194304, "shortest_edge": 4096}, "patch_size": 16, "temporal_patch_size": 2}))
    rep = estimate(str(tmp_path), gpu="H100", vllm_version="0.19.0", limit_mm_per_prompt={"image": 0})
    assert rep.encoder_profile["item_tokens"] == 4194304 // 2 // 32 ** 2  # two frames of half the video budget
    rep = estimate(str(tmp_path), gpu="H100", vllm_version="0.19.0", limit_mm_per_prompt={"video": 0})
    assert rep.encoder_profile["item_tokens"] == 980  # 28 x 35 merged patches
    # Without the files, Qwen3-VL's own defaults: the 16,384-token image.
    (tmp_path / "preprocessor_config.json").unlink()
    (tmp_path / "video_preprocessor_config.json").unlink()
    assert estimate(str(tmp_path), gpu="H100", vllm_version="0.19.0").encoder_profile["item_tokens"] == 16384
