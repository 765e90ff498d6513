"""Weights from a checkpoint's own tensors: the bytes vLLM holds, for every reference kind read from disk."""

from __future__ import annotations

from pathlib import Path

import pytest

import gpuplan
from gpuplan.hub import load_reference
from gpuplan.quant.methods import stored_bytes

FIX = Path(__file__).parent / "fixtures" / "hub"


def rope_bytes(spec) -> int:
    return sum(r.positions * r.rotary_dim * 2 for r in spec.rope_caches)


def test_header_only_llama31_8b_checkpoint_weights_are_the_tensor_bytes_plus_rope():
    r = gpuplan.estimate(str(FIX / "llama31-8b-headers"), gpu="H100", max_model_len=8192)
    assert r.weights_bytes == 16_060_522_496 + 131_072 * 128 * 2


def test_awq_checkpoint_counts_packed_ints_as_stored_never_as_parameters():
    info = load_reference(str(FIX / "tiny-awq"))
    spec = gpuplan.load_model(str(FIX / "tiny-awq"))
    assert spec.checkpoint and any(t.dtype == "int32" for t in spec.checkpoint)
    stored = sum(t.nbytes for t in info.tensors if "inv_freq" not in t.name)
    r = gpuplan.estimate(spec, gpu="H100", max_model_len=128)
    assert r.weights_bytes == stored + rope_bytes(spec)
    # the logical parameter count comes from the config, not from the packed tensors
    assert spec.total_params > sum(t.nbytes for t in info.tensors if t.dtype == "int32") // 4


def test_safetensors_fp16_checkpoint_served_in_fp16():
    info = load_reference(str(FIX / "tiny-llama"))
    r = gpuplan.estimate(str(FIX / "tiny-llama"), gpu="H100", max_model_len=128)
    spec = gpuplan.load_model(str(FIX / "tiny-llama"))
    vocab_pad = (64 - spec.vocab_size % 64) % 64 * spec.hidden_size * 2 * 2  # embedding + lm_head padded to 64
    loaded = sum(t.nbytes for t in info.tensors if "inv_freq" not in t.name)  # vLLM skips rotary buffers
    assert r.weights_bytes == loaded + vocab_pad + rope_bytes(spec)


def test_gguf_file_weights_are_its_ggml_block_bytes():
    path = FIX / "gguf" / "tiny-llama-q8_0.gguf"
    info = load_reference(str(path))
    spec = gpuplan.load_model(str(path))
    assert spec.source == "gguf"
    r = gpuplan.estimate(spec, gpu="H100", max_model_len=64)
    ggml = sum(stored_bytes(t.dtype, _numel(t.shape)) for t in info.tensors)
    assert ggml == sum(t.nbytes for t in info.tensors)
    assert r.weights_bytes == ggml + rope_bytes(spec)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


@pytest.mark.parametrize("ref", ["./no/such/dir", "missing-config.json"])
def test_missing_paths_are_a_clear_model_error(ref):
    from gpuplan.errors import GpuplanError

    with pytest.raises(GpuplanError) as e:
        gpuplan.load_model(ref)
    assert e.value.field == "model"
