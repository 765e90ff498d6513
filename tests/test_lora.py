"""--enable-lora: how much GPU memory LoRA adapter slots take (engines/vllm/lora.py), counted as vLLM allocates them
beside every linear layer and inside "Model loading took"."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from gpuplan.api.app import create_app
from gpuplan.api_python import estimate, load_model
from gpuplan.cli import app
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm import lora
from gpuplan.engines.vllm.profiles import get_profile
from gpuplan.engines.vllm.weights import Sharding
from gpuplan.errors import GpuplanError

LLAMA = "meta-llama/Llama-3.1-8B"  # 32 layers, hidden 4096, 8 KV heads of 128, MLP 14336, vocabulary 128256
H, MLP, KV, V, RANK = 4096, 14336, 1024, 128256, 16


def _lora_bytes(model: str, **kw) -> int:
    base = estimate(model, gpu="H100", **{k: v for k, v in kw.items() if "lora" not in k})
    with_lora = estimate(model, gpu="H100", enable_lora=True, **kw)
    return with_lora.weights_bytes - base.weights_bytes


def test_one_rank_16_adapter_slot_costs_llama_3_1_8b_88_mb() -> None:
    """Per layer, A [rank, in] and B [out, rank] for q, k, v, o, gate, up and down; the embedding's A [vocab, rank]
    and B [hidden, rank]; the LM head's A [rank, hidden] and B [vocab, rank]; bf16."""
    per_layer = (RANK * H + H * RANK) + 2 * (RANK * H + KV * RANK) + (RANK * H + H * RANK) \
        + 2 * (RANK * H + MLP * RANK) + (RANK * MLP + H * RANK)
    expected = 2 * (32 * per_layer + (V * RANK + H * RANK) + (RANK * H + V * RANK))
    assert _lora_bytes(LLAMA) == expected == 92_356_608


def test_slots_and_rank_scale_it_linearly() -> None:
    assert _lora_bytes(LLAMA, max_loras=4, max_lora_rank=64) == 16 * _lora_bytes(LLAMA)


