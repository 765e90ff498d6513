"""Which CUDA graphs vLLM captures with a drafter: FULL decode graphs need every attention backend to take
uniform multi-token decode batches, which FlashInfer's does only where its TRT-LLM / XQA decode kernels run
(vllm_profiles.json flashinfer_spec_decode_graphs, read from each wheel's flashinfer.py). Elsewhere vLLM logs
"FULL_AND_PIECEWISE is not supported with spec-decode for attention backend FlashInferBackend ... setting
cudagraph_mode=PIECEWISE", as six GB10 starts in speculative_public.jsonl do (hsm-001, -003, -004, -006, -007, -010)."""

from __future__ import annotations

from dataclasses import replace

import pytest

import gpuplan
from gpuplan.catalog import find_model
from gpuplan.engines.vllm import budget as B
from gpuplan.engines.vllm.profiles import get_profile
from gpuplan.model.adapters import build_spec

MTP = {"method": "mtp", "num_speculative_tokens": 2}
NEXT = "Qwen/Qwen3-Next-80B-A3B-Instruct"  # Gated DeltaNet + full attention, head size 256, its own MTP layer


def _spec():
    return build_spec(find_model(NEXT).hf_config)


@pytest.mark.parametrize("version, cc, kv_dtype, keeps_full", [
    ("0.24.0", 12.1, "fp8", False),  # GB10 (hsm-001): FlashInfer for the fp8 cache, no XQA multi-token decode yet
    ("0.24.0", 10.0, "fp8", True),  # B200: TRT-LLM decode takes the drafter's steps
    ("0.28.0", 12.0, "fp8", True),  # 0.28 brings SM12x's XQA decode
    ("0.28.0", 9.0, "fp8", True),  # FlashAttention 3 holds fp8 on Hopper: not FlashInfer at all
    ("0.30.0", 8.0, "fp8", False),  # A100: FlashInfer, and no TRT-LLM / XQA decode below SM90
    ("0.30.0", 8.0, "auto", True),  # bf16 cache: FlashAttention 2, which takes uniform batches
    ("0.33.0", 8.6, "fp8", True),  # 0.33 decodes multi-token steps with FlashAttention-2 inside FlashInfer below SM90
    ("0.11.0", 10.0, "fp8", False),  # 0.11.0's FlashInfer builder supports single-token decode graphs only
])
def test_does_mtp_on_this_gpu_keep_full_decode_graphs(version, cc, kv_dtype, keeps_full) -> None:
    spec = _spec()
    assert B.full_decode_graphs(spec, 0, len(spec.layers), get_profile(version), cc, kv_dtype, 3) is keeps_full


def test_without_a_drafter_full_decode_graphs_stay_whatever_the_backend() -> None:
    spec = _spec()
    assert B.full_decode_graphs(spec, 0, len(spec.layers), get_profile("0.24.0"), 12.1, "fp8", 1)


def test_layers_that_mix_head_sizes_run_triton_attention_which_keeps_full_graphs() -> None:
    """Gemma-4's layers mix head sizes, so vLLM forces Triton attention (ALWAYS supported): FULL graphs stay."""
    spec = _spec()
    full = next(layer for layer in spec.layers if layer.attention.kind == "full")
    wide = replace(full, attention=replace(full.attention, head_dim=2 * full.attention.head_dim))
    mixed = replace(spec, layers=(full, wide))
    assert B.attention_backend(mixed, 0, 2, 12.0, "fp8") == "triton"
    assert B.full_decode_graphs(mixed, 0, 2, get_profile("0.24.0"), 12.0, "fp8", 3)


def _next(gpu: str, kv_dtype: str, version: str = "0.30.0") -> gpuplan.MemoryReport:
    return gpuplan.estimate(NEXT, gpu=gpu, tensor_parallel_size=2, kv_cache_dtype=kv_dtype, vllm_version=version,
                            max_model_len=32768, speculative_config=MTP, allow_network=False)


def test_qwen3_next_mtp_with_an_fp8_cache_on_a100s_captures_piecewise_graphs_only_and_says_why() -> None:
    fp8, bf16 = _next("A100-80GB", "fp8"), _next("A100-80GB", "auto")
    assert fp8.per_stage[0]["full_capture_sizes"] == 0
    assert bf16.per_stage[0]["full_capture_sizes"] > 0
    assert fp8.per_stage[0]["capture_sizes"] >= bf16.per_stage[0]["capture_sizes"]  # not rounded to the step
    assert fp8.cudagraph_bytes < bf16.cudagraph_bytes
    assert any("PIECEWISE graphs only" in w for w in fp8.warnings)
    assert not any("PIECEWISE graphs only" in w for w in bf16.warnings)
