"""Public start-ups of vLLM 0.30 and 0.31 (tests/fixtures/vllm_logs/latest_public.jsonl, gathered on 2026-11-22;
see the README beside it): the newest releases any stored public log shows. Nothing was fitted on them."""

from __future__ import annotations

import pytest
from public_logs import row as _row
from public_logs import validated


@pytest.fixture(scope="module")
def result() -> dict:
    return validated("latest_public.jsonl")


def test_every_start_gpuplan_can_size_is_predicted_to_start(result: dict) -> None:
    s = result["summary"]["ok_outcome_agreement"]
    assert s["n"] >= 14 and s["agree"] == s["n"]


def test_available_kv_meets_the_issue_bar_on_the_newest_releases(result: dict) -> None:
    s = result["summary"]["available_kv_cache_gib"]
    assert s["n"] >= 8 and s["median_abs_pct"] <= 3.0 and s["p90_abs_pct"] <= 8.0


@pytest.mark.parametrize("rid", ["lp-005", "lp-006", "lp-007"])
def test_llama_3_1_8b_at_tp2_on_h100s_keeps_the_logged_kv_on_0_30(result: dict, rid: str) -> None:
    """vLLM serve, offline LLM() with --enforce-eager, and the pure-NCCL all-reduce arm: within 1%."""
    assert _row(result, rid)["abs_pct_error"]["available_kv_cache_gib"] < 1.0


def test_the_pure_nccl_arm_pays_for_the_all_reduces_its_graphs_capture(result: dict) -> None:
    """lp-007 runs --disable-custom-all-reduce, which validate reads from its command line: 0.22 GiB less KV than
    lp-005 logged (lp-005 also differs by its serve entry point); with the NCCL graph memory gpuplan's figure is
    0.1% off the log, 0.7% without it."""
    row = _row(result, "lp-007")
    assert row["abs_pct_error"]["available_kv_cache_gib"] < 0.3
    assert row["predicted"]["available_kv_cache_gib"] < _row(result, "lp-005")["predicted"]["available_kv_cache_gib"]


def test_qwen3_32b_nvfp4_on_a_b200_keeps_the_logged_kv_with_a_bf16_and_an_fp8_cache(result: dict) -> None:
    for rid in ("lp-001", "lp-003"):
        assert _row(result, rid)["abs_pct_error"]["kv_cache_tokens"] < 1.0, rid


def test_a_first_start_in_a_fresh_container_loses_what_the_compile_scratch_takes(result: dict) -> None:
    """lp-008 (a new `docker run` that keeps no ~/.cache/vllm) against lp-009, the same command with
    --enforce-eager: 72,400 against 112,704 tokens on an 8 GB laptop GPU under WSL2."""
    cold, eager = _row(result, "lp-008"), _row(result, "lp-009")
    assert cold["abs_pct_error"]["kv_cache_tokens"] < 5.0 and eager["abs_pct_error"]["kv_cache_tokens"] < 5.0


@pytest.mark.parametrize("rid", ["lp-002", "lp-004"])
def test_a_w4a4_mxfp4_checkpoint_without_its_quantization_block_is_not_guessed(result: dict, rid: str) -> None:
    pred = _row(result, rid)["predicted"]
    assert pred["fits"] is None and pred["reason"].startswith("cannot predict: quantization")
