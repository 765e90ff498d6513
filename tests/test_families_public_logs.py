"""Public start-ups of families gpuplan first sized from vLLM's source alone (tests/fixtures/vllm_logs/
families_public.jsonl): DeepSeek-OCR on vLLM 0.11.2 and Qwen3-Omni's thinker under vllm-omni on 0.11.0 (only
"Model loading took" was reachable in both); Qwen3-Next-80B at TP=2 on two H200s (0.10.2), Qwen2.5-VL-3B on an L4
in a Ray job (0.11.0), Intel's AutoRound Qwen2.5-Omni-7B on an RTX 4090 (0.21.0, a first start) and Qwen3.5-35B-A3B
FP8 on a GB10 (0.18.1 dev) with their whole start-up lines; NVIDIA's Nemotron-3-Nano cookbook on 0.12.0 (GPU not
named). No constant was fitted on them."""

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


def test_qwen3_next_80b_at_tp2_on_two_h200s_matches_its_kv_cache_to_the_token(by_id: dict) -> None:
    """fam-101: 74.28 GiB loaded a GPU, 973,760 tokens, 14.77x at 262,144 (the issue's worked case, logged)."""
    err = by_id["fam-101"]["abs_pct_error"]
    assert err["weights_gib"] <= 0.1 and err["kv_cache_tokens"] <= 0.1 and err["max_concurrency"] <= 0.1


def test_an_autoround_qwen2_5_omni_on_one_4090_loads_and_starts_as_logged(by_id: dict) -> None:
    """fam-103: vLLM serves quant_method auto-round as INC through GPTQ-Marlin, the towers in bf16: 7.75 GiB
    loaded. gpuplan's KV figure is 10.6% under the log: 0.84 GiB of CUDA graphs budgeted against 0.46 logged, and
    the catalog's RTX 4090 total, now the 23.52 GiB vLLM logs on Linux (it was a Windows driver's 23.99), since
    this record does not log its card's total; at 23.99 it was 7% under."""
    rec = by_id["fam-103"]
    assert rec["predicted"]["fits"]
    assert rec["abs_pct_error"]["weights_gib"] <= 1.5
    assert rec["abs_pct_error"]["available_kv_cache_gib"] <= 11.0


def test_qwen2_5_vl_3b_on_an_l4_under_0_11_matches_its_kv_cache(by_id: dict) -> None:
    """fam-102: vLLM 0.11.0's Qwen2.5-VL tower peaks in its float32 rotary step over one 65,536-patch profile image
    (3.30 GiB, tests/test_qwen_vl_encoder_profile.py): 9.26 GiB of KV logged. Counting the MLP step instead, as
    gpuplan did, gave 10.42 (12.5% over)."""
    err = by_id["fam-102"]["abs_pct_error"]
    assert by_id["fam-102"]["predicted"]["fits"]
    assert err["weights_gib"] <= 1.0 and err["available_kv_cache_gib"] <= 1.0 and err["kv_cache_tokens"] <= 1.0


def test_qwen3_5_on_a_gb10_starts_as_logged(by_id: dict) -> None:
    """fam-104 (Qwen3.5-35B-A3B-FP8 on a GB10's unified memory) is a known miss on the KV figure, 6.4% over: vLLM
    counts host-side use of the shared memory as non-torch. Its FP8 block was not found, so weights are not scored."""
    assert by_id["fam-104"]["predicted"]["fits"]


def test_qwen3_next_profile_peak_on_0_10_2_is_the_sampler_alone() -> None:
    """fam-101's ledger: 5.58 GiB of peak activation. On 0.10.2 the fused-MoE workspace is freed before the
    sampler runs, so the peak is the sampler's (5.60), not sampler plus workspace (5.95)."""
    from gpuplan.validation import load_records, validate_records

    rec = validate_records([r for r in load_records(FAMILIES) if r["id"] == "fam-101"])["records"][0]
    assert abs(rec["predicted"]["activation_peak_gib"] - rec["logged"]["activation_peak_gib"]) <= 0.05


def test_nemotron_3_nano_weights_on_0_12_match_nvidias_cookbook(by_id: dict) -> None:
    """fam-105 (Nemotron-3-Nano-30B-A3B BF16, vLLM 0.12.0, an unnamed GPU): 58.91 GiB loaded, 58.82 computed; no GPU,
    so no KV prediction (its KV layout is tests/test_mamba2_hybrids.py's)."""
    rec = by_id["fam-105"]
    assert rec["abs_pct_error"]["weights_gib"] <= 0.5
    assert rec["predicted"].get("available_kv_cache_gib") is None and "kv_cache_tokens" not in rec["abs_pct_error"]
