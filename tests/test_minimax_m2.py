"""MiniMax-M2 / M2.5 / M2.7 (model_type minimax_m2): what vLLM's models/minimax_m2.py allocates.

The unquantized tensor bytes are pinned to vLLM 0.32's own meta-device build (tests/fixtures/oracle/kvspec/
MiniMaxAI__MiniMax-M2.7__auto.json, weights_meta) and the count to transformers (oracle/params).
"""

from __future__ import annotations

import json
from pathlib import Path

from faces_support import catalog_spec

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.units import GiB

ORACLE = Path(__file__).parent / "fixtures" / "oracle"
H100 = dict(gpu_name="H100", gpu_memory_bytes=85_029_158_912)


def _spec(quantized: bool = True):
    return catalog_spec("minimax-m2.7", quantized=quantized)


def test_minimax_m2_is_sized_by_its_own_adapter_with_vllms_parameter_bytes() -> None:
    """vLLM keeps the router (GateLinear, params_dtype float32) and the correction bias in float32: 97.5 MB
    more than a bf16 router. Our bf16 weights minus the rotary cache (a buffer, not in weights_meta) equal vLLM's."""
    spec = _spec(quantized=False)
    assert not spec.generic
    meta = json.loads((ORACLE / "kvspec" / "MiniMaxAI__MiniMax-M2.7__auto.json").read_text())["weights_meta"]
    r = estimate(spec, Deployment(**H100, vllm_version="0.32.0", max_model_len=8192))
    rope = 204_800 * 64 * 2  # [max_position_embeddings, rotary_dim] cos/sin cache, bf16
    assert spec.total_params == meta["params"]
    assert r.weights_bytes - rope == meta["bytes"]


def test_minimax_m2_fp8_on_4x4_h100_loads_13_2_gib_per_gpu() -> None:
    """MiniMax-AI/MiniMax-M2.5#30: TP=4 x PP=4 on 16 H100s logs 'Model loading took 13.2 GiB' on each worker
    (same MiniMaxM2ForCausalLM geometry and FP8 block checkpoint as M2.7)."""
    r = estimate(_spec(), Deployment(**H100, tensor_parallel_size=4, pipeline_parallel_size=4, max_model_len=8192))
    assert round(r.weights_bytes / GiB, 1) == 13.2


def test_minimax_m2_kv_for_its_full_context_on_two_gpus_is_23_25_gib() -> None:
    """eugr/spark-vllm-docker#396 (M2.7 AWQ, TP=2, vLLM 0.29): '196608 ... 23.25 GiB KV cache is needed'.
    62 layers x 2 x 4 KV heads per GPU x 128 x 2 bytes = 126,976 bytes per token per GPU, whatever the weight format."""
    r = estimate(_spec(), Deployment(**H100, tensor_parallel_size=2, max_model_len=196_608, vllm_version="0.29.0"))
    assert r.kv.bytes_per_token == 126_976
    assert round(196_608 * r.kv.bytes_per_token / GiB, 2) == 23.25


def test_minimax_m2_k_norm_follows_the_kv_heads_past_tp_8() -> None:
    """With TP above the 8 KV heads each GPU holds one replicated KV head, and k_norm's slice for it."""
    spec = _spec(quantized=False)
    k_norm = next(t for t in spec.layers[0].tensors if t.name.endswith("k_norm.weight"))
    assert k_norm.parallel == "kv" and k_norm.shape == (8 * 128,)
