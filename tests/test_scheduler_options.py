"""--enable-chunked-prefill, --performance-mode and the scheduler's own checks on max_num_batched_tokens.

vLLM sizes its profile run by max_num_batched_tokens, which depends on chunked prefill: V1 always chunks by default
(and before 0.9.2 ignores --no-enable-chunked-prefill), V0 only above 32K tokens. Without chunking a whole prompt
is one batch, so the profile run grows to max_model_len tokens. SchedulerConfig refuses a batch smaller than
max_num_seqs, and without chunking one smaller than max_model_len (config/scheduler.py verify_max_model_len)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gpuplan.api.app import create_app
from gpuplan.api_python import estimate
from gpuplan.cli import app
from gpuplan.errors import GpuplanError

MODEL = "meta-llama/Llama-3.1-8B"


def _est(version: str = "0.19.0", **kw):
    kw.setdefault("max_model_len", 32768)
    return estimate(MODEL, gpu="H100", vllm_version=version, **kw)


def test_turning_chunked_prefill_off_profiles_a_whole_32k_prompt_and_leaves_less_kv() -> None:
    chunked, whole = _est(), _est(enable_chunked_prefill=False)
    assert (chunked.max_num_batched_tokens, whole.max_num_batched_tokens) == (8192, 32768)
    assert whole.fits
    assert whole.activation_peak_bytes > chunked.activation_peak_bytes
    assert whole.kv_cache_tokens < chunked.kv_cache_tokens


def test_v1_before_0_9_2_chunks_whatever_the_flag_says() -> None:
    assert _est("0.8.5", enable_chunked_prefill=False).max_num_batched_tokens == 8192
    # 0.9.2 - 0.11.0 set the batch to max_model_len even over a value the user gave
    assert _est("0.10.2", enable_chunked_prefill=False, max_num_batched_tokens=8192).max_num_batched_tokens == 32768


def test_a_batch_shorter_than_the_context_without_chunking_is_refused_with_the_length_that_works() -> None:
    r = _est("0.19.0", enable_chunked_prefill=False, max_num_batched_tokens=8192)
    assert not r.fits and r.failure == "refused"
    assert "max_num_batched_tokens (8192) is smaller than max_model_len (32768)" in r.reason
    assert r.max_model_len_fit == 8192


def test_a_batch_smaller_than_max_num_seqs_is_refused_in_every_version() -> None:
    for version in ("0.6.6", "0.19.0", "0.33.0"):
        r = _est(version, max_num_seqs=256, max_num_batched_tokens=128)
        assert not r.fits and r.failure == "refused", version
        assert "must be greater than or equal to max_num_seqs (256)" in r.reason
        assert r.max_model_len_fit is None


def test_v0_needs_chunked_prefill_for_a_batch_shorter_than_the_context() -> None:
    v0 = dict(env={"VLLM_USE_V1": "0"}, max_model_len=16384, max_num_batched_tokens=4096)
    assert not _est("0.8.5", **v0).fits
    on = _est("0.8.5", enable_chunked_prefill=True, **v0)
    assert on.fits and on.max_num_batched_tokens == 4096


def test_the_cli_and_the_api_take_the_flag() -> None:
    out = CliRunner().invoke(app, ["estimate", MODEL, "--gpu", "H100", "--max-model-len", "32768",
                                   "--vllm-version", "0.19.0", "--no-enable-chunked-prefill", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["deployment"]["max_num_batched_tokens"] == 32768
    client = TestClient(create_app(allow_network=False))
    res = client.post("/v1/estimate", json={"model": MODEL, "gpu": "H100", "max_model_len": 32768,
                                            "vllm_version": "0.19.0", "enable_chunked_prefill": False})
    assert res.status_code == 200 and res.json()["deployment"]["max_num_batched_tokens"] == 32768
    bad = client.post("/v1/estimate", json={"model": MODEL, "gpu": "H100", "enable_chunked_prefill": "maybe"})
    assert bad.status_code in (400, 422) and "enable_chunked_prefill" in bad.text


def test_throughput_mode_doubles_the_default_batch_and_costs_kv() -> None:
    """arg_utils.py (0.17+): --performance-mode throughput doubles the defaulted max_num_seqs and
    max_num_batched_tokens (an H100 server: 2048 sequences, 16,384 tokens); values the user gives stay."""
    base, fast = _est("0.33.0"), _est("0.33.0", performance_mode="throughput")
    assert (fast.max_num_seqs, fast.max_num_batched_tokens) == (2048, 16384)
    assert fast.kv_cache_tokens < base.kv_cache_tokens
    kept = _est("0.33.0", performance_mode="throughput", max_num_seqs=64, max_num_batched_tokens=4096)
    assert (kept.max_num_seqs, kept.max_num_batched_tokens) == (64, 4096)


def test_interactivity_mode_captures_every_batch_size_up_to_32() -> None:
    """config/vllm.py _set_cudagraph_sizes (0.17+): 1..32, then the usual 8- and 16-token steps to 512."""
    r = _est("0.33.0", performance_mode="interactivity")
    graphs = next(c for c in r.components if c.name == "cudagraph")
    assert "for 76 batch sizes" in graphs.note
    assert "for 51 batch sizes" in next(c for c in _est("0.33.0").components if c.name == "cudagraph").note


def test_performance_mode_is_refused_where_vllm_has_none() -> None:
    with pytest.raises(GpuplanError, match="performance_mode.*0.17"):
        _est("0.16.0", performance_mode="throughput")
    with pytest.raises(GpuplanError, match="performance_mode.*accepted: balanced, throughput, interactivity"):
        _est("0.33.0", performance_mode="fast")
    out = CliRunner().invoke(app, ["estimate", MODEL, "--gpu", "H100", "--performance-mode", "fast"])
    assert out.exit_code != 0 and "performance_mode: Input should be 'balanced'" in str(out.exception)
    res = TestClient(create_app(allow_network=False)).post(
        "/v1/estimate", json={"model": MODEL, "gpu": "H100", "performance_mode": "fast"})
    assert res.status_code in (400, 422) and "performance_mode" in res.text
