"""vLLM's CUDA-graph memory estimate, which 0.20+ subtracts before sizing the KV cache (budget.cudagraph).

Each case is a public start-up from tests/fixtures/vllm_logs whose log prints "Profiling CUDA graph memory:
PIECEWISE=.. FULL=.." and "Estimated CUDA graph memory: E GiB total" (or, for 0.19, "took X GiB").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.engines.vllm import budget as B
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.engines.vllm.profiles import get_profile
from gpuplan.model.adapters import build_spec
from gpuplan.units import GiB
from gpuplan.validation import deployment_of, predict

FIXTURES = Path(__file__).parent / "fixtures" / "vllm_logs"


def _record(name: str, rid: str) -> dict:
    for line in (FIXTURES / name).read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            if rec["id"] == rid:
                return rec
    raise KeyError(rid)


def _estimate(name: str, rid: str, *, tp: int = 1, max_num_seqs: int, mnbt: int, cc: float | None = None,
              kv_dtype: str = "auto") -> float:
    rec = _record(name, rid)
    spec = build_spec(rec["hf_config"], rec["model_id"])
    profile = get_profile(rec["engine_version"])
    return B.cudagraph(spec, 0, len(spec.layers), profile, tp=tp, max_num_seqs=max_num_seqs, mnbt=mnbt,
                       enforce_eager=False, cc=cc, kv_dtype=kv_dtype) / GiB


@pytest.mark.parametrize("version, max_num_seqs, mnbt, piecewise, full", [
    ("0.23.1", 8, 65536, 5, 4),  # rp-005: PIECEWISE=5 (largest=16), FULL=4 (largest=8)
    ("0.22.1", 256, 2048, 51, 35),  # rp-002: PIECEWISE=51 (largest=512), FULL=35 (largest=256)
    ("0.26.0", 1024, 8192, 51, 51),  # rp-003 / rp-006: PIECEWISE=51, FULL=51 (largest=512)
])
def test_how_many_graphs_does_vllm_profile(version, max_num_seqs, mnbt, piecewise, full):
    p = get_profile(version)
    assert B.capture_sizes(p, max_num_seqs, mnbt) == piecewise
    assert B.full_capture_sizes(p, max_num_seqs, mnbt) == full


@pytest.mark.parametrize("version, max_num_seqs, mnbt, qlen, runner_v2, full_decode, piecewise, full", [
    # speculative_public hsm-001: MTP, 2 tokens, V1 runner on FlashInfer (GB10, fp8 KV cache), which takes no
    # multi-token decode batches there: PIECEWISE=9 (largest=48), nothing rounded
    ("0.24.0", 8, 65536, 3, False, False, 9, 0),
    # hsm-003: cudagraph_capture_sizes [1, 2, 4, 8, 16, 24] from a ceiling of 2 x 5 x 3, PIECEWISE only
    ("0.22.0", 5, 8192, 3, False, False, 6, 0),
    # hsm-002: DeepSeek-V4's MTP keeps FULL graphs, so the V1 runner rounds [1, 2, 4, 8, 16, 24] up to multiples of
    # 3: PIECEWISE=5 (largest=24), FULL=3 (largest=9)
    ("0.22.0", 4, 8192, 3, False, True, 5, 3),
    # hse-010: EAGLE, 3 tokens, on the V1 runner, which rounds [1, 2, 4, 8, 16] up to multiples of 4:
    # PIECEWISE=3 (largest=16), FULL=2 (largest=8)
    ("0.19.0", 2, 8192, 4, False, True, 3, 2),
    # the V2 runner of 0.21-0.24 rounds when it builds its graph manager, whatever the mode (cudagraph_utils.py):
    # [1, 2, 4, 8, 16, 24, 32, 40, 48] -> [3, 6, 9, 18, 24, 33, 42, 48]; from 0.26 it keeps the sizes
    ("0.24.0", 8, 65536, 3, True, False, 8, 0),
    ("0.26.0", 8, 65536, 3, True, True, 9, 4),
])
def test_a_drafter_widens_the_graphs_to_its_decode_steps(version, max_num_seqs, mnbt, qlen, runner_v2, full_decode,
                                                          piecewise, full):
    p = get_profile(version)
    shape = B.GraphShape(decode_query_len=qlen, runner_v2=runner_v2, full_decode=full_decode)
    assert B.capture_sizes(p, max_num_seqs, mnbt, shape=shape) == piecewise
    assert B.full_capture_sizes(p, max_num_seqs, mnbt, shape=shape) == full


def test_capture_sizes_follow_each_release_s_rule():
    # 0.28+: a compute capability 10.x GPU captures up to 1024 tokens (83 sizes), others stop at 512 (51)
    blackwell, hopper = B.GraphShape(cc=10.0), B.GraphShape(cc=9.0)
    assert B.capture_sizes(get_profile("0.28.0"), 1024, 16384, shape=blackwell) == 83
    assert B.capture_sizes(get_profile("0.28.0"), 1024, 16384, shape=hopper) == 51
    assert B.capture_sizes(get_profile("0.27.1"), 1024, 16384, shape=blackwell) == 51
    # 0.20.1+: an off-stride max_num_batched_tokens under the ceiling is captured too
    assert B.capture_size_list(get_profile("0.20.1"), 256, 100)[-2:] == [96, 100]
    assert B.capture_size_list(get_profile("0.20.0"), 256, 100)[-1] == 96
    # 0.31+: so is an off-stride max_num_seqs
    assert 100 in B.capture_size_list(get_profile("0.31.0"), 100, 8192)
    assert 100 not in B.capture_size_list(get_profile("0.30.0"), 100, 8192)


def test_releases_before_full_and_piecewise_capture_no_full_graphs():
    assert B.full_capture_sizes(get_profile("0.10.2"), 256, 8192) == 0


def test_fewer_sequences_mean_fewer_full_graphs_and_a_smaller_estimate():
    # Qwen2.5-Omni-7B on an RTX 4090 (fam-103, 0.21): 256 sequences capture FULL=35, 1024 would capture 51.
    small = _estimate("families_public.jsonl", "fam-103", max_num_seqs=256, mnbt=8192, cc=8.9)
    big = _estimate("families_public.jsonl", "fam-103", max_num_seqs=1024, mnbt=8192, cc=8.9)
    assert small < big


@pytest.mark.parametrize("name, rid, max_num_seqs, mnbt, cc, logged", [
    ("families_public.jsonl", "fam-103", 256, 8192, 8.9, 0.62),  # Qwen2.5-Omni-7B, RTX 4090, 0.21
    ("recent_public.jsonl", "rp-002", 256, 2048, 8.6, 0.79),  # Gemma-4-E4B, RTX 3090 Ti, 0.22.1
])
def test_does_the_estimate_match_what_vllm_logged(name, rid, max_num_seqs, mnbt, cc, logged):
    got = _estimate(name, rid, max_num_seqs=max_num_seqs, mnbt=mnbt, cc=cc)
    assert got == pytest.approx(logged, rel=0.15)


def test_a_flashinfer_start_counts_the_backend_workspace_in_its_first_capture():
    # Qwen3.6-27B NVFP4 on a GB10 with an fp8 KV cache (rp-005, 0.23.1): FlashInfer, 9 graphs, 0.61 GiB estimated.
    kw = dict(max_num_seqs=8, mnbt=65536)
    with_fi = _estimate("recent_public.jsonl", "rp-005", cc=12.1, kv_dtype="fp8", **kw)
    with_fa = _estimate("recent_public.jsonl", "rp-005", cc=12.1, kv_dtype="auto", **kw)
    assert with_fi - with_fa == pytest.approx(394 / 1024, abs=0.01)
    assert with_fi == pytest.approx(0.61, rel=0.25)


def test_a_model_that_mixes_head_sizes_runs_triton_and_gets_no_flashinfer_workspace():
    # Gemma-4-31B on a B300 (rp-003): vLLM forces TRITON_ATTN for its 256/512 head sizes.
    kw = dict(max_num_seqs=1024, mnbt=8192)
    assert _estimate("recent_public.jsonl", "rp-003", cc=10.3, **kw) == \
        pytest.approx(_estimate("recent_public.jsonl", "rp-003", cc=None, **kw))


def test_before_0_20_the_graphs_are_not_estimated_so_no_workspace_is_added():
    kw = dict(max_num_seqs=256, mnbt=8192)
    assert _estimate("vlm_public.jsonl", "vlm-004", cc=10.0, **kw) == \
        pytest.approx(_estimate("vlm_public.jsonl", "vlm-004", cc=9.0, **kw))


def test_glm5_sparse_mla_on_gb200_is_no_longer_half_the_logged_estimate():
    # rp-006: GLM-5.2 NVFP4, TP=4 + EP on GB200 (0.26), PIECEWISE=51 FULL=51, 4.99 GiB estimated (4.13 actual).
    got = _estimate("recent_public.jsonl", "rp-006", tp=4, max_num_seqs=1024, mnbt=8192, cc=10.0,
                    kv_dtype="fp8_e4m3")
    assert 3.3 < got < 4.99


def test_the_0_19_h100_captures_keep_their_fit():
    # sample.jsonl: Llama-3.1-8B (gt100, 0.91 GiB logged) and DeepSeek-V2-Lite (gt083, MLA, 1.57 GiB logged).
    for rid, logged in (("gt100", 0.91), ("gt083", 1.57)):
        assert predict(_record("sample.jsonl", rid))["cudagraph_gib"] == pytest.approx(logged, rel=0.05)


def test_the_v2_runner_estimate_for_qwen3_8b_on_an_a10():
    # cc-007 (0.30, V2 model runner): "CUDA graph pool memory: 0.23 GiB (actual), 0.43 GiB (estimated)".
    rec = _record("compile_cache_public.jsonl", "cc-007")
    report = estimate(build_spec(rec["hf_config"], rec["model_id"]), deployment_of(rec))
    assert report.cudagraph_bytes / GiB == pytest.approx(0.43, rel=0.1)
    assert report.cudagraph_captured_bytes / GiB == pytest.approx(0.23, rel=0.1)
    assert report.to_dict()["vllm_log"]["cudagraph_memory_gib"] == pytest.approx(0.23, rel=0.1)
