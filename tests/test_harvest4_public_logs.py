"""Public start-ups found on 2026-11-22 by a fourth search (tests/fixtures/vllm_logs/harvest4_public.jsonl; see the
README beside it): club-3090's Qwen3.6 starts on RTX 3090/5090 cards and logs kept in public repositories (L4, T4,
L40S, RTX PRO 6000, RTX 5090). Nothing was fitted on them; the residuals the README lists are left as found."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuplan.validation import load_records, validate_records

LOGS = Path(__file__).parent / "fixtures" / "vllm_logs"


def _rows() -> dict[str, dict]:
    return {r["id"]: r for r in validate_records(load_records(LOGS / "harvest4_public.jsonl"))["records"]}


def test_qwen3_8_27b_hybrid_on_an_rtx_pro_6000_matches_weights_blocks_and_tokens() -> None:
    row = _rows()["cdx-005"]
    err = row["abs_pct_error"]
    assert err["weights_gib"] < 0.5 and err["num_gpu_blocks"] < 1.5 and err["kv_cache_tokens"] < 1.5


@pytest.mark.parametrize("rid", ["cdx-003", "cdx-004"])
def test_gemma_on_one_l4_with_vllm_0_21_matches_weights_and_kv(rid: str) -> None:
    err = _rows()[rid]["abs_pct_error"]
    assert err["weights_gib"] < 1.0 and err["available_kv_cache_gib"] < 2.0


def test_gemma_4_31b_qat_at_its_first_settings_does_not_start_on_one_l4() -> None:
    record = next(r for r in load_records(LOGS / "harvest4_public.jsonl") if r["id"] == "cdx-009")
    assert record["outcome"] == "failed"
    row = _rows()["cdx-009"]
    assert row["predicted"]["fits"] is False and row["predicted"]["reason"]


def test_an_autoround_start_without_its_quantization_block_is_refused_by_field_not_guessed() -> None:
    """club-3090's Lorbus/Qwen3.6-27B-int4-AutoRound records carry only the base config: vLLM's INC method needs the
    checkpoint's own AutoRound block (bits, group size, packing), so gpuplan names the field instead of sizing it."""
    rows = _rows()
    refused = [rid for rid, row in rows.items() if row["predicted"].get("error")]
    assert refused == [f"c3k-00{i}" for i in range(4, 10)]
    for rid in refused:
        assert rows[rid]["predicted"]["error"].startswith("quantization:")


def test_every_other_record_gets_a_verdict() -> None:
    rows = _rows()
    assert len(rows) == 22
    for rid, row in rows.items():
        if row["predicted"].get("error") or rid == "cdx-011":  # cdx-011: a Radeon card gpuplan has no entry for
            continue
        assert row["predicted"]["fits"] in (True, False), rid
