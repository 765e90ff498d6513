"""vLLM 0.8 - 0.10 ran V1 by default but fell back to V0 for what V1 did not support yet (a T4 or V100, an fp8 KV
cache without FlashAttention 3, pipeline parallelism in 0.8, float32, GGUF, V0-only architectures, Mamba). The
rules come from each wheel's EngineArgs._is_v1_supported_oracle (data/vllm_v1_fallback.json); a fallen-back
start-up is sized with V0's accounting: 256 sequences, a profile run at max_model_len tokens, no CUDA-graph
subtraction, 16-token blocks, and recurrent states outside the paged cache."""

from __future__ import annotations

import pytest

from gpuplan.api_python import estimate as api_estimate
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import UnservableDeployment
from gpuplan.model.adapters import build_spec

GiB = 1 << 30

QWEN25_7B = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584,
             "intermediate_size": 18944, "num_attention_heads": 28, "num_key_value_heads": 4,
             "num_hidden_layers": 28, "max_position_embeddings": 32768, "vocab_size": 152064,
             "tie_word_embeddings": False, "torch_dtype": "bfloat16", "rms_norm_eps": 1e-6}

BLOOM_560M = {"architectures": ["BloomForCausalLM"], "model_type": "bloom", "hidden_size": 1024, "n_head": 16,
              "n_layer": 24, "vocab_size": 250880, "layer_norm_epsilon": 1e-5, "torch_dtype": "float16"}

JAMBA_SMALL = {"architectures": ["JambaForCausalLM"], "model_type": "jamba", "hidden_size": 4096,
               "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8,
               "num_hidden_layers": 32, "attn_layer_period": 8, "attn_layer_offset": 4, "expert_layer_period": 2,
               "expert_layer_offset": 1, "num_experts": 16, "num_experts_per_tok": 2, "mamba_d_state": 16,
               "mamba_d_conv": 4, "mamba_expand": 2, "mamba_dt_rank": 256, "vocab_size": 65536,
               "max_position_embeddings": 262144, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}


CC = {"T4": 7.5, "A100 80GB": 8.0, "L40S": 8.9, "H100": 9.0}  # what the faces read from the GPU catalog


def _run(config: dict, version: str, gpu: str, gib: float, **kw):
    env = kw.pop("env", {})
    dep = Deployment(gpu_name=gpu, gpu_memory_bytes=int(gib * GiB), compute_capability=CC[gpu],
                     vllm_version=version, env=tuple(env.items()), **kw)
    return estimate(build_spec(config), dep)


def _falls_back(report) -> bool:
    return report.profile == "v0" and any("falls back to V0" in w for w in report.warnings)


def test_a_t4_runs_the_v0_engine_on_0_9_and_0_10_1_but_v1_from_0_10_2() -> None:
    for version in ("0.8.5", "0.9.2", "0.10.1"):
        r = _run(QWEN25_7B, version, "T4", 14.58, max_model_len=4096, quantization="awq")
        assert _falls_back(r), version
        assert any("Compute Capability < 8.0" in w for w in r.warnings)
        assert r.max_num_seqs == 256 and r.max_num_batched_tokens == 4096  # V0: no chunked prefill at 4K
    assert _run(QWEN25_7B, "0.10.2", "T4", 14.58, max_model_len=4096, quantization="awq").profile != "v0"


def test_an_ampere_gpu_stays_on_v1() -> None:
    r = _run(QWEN25_7B, "0.9.2", "A100 80GB", 79.2, max_model_len=8192)
    assert r.profile.startswith("v1") and not any("V0" in w for w in r.warnings)


def test_fp8_kv_cache_needs_flashattention_3_on_v1_until_0_10() -> None:
    # 0.8.2 - 0.10.1: fp8 KV on V1 only through FA3 (Hopper); an L40S falls back, an H100 does not.
    for version in ("0.8.5", "0.9.2", "0.10.1"):
        assert _falls_back(_run(QWEN25_7B, version, "L40S", 44.4, max_model_len=8192, kv_cache_dtype="fp8"))
        assert not _falls_back(_run(QWEN25_7B, version, "H100", 79.2, max_model_len=8192, kv_cache_dtype="fp8"))
    # 0.8.0 - 0.8.1: no fp8 KV cache on V1 at all.
    assert _falls_back(_run(QWEN25_7B, "0.8.1", "H100", 79.2, max_model_len=8192, kv_cache_dtype="fp8"))