def test_tensor_parallelism_splits_b_of_column_layers_and_a_of_row_layers() -> None:
    per_layer = (RANK * H + H // 2 * RANK) + 2 * (RANK * H + KV // 2 * RANK) + (RANK * H // 2 + H * RANK) \
        + 2 * (RANK * H + MLP // 2 * RANK) + (RANK * MLP // 2 + H * RANK)
    expected = 2 * (32 * per_layer + (V * RANK + H * RANK) + (RANK * H + V * RANK))
    assert _lora_bytes(LLAMA, tensor_parallel_size=2) == expected
    # fully sharded: column A and row B split too
    per_layer_full = (RANK // 2 * H + H // 2 * RANK) + 2 * (RANK // 2 * H + KV // 2 * RANK) \
        + (RANK * H // 2 + H // 2 * RANK) + 2 * (RANK // 2 * H + MLP // 2 * RANK) + (RANK * MLP // 2 + H // 2 * RANK)
    full = 2 * (32 * per_layer_full + (V * RANK + H * RANK) + (RANK * H + V * RANK))
    assert _lora_bytes(LLAMA, tensor_parallel_size=2, fully_sharded_loras=True) == full


def test_a_moe_model_pays_per_expert_from_0_11_1() -> None:
    """Qwen3-30B-A3B: 48 layers of 128 experts (hidden 2048, expert MLP 768). From 0.11.1 vLLM wraps the fused
    experts too: per expert gate and up A [rank, 2048] each, B [768, rank] each, down A [rank, 768], B [2048, rank]."""
    model = "Qwen/Qwen3-30B-A3B"
    experts = 48 * 128 * (2 * (RANK * 2048 + 768 * RANK) + (RANK * 768 + 2048 * RANK)) * 2
    assert _lora_bytes(model, vllm_version="0.11.1") - _lora_bytes(model, vllm_version="0.11.0") == experts
    assert experts / 2**30 > 1.5  # one rank-16 slot: 1.55 GiB


def test_gpt_oss_keeps_one_a_for_gate_and_up() -> None:
    """gpt-oss stores 3-D expert weights (is_3d_moe_weight): one w13 A per expert where a 2-D checkpoint's model
    keeps two (gate, up). gpt-oss-20b: 24 layers of 32 experts, hidden 2880."""
    spec = load_model("openai/gpt-oss-20b")
    kw = dict(first=True, last=True, sh=Sharding(tp=1, moe_tp=1, ep=1), dep=Deployment(enable_lora=True),
              profile=get_profile("0.33.0"), act_bytes=2)
    one_a = lora.stage_bytes(spec, 0, 24, **kw)
    two_a = lora.stage_bytes(replace(spec, architecture="MixtralForCausalLM"), 0, 24, **kw)
    assert two_a - one_a == 24 * 32 * RANK * 2880 * 2


def test_lora_captures_every_cuda_graph_twice_from_0_11_1() -> None:
    def graphs(version: str, **kw) -> int:
        r = estimate(LLAMA, gpu="H100", vllm_version=version, **kw)
        return next(c.bytes for c in r.components if c.name == "cudagraph")

    assert graphs("0.19.0", enable_lora=True) > 1.5 * graphs("0.19.0")
    assert graphs("0.11.0", enable_lora=True) == graphs("0.11.0")


def test_lora_dtype_auto_follows_the_model() -> None:
    assert _lora_bytes(LLAMA, lora_dtype="float16") == _lora_bytes(LLAMA)
    assert _lora_bytes(LLAMA, dtype="float32") == 2 * _lora_bytes(LLAMA)


@pytest.mark.parametrize("kw, field", [
    (dict(vllm_version="0.2.7"), "enable_lora"),  # before vLLM had LoRA
    (dict(max_lora_rank=17), "max_lora_rank"),
    (dict(max_loras=0), "max_loras"),
    (dict(lora_dtype="fp8"), "lora_dtype"),
])
def test_what_vllm_refuses_is_refused_by_name(kw: dict, field: str) -> None:
    with pytest.raises(GpuplanError) as e:
        estimate(LLAMA, gpu="H100", enable_lora=True, **kw)
    assert e.value.field == field


def test_gemma_3_s_vocabulary_is_too_large_for_vllm_s_lora_head() -> None:
    with pytest.raises(GpuplanError, match="258,048"):
        estimate("google/gemma-3-27b-it", gpu="H100", enable_lora=True)


def test_falcon_has_no_lora_in_vllm_0_33() -> None:
    with pytest.raises(GpuplanError, match="no LoRA support for FalconForCausalLM"):
        estimate("tiiuae/falcon-7b", gpu="H100", enable_lora=True)


def test_the_cli_and_the_api_take_the_lora_options() -> None:
    out = CliRunner().invoke(app, ["estimate", LLAMA, "--gpu", "H100", "--enable-lora", "--max-loras", "4",
                                   "--max-lora-rank", "64", "--json"])
    assert out.exit_code == 0, out.output
    lora = 16 * 92_356_608
    base = estimate(LLAMA, gpu="H100").weights_bytes
    assert json.loads(out.output)["per_gpu"]["weights_bytes"] == base + lora
    client = TestClient(create_app(allow_network=False))
    res = client.post("/v1/estimate", json={"model": LLAMA, "gpu": "H100", "enable_lora": True, "max_loras": 4,
                                            "max_lora_rank": 64})
    assert res.status_code == 200 and res.json()["per_gpu"]["weights_bytes"] == base + lora
    bad = client.post("/v1/estimate", json={"model": LLAMA, "gpu": "H100", "enable_lora": True, "max_loras": 0})
    assert bad.status_code in (400, 422) and "max_loras" in bad.text
