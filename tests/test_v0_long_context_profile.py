"""Before vLLM 0.5.3 the V0 profile run pushed max(max_model_len, 2048) tokens through the model, however
long the context; from 0.5.3 (PR 6666) chunked prefill is on by default above 32K and the profile run takes
2048-token chunks. A 64K-context 33B model on two L40s therefore had far less room for a KV cache on 0.4.1
(vllm issue 4429 reports "No available memory for the cache blocks"; gpuplan still leaves it a little, see
heldout_public.jsonl gho-005) than from 0.5.3 on."""

from __future__ import annotations

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

# deepseek-ai/deepseek-coder-33b-instruct (llama architecture, linear RoPE x4 over 16384 positions)
CODER_33B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 7168,
             "intermediate_size": 19200, "num_attention_heads": 56, "num_key_value_heads": 8,
             "num_hidden_layers": 62, "max_position_embeddings": 16384, "vocab_size": 32256,
             "rope_scaling": {"factor": 4.0, "type": "linear"}, "rms_norm_eps": 1e-06, "torch_dtype": "bfloat16",
             "tie_word_embeddings": False}
TWO_L40 = dict(gpu_name="L40", tensor_parallel_size=2, dtype="float16")


def _run(version: str):
    return estimate(build_spec(CODER_33B), Deployment(**TWO_L40, vllm_version=version, gpu_memory_bytes=47_813_723_423))


def test_coder_33b_at_64k_profiles_all_65536_tokens_on_vllm_0_4_1() -> None:
    old = _run("0.4.1")
    assert old.max_model_len == 65536 and old.max_num_batched_tokens == 65536
    assert not old.fits  # 64K tokens of KV no longer fit beside a 64K-token profile run


def test_from_0_5_3_chunked_prefill_keeps_the_profile_run_at_2048_tokens() -> None:
    old, new = _run("0.4.1"), _run("0.5.3")
    assert new.max_num_batched_tokens == 2048 and new.fits
    assert new.num_gpu_blocks > 2 * old.num_gpu_blocks


def test_v0_keeps_an_mla_model_and_a_windowed_one_on_whole_prompts_above_32k() -> None:
    """arg_utils.py _set_default_args_v0 (0.8.x): chunked prefill is not turned on for an MLA model or a
    multimodal one, nor for a model with a sliding window, so V0 profiles max_model_len tokens at once:
    DeepSeek-V2-Lite at 64K on 0.8.3 with VLLM_USE_V1=0 runs a 65,536-token profile, Llama-3.1-8B a 2,048 one,
    and on 0.7.3 (before the MLA exception) DeepSeek-V2-Lite still gets 2,048."""
    from gpuplan.api_python import estimate as api_estimate

    def mnbt(model: str, version: str) -> int:
        return api_estimate(model, gpu="H100", vllm_version=version, max_model_len=65536,
                            env={"VLLM_USE_V1": "0"}).max_num_batched_tokens

    assert mnbt("deepseek-ai/DeepSeek-V2-Lite", "0.8.3") == 65536
    assert mnbt("meta-llama/Llama-3.1-8B", "0.8.3") == 2048
    assert mnbt("deepseek-ai/DeepSeek-V2-Lite", "0.7.3") == 2048
    gemma2 = api_estimate("google/gemma-2-9b", gpu="H100", vllm_version="0.6.6", max_model_len=65536,
                          env={"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"})
    assert gemma2.max_num_batched_tokens == 65536  # interleaved sliding-window layers