def test_pipeline_parallel_fell_back_in_0_8_only() -> None:
    assert _falls_back(_run(QWEN25_7B, "0.8.5", "A100 80GB", 79.2, max_model_len=8192, pipeline_parallel_size=2))
    assert not _falls_back(_run(QWEN25_7B, "0.9.2", "A100 80GB", 79.2, max_model_len=8192,
                                pipeline_parallel_size=2))


def test_float32_fell_back_until_0_9_1() -> None:
    assert _falls_back(_run(QWEN25_7B, "0.9.1", "A100 80GB", 79.2, max_model_len=4096, dtype="float32"))
    assert not _falls_back(_run(QWEN25_7B, "0.9.2", "A100 80GB", 79.2, max_model_len=4096, dtype="float32"))


def test_bloom_is_a_v0_only_architecture_until_0_10_1() -> None:
    assert _falls_back(_run(BLOOM_560M, "0.10.1", "A100 80GB", 79.2, max_model_len=2048))
    assert not _falls_back(_run(BLOOM_560M, "0.10.2", "A100 80GB", 79.2, max_model_len=2048))


def test_vllm_use_v1_1_stops_start_up_on_a_feature_v1_refuses() -> None:
    with pytest.raises(UnservableDeployment, match="VLLM_USE_V1=1 is not supported with Compute Capability"):
        _run(QWEN25_7B, "0.9.2", "T4", 14.58, max_model_len=4096, quantization="awq", env={"VLLM_USE_V1": "1"})


def test_vllm_use_v1_1_keeps_v1_for_a_mamba_model_where_vllm_only_warns() -> None:
    # 0.10.1: Jamba is no longer V0-only, but Mamba models fall back unless VLLM_USE_V1=1 (a warning then).
    assert _falls_back(_run(JAMBA_SMALL, "0.10.1", "H100", 79.2, max_model_len=8192, tensor_parallel_size=2))
    forced = _run(JAMBA_SMALL, "0.10.1", "H100", 79.2, max_model_len=8192, tensor_parallel_size=2,
                  env={"VLLM_USE_V1": "1"})
    assert forced.profile.startswith("v1")


def test_v0_keeps_mamba_states_outside_the_paged_kv_cache() -> None:
    # Jamba on V0: only the 4 attention layers are paged (16-token blocks); the 28 Mamba layers' states for
    # 256 requests (conv 4096x3 + ssm 4096x16 per layer at TP=2, bf16) are a fixed allocation in the peak.
    r = _run(JAMBA_SMALL, "0.10.1", "H100", 79.2, max_model_len=8192, tensor_parallel_size=2)
    per_request = 28 * (4096 * 3 + 4096 * 16) * 2
    assert r.kv.block_size == 16
    assert r.kv.kv_cache_tokens == r.kv.num_gpu_blocks * 16
    act = next(c for c in r.components if c.name == "activation_peak")
    assert f"V0 Mamba state cache {per_request * 256 / GiB:.2f}" in act.note
    # Per token, V0 pages 4 layers x 2 (K, V) x 4 heads x 128 x 2 bytes.
    assert r.kv.num_gpu_blocks == r.available_kv_cache_bytes // (16 * 4 * 2 * 4 * 128 * 2)


@pytest.mark.parametrize(("version", "eager", "slots"), [
    ("0.6.3", True, 256),  # the model padded max_num_seqs to a graph batch size, eager or not
    ("0.7.0", True, 8194),  # 0.6.5 - 0.7.2: an eager model reserved 8192 + 2 states
    ("0.7.0", False, 256),
    ("0.8.5", True, 256),  # 0.7.3+: MambaCacheManager, max_num_seqs
])
def test_how_many_requests_the_v0_mamba_cache_holds(version: str, eager: bool, slots: int) -> None:
    from gpuplan.engines.vllm.budget import v0_state_slots
    from gpuplan.engines.vllm.profiles import get_profile

    assert v0_state_slots(get_profile(version, False), 256, eager) == slots


