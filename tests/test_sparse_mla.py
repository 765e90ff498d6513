"""Sparse MLA (DeepSeek-V3.2, GLM-5): a replicated lightning indexer per layer, its 132-byte key cache next to the
576-element latent, 64-token blocks, and the KV dtype the sparse backend really stores (fp8_ds_mla on Hopper).

Configs: transformers' own defaults for deepseek_v32 and glm_moe_dsa (tests/fixtures/oracle/defaults), whose
parameter counts the oracle pinned (671,877,929,216 and 743,911,199,232); the KV layout is read from vLLM's
deepseek_v2.py, mla_attention.py, platforms/cuda.py and models/config.py (see engines/vllm/sparse_mla.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

GiB = 1 << 30
DEFAULTS = Path(__file__).parent / "fixtures" / "oracle" / "defaults"
FP8_BLOCK = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}


def _config(model_type: str, arch: str, **extra) -> dict:
    cfg = json.loads((DEFAULTS / f"{model_type}.json").read_text())["config"]
    return {**cfg, "architectures": [arch], "torch_dtype": "bfloat16", "quantization_config": FP8_BLOCK, **extra}


GLM5 = _config("glm_moe_dsa", "GlmMoeDsaForCausalLM")
V32 = _config("deepseek_v32", "DeepseekV32ForCausalLM")
H200 = dict(gpu_name="H200", gpu_memory_bytes=int(139.8 * GiB), compute_capability=9.0)
B200 = dict(gpu_name="B200", gpu_memory_bytes=int(178.4 * GiB), compute_capability=10.0)


def _run(config: dict, version: str, gpu: dict, kv: str = "auto", **kw):
    dep = Deployment(vllm_version=version, tensor_parallel_size=8, kv_cache_dtype=kv, max_model_len=131072, **gpu, **kw)
    return estimate(build_spec(config), dep)


def _per_layer_token_bytes(report, layers: int) -> float:
    return report.kv.bytes_per_token / layers


def test_glm5_is_sized_as_sparse_mla_not_as_a_generic_decoder() -> None:
    spec = build_spec(GLM5)
    assert not spec.generic
    assert all(layer.attention.kind == "mla" and layer.attention.sparse for layer in spec.layers)
    r = _run(GLM5, "0.33.0", H200)
    # bf16 latent (512 + 64) x 2 bytes plus the 132-byte indexer key cache, on each of the 78 layers
    assert _per_layer_token_bytes(r, 78) == 576 * 2 + 132
    assert r.kv.block_size == 64
    assert r.fits


def test_glm5_fp8_on_8_h200_keeps_the_indexer_on_every_rank() -> None:
    spec = build_spec(GLM5)
    r8 = _run(GLM5, "0.33.0", H200)
    # wq_b (fp8) + fused wk/weights_proj (bf16) + fp32 k_norm, not split by tensor parallelism
    per_layer = 32 * 128 * 2048 * 1 + (128 + 32) * 6144 * 2 + 2 * 128 * 4
    indexer = sum(t.numel for layer in spec.layers for t in layer.tensors if ".indexer." in t.name)
    assert indexer == 78 * (32 * 128 * 2048 + (128 + 32) * 6144 + 2 * 128)
    no_indexer = build_spec({**GLM5, "index_topk_pattern": "S" * 78})
    r8_without = estimate(no_indexer, Deployment(vllm_version="0.33.0", tensor_parallel_size=8, max_model_len=131072,
                                                 **H200))
    saved = r8.weights_bytes - r8_without.weights_bytes
    assert saved >= 78 * per_layer  # (plus the fp8 block scales of wq_b)


@pytest.mark.parametrize(("config", "version", "gpu", "kv", "stored", "row"), [
    (V32, "0.33.0", H200, "fp8", "fp8_ds_mla", 656),    # FlashMLA-sparse on Hopper
    (V32, "0.33.0", B200, "fp8", "fp8", 576),           # FlashInfer's sparse MLA first on Blackwell for fp8
    (V32, "0.11.0", H200, "auto", "fp8_ds_mla", 656),   # 0.11 made DeepSeek's layout the V3.2 default
    (V32, "0.15.0", H200, "auto", "auto", 1152),        # 0.12-0.17: only an explicit fp8 switches
    (V32, "0.15.0", H200, "fp8", "fp8_ds_mla", 656),
    (GLM5, "0.33.0", B200, "auto", "fp8_e4m3", 576),    # GLM-5 defaults to fp8 on Blackwell from 0.29
    (GLM5, "0.28.0", B200, "auto", "auto", 1152),
    (GLM5, "0.33.0", H200, "fp8", "fp8_ds_mla", 656),
])
def test_the_kv_row_a_sparse_mla_layer_stores(config: dict, version: str, gpu: dict, kv: str, stored: str,
                                              row: int) -> None:
    r = _run(config, version, gpu, kv)
    layers = int(config["num_hidden_layers"])
    assert r.kv.kv_cache_dtype == stored
    assert _per_layer_token_bytes(r, layers) == row + 132
    assert (stored != kv) == any(w.startswith(f"kv_cache_dtype {kv} -> {stored}") for w in r.warnings)


def test_index_cache_layers_that_reuse_top_k_indices_have_no_indexer_cache() -> None:
    # index_topk_freq 2 (vLLM's IndexCache, skip offset 2): layers 0, 1, 3, 5, ... build an indexer; 2, 4, ...
    # reuse the indices of the layer before
    spec = build_spec({**V32, "index_topk_freq": 2})
    with_indexer = [layer.attention.indexer_head_dim > 0 for layer in spec.layers]
    assert with_indexer[:6] == [True, True, False, True, False, True] and sum(with_indexer) == 31
    r = _run({**V32, "index_topk_freq": 2}, "0.33.0", H200)
    assert r.kv.bytes_per_token == 61 * 1152 + 31 * 132


def test_an_unknown_model_type_with_deepseek_latent_keys_is_sized_as_mla() -> None:
    config = {**_config("deepseek_v32", "SomeNewMoeForCausalLM"), "model_type": "brand_new_mla"}
    config.pop("index_topk")
    spec = build_spec(config)
    assert spec.generic and any("MLA" in n for n in spec.notes)
    r = _run(config, "0.33.0", H200)
    assert _per_layer_token_bytes(r, 61) == 576 * 2  # a full-head guess would be 128 heads x 256 x 2 / 8 ranks
