"""Public start-ups found on 2026-11-22 (tests/fixtures/vllm_logs/harvest_code.jsonl, harvest_issues.jsonl; see
the README beside them), after every calibrated constant was set: they test the mechanism, not a fit."""

from __future__ import annotations

from pathlib import Path

from gpuplan.validation import load_records, validate_records

LOGS = Path(__file__).parent / "fixtures" / "vllm_logs"


def _result() -> dict:
    return validate_records(load_records(LOGS / "harvest_code.jsonl") + load_records(LOGS / "harvest_issues.jsonl"))


def test_every_harvested_start_up_is_predicted_to_start_as_it_did() -> None:
    result = _result()
    assert len(result["records"]) == 5
    for rec in result["records"]:
        assert "error" not in rec["predicted"], rec["id"]
        assert rec["predicted"]["fits"] is True, (rec["id"], rec["predicted"]["reason"])


def test_available_kv_on_harvested_start_ups_meets_the_issue_median() -> None:
    s = _result()["summary"]["available_kv_cache_gib"]
    assert s["n"] == 5 and s["median_abs_pct"] <= 3.0


def test_qwen3_235b_fp8_on_eight_l40s_at_0_10_2_peaks_at_the_sampler_not_sampler_plus_moe_workspace() -> None:
    """vLLM 0.10.2 allocates the fused-MoE workspace per call, so it is freed before the sampler runs (from 0.11 it
    stays in shared buffers): the logged peak activation is 1.40 GiB, the sampler's 1.41, not 1.58 (read in the
    wheels' fused_moe/modular_kernel.py; not fitted on this record)."""
    rec = next(r for r in _result()["records"] if r["id"] == "hc-002")
    assert rec["logged"]["activation_peak_gib"] == 1.40
    assert abs(rec["predicted"]["activation_peak_gib"] - 1.40) <= 0.02


def test_llama_3_1_8b_quantized_in_flight_by_bitsandbytes_on_0_5_4_loads_what_vllm_logged() -> None:
    """harvest2_public hqm-001 / hqm-005: one sweep's bitsandbytes 4-bit start (5.3421 GB logged, nf4 with double-
    quantized absmax) and its bf16 baseline (14.9888 GB), both within 0.5%."""
    rows = {r["id"]: r for r in validate_records(load_records(LOGS / "harvest2_public.jsonl"))["records"]}
    for rid in ("hqm-001", "hqm-005"):
        assert rows[rid]["abs_pct_error"]["weights_gib"] < 0.5, rid


def test_every_second_harvest_start_up_that_names_its_gpu_is_predicted_to_start() -> None:
    result = validate_records(load_records(LOGS / "harvest2_public.jsonl"))
    judged = [r for r in result["records"] if r["predicted"].get("fits") is not None]
    assert len(judged) >= 10
    assert all(r["predicted"]["fits"] is True for r in judged), [r["id"] for r in judged if not r["predicted"]["fits"]]
