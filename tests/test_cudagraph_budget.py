"""The CUDA-graph memory vLLM sets aside grows with the number of batch sizes it captures, from near zero.

vLLM's estimate (0.20+, subtracted before the KV cache is sized) is the largest graph's capture plus (n - 1)
times the next one's; calibration.json scales the whole fitted term with n (see its _base_scales_with_graphs)."""

from __future__ import annotations

import json
from pathlib import Path

from gpuplan.catalog import find_model
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.budget import capture_sizes
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.engines.vllm.profiles import get_profile
from gpuplan.model.adapters import build_spec
from gpuplan.validation import deployment_of

GiB = 1 << 30


def test_a_start_up_that_captures_five_cuda_graphs_reserves_a_tenth_of_a_gib_for_them() -> None:
    # max_num_seqs 8 captures sizes 1, 2, 4, 8, 16. A public log of a 64-layer, 5120-wide 27B on two RTX 3090s
    # printed "Profiling CUDA graph memory: PIECEWISE=5 (largest=16)" and "Estimated CUDA graph memory: 0.13 GiB
    # total" (github.com/noonghunna/club-3090/issues/104). Qwen3-32B has the same depth and width. That model is
    # a hybrid, which vLLM 0.27 runs on its V1 runner (the one that profiles graphs); a dense Qwen3-32B would
    # run the V2 runner, so the test asks for V1.
    entry = find_model("Qwen/Qwen3-32B")
    assert entry is not None
    spec = build_spec(entry.hf_config)
    dep = dict(gpu_name="RTX 3090", gpu_memory_bytes=int(23.56 * GiB), compute_capability=8.6,
               vllm_version="0.27.1", tensor_parallel_size=2, max_model_len=32768,
               env=(("VLLM_USE_V2_MODEL_RUNNER", "0"),))
    few = estimate(spec, Deployment(max_num_seqs=8, **dep)).cudagraph_bytes / GiB
    many = estimate(spec, Deployment(max_num_seqs=256, **dep)).cudagraph_bytes / GiB
    assert 0.05 <= few <= 0.25
    assert many > 5 * few


def test_capping_cuda_graphs_at_128_captures_19_sizes_and_keeps_more_kv_cache() -> None:
    """vllm serve Qwen/Qwen2.5-72B-Instruct -tp 2 --max-num-seqs 128 -cc.max_cudagraph_capture_size=128 on two
    H100s, vLLM 0.30 (compile_cache_public.jsonl cc-017) captured 1, 2, 4, 8 ... 128: 19 sizes, where the default
    for 128 sequences goes to 256 (35 sizes). Its estimate, which vLLM subtracts, shrinks with them: the
    PIECEWISE graphs go from 35 to 19, the FULL ones (sizes up to max_num_seqs) stay at 19, so 38 graphs for 54."""
    path = Path(__file__).parent / "fixtures" / "vllm_logs" / "compile_cache_public.jsonl"
    rec = next(r for r in map(json.loads, path.read_text().splitlines()) if r["id"] == "cc-017")
    assert capture_sizes(get_profile("0.30.0"), 128, 8192, 128) == 19
    assert capture_sizes(get_profile("0.30.0"), 128, 8192) == 35
    spec = build_spec(rec["hf_config"], rec["model_id"])
    capped = estimate(spec, deployment_of(rec))
    default = estimate(spec, deployment_of(rec).with_(max_cudagraph_capture_size=None))
    assert capped.cudagraph_bytes < 0.75 * default.cudagraph_bytes
    assert capped.available_kv_cache_bytes > default.available_kv_cache_bytes
    assert "19 batch sizes" in next(c.note for c in capped.components if c.name == "cudagraph")
