"""VLLM_USE_V1=0 still ran the V0 engine from vLLM 0.8 to 0.10, and many 2025 guides set it. 0.8's V1 engine
charged all memory in use, the CUDA context included, before sizing the KV cache; V0 charges weights,
activation peak and non-torch memory only, so V0 keeps about half a GiB more (heldout_public.jsonl ghq-011,
Qwen3-30B-A3B w4a16 on an RTX 3090 with VLLM_USE_V1=0: 5.34 GiB logged, 5.17 predicted, 4.70 as V1)."""

from __future__ import annotations

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

QWEN3_8B = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 4096,
            "intermediate_size": 12288, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
            "num_hidden_layers": 36, "max_position_embeddings": 40960, "vocab_size": 151936,
            "tie_word_embeddings": False, "torch_dtype": "bfloat16", "rms_norm_eps": 1e-6}


def _on_3090(version: str, **env: str):
    dep = Deployment(gpu_name="RTX 3090", gpu_memory_bytes=int(23.56 * (1 << 30)), max_model_len=8192,
                     vllm_version=version, env=tuple(env.items()))
    return estimate(build_spec(QWEN3_8B), dep)


def test_vllm_use_v1_0_on_0_8_5_follows_the_v0_engine() -> None:
    v1, v0 = _on_3090("0.8.5"), _on_3090("0.8.5", VLLM_USE_V1="0")
    assert (v1.profile, v0.profile) == ("v1-0.8", "v0")
    assert v0.engine_version == "0.8.5"
    # V1 0.8 also charged the CUDA context before sizing the cache.
    assert v0.available_kv_cache_bytes > v1.available_kv_cache_bytes


def test_the_variable_changes_nothing_where_only_one_engine_shipped() -> None:
    for version in ("0.6.6", "0.19.0"):
        plain, flagged = _on_3090(version), _on_3090(version, VLLM_USE_V1="0")
        assert plain.profile == flagged.profile
        assert plain.kv_cache_tokens == flagged.kv_cache_tokens
