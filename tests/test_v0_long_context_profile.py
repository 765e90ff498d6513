"""Before vLLM 0.5.3 the V0 profile run pushed max(max_model_len, 2048) tokens through the model, however
long the context; from 0.5.3 (PR 6666) chunked prefill is on by default above 32K and the profile run takes one chunk:
512 tokens until 0.6.4, 2048 from 0.6.5 (SchedulerConfig's default). A 64K-context 33B model on two L40s therefore had far less room for a KV cache on 0.4.1
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


def test_from_0_5_3_chunked_prefill_keeps_the_profile_run_to_one_chunk() -> None:
    old, new = _run("0.4.1"), _run("0.5.3")
    assert new.max_num_batched_tokens == 512 and new.fits
    assert new.num_gpu_blocks > 2 * old.num_gpu_blocks
    assert _run("0.6.4").max_num_batched_tokens == 512
    assert _run("0.6.5").max_num_batched_tokens == 2048


# llava-hf/llava-1.5-7b-hf: a Llama-2-7B language model behind a CLIP ViT-L/14-336 tower
LLAVA_15_7B = {"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava", "torch_dtype": "float16",
               "image_token_index": 32000, "projector_hidden_act": "gelu", "vision_feature_layer": -2,
               "vision_feature_select_strategy": "default", "vocab_size": 32064,
               "text_config": {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
                               "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
                               "vocab_size": 32064, "max_position_embeddings": 4096, "rms_norm_eps": 1e-05,
                               "torch_dtype": "float16"},
               "vision_config": {"model_type": "clip_vision_model", "hidden_size": 1024, "image_size": 336,
                                 "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
                                 "patch_size": 14, "projection_dim": 768}}


def test_a_v0_multimodal_model_batches_at_least_its_image_tokens() -> None:
    """V0 raises a multimodal architecture's default max_num_batched_tokens above max(max_model_len, 2048): to
    4096 in 0.6.0-0.6.2 and 5120 from 0.6.3 (none in 0.5.x); from 0.9 the default never exceeds
    max_num_seqs x max_model_len."""
    spec = build_spec(LLAVA_15_7B)

    def mnbt(version: str, seqs: int | None = None, max_model_len: int | None = None) -> int:
        dep = Deployment(gpu_name="H100", gpu_memory_bytes=85_029_158_912, vllm_version=version, max_num_seqs=seqs,
                         max_model_len=max_model_len, env=(("VLLM_USE_V1", "0"),))
        return estimate(spec, dep).max_num_batched_tokens

    assert mnbt("0.5.3", max_model_len=2048) == 2048  # max(max_model_len, 2048)
    assert mnbt("0.6.1", max_model_len=2048) == 4096
    assert mnbt("0.6.1") == 4096
    assert mnbt("0.6.3") == 5120
    assert mnbt("0.8.5", seqs=1) == 5120
    assert mnbt("0.9.2") == 5120
    assert mnbt("0.9.2", seqs=1) == 4096


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
