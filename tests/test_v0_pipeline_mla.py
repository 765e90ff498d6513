"""The V0 engine's profile run on pipeline stages and with MLA (vLLM 0.6.5 - 0.10, data/vllm_v0_forward.json):
the first stage at TP > 1 peaks at least at the 256 MiB L2-flush buffer Triton's do_bench allocates when Inductor
autotunes the compiled vocab-parallel embedding mask (torch <= 2.6, vLLM 0.6.5 - 0.8.x); a later stage keeps the
zero hidden_states its dummy run received; 0.8.x's MLA backend prefills per-token latent and per-head tensors, and
with prefix caching or chunked prefill keeps a context workspace and a stand-in for kv_b_proj's output over it.
The records are 0.8.3's pipeline-parallel fallback on A100-40GB nodes (tests/fixtures/vllm_logs/v0_fallback.jsonl)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm import budget as B
from gpuplan.engines.vllm.estimate import estimate, resolve
from gpuplan.validation import build_spec, deployment_of, load_records

GiB = 1 << 30
MiB = 1 << 20
FALLBACK = Path(__file__).parent / "fixtures" / "vllm_logs" / "v0_fallback.jsonl"


def _record(rid: str) -> dict:
    return next(r for r in load_records(FALLBACK) if r["id"] == rid)


def _run(rid: str, **changes):
    rec = _record(rid)
    spec = build_spec(rec["hf_config"], rec.get("model_id"))
    return spec, estimate(spec, replace(deployment_of(rec), **changes)), rec["logged"]


def test_deepseek_v25_tp8_pp2_on_a100_40gb_under_0_8_3_stage_0_activation() -> None:
    # MLA prefill of 8,192 tokens plus the prefix-caching workspace: 1.27 GiB logged by the driver (stage 0)
    for rid in ("v0fb-002", "v0fb-003"):
        _, r, logged = _run(rid)
        assert r.per_stage[0]["activation_bytes"] / GiB == pytest.approx(logged["activation_peak_gib"], rel=0.02)


def test_deepseek_v25_without_prefix_caching_drops_the_mla_context_workspace() -> None:
    # V0 leaves prefix caching off unless asked; then neither the 64K-row workspace nor the kv_b stand-in exists
    spec, on, _ = _run("v0fb-002")
    _, off, _ = _run("v0fb-002", enable_prefix_caching=None)
    rows = B.v0_mla_context_rows(8192, 256, 16)
    assert rows == 65536  # 8 x max_model_len, under the 128K cap
    workspace = rows * (512 + 64) * 2
    assert on.per_stage[0]["activation_bytes"] - off.per_stage[0]["activation_bytes"] >= workspace
    # chunked prefill (max_num_batched_tokens below max_model_len) allocates it too
    _, chunked, _ = _run("v0fb-002", enable_prefix_caching=None, max_num_batched_tokens=4096)
    _, both, _ = _run("v0fb-002", max_num_batched_tokens=4096)
    assert [s["activation_bytes"] for s in chunked.per_stage] == [s["activation_bytes"] for s in both.per_stage]


def test_deepseek_v25_tp8_pp2_available_kv_on_the_driver_within_1_percent() -> None:
    for rid in ("v0fb-002", "v0fb-003"):
        _, r, logged = _run(rid)
        assert r.available_kv_cache_bytes / GiB == pytest.approx(logged["available_kv_cache_gib"], rel=0.01)


def test_llama33_70b_tp4_pp2_under_0_8_3_stage_0_peaks_at_tritons_flush_buffer() -> None:
    # the forward of 2,048 tokens on 40 layers is about 0.18 GiB; the log says 0.25
    spec, r, logged = _run("v0fb-004")
    assert r.per_stage[0]["activation_bytes"] == 256 * MiB
    assert r.per_stage[0]["activation_bytes"] / GiB == pytest.approx(logged["activation_peak_gib"], abs=0.005)
    assert r.available_kv_cache_bytes / GiB == pytest.approx(logged["available_kv_cache_gib"], rel=0.01)


def test_llama_on_v0_under_0_9_2_or_at_tp1_has_no_flush_floor() -> None:
    # torch 2.7 (vLLM 0.9) no longer benchmarks through do_bench's 256 MiB buffer; at TP=1 the mask is not called
    env = (("VLLM_USE_V1", "0"),)
    _, newer, _ = _run("v0fb-004", vllm_version="0.9.2", env=env)
    assert newer.profile == "v0" and newer.per_stage[0]["activation_bytes"] < 256 * MiB
    # Llama-3.2-3B in two stages: the first stage's 14 layers need about 0.13 GiB at 2,048 tokens
    _, tp2, _ = _run("v0fb-001", tensor_parallel_size=2, pipeline_parallel_size=2)
    _, tp1, _ = _run("v0fb-001", pipeline_parallel_size=2)
    assert tp2.per_stage[0]["activation_bytes"] == 256 * MiB
    assert tp1.per_stage[0]["activation_bytes"] < 256 * MiB


def test_llama33_70b_pp2_stage_1_holds_one_more_hidden_buffer_than_the_same_layers_on_stage_0() -> None:
    rec = _record("v0fb-004")
    spec = build_spec(rec["hf_config"], rec.get("model_id"))
    r = resolve(spec, replace(deployment_of(rec), tensor_parallel_size=1))  # TP=1: no flush floor on stage 0
    kw = dict(last_stage=False, tokens=2048, sampler_rows=256, tp=1, moe_tp=1, ep=1, act_bytes=2,
              quant_method=None, profile=r.profile, cc=8.0, pipeline=True)
    first = B.activation(spec, 0, 40, **kw).peak
    later = B.activation(spec, 40, 80, **kw).peak
    assert later - first == 2048 * spec.hidden_size * 2


def test_v0_non_torch_at_tp_gt_1_from_0_8() -> None:
    # 0.89-0.93 GiB logged on the A100 nodes; 0.2 on RTX 2080 Ti boards at TP4 (0.8.5); 0.7 keeps 1.0
    _, r, _ = _run("v0fb-002")
    assert r.non_torch_bytes / GiB == pytest.approx(0.91)
    _, older, _ = _run("v0fb-004", vllm_version="0.7.3", pipeline_parallel_size=1, max_model_len=8192)
    assert older.profile == "v0" and older.non_torch_bytes / GiB == pytest.approx(1.0)


def test_a_dense_model_on_one_gpu_is_unchanged_by_prefix_caching() -> None:
    rec = _record("v0fb-006")
    spec = build_spec(rec["hf_config"], rec.get("model_id"))
    dep = deployment_of(rec)
    assert estimate(spec, dep).activation_peak_bytes == estimate(
        spec, replace(dep, enable_prefix_caching=True)).activation_peak_bytes


def test_deployment_reads_prefix_caching_from_the_record() -> None:
    assert deployment_of(_record("v0fb-002")).enable_prefix_caching is True
    assert isinstance(deployment_of(_record("v0fb-006")), Deployment)
    assert deployment_of(_record("v0fb-006")).enable_prefix_caching is None
