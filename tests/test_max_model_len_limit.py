"""How long a context vLLM accepts for a model, and what it does when asked for more.

vLLM derives the limit from the config (the smallest length key, scaled by RoPE scaling) and refuses a longer
max_model_len at start-up unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 (vllm/config/model.py: _get_and_verify_max_len).
"""

from __future__ import annotations

import copy

import gpuplan
from gpuplan.catalog import list_models
from gpuplan.model.adapters import build_spec
from gpuplan.planner import plan
from gpuplan.validation import validate_records

LONG = ("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1")


def _config(model_id: str) -> dict:
    return copy.deepcopy(next(e for e in list_models() if e.id == model_id).hf_config)


def test_phi2_at_8192_tokens_is_refused_like_vllm_does():
    # llm-d-planner sweep, phi-2 --max-model-len 8192 on vLLM 0.19: "User-specified max_model_len (8192) is greater
    # than the derived max_model_len (max_position_embeddings=2048.0 ...)" and the server never started.
    r = gpuplan.estimate("microsoft/phi-2", gpu="H100", vllm_version="0.19.0", max_model_len=8192)
    assert not r.fits
    assert "max_position_embeddings=2048" in r.reason and "VLLM_ALLOW_LONG_MAX_MODEL_LEN" in r.reason
    assert r.max_model_len_fit == 2048


def test_the_override_env_lets_it_start_with_a_warning():
    r = gpuplan.estimate("microsoft/phi-2", gpu="H100", vllm_version="0.19.0", max_model_len=8192, env=(LONG,))
    assert r.fits
    assert any("untrained" in w for w in r.warnings)


def test_the_override_env_set_to_zero_still_refuses():
    # envs.py reads VLLM_ALLOW_LONG_MAX_MODEL_LEN as "1" or "true": a 0 is off, not merely set
    r = gpuplan.estimate("microsoft/phi-2", gpu="H100", vllm_version="0.19.0", max_model_len=8192,
                         env=(("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "0"),))
    assert not r.fits and r.failure == "max_model_len_refused"


def test_yarn_scaling_raises_the_limit_and_the_default_length():
    cfg = _config("Qwen/Qwen2.5-7B-Instruct")
    cfg["rope_scaling"] = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    spec = build_spec(cfg, "qwen2.5-7b-yarn")
    assert spec.max_len_limit.derived == 131072
    r = gpuplan.estimate(spec, gpu="H200")
    assert r.max_model_len == 131072  # vLLM's default when --max-model-len is not given


def test_llama3_rope_scaling_does_not_multiply_the_limit():
    spec = build_spec(_config("meta-llama/Llama-3.1-8B"))
    assert spec.max_len_limit.derived == 131072


def test_gemma3_is_not_scaled_twice():
    # Gemma 3's 131072 already includes its linear x8 scaling; vLLM skips gemma3 by name.
    spec = build_spec(_config("google/gemma-3-27b-it"))
    assert spec.max_len_limit.derived == 131072


def test_longrope_models_default_to_their_short_context():
    # Phi-3-mini-128k's config: LongRoPE over 131072 positions, trained at 4096; vLLM defaults to 4096.
    cfg = _config("microsoft/Phi-3-mini-4k-instruct")
    cfg.update(max_position_embeddings=131072, original_max_position_embeddings=4096,
               rope_scaling={"type": "longrope", "long_factor": [1.0] * 48, "short_factor": [1.0] * 48})
    spec = build_spec(cfg, "phi-3-mini-128k")
    assert spec.max_len_limit.derived == 131072
    assert gpuplan.estimate(spec, gpu="H100").max_model_len == 4096
    assert gpuplan.estimate(spec, gpu="H100", max_model_len=131072).fits


def test_phi3_longrope_keeps_its_short_and_long_rotary_caches_side_by_side():
    # Phi3LongRoPEScaledRotaryEmbedding concatenates the short-factor cache (original_max_position_embeddings
    # positions) and the long-factor one (max_position_embeddings): (4096 + 131072) x 96 values of the model dtype.
    cfg = _config("microsoft/Phi-3-mini-4k-instruct")
    cfg.update(max_position_embeddings=131072, original_max_position_embeddings=4096,
               rope_scaling={"type": "longrope", "long_factor": [1.0] * 48, "short_factor": [1.0] * 48})
    assert [(r.positions, r.rotary_dim) for r in build_spec(cfg).rope_caches] == [(4096 + 131072, 96)]
    plain = build_spec(_config("microsoft/Phi-3-mini-4k-instruct"))
    assert [r.positions for r in plain.rope_caches] == [4096]


def test_a_config_without_any_length_key_trusts_the_user():
    # transformers fills LlamaConfig's 2048 default, so vLLM does limit a Llama config without the key;
    # only a config class without one (here an unknown model_type) leaves vLLM nothing to check against.
    cfg = _config("meta-llama/Llama-3.1-8B")
    del cfg["max_position_embeddings"]
    assert build_spec(cfg, "llama-no-length").max_len_limit.derived == 2048
    cfg["model_type"] = "some_new_decoder"
    spec = build_spec(cfg, "no-length")
    assert spec.max_len_limit is None
    assert gpuplan.estimate(spec, gpu="H100", max_model_len=65536).fits


def test_validate_counts_a_tp_the_kv_heads_cannot_split_as_a_predicted_failure():
    # llm-d-planner sweep: Qwen3-14B at TP=5 died in the workers ("... is not divisible by 5").
    rec = {"id": "tp5", "model_id": "Qwen/Qwen3-14B", "hf_config": _config("Qwen/Qwen3-14B"),
           "engine_version": "0.19.0", "outcome": "failed", "logged": {},
           "deployment": {"gpu_name": "NVIDIA H100 80GB HBM3", "tensor_parallel_size": 5, "max_model_len": 8192}}
    out = validate_records([rec])
    pred = out["records"][0]["predicted"]
    assert pred["fits"] is False and "TP=5" in pred["reason"]
    assert out["summary"]["failed_outcome_agreement"]["agree"] == 1


def test_gemma3_12b_it_loads_its_vision_tower():
    # vLLM serves Gemma3ForConditionalGeneration: the SigLIP tower and projector are in "Model loading took".
    counts = build_spec(_config("google/gemma-3-12b-it")).param_counts()
    assert counts["vision"] + counts["projector"] == 421_290_864  # keras-hub: multimodal minus text


def test_a_plan_for_a_context_past_the_limit_carries_vllms_override_in_its_command():
    r = plan("microsoft/phi-2", gpus=["H100"], num_gpus=1, max_model_len=8192)
    opt = r.requested.option
    assert opt.fits
    assert ("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1") in opt.env
