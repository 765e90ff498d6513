"""OLMo Hybrid: Gated-DeltaNet layers with a full-attention layer every fourth, as vLLM 0.32 builds it
(tests/fixtures/oracle/families/olmo_hybrid.json: transformers' count and vLLM's own KV plan). Sized as a plain
decoder it would be 10% light and charge all 32 layers a growing KV cache instead of 8."""

from __future__ import annotations

import json
from pathlib import Path

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "olmo_hybrid.json").read_text())
OLMO = FIXTURE["models"]["olmo_hybrid/default"]


def test_olmo_hybrid_counts_what_transformers_and_vllm_build() -> None:
    spec = build_spec(OLMO["config"])
    assert not spec.generic
    assert spec.total_params == OLMO["hf_params"] == OLMO["vllm_meta"]["params"]


def test_only_every_fourth_layer_keeps_a_growing_kv_cache() -> None:
    spec = build_spec(OLMO["config"])
    kinds = [layer.attention.kind for layer in spec.layers]
    assert kinds.count("full") == 8 and kinds.count("mamba") == 24
    assert all(kinds[i] == "full" for i in range(3, 32, 4))


def test_olmo_hybrid_block_plan_is_vllms() -> None:
    meta = OLMO["vllm_meta"]
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.32.0",
                     block_size=meta["block_size"], max_model_len=meta["max_model_len"],
                     kv_cache_memory_bytes=meta["kv_budget_bytes"])
    r = estimate(build_spec(OLMO["config"]), dep)
    assert r.kv.num_groups == meta["num_groups"]
    assert r.kv.bytes_per_block == meta["bytes_per_block"]
    assert r.num_gpu_blocks == meta["num_blocks"]
    assert r.kv_cache_tokens == meta["kv_cache_size_tokens"]


def test_on_a_gpu_the_attention_block_is_the_smallest_multiple_of_16_that_holds_a_gdn_state() -> None:
    meta = OLMO["vllm_meta"]
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, max_model_len=4096, vllm_version="0.32.0")
    r = estimate(build_spec(OLMO["config"]), dep)
    per_token = meta["attention_page_bytes"] // meta["block_size"]
    assert (r.kv.block_size - 16) * per_token < meta["gdn_real_page_bytes"] <= r.kv.block_size * per_token
    assert r.kv.block_size == 80


def test_0_33_gives_olmos_gdn_no_flashinfer_checkpoint_unlike_qwens() -> None:
    # vLLM 0.33 adds prefill-checkpoint blocks in qwen_gdn_linear_attn.py only; OLMo's GDN layer is its own class.
    spec = build_spec(OLMO["config"])
    old, new = (estimate(spec, Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, max_model_len=4096,
                                          vllm_version=v)) for v in ("0.32.0", "0.33.0"))
    assert new.kv.block_size == old.kv.block_size == 80
    assert new.kv.blocks_per_request == old.kv.blocks_per_request
