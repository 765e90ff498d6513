"""Public start-ups found on 2026-11-22 by a third search (tests/fixtures/vllm_logs/harvest3_public.jsonl; see the
README beside it): Gemma-4 NVFP4 checkpoints on Blackwell cards and a Step-3.7-Flash MTP start. Nothing was fitted
on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuplan.engines.vllm.profiles import get_profile
from gpuplan.validation import load_records, validate_records

LOGS = Path(__file__).parent / "fixtures" / "vllm_logs"


def _rows() -> dict[str, dict]:
    return {r["id"]: r for r in validate_records(load_records(LOGS / "harvest3_public.jsonl"))["records"]}


def test_nvidias_gemma_4_26b_nvfp4_loads_its_experts_in_nvfp4_as_logged() -> None:
    """nvidia/Gemma-4-26B-A4B-NVFP4's ignore list names every layer's mlp*, router* and self_attn*: the dense MLP,
    router and attention stay bf16, but vLLM's experts live at layers.N.experts, so they load in NVFP4: 17.89 GiB
    logged. Before gpuplan named the experts as vLLM does, it read them as ignored and predicted 48.47 GiB."""
    row = _rows()["h3-005"]
    assert row["logged"]["weights_gib"] == 17.89
    assert row["abs_pct_error"]["weights_gib"] < 0.5


def test_gemma_4_31b_nvfp4_on_an_rtx_pro_6000_matches_weights_and_tokens() -> None:
    row = _rows()["h3-006"]
    assert row["abs_pct_error"]["weights_gib"] < 1.0 and row["abs_pct_error"]["kv_cache_tokens"] < 1.5


def test_every_start_with_a_usable_config_is_predicted_to_start_and_the_compact_one_is_refused_by_field() -> None:
    rows = _rows()
    assert len(rows) == 7
    for rid, row in rows.items():
        if rid == "h3-007":  # aiconfigurator's compact Step-3.7 config: not the checkpoint's config.json
            assert row["predicted"]["fits"] is None and "moe_num_experts" in row["predicted"]["error"]
        else:
            assert row["predicted"]["fits"] is True, (rid, row["predicted"]["reason"])


@pytest.mark.parametrize("rid", ["h3-002", "h3-003", "h3-004"])
def test_gemma_4_26b_nvfp4_with_vllms_cutlass_experts_leaves_the_kv_cache_logged(rid: str) -> None:
    """The 99sono starts pass --moe-backend cutlass (VLLM_CUTLASS NvFp4 MoE in the log). vLLM's CUTLASS FP4 experts
    permute the tokens to expert order and back in fresh [tokens x 8, 2816] tensors: available KV fell 1.93 GiB from
    8192 to 16384 batched tokens. Sized as the Triton kernel, gpuplan read 12.6% (8192) and 28% (16384) too much KV;
    with the kernel's own tensors (budget.cutlass_nvfp4_moe, computed, not fitted) 1.7% and 0.6%."""
    row = _rows()[rid]
    assert row["abs_pct_error"]["available_kv_cache_gib"] < 2.0
    assert row["abs_pct_error"]["kv_cache_tokens"] < 2.0


def test_vllm_0_20_subtracts_its_cuda_graph_estimate_and_defaults_to_0_92() -> None:
    """h3-005 (0.20.2) logs 'CUDA graph memory profiling is enabled': 0.20.0 turned
    VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS on (envs.py) and raised the utilization default to 0.92
    (config/cache.py); 0.19 has neither."""
    p19, p20 = get_profile("0.19.1"), get_profile("0.20.2")
    assert (p19.cudagraph_subtracted, p19.default_utilization) == (False, 0.9)
    assert (p20.cudagraph_subtracted, p20.default_utilization) == (True, 0.92)
    row = _rows()["h3-005"]
    assert row["abs_pct_error"]["available_kv_cache_gib"] < 8.0  # was 52% before the two changes
