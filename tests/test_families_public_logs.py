"""Public start-ups of families gpuplan first sized from vLLM's source alone (tests/fixtures/vllm_logs/
families_public.jsonl: DeepSeek-OCR on vLLM 0.11.2, Qwen3-Omni's thinker under vllm-omni on 0.11.0). Only
"Model loading took" was reachable in both, so that is what is held here."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuplan.validation import validate_file

FAMILIES = Path(__file__).parent / "fixtures" / "vllm_logs" / "families_public.jsonl"


@pytest.fixture(scope="module")
def by_id() -> dict:
    return {r["id"]: r for r in validate_file(FAMILIES)["records"]}


def test_deepseek_ocr_weights_on_one_a100_match_its_log(by_id: dict) -> None:
    """DeepSeek-OCR (SAM + CLIP towers, the MHA DeepSeek-V2 MoE decoder): logged 6.2304 GiB."""
    rec = by_id["fam-001"]
    assert rec["predicted"]["fits"]
    assert rec["abs_pct_error"]["weights_gib"] <= 1.0


def test_qwen3_omni_thinker_weights_at_tp2_are_within_three_percent(by_id: dict) -> None:
    """Qwen3-Omni-30B-A3B's thinker (text MoE, vision and audio towers) on two A100s: logged 30.33 GiB a rank,
    from vllm-omni's own thinker class (vLLM 0.11.0 had none), so held to 3%, not to gpuplan's usual 1%."""
    rec = by_id["fam-002"]
    assert rec["predicted"]["fits"]
    assert rec["abs_pct_error"]["weights_gib"] <= 3.0


def test_qwen3_5_9b_on_an_l40s_matches_its_full_start_up_log() -> None:
    """vlm-004 (tests/fixtures/vllm_logs/vlm_public.jsonl): Qwen3.5-9B with its vision tower, vLLM 0.19 defaults on a
    48 GB L40S, every start-up line logged: 17.66 GiB loaded, 20.27 GiB of KV, 165,792 tokens in 528-token blocks
    (the Gated DeltaNet page sets the block), 2.52x at 262,144 tokens. Gated DeltaNet + full attention, mrope."""
    rec = {r["id"]: r for r in validate_file(FAMILIES.parent / "vlm_public.jsonl")["records"]}["vlm-004"]
    err = rec["abs_pct_error"]
    assert rec["predicted"]["fits"]
    assert err["weights_gib"] <= 0.5
    assert err["available_kv_cache_gib"] <= 1.0 and err["kv_cache_tokens"] <= 1.0 and err["max_concurrency"] <= 1.5
