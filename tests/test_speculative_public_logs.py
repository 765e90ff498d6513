"""Public start-ups with speculative decoding (tests/fixtures/vllm_logs/speculative_public.jsonl, gathered on
2026-11-22; see the README beside it), several in pairs with the same deployment without it. They test the
drafter's mechanism (engines/vllm/drafter.py); nothing was fitted on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuplan.validation import load_records, validate_records

LOGS = Path(__file__).parent / "fixtures" / "vllm_logs" / "speculative_public.jsonl"


@pytest.fixture(scope="module")
def result() -> dict:
    return validate_records(load_records(LOGS))


def _row(result: dict, rid: str) -> dict:
    return next(r for r in result["records"] if r["id"] == rid)


@pytest.mark.parametrize("rid", ["hsm-001", "hsm-003", "hsm-008"])
def test_model_loading_took_counts_the_mtp_modules_beside_the_target(result: dict, rid: str) -> None:
    """Qwen3.5 / Qwen3.6 checkpoints with their MTP module loaded (complete configs): one 'Model loading took' for
    target and drafter, within 0.2%."""
    assert _row(result, rid)["abs_pct_error"]["weights_gib"] < 0.2


def test_qwen3_5_9b_mtp_costs_the_weights_vllm_logs_over_the_same_start_without_it(result: dict) -> None:
    """hsm-008 / hsm-009: the same RTX 5090 bench with and without MTP: 18.12 - 17.66 GiB logged."""
    with_mtp, without = _row(result, "hsm-008"), _row(result, "hsm-009")
    logged = with_mtp["logged"]["weights_gib"] - without["logged"]["weights_gib"]
    predicted = with_mtp["predicted"]["weights_gib"] - without["predicted"]["weights_gib"]
    assert abs(predicted - logged) <= 0.02


def test_more_draft_tokens_hold_more_linear_attention_state_per_request(result: dict) -> None:
    """hsm-006 (3 draft tokens) / hsm-007 (1): nearly the same pool, but each request of the hybrid holds one
    GDN state block per draft token, so vLLM's concurrency drops 5.18x -> 4.99x."""
    three, one = _row(result, "hsm-006"), _row(result, "hsm-007")
    assert three["predicted"]["max_concurrency"] < one["predicted"]["max_concurrency"]
    for row in (three, one):
        assert row["abs_pct_error"]["max_concurrency"] < 2.5
        assert row["abs_pct_error"]["kv_cache_tokens"] < 2.5


def test_mtp_takes_the_logged_share_of_the_token_count_on_a_pair_without_its_quantization_config(
        result: dict) -> None:
    """hsm-004 / hsm-005: RedHat's NVFP4 Qwen3.6-35B-A3B with and without MTP on 0.20.0; its quantization config was
    not found (weights are not compared), but the ratio of the two token counts is the drafter's KV layer and
    regrouping: 1,581,104 / 1,754,352 logged."""
    with_mtp, without = _row(result, "hsm-004"), _row(result, "hsm-005")
    logged = with_mtp["logged"]["kv_cache_tokens"] / without["logged"]["kv_cache_tokens"]
    predicted = with_mtp["predicted"]["kv_cache_tokens"] / without["predicted"]["kv_cache_tokens"]
    assert abs(predicted - logged) < 0.02


def test_0_20_2_logs_tokens_as_concurrency_times_length(result: dict) -> None:
    """hsm-010: the same deployment as hsm-004 on 0.20.2 logs 5,747,892 tokens for the same pool (21.93x x
    262,144); 0.20.0's formula would give about 1.6M."""
    row = _row(result, "hsm-010")
    assert row["abs_pct_error"]["kv_cache_tokens"] < 5
    assert row["predicted"]["kv_cache_tokens"] > 3 * _row(result, "hsm-004")["predicted"]["kv_cache_tokens"]


@pytest.mark.parametrize("rid", ["hsd-003", "hsd-004"])
def test_ngram_on_0_29_and_its_baseline_keep_the_logged_kv(result: dict, rid: str) -> None:
    """hsd-003 (ngram: vLLM falls back to the V1 model runner) and hsd-004 (no drafter: the V2 runner)."""
    assert _row(result, rid)["abs_pct_error"]["available_kv_cache_gib"] < 0.5


@pytest.mark.parametrize("rid", ["hse-001", "hse-004", "hse-007", "hse-010", "hsd-006", "hsm-002"])
def test_drafts_gpuplan_does_not_size_are_refused_not_guessed(result: dict, rid: str) -> None:
    """EAGLE heads, separate draft models and DeepSeek-V4's MTP: validate says it cannot predict them, and why."""
    pred = _row(result, rid)["predicted"]
    assert pred["fits"] is None and pred["reason"].startswith("cannot predict: speculative_config.method")
