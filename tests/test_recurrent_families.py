"""Pure Mamba, Mamba-2 and Liquid's LFM2 / LFM2-MoE, checked against transformers' parameter counts and vLLM 0.32's
own KV planning (tests/fixtures/oracle/families/recurrent.json: configs, sources and the exact commands)."""

from __future__ import annotations

import json
from math import prod
from pathlib import Path

import pytest

from gpuplan.api_python import estimate
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate as engine_estimate
from gpuplan.model.adapters import build_spec

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "recurrent.json").read_text())
MODELS = FIXTURE["models"]


def _spec(model_id: str):
    return build_spec(MODELS[model_id]["config"], model_id)


def _expert_bias(cfg: dict) -> int:
    # transformers keeps LFM2-MoE's expert bias as a buffer; the checkpoint has it and vLLM loads it.
    if not cfg.get("use_expert_bias"):
        return 0
    return (cfg["num_hidden_layers"] - cfg["num_dense_layers"]) * cfg["num_experts"]


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_parameters_are_what_transformers_and_vllm_build(model_id: str) -> None:
    fx = MODELS[model_id]
    spec = _spec(model_id)
    assert not spec.generic
    assert spec.total_params == fx["hf_params"] + _expert_bias(fx["config"])
    # vLLM's count pads the vocabulary to 64 rows per embedding / head matrix.
    vocab = fx["config"]["vocab_size"]
    matrices = 1 if spec.tie_word_embeddings else 2
    assert spec.total_params + matrices * (-vocab % 64) * spec.hidden_size == fx["vllm_meta"]["params"]


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_recurrent_state_per_layer_is_vllms(model_id: str) -> None:
    fx = MODELS[model_id]
    spec = _spec(model_id)
    state_layers = [layer for layer in spec.layers if layer.attention.kind == "mamba"]
    (kind,) = [k for k in fx["vllm_meta"]["layer_kinds"] if k["class"] == "MambaSpec"]
    assert len(state_layers) == kind["n_layers"]
    elements = sum(prod(st.shape) for st in state_layers[0].attention.state)
    assert elements * 2 == kind["state_bytes"]  # bf16 conv and SSM state at TP=1


@pytest.mark.parametrize("model_id", ["state-spaces/mamba-2.8b-hf", "tiiuae/falcon-mamba-7b",
                                      "mistralai/Mamba-Codestral-7B-v0.1"])
def test_a_pure_mamba_request_holds_one_state_whatever_its_length(model_id: str) -> None:
    # Attention-free: no prefix caching, and vLLM's block is max_model_len long, one request per block.
    meta = MODELS[model_id]["vllm_meta"]
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.32.0",
                     max_model_len=meta["max_model_len"], kv_cache_memory_bytes=meta["kv_budget_bytes"])
    r = engine_estimate(_spec(model_id), dep)
    assert r.kv.block_size == meta["max_model_len"]
    assert r.kv.bytes_per_block == meta["bytes_per_block"]
    assert r.num_gpu_blocks == meta["num_blocks"]
    assert r.kv.max_concurrency == r.num_gpu_blocks
    assert r.kv.kv_cache_tokens == r.num_gpu_blocks * meta["max_model_len"]
    assert r.kv.mamba_cache_mode == "none"


@pytest.mark.parametrize("model_id", ["LiquidAI/LFM2-1.2B", "LiquidAI/LFM2-8B-A1B"])
def test_lfm2_groups_its_conv_and_attention_layers_as_vllm_does(model_id: str) -> None:
    meta = MODELS[model_id]["vllm_meta"]
    # The CPU oracle aligned attention blocks to 32; asking for 32 reproduces its layout exactly.
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.32.0", block_size=32,
                     max_model_len=meta["max_model_len"], kv_cache_memory_bytes=meta["kv_budget_bytes"])
    r = engine_estimate(_spec(model_id), dep)
    assert r.kv.num_groups == len(meta["groups"])
    assert r.kv.group_size == max(meta["groups"])
    assert r.kv.bytes_per_block == meta["bytes_per_block"]
    assert r.num_gpu_blocks == meta["num_blocks"]


def test_lfm2_mlp_width_follows_the_auto_adjust_rule() -> None:
    # 2/3 of 12288 = 8192, already a multiple of 256: LFM2-1.2B's feed-forward is 8192 wide.
    spec = _spec("LiquidAI/LFM2-1.2B")
    assert spec.layers[0].mlp.intermediate_size == 8192


def test_lfm2_1_2b_serves_over_40_full_32k_requests_on_one_l4() -> None:
    # 6 attention layers of 8x64 KV (12 KiB per token, a tenth of Llama-3.1-8B's) and 10 conv states of 8 KiB.
    r = estimate(_spec("LiquidAI/LFM2-1.2B"), gpu="L4", max_model_len=32768)
    assert r.fits
    assert r.kv.bytes_per_token == 6 * 2 * 8 * 64 * 2
    assert r.kv.max_concurrency > 40


def test_mamba_2_8b_weights_in_bf16_not_the_checkpoints_fp32() -> None:
    # The checkpoint is float32; vLLM's dtype "auto" serves float32 checkpoints in 16-bit.
    r = estimate(_spec("state-spaces/mamba-2.8b-hf"), gpu="L4", max_model_len=8192)
    assert r.weights_bytes == pytest.approx(2 * MODELS["state-spaces/mamba-2.8b-hf"]["vllm_meta"]["params"], rel=0.01)
