"""Sequence-parallel MoE: with expert parallelism, TP > 1 and DP > 1 (vLLM 0.11+, default all2all backend) each TP
rank runs the MoE block on its own tokens, and some models keep their shared experts (and dense MLPs) whole on
every GPU (ParallelConfig.use_sequence_parallel_moe; disable_tp=is_sequence_parallel in the model code)."""

from __future__ import annotations

import pytest

from gpuplan.api_python import estimate
from gpuplan.units import GiB

B200 = dict(gpu="B200", enable_expert_parallel=True, max_model_len=32768)


def _kind_gib(report, kind: str) -> float:
    return report.per_stage[0]["weights_by_kind"][kind] / GiB


def test_kimi_k3_keeps_its_shared_experts_whole_on_every_gpu_with_dp_and_tp() -> None:
    """vllm#50656: under SP MoE K3's shared experts are copied to every rank, 'about 22.6 GiB per rank'; sharding
    them at TP4 x DP2 saves 16.98 GiB per GPU (vllm#50912), i.e. three quarters of the copy."""
    split = estimate("kimi-k3", tensor_parallel_size=4, data_parallel_size=1, vllm_version="0.32.0", **B200)
    whole = estimate("kimi-k3", tensor_parallel_size=4, data_parallel_size=2, vllm_version="0.32.0", **B200)
    assert _kind_gib(whole, "shared_experts") == pytest.approx(22.6, abs=0.05)
    assert _kind_gib(whole, "shared_experts") - _kind_gib(split, "shared_experts") == pytest.approx(16.98, abs=0.01)
    assert any("sequence-parallel MoE" in w for w in whole.warnings)


def test_kimi_k3s_env_switch_splits_the_dense_mlp_but_not_the_shared_experts() -> None:
    """VLLM_KIMI_K3_SHARD_SP_SHARED_EXPERT=1 shards KimiMLP again, but with the default all2all backend only the
    dense layers' (the shared experts need MegaMoE or DeepEP v2)."""
    dep = dict(tensor_parallel_size=4, data_parallel_size=2, vllm_version="0.32.0", **B200)
    default = estimate("kimi-k3", **dep)
    env = estimate("kimi-k3", env=(("VLLM_KIMI_K3_SHARD_SP_SHARED_EXPERT", "1"),), **dep)
    assert _kind_gib(env, "shared_experts") == _kind_gib(default, "shared_experts")
    assert _kind_gib(env, "mlp") < _kind_gib(default, "mlp")


def test_deepseek_v3_shared_experts_are_replicated_from_0_11_and_only_with_dp() -> None:
    """58 layers x 3 x 7168 x 2048 FP8 shared-expert weights: 2.38 GiB whole, an eighth of it split over TP=8."""
    dep = dict(gpu="H200", tensor_parallel_size=8, enable_expert_parallel=True, max_model_len=32768)
    no_dp = estimate("deepseek-ai/DeepSeek-V3", data_parallel_size=1, vllm_version="0.32.0", **dep)
    dp = estimate("deepseek-ai/DeepSeek-V3", data_parallel_size=2, vllm_version="0.32.0", **dep)
    old = estimate("deepseek-ai/DeepSeek-V3", data_parallel_size=2, vllm_version="0.10.2", **dep)
    whole = 58 * 3 * 7168 * 2048  # bytes, plus per-128-block scales
    assert _kind_gib(dp, "shared_experts") == pytest.approx(whole / GiB, rel=0.01)
    assert _kind_gib(no_dp, "shared_experts") == pytest.approx(whole / 8 / GiB, rel=0.02)
    assert _kind_gib(old, "shared_experts") == _kind_gib(no_dp, "shared_experts")  # DeepEP-only before 0.11
    # dense first layers stay split in deepseek_v2.py
    assert _kind_gib(dp, "mlp") == _kind_gib(no_dp, "mlp")


def test_models_without_shared_experts_are_unchanged_by_dp() -> None:
    dep = dict(gpu="H100", tensor_parallel_size=4, enable_expert_parallel=True, max_model_len=8192)
    one = estimate("Qwen/Qwen3-30B-A3B", data_parallel_size=1, **dep)
    two = estimate("Qwen/Qwen3-30B-A3B", data_parallel_size=2, **dep)
    assert not any("sequence-parallel" in w for w in two.warnings)
    # only the routed experts, now over 8 EP ranks, change
    assert two.weights_bytes < one.weights_bytes
