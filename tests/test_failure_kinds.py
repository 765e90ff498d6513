"""Why a deployment does not start, as a kind the planner and the API can act on without reading the sentence.

Each case is a question a user asks before renting the GPUs; the kind says what to change (a bigger or second
GPU, a lower utilization, a shorter context) and `fails_after_kv` says whether vLLM's own remedy, a lower
gpu_memory_utilization, is the one that helps.
"""

from __future__ import annotations

import pytest

from gpuplan.api_python import estimate
from gpuplan.report import FAILURE_KINDS

LLAMA_8B = "meta-llama/Llama-3.1-8B"


@pytest.mark.parametrize(("question", "model", "kwargs", "kind", "after_kv"), [
    ("Llama-3.1-70B in bf16 on one H100", "meta-llama/Llama-3.1-70B", {"gpu": "H100"}, "weights_oom", False),
    ("Llama-3.1-8B on an L4 at half its memory", LLAMA_8B, {"gpu": "L4", "gpu_memory_utilization": 0.5},
     "weights_over_budget", False),
    ("Llama-3.1-8B on an L4 at 0.69", LLAMA_8B, {"gpu": "L4", "gpu_memory_utilization": 0.69}, "no_kv_memory", False),
    ("Llama-3.1-8B on an H100 at 0.999", LLAMA_8B, {"gpu": "H100", "gpu_memory_utilization": 0.999},
     "budget_over_free", False),
    ("Llama-3.1-8B on an L4 at its full 128K context", LLAMA_8B, {"gpu": "L4", "max_model_len": 131072},
     "kv_too_small", False),
    ("Llama-3.1-8B at 256K, twice its own limit", LLAMA_8B, {"gpu": "H100", "max_model_len": 262144},
     "max_model_len_refused", False),
    ("DeepSeek-V4-Flash on eight A100s (FlashMLA's sparse kernels need Hopper or Blackwell)",
     "deepseek-ai/DeepSeek-V4-Flash", {"gpu": "A100-80GB", "tensor_parallel_size": 8}, "refused", False),
    ("Llama-3.1-8B on an H100 at 0.993 on vLLM 0.19", LLAMA_8B,
     {"gpu": "H100", "gpu_memory_utilization": 0.993, "vllm_version": "0.19.0", "max_num_batched_tokens": 256},
     "cudagraph_oom", True),
    ("Llama-3.1-8B on four L4s at 128K on vLLM 0.28", LLAMA_8B,
     {"gpu": "L4", "tensor_parallel_size": 4, "max_model_len": 131072, "vllm_version": "0.28.0"},
     "sampler_warmup_oom", True),
])
def test_a_deployment_that_does_not_start_says_why_as_a_kind(question: str, model: str, kwargs: dict, kind: str,
                                                             after_kv: bool) -> None:
    report = estimate(model, **kwargs)
    assert not report.fits, question
    assert report.failure == kind, report.reason
    assert report.fails_after_kv is after_kv
    assert report.to_dict()["failure"] == kind
    assert kind in FAILURE_KINDS


def test_v1_refuses_a_budget_over_the_free_memory_before_it_loads_any_weight() -> None:
    """From 0.9 the worker compares free memory with the budget when it starts (gpu_worker.py init_device): a
    70B model in bf16 at 0.999 on one H100 stops there, not at loading; V0 (0.6) loads first and runs out."""
    assert estimate("meta-llama/Llama-3.1-70B", gpu="H100", gpu_memory_utilization=0.999).failure == "budget_over_free"
    assert estimate("meta-llama/Llama-3.1-70B", gpu="H100", gpu_memory_utilization=0.999,
                    vllm_version="0.6.6").failure == "weights_oom"


def test_a_deployment_that_starts_has_no_failure() -> None:
    report = estimate(LLAMA_8B, gpu="H100")
    assert report.fits and report.failure is None and not report.fails_after_kv


def test_a_kv_cache_too_small_that_would_also_run_out_after_it_is_flagged_for_the_planner() -> None:
    """Graph capture and the sampler warm-up do not shrink with max_model_len: where they fail too, the KV verdict
    says so and carries the flag, so the planner tries a lower utilization rather than a shorter context."""
    report = estimate(LLAMA_8B, gpu="L4", gpu_memory_utilization=0.99, vllm_version="0.19.0", max_model_len=131072)
    assert report.failure == "kv_too_small"
    assert report.fails_after_kv
    assert report.max_model_len_fit is None
    assert "A shorter context would not start either: CUDA out of memory capturing CUDA graphs" in report.reason


def test_v0_reports_a_kv_cache_too_small_before_it_would_run_out_allocating_it() -> None:
    """issues_public ip-001: DeepSeek-R1-Distill-Qwen-14B at TP=2 on two RTX 4090s at 0.98, V0. vLLM raised 'The
    model's max seq len (131072) is larger than the maximum number of tokens that can be stored in KV cache
    (81536)': V0 checks the cache's size before it allocates it, so that is the reason, not the out-of-memory a
    0.98 budget plus the CUDA context would meet next; and since the allocation does not shrink with the context,
    no shorter max_model_len is offered."""
    import json
    from pathlib import Path

    from gpuplan.validation import predict

    path = Path(__file__).parent / "fixtures" / "vllm_logs" / "issues_public.jsonl"
    rec = next(json.loads(x) for x in path.read_text().splitlines() if '"ip-001"' in x)
    got = predict(rec)
    assert got["fits"] is False and got["failure"] == "kv_too_small"
    assert got["kv_cache_tokens"] == pytest.approx(81536, rel=0.03)
    assert "A shorter context would not start either: CUDA out of memory allocating the KV cache" in got["reason"]
