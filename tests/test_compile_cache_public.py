"""The same vLLM 0.30 command started twice: first on an empty torch.compile cache, then with it filled.

vLLM measures a cold compile's scratch memory as activation, so the first start gets less KV cache than every
restart (tests/fixtures/vllm_logs/compile_cache_public.jsonl, from a public benchmark harness). gpuplan gives one
figure; at TP=1 it should land between what the two starts got, and say when the difference matters.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.api_python import estimate
from gpuplan.validation import predict

RECORDS = [json.loads(line) for line in
           (Path(__file__).parent / "fixtures" / "vllm_logs" / "compile_cache_public.jsonl").read_text().splitlines()]


def _pairs() -> list[tuple[dict, dict]]:
    by = {}
    for r in RECORDS:
        d = r["deployment"]
        by.setdefault((r["model_id"], d["gpu_name"], d["tensor_parallel_size"]), {})[r["compile_cache"]] = r
    return [(p["cold"], p["warm"]) for p in by.values() if set(p) == {"cold", "warm"}]


def test_the_fixture_pairs_every_single_gpu_card_it_holds() -> None:
    assert len(_pairs()) == 7
    assert all(cold["logged"]["kv_cache_tokens"] < warm["logged"]["kv_cache_tokens"] for cold, warm in _pairs())


@pytest.mark.parametrize(("cold", "warm"), _pairs(), ids=lambda r: f"{r['model_id']}@{r['deployment']['gpu_name']}")
def test_a_single_gpu_start_is_predicted_between_its_cold_and_its_warm_start(cold: dict, warm: dict) -> None:
    tokens = predict(warm)["kv_cache_tokens"]
    assert cold["logged"]["kv_cache_tokens"] * 0.97 <= tokens <= warm["logged"]["kv_cache_tokens"] * 1.03


def test_the_cold_start_warning_shows_where_a_gib_is_a_large_share_of_the_kv_cache() -> None:
    on_l4 = estimate("qwen3-8b", gpu="L4", max_model_len=4096, vllm_version="0.30.0")
    on_h100 = estimate("qwen3-8b", gpu="H100", max_model_len=4096, vllm_version="0.30.0")
    eager = estimate("qwen3-8b", gpu="L4", max_model_len=4096, vllm_version="0.30.0", enforce_eager=True)
    before = estimate("qwen3-8b", gpu="L4", max_model_len=4096, vllm_version="0.19.0")
    assert any("torch.compile cache" in w for w in on_l4.warnings)
    for quiet in (on_h100, eager, before):
        assert not any("torch.compile cache" in w for w in quiet.warnings)
