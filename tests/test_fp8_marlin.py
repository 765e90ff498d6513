"""FP8 checkpoints on GPUs without native FP8 (compute capability below 8.9: A100, A10G, RTX 3090, T4).

vLLM serves them through the weight-only Marlin kernel (marlin_utils_fp8.py): the FP8 bytes are repacked as they
are, but the scales become one row per 128-wide block along K (one row without blocks) of output width, in the
model dtype, instead of a small float32 grid. For a 30B MoE that is ~0.4 GiB more weights than on an H100.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.api_python import estimate
from gpuplan.validation import predict

PUBLIC = Path(__file__).parent / "fixtures" / "vllm_logs" / "heldout_public.jsonl"

# A small Llama: head_dim 128, q/k/v widths 1024/256/256, MLP 2816.
TINY = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 1024,
        "intermediate_size": 2816, "num_attention_heads": 8, "num_key_value_heads": 2, "num_hidden_layers": 2,
        "vocab_size": 1000, "max_position_embeddings": 4096, "torch_dtype": "bfloat16"}
BLOCK_FP8 = {"quant_method": "fp8", "activation_scheme": "dynamic", "fmt": "e4m3", "weight_block_size": [128, 128]}

# (N, K) of each linear of one layer: qkv, o, gate_up, down.
LINEARS = [(1536, 1024), (1024, 1024), (5632, 1024), (1024, 2816)]


def _weights(cfg: dict, gpu: str, version: str, **kw) -> int:
    return estimate(cfg, gpu=gpu, vllm_version=version, max_model_len=4096, **kw).weights_bytes


def _marlin_block_extra_per_layer() -> int:
    # bf16 [ceil(K/128), N] replaces float32 [ceil(N/128), ceil(K/128)]
    marlin = sum(-(-k // 128) * n * 2 for n, k in LINEARS)
    block = sum(-(-n // 128) * -(-k // 128) * 4 for n, k in LINEARS)
    return marlin - block


def test_block_fp8_on_an_a100_carries_bf16_scale_rows_from_vllm_0_9() -> None:
    cfg = {**TINY, "quantization_config": BLOCK_FP8}
    extra = _weights(cfg, "A100-80GB", "0.19.0") - _weights(cfg, "H100", "0.19.0")
    assert extra == 2 * _marlin_block_extra_per_layer()


def test_block_fp8_before_0_9_is_not_repacked_for_marlin() -> None:
    cfg = {**TINY, "quantization_config": BLOCK_FP8}
    assert _weights(cfg, "A100-80GB", "0.8.5") == _weights(cfg, "H100", "0.8.5")


def test_online_fp8_on_an_a10g_keeps_one_bf16_scale_per_output_channel() -> None:
    # per-tensor FP8: each checkpoint tensor's float32 weight_scale + input_scale (q, k, v, o, gate, up, down:
    # 7 x 8 bytes) become a bf16 row as wide as the layer's outputs
    extra = _weights(TINY, "A10G", "0.8.5", quantization="fp8") - _weights(TINY, "H100", "0.8.5", quantization="fp8")
    assert extra == 2 * (2 * sum(n for n, _ in LINEARS) - 7 * 8)


def test_the_report_says_why_fp8_weights_are_larger_on_an_a100() -> None:
    r = estimate({**TINY, "quantization_config": BLOCK_FP8}, gpu="A100-80GB", max_model_len=4096)
    assert any("Marlin" in w and "8.9" in w for w in r.warnings)


@pytest.mark.parametrize(("gpu", "version", "fits"), [("V100 32GB", "0.19.0", False), ("T4", "0.13.0", False),
                                                       ("T4", "0.14.0", True)])
def test_fp8_weights_need_the_compute_capability_vllm_asks_for(gpu: str, version: str, fits: bool) -> None:
    r = estimate(TINY, gpu=gpu, vllm_version=version, quantization="fp8", max_model_len=4096, dtype="float16")
    assert r.fits is fits
    if not fits:
        assert "refuses fp8" in r.reason and "compute capability" in r.reason


def test_qwen3_coder_30b_fp8_on_a_40gb_a100_matches_its_public_start_up() -> None:
    # vLLM 0.19.1, Marlin FP8 MoE backend: 'Model loading took 29.54 GiB', 'Available KV cache memory: 5.03 GiB'
    rec = next(r for r in map(json.loads, PUBLIC.read_text().splitlines()) if r["id"] == "ghm-005")
    p = predict(rec)
    assert abs(p["weights_gib"] - 29.54) <= 0.1
    assert abs(p["available_kv_cache_gib"] - 5.03) / 5.03 <= 0.03
    h100 = {**rec, "deployment": {**rec["deployment"], "gpu_name": "H100"}}
    assert predict(h100)["weights_gib"] < p["weights_gib"] - 0.4  # the H100 keeps float32 block scales
