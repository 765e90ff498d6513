"""Before vLLM 0.7.1, DeepSeek-V2/V3 did not cache the MLA latent: they kept K and V for every attention head, padded
to a head size of 256 up to 0.6.x (config.py get_head_size returned 256) and qk_nope + qk_rope = 192 wide in 0.7.0
(get_head_size returns their sum; deepseek_v2.py pads v to it). From 0.7.1 on the layer caches kv_lora_rank +
qk_rope_head_dim values per token. gt027 (shared dev set, vLLM 0.5.0.post1, DeepSeek-V2-Lite at TP=1 on an
unnamed GPU) logged 5,549 blocks, which only the per-head cache explains on an 80 GB card."""

from __future__ import annotations

from gpuplan.catalog import find_model
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

A100_80 = dict(gpu_name="A100", gpu_memory_bytes=84_986_665_370, compute_capability=8.0)


def _lite():
    return build_spec(find_model("deepseek-ai/DeepSeek-V2-Lite").hf_config)


def test_deepseek_v2_lite_on_vllm_0_5_caches_per_head_kv_padded_to_256() -> None:
    r = estimate(_lite(), Deployment(**A100_80, max_model_len=32000, api_server=False, vllm_version="0.5.0"))
    assert r.kv.bytes_per_token == 27 * 2 * 16 * 256 * 2  # 27 layers, K and V, 16 heads, bf16
    # gt027 logged 5549 blocks; the latent cache would give about 81,000
    assert 5549 * 0.95 < r.num_gpu_blocks < 5549 * 1.05


def test_vllm_0_7_1_switches_to_the_latent_cache_and_tp_splits_only_the_old_layout() -> None:
    padded = estimate(_lite(), Deployment(**A100_80, max_model_len=32000, vllm_version="0.6.6"))
    old = estimate(_lite(), Deployment(**A100_80, max_model_len=32000, vllm_version="0.7.0"))
    new = estimate(_lite(), Deployment(**A100_80, max_model_len=32000, vllm_version="0.7.1"))
    assert new.kv.bytes_per_token == 27 * (512 + 64) * 2
    assert padded.kv.bytes_per_token == 27 * 2 * 16 * 256 * 2
    assert old.kv.bytes_per_token == 27 * 2 * 16 * (128 + 64) * 2  # 0.7.0: no padding, no latent yet
    tp2 = estimate(_lite(), Deployment(**A100_80, max_model_len=32000, tensor_parallel_size=2, vllm_version="0.6.3"))
    assert tp2.kv.bytes_per_token == padded.kv.bytes_per_token // 2

