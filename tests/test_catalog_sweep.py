"""Every catalog model, on a spread of GPUs, parallel layouts and vLLM releases, gets either a coherent report or
a GpuplanError that names its field: never a traceback. The layouts are a fixed grid, not random, so a failure
names the same deployment on every run."""

from __future__ import annotations

import math

import pytest

from gpuplan.api_python import estimate
from gpuplan.catalog import list_models
from gpuplan.errors import GpuplanError

# One release per version profile, oldest to newest, with the GPUs and options that take different code paths:
# Volta (no bf16, no FlashAttention), Ampere, Ada fp8-KV, Hopper, datacenter Blackwell, consumer Blackwell,
# a unified-memory GB10.
LAYOUTS = [
    ("0.4.3", "V100", {"tensor_parallel_size": 2}),
    ("0.6.6", "A100-40GB", {"kv_cache_dtype": "fp8", "max_model_len": 8192}),
    ("0.8.5", "L40S", {"pipeline_parallel_size": 2, "max_num_seqs": 64}),
    ("0.10.1", "RTX 4090", {"enforce_eager": True, "max_model_len": 4096}),
    ("0.15.0", "H100", {"tensor_parallel_size": 4, "kv_cache_dtype": "fp8"}),
    ("0.19.0", "H200", {"tensor_parallel_size": 8, "enable_expert_parallel": True}),
    ("0.22.0", "RTX 5090", {"max_model_len": 32768, "max_num_seqs": 8}),
    ("0.26.0", "B200", {"tensor_parallel_size": 2, "enable_lora": True}),
    ("0.30.0", "GB10", {"max_model_len": 131072}),
    (None, "A10G", {"tensor_parallel_size": 4, "max_model_len": 16384}),
]


def _models() -> list[str]:
    return sorted(m.id for m in list_models())


@pytest.mark.parametrize(("version", "gpu", "options"), LAYOUTS, ids=[f"{v or 'newest'}-{g}" for v, g, _ in LAYOUTS])
def test_every_catalog_model_gets_a_report_or_a_named_refusal(version: str | None, gpu: str, options: dict) -> None:
    models = _models()
    refused = 0
    for model in models:
        try:
            r = estimate(model, gpu=gpu, vllm_version=version, allow_network=False, **options)
        except GpuplanError as e:
            # a refusal names the input at fault and says why
            assert e.field and e.message, (model, str(e))
            refused += 1
            continue
        where = f"{model} on {gpu} (vLLM {version or 'newest'}, {options})"
        assert r.weights_bytes > 0, where
        for part in (r.weights_bytes, r.activation_peak_bytes, r.non_torch_bytes, r.cudagraph_bytes):
            assert part >= 0, where
        assert math.isfinite(r.available_kv_cache_bytes), where
        if r.fits:
            assert r.reason is None, where
            if r.kv is not None:  # an attention-free model on V0 keeps its state outside any KV cache
                assert r.available_kv_cache_bytes > 0 and r.kv.num_gpu_blocks > 0, where
                assert r.max_model_len_fit is None or r.max_model_len_fit >= r.max_model_len, where
        else:
            assert r.reason, where
            if r.failure == "kv_too_small":  # then the longest context that fits is shorter than the one asked
                assert r.max_model_len_fit is None or r.max_model_len_fit < r.max_model_len, where
    # the grid exercises estimates, not only refusals
    assert refused < len(models) / 2

