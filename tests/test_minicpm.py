"""MiniCPM3 looks like MLA in its config (q_lora_rank, kv_lora_rank) but vLLM caches full per-head K and V for it;
a calculator that sizes it as an MLA latent is 15x short. Fixture: tests/fixtures/oracle/families/minicpm.json
(transformers' count and vLLM 0.32's own KV plan for openbmb/MiniCPM3-4B's published config)."""

from __future__ import annotations

import json
from pathlib import Path

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "minicpm.json").read_text())
MINICPM3 = FIXTURE["models"]["openbmb/MiniCPM3-4B"]


def test_minicpm3_4b_counts_what_transformers_builds_with_tied_embeddings() -> None:
    spec = build_spec(MINICPM3["config"])
    assert not spec.generic
    assert spec.total_params == MINICPM3["hf_params"] == 4_073_875_968


def test_minicpm3_kv_is_full_attention_over_40_heads_of_96_not_an_mla_latent() -> None:
    meta = MINICPM3["vllm_meta"]
    spec = build_spec(MINICPM3["config"])
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.32.0", block_size=16,
                     max_model_len=meta["max_model_len"], kv_cache_memory_bytes=meta["kv_budget_bytes"])
    r = estimate(spec, dep)
    assert r.kv.bytes_per_block == meta["bytes_per_block"] == 62 * 16 * 2 * 40 * 96 * 2
    assert r.num_gpu_blocks == meta["num_blocks"]
    assert r.kv_cache_tokens == meta["kv_cache_size_tokens"]
    # An MLA latent of the same ranks would be (256 + 32) x 2 bytes per token per layer: 1/13th of this.
    assert r.kv.bytes_per_block // 16 // 62 > 13 * (256 + 32) * 2


def test_minicpm3_shards_its_heads_over_tensor_parallel_ranks() -> None:
    spec = build_spec(MINICPM3["config"])
    one, two = (estimate(spec, Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, tensor_parallel_size=tp,
                                          max_model_len=8192, block_size=16)) for tp in (1, 2))
    assert two.kv.bytes_per_block * 2 == one.kv.bytes_per_block


def test_minicpm_2b_is_a_tied_llama_shaped_decoder() -> None:
    # openbmb/MiniCPM-2B-sft-bf16: remote-code config without tie_word_embeddings (its config class ties).
    cfg = {"architectures": ["MiniCPMForCausalLM"], "model_type": "minicpm", "hidden_size": 2304,
           "intermediate_size": 5760, "num_hidden_layers": 40, "num_attention_heads": 36, "num_key_value_heads": 36,
           "vocab_size": 122753, "max_position_embeddings": 4096, "scale_emb": 12, "dim_model_base": 256,
           "scale_depth": 1.4, "torch_dtype": "bfloat16"}
    spec = build_spec(cfg)
    assert not spec.generic and spec.tie_word_embeddings
    per_layer = 4 * 2304 * 2304 + 3 * 2304 * 5760 + 2 * 2304
    assert spec.total_params == 40 * per_layer + 122753 * 2304 + 2304
