"""Whether vLLM serves DeepSeek's latent attention as MLA, and what 0.7.1-0.7.3's MLA backend adds to the weights.

vLLM 0.7.1-0.7.3 (attention/backends/mla/utils.py process_weights_after_loading, matrix absorption on by default)
keep, per MLA layer and beside q_proj / kv_b_proj / o_proj: W_QR [q_in, heads x rope] in the model dtype, the
dequantized kv_b_proj (float32 for FP8 in 0.7.1-0.7.2, the model dtype in 0.7.3; nothing for an unquantized one),
W_Q_UK [q_in, heads x latent] and W_UV_O [heads x latent, hidden], requantized to FP8 with float32 block scales
when the checkpoint is FP8. ModelConfig.use_mla turns MLA off for VLLM_MLA_DISABLE=1, and in 0.7.1-0.7.2 for
quantizations other than fp8 / compressed-tensors FP8."""

from __future__ import annotations

from gpuplan.api_python import estimate as api_estimate
from gpuplan.catalog import find_model
from gpuplan.units import GiB

H200 = dict(gpu="NVIDIA H200", tensor_parallel_size=8)


def _absorbed(model: str, version: str, **dep) -> int:
    r = api_estimate(model, max_model_len=8192, vllm_version=version, **dep)
    return r.per_stage[0]["weights_by_kind"].get("mla_absorbed", 0)


# DeepSeek-R1 / V3 at TP=8: 16 heads per GPU, q_lora_rank 1536, kv_lora_rank 512, rope 64, nope 128, v 128,
# hidden 7168, FP8 blocks of 128 x 128, 61 MLA layers.
W_QR = 1536 * 16 * 64 * 2
W_Q_UK = 1536 * 8192 + (1536 // 128) * (8192 // 128) * 4
W_UV_O = 8192 * 7168 + (8192 // 128) * (7168 // 128) * 4
KV_B = 512 * 16 * 256


def test_deepseek_r1_fp8_on_vllm_0_7_3_loads_the_absorbed_matrices_as_its_log_shows() -> None:
    """v0a-006 (tests/fixtures/vllm_logs/v0_activation_public.jsonl, 8 x H200, 0.7.3) logged "model weights take
    83.88GiB"; the checkpoint's own tensors are 79.33 GiB per GPU, and 0.7.3 adds about 4.47 GiB."""
    assert _absorbed("deepseek-ai/DeepSeek-R1", "0.7.3", **H200) == 61 * (W_QR + KV_B * 2 + W_Q_UK + W_UV_O)
    r = api_estimate("deepseek-ai/DeepSeek-R1", max_model_len=128000, vllm_version="0.7.3",
                     gpu_memory_utilization=0.85, max_num_seqs=1024, max_num_batched_tokens=32000, **H200)
    assert abs(r.weights_bytes / GiB - 83.88) < 0.1


def test_vllm_0_7_1_dequantizes_fp8_kv_b_proj_to_float32() -> None:
    """0.7.1-0.7.2 dequantize through scaled_dequantize, whose default output is float32."""
    assert _absorbed("deepseek-ai/DeepSeek-R1", "0.7.1", **H200) - _absorbed("deepseek-ai/DeepSeek-R1", "0.7.3",
                                                                             **H200) == 61 * KV_B * (4 - 2)


def test_bf16_deepseek_v2_lite_absorbs_in_bf16_and_only_views_kv_b_proj() -> None:
    """No q LoRA: q_in is the hidden size 2048; at TP=8 two heads per GPU. v0a-005 (0.7.1, fp16, 8 x A100-40GB)
    logged 3.97 GiB of weights."""
    n = 2
    per_layer = 2048 * n * 64 * 2 + 2048 * n * 512 * 2 + n * 512 * 2048 * 2
    assert _absorbed("deepseek-ai/DeepSeek-V2-Lite", "0.7.1", gpu="A100-40GB", tensor_parallel_size=8,
                     dtype="float16") == 27 * per_layer
    r = api_estimate("deepseek-ai/DeepSeek-V2-Lite", gpu="A100-40GB", tensor_parallel_size=8, dtype="float16",
                     max_model_len=8192, max_num_seqs=2, vllm_version="0.7.1")
    assert abs(r.weights_bytes / GiB - 3.97) < 0.03


def test_no_absorbed_matrices_outside_0_7_1_to_0_7_3() -> None:
    assert _absorbed("deepseek-ai/DeepSeek-V2-Lite", "0.7.0", gpu="A100-40GB", tensor_parallel_size=8) == 0
    assert _absorbed("deepseek-ai/DeepSeek-V2-Lite", "0.8.5", gpu="A100-40GB", tensor_parallel_size=8,
                     env={"VLLM_USE_V1": "0"}) == 0


def test_awq_deepseek_v3_on_vllm_0_7_2_runs_without_mla_and_caches_every_head() -> None:
    """An AWQ checkpoint turns MLA off in 0.7.1-0.7.2 (only fp8 and compressed-tensors FP8 were allowed): 61 layers x
    K and V x 16 heads per GPU x 192 wide x 2 bytes per token at TP=8, against 61 x 576 x 2 for the latent from 0.7.3
    (where the AWQ layers are dequantized for absorption, in the model dtype)."""
    cfg = {k: v for k, v in find_model("deepseek-ai/DeepSeek-V3").hf_config.items() if k != "quantization_config"}
    awq = {**cfg, "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True,
                                          "version": "gemm"}}
    old = api_estimate(awq, max_model_len=8192, vllm_version="0.7.2", **H200)
    new = api_estimate(awq, max_model_len=8192, vllm_version="0.7.3", **H200)
    assert old.kv.bytes_per_token == 61 * 2 * 16 * 192 * 2
    assert new.kv.bytes_per_token == 61 * 576 * 2
    assert any("turns MLA off for awq" in w for w in old.warnings)
    assert "mla_absorbed" not in old.per_stage[0]["weights_by_kind"]
    per_layer = W_QR + KV_B * 2 + 1536 * 8192 * 2 + 8192 * 7168 * 2  # everything in bf16
    assert new.per_stage[0]["weights_by_kind"]["mla_absorbed"] == 61 * per_layer


def test_vllm_mla_disable_gives_the_multi_head_cache_in_any_release() -> None:
    """VLLM_MLA_DISABLE=1 (read by ModelConfig.use_mla up to 0.33): DeepseekV2Attention, K and V for all 16 heads
    of DeepSeek-V2-Lite, 192 wide; and no dequantized W_UK_T / W_UV copy beside FP8 DeepSeek-V3's kv_b_proj."""
    lite = api_estimate("deepseek-ai/DeepSeek-V2-Lite", gpu="H100", max_model_len=8192,
                        env={"VLLM_MLA_DISABLE": "1"})
    assert lite.kv.bytes_per_token == 27 * 2 * 16 * 192 * 2
    assert any("VLLM_MLA_DISABLE=1" in w for w in lite.warnings)
    v3 = _absorbed("deepseek-ai/DeepSeek-V3", "0.19.0", env={"VLLM_MLA_DISABLE": "1"}, **H200)
    assert v3 == 0 < _absorbed("deepseek-ai/DeepSeek-V3", "0.19.0", **H200)