def test_llama_3_2_3b_on_a_colab_t4_with_vllm_0_8_2_is_sized_as_its_v0_log() -> None:
    # Public log (github.com/huggingface/cookbook, notebooks/en/fine_tune_chatbot_docs_synthetic.ipynb): V0 after
    # "Compute Capability < 8.0", fp16, total 14.74 GiB, utilization 0.8939, max_model_len 2048, max_num_seqs 192:
    # weights 6.02, activation 0.90, non-torch 0.05 GiB, KV 6.22 GiB, 3,637 blocks, 28.41x. Sized as V1, the
    # KV cache came out 12% short.
    import json
    from importlib.resources import files

    config = json.loads((files("gpuplan") / "data/models/meta-llama__Llama-3.2-3B.json").read_text())["hf_config"]
    r = _run(config, "0.8.2", "T4", 14.74, max_model_len=2048, max_num_seqs=192, dtype="float16",
             gpu_memory_utilization=0.8938626454842437)
    assert _falls_back(r)
    assert round(r.weights_bytes / GiB, 2) == 6.02
    assert abs(r.available_kv_cache_bytes / GiB - 6.22) / 6.22 < 0.02
    assert abs(r.kv.num_gpu_blocks - 3637) / 3637 < 0.02
    assert abs(r.kv.max_concurrency - 28.41) / 28.41 < 0.02


def test_public_v0_fallback_start_ups_are_sized_as_v0_and_their_driver_kv_matches() -> None:
    # tests/fixtures/vllm_logs/v0_fallback.jsonl: six public logs that printed "Falling back to V0" (or ran a
    # V100 on 0.8.5): a T4, a V100, and 0.8.3's pipeline-parallel fallback for Llama-3.3-70B (TP4 x PP2) and
    # DeepSeek-V2.5 (TP8 x PP2) on A100-40GB. The logged KV is the driver's (PP stage 0) line.
    from pathlib import Path

    from gpuplan.validation import validate_file

    result = validate_file(Path(__file__).parent / "fixtures" / "vllm_logs" / "v0_fallback.jsonl")
    assert len(result["records"]) == 6
    assert all(r["predicted"]["profile"] == "v0" for r in result["records"])
    kv = result["summary"]["available_kv_cache_gib"]
    assert kv["n"] == 6 and kv["median_abs_pct"] <= 3.0
    by_id = {r["id"]: r for r in result["records"]}
    for pp_run in ("v0fb-004", "v0fb-005"):  # Llama-3.3-70B, PP stage 0: 17.94 / 17.90 GiB logged
        assert by_id[pp_run]["abs_pct_error"]["available_kv_cache_gib"] <= 1.0


def test_on_0_8s_v1_a_0_995_budget_on_an_l40s_starts_eagerly_since_it_already_holds_the_cuda_context() -> None:
    """0.8's gpu_worker.determine_available_memory adds everything outside torch (the CUDA context included,
    total - free) to the peak, so the KV cache fills the budget and no more: at utilization 0.995 nothing overflows
    before CUDA graphs, which --enforce-eager skips. From 0.9 vLLM refuses a budget above the free memory instead."""
    spec = build_spec({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
                       "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8,
                       "num_hidden_layers": 32, "vocab_size": 128256, "max_position_embeddings": 131072,
                       "rope_theta": 500000.0, "torch_dtype": "bfloat16"})
    opts = {"gpu": "L40S", "gpu_memory_utilization": 0.995, "max_model_len": 8192, "enforce_eager": True}
    v08 = api_estimate(spec, vllm_version="0.8.5", **opts)
    assert v08.profile == "v1-0.8" and v08.fits
    v09 = api_estimate(spec, vllm_version="0.9.2", **opts)
    assert not v09.fits and "Free memory on device" in (v09.reason or "")
