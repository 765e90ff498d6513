"""Public start-ups with speculative decoding (tests/fixtures/vllm_logs/speculative_public.jsonl, gathered on
2026-11-22; see the README beside it), several in pairs with the same deployment without it. They test the
drafter's mechanism (engines/vllm/drafter.py); nothing was fitted on them."""

from __future__ import annotations

from pathlib import Path

import pytest
from public_logs import row as _row
from public_logs import validated

LOGS = Path(__file__).parent / "fixtures" / "vllm_logs" / "speculative_public.jsonl"


@pytest.fixture(scope="module")
def result() -> dict:
    return validated("speculative_public.jsonl")


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


@pytest.mark.parametrize("rid", ["hse-004", "hse-010"])
def test_drafts_gpuplan_cannot_size_are_refused_not_guessed(result: dict, rid: str) -> None:
    """EAGLE heads whose config the record does not hold: validate says it cannot predict them, and why."""
    pred = _row(result, rid)["predicted"]
    assert pred["fits"] is None and pred["reason"].startswith("cannot predict: speculative_config.")


def test_deepseek_v4_flash_loads_its_mtp_module_as_logged(result: dict) -> None:
    """hsm-002 (two GB10s, TP=2, a nightly of 0.21.1): 75.86 GiB loaded with the MTP module, 1.7 GiB above the
    target alone. (Its start on compute capability 12.1 ran on a custom image; gpuplan dates SM 12.x support for
    DeepSeek-V4 to 0.24 and predicts a refusal.)"""
    assert _row(result, "hsm-002")["abs_pct_error"]["weights_gib"] < 0.5


def test_an_eagle3_head_costs_llama_3_1_8b_the_weights_one_kv_layer_and_the_rejection_sample_vllm_logs(
        result: dict) -> None:
    """hse-001 / hse-002: the same H200 start with and without yuhuili's EAGLE-3 head (stand-in config, field for
    field): 15.78 vs 14.99 GiB loaded, 821,888 vs 867,232 tokens (33 cached layers instead of 32)."""
    with_head, without = _row(result, "hse-001"), _row(result, "hse-002")
    for field in ("weights_gib", "available_kv_cache_gib", "kv_cache_tokens", "max_concurrency"):
        assert with_head["abs_pct_error"][field] < 0.5, field
    ratio = with_head["predicted"]["kv_cache_tokens"] / without["predicted"]["kv_cache_tokens"]
    assert ratio == pytest.approx(821888 / 867232, abs=0.003)


def test_a_speculators_eagle3_head_keeps_its_own_embedding(result: dict) -> None:
    """hse-007 (Qwen3-32B, RedHatAI's speculators head; stand-in config): 63.94 GiB loaded against 61.03 without
    (hse-009): 2.91 GiB, which the head's layer, fc and 32k LM head reach only with its own 151,936 x 5,120
    embedding."""
    assert _row(result, "hse-007")["abs_pct_error"]["weights_gib"] < 0.1


def test_more_eagle_draft_tokens_cost_no_more_memory(result: dict) -> None:
    """hse-007 / hse-008: 1 and 6 draft tokens, the same 11.72 GiB logged; the profile verifies one dummy draft
    token per request whatever num_speculative_tokens is."""
    a, b = _row(result, "hse-007")["predicted"], _row(result, "hse-008")["predicted"]
    assert a["available_kv_cache_gib"] == b["available_kv_cache_gib"] and a["kv_cache_tokens"] == b["kv_cache_tokens"]


@pytest.mark.parametrize("rid", ["hsm-004", "hsm-010"])
def test_the_capture_ceiling_vllm_prints_bounds_the_graph_pool(result: dict, rid: str) -> None:
    """hsm-004 / hsm-010 print 'max_cudagraph_capture_size': 1 and capture one PIECEWISE graph of one token, no
    FULL graph (an MTP decode step is 3 tokens): 0.05 GiB logged, as predicted."""
    row = _row(result, rid)
    assert row["logged"]["cudagraph_gib"] == 0.05
    assert row["predicted"]["cudagraph_gib"] == pytest.approx(0.05, abs=0.01)


def test_flashinfers_workspace_lands_in_the_graph_pool_only_when_full_graphs_are_captured(result: dict) -> None:
    """On 0.20 vLLM sizes the KV cache after its CUDA-graph estimate, and FlashInfer allocates its 394 MiB workspace
    when a capture first builds attention metadata, which only FULL graphs do: hsm-005 (FULL graphs, 0.47 GiB
    captured) holds it, hsm-004 (one PIECEWISE graph, 0.05 GiB) does not."""
    full, piecewise = _row(result, "hsm-005"), _row(result, "hsm-004")
    assert full["logged"]["cudagraph_gib"] == 0.47 and piecewise["logged"]["cudagraph_gib"] == 0.05
    assert full["predicted"]["cudagraph_gib"] == pytest.approx(0.47, abs=0.05)
    assert full["predicted"]["cudagraph_gib"] - piecewise["predicted"]["cudagraph_gib"] > 0.35
