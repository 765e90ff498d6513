"""What gpuplan tells a user whose deployment does not start must itself start: the "longest max_model_len that
fits" is checked by estimating it, and no length is offered when the failure does not depend on the context
(CUDA graphs or the sampler warm-up running out of memory after the KV cache fills the budget). And the
components of a report add up to the budget they were cut from, on every version."""

from __future__ import annotations

import itertools

import pytest

from gpuplan.api_python import estimate
from gpuplan.units import GiB, MiB

MODELS = ("meta-llama/Llama-3.1-8B", "Qwen/Qwen3-32B", "google/gemma-3-12b-it", "mistralai/mistral-medium",
          "Qwen/Qwen3-30B-A3B")
GPUS = ("L4", "A10G", "H100")
VERSIONS = ("0.6.4", "0.8.5", "0.10.2", "0.11.2", "0.24.0", "0.33.0")


@pytest.mark.parametrize(("model", "gpu", "version"), list(itertools.product(MODELS, GPUS, VERSIONS)))
def test_every_suggested_max_model_len_starts(model: str, gpu: str, version: str) -> None:
    tried = 0
    for tp, kv, length in itertools.product((1, 4), ("auto", "fp8"), (None, 32768, 131072)):
        options = {"tensor_parallel_size": tp, "kv_cache_dtype": kv, "vllm_version": version}
        if length:
            options["max_model_len"] = length
        try:
            report = estimate(model, gpu=gpu, **options)
        except Exception:  # a deployment vLLM refuses outright (TP that does not divide the heads, ...)
            continue
        if report.fits or report.max_model_len_fit is None:
            continue
        tried += 1
        shorter = estimate(model, gpu=gpu, **{**options, "max_model_len": report.max_model_len_fit})
        assert shorter.fits, (options, report.max_model_len_fit, shorter.reason)
    if tried == 0:
        pytest.skip("every deployment of this grid cell starts or has no fitting length")


def test_v0_above_32k_suggests_a_length_that_survives_whole_prompt_prefill() -> None:
    """vLLM 0.10.2 falls back to V0 for an fp8 KV cache on an L4. Above 32K tokens V0 prefills in 2,048-token
    chunks; at 32K and below it profiles a whole 32K prompt, whose activations leave fewer than 32K tokens of KV
    cache on 8 L4s. The model's own limit (32K) is therefore not a length that starts."""
    options = {"tensor_parallel_size": 8, "kv_cache_dtype": "fp8", "vllm_version": "0.10.2"}
    long = estimate("mistralai/mistral-medium", gpu="L4", max_model_len=131072, **options)
    assert not long.fits and "derived max_model_len" in long.reason
    at_limit = estimate("mistralai/mistral-medium", gpu="L4", max_model_len=32768, **options)
    assert not at_limit.fits and at_limit.kv_cache_tokens < 32768
    assert long.max_model_len_fit is not None and long.max_model_len_fit < 32768
    assert estimate("mistralai/mistral-medium", gpu="L4", max_model_len=long.max_model_len_fit, **options).fits


def test_llama_8b_on_four_l4s_runs_out_warming_up_the_sampler_at_any_context() -> None:
    """vLLM 0.28 on four L4s at TP=4: the NCCL all-reduces its graphs capture and the 256-request sampler warm-up
    do not fit in the 8% outside the budget. A shorter context does not help, so none is offered."""
    report = estimate("meta-llama/Llama-3.1-8B", gpu="L4", tensor_parallel_size=4, kv_cache_dtype="fp8",
                      vllm_version="0.28.0")
    assert not report.fits and "warming up the sampler" in report.reason
    assert report.max_model_len_fit is None
    assert not estimate("meta-llama/Llama-3.1-8B", gpu="L4", tensor_parallel_size=4, kv_cache_dtype="fp8",
                        vllm_version="0.28.0", max_model_len=2048).fits
    assert estimate("meta-llama/Llama-3.1-8B", gpu="L4", tensor_parallel_size=4, kv_cache_dtype="fp8",
                    vllm_version="0.28.0", max_num_seqs=64).fits


@pytest.mark.parametrize("version", ["0.6.4", "0.8.5", "0.10.2", "0.11.2", "0.19.0", "0.24.0", "0.33.0"])
@pytest.mark.parametrize("tp", [1, 2])
def test_components_add_up_to_the_budget(version: str, tp: int) -> None:
    """0.8's V1 engine took used memory as total minus free, so the CUDA context comes out of its budget: gpuplan
    shows it inside non-torch rather than leaving a gap between the components and the budget."""
    report = estimate("Qwen/Qwen3-8B", gpu="A100-80GB", tensor_parallel_size=tp, vllm_version=version)
    inside = (report.weights_bytes + report.activation_peak_bytes + report.non_torch_bytes
              + (report.cudagraph_bytes if report.cudagraph_in_budget else 0) + report.available_kv_cache_bytes)
    assert abs(inside - report.budget_bytes) < MiB
    if version == "0.8.5":
        note = next(c.note for c in report.components if c.name == "non_torch")
        assert "CUDA context" in note and report.non_torch_bytes > 0.4 * GiB
