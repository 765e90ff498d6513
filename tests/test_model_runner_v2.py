"""vLLM's second GPU model runner (vllm/v1/worker/gpu/). config/vllm.py use_v2_model_runner decides who runs
it: in 0.22-0.23 a few listed architectures, dense and unquantized; in 0.24 the listed ones; from 0.25 every
dense attention model and the listed MoE ones; from 0.29 every model, unless a feature it lacks sends the
start-up back to V1. Until 0.29 it did not estimate CUDA-graph memory before sizing the KV cache
(profile_cudagraph_memory returned 0), and its sampler keeps max_num_seqs x vocab int32 penalty counters on
the GPU. So Qwen3-8B on a 24 GB RTX 4090 with vLLM 0.24 keeps roughly a CUDA-graph pool more KV cache than the
V1 runner would give it (heldout_public.jsonl ghd-005 logged 6.03 GiB)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.api_python import load_model
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.budget import activation
from gpuplan.engines.vllm.estimate import estimate, resolve
from gpuplan.engines.vllm.profiles import get_profile
from gpuplan.model.adapters import build_spec
from gpuplan.validation import deployment_of, predict

QWEN3_8B = {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 4096,
            "intermediate_size": 12288, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
            "num_hidden_layers": 36, "max_position_embeddings": 40960, "vocab_size": 151936,
            "tie_word_embeddings": False, "torch_dtype": "bfloat16", "rms_norm_eps": 1e-6}
LLAMA = {**QWEN3_8B, "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256}
RTX_4090 = dict(gpu_name="RTX 4090", gpu_memory_bytes=25_386_352_640, max_model_len=32768,
                gpu_memory_utilization=0.92)


def _dep(version: str, **env: str) -> Deployment:
    return Deployment(**RTX_4090, vllm_version=version, env=tuple(env.items()))


def test_qwen3_runs_the_v2_runner_from_0_22_on() -> None:
    spec = build_spec(QWEN3_8B)
    on = {v: resolve(spec, _dep(v)).runner_v2 for v in ("0.21.0", "0.22.0", "0.24.0", "0.25.0", "0.28.0", "0.29.0")}
    assert on == {"0.21.0": False, "0.22.0": True, "0.24.0": True, "0.25.0": True, "0.28.0": True,
                  "0.29.0": True}


def test_from_0_25_every_dense_model_runs_v2_but_an_unlisted_moe_waits_for_0_29() -> None:
    falcon = build_spec({**LLAMA, "architectures": ["FalconForCausalLM"], "model_type": "falcon"})
    assert not resolve(falcon, _dep("0.24.0")).runner_v2 and resolve(falcon, _dep("0.25.0")).runner_v2
    moe = load_model("Qwen/Qwen3-30B-A3B", allow_network=False)  # Qwen3MoeForCausalLM: never listed
    assert [resolve(moe, _dep(v)).runner_v2 for v in ("0.25.0", "0.28.0", "0.29.0")] == [False, False, True]
    listed = load_model("Qwen/Qwen1.5-MoE-A2.7B", allow_network=False)  # Qwen2MoeForCausalLM: listed from 0.24
    assert not resolve(listed, _dep("0.23.0")).runner_v2 and resolve(listed, _dep("0.27.1")).runner_v2


def test_0_22_and_0_23_keep_a_quantized_checkpoint_on_v1() -> None:
    awq = build_spec({**LLAMA, "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128,
                                                        "zero_point": True, "version": "gemm"}})
    assert not resolve(awq, _dep("0.23.0")).runner_v2
    assert resolve(awq, _dep("0.24.0")).runner_v2
    # The same when only the model's name says AWQ (an assumed checkpoint); online FP8 keeps a bf16 config.
    assert not resolve(build_spec(LLAMA), _dep("0.23.0").with_(quantization="awq")).runner_v2
    assert resolve(build_spec(LLAMA), _dep("0.23.0").with_(quantization="fp8")).runner_v2


def test_hybrid_mamba_models_follow_their_own_rules() -> None:
    nxt = load_model("Qwen/Qwen3-Next-80B-A3B-Instruct", allow_network=False)  # unlisted MoE hybrid
    assert not resolve(nxt, _dep("0.27.1")).runner_v2
    # 0.29 has no Mamba restriction, so its default prefix caching ("align") runs on V2.
    assert resolve(nxt, _dep("0.29.0")).runner_v2
    # 0.22's refusal of models with Mamba state leaves a listed model without it on V2.
    qwen3 = build_spec(QWEN3_8B)
    assert resolve(qwen3, _dep("0.22.0")).runner_v2


def test_llama_joined_in_0_23_and_the_environment_variable_overrides_the_default() -> None:
    spec = build_spec(LLAMA)
    assert not resolve(spec, _dep("0.22.0")).runner_v2
    assert resolve(spec, _dep("0.23.0")).runner_v2
    assert not resolve(spec, _dep("0.23.0", VLLM_USE_V2_MODEL_RUNNER="0")).runner_v2
    assert resolve(spec, _dep("0.21.0", VLLM_USE_V2_MODEL_RUNNER="1")).runner_v2


def test_before_0_29_the_v2_runner_leaves_cuda_graphs_out_of_the_kv_budget() -> None:
    spec = build_spec(QWEN3_8B)
    v2, v1 = estimate(spec, _dep("0.24.0")), estimate(spec, _dep("0.24.0", VLLM_USE_V2_MODEL_RUNNER="0"))
    assert not v2.cudagraph_in_budget and v1.cudagraph_in_budget
    assert v2.available_kv_cache_bytes > v1.available_kv_cache_bytes + v1.cudagraph_bytes // 2
    assert estimate(spec, _dep("0.29.0")).cudagraph_in_budget


def test_the_v2_sampler_state_is_max_num_seqs_by_vocab_int32_counters_plus_a_bit_mask() -> None:
    spec = build_spec(QWEN3_8B)
    report = estimate(spec, _dep("0.24.0"))
    assert report.max_num_seqs == 256  # a 24 GB card: vLLM's small-GPU defaults
    expected = 256 * 4 * (151936 + 151936 // 32 + 1) / 2**30
    note = next(c.note for c in report.components if c.name == "activation_peak")
    assert f"V2 runner sampler state {expected:.2f}" in note
    # The V1 runner of the same release holds no such state.
    v1 = estimate(spec, _dep("0.24.0", VLLM_USE_V2_MODEL_RUNNER="0"))
    assert "sampler state" not in next(c.note for c in v1.components if c.name == "activation_peak")


def test_from_0_28_the_v2_profile_sample_holds_the_logits_without_a_float32_copy() -> None:
    """sample/sampler.py: 0.28 skips the float32 copy when no request needs logits processing, as the profile
    run's dummy requests do not. 256 rows of Qwen3-8B's 151,936 logits: 0.07 GiB in bf16, 0.14 more in float32."""
    spec = build_spec(QWEN3_8B)

    def sampler(version: str) -> int:
        return activation(spec, 0, spec.num_layers, last_stage=True, tokens=2048, sampler_rows=256, tp=1, moe_tp=1,
                          ep=1, act_bytes=2, quant_method=None, profile=get_profile(version), runner_v2=True,
                          max_num_reqs=256).sampler

    logits = 256 * 151936
    assert sampler("0.27.1") - sampler("0.28.0") == 4 * logits
    assert sampler("0.30.0") == sampler("0.28.0")


def test_from_0_29_the_budget_subtracts_a_share_of_the_v1_cuda_graph_estimate() -> None:
    """The V2 runner's estimate of its graphs is the share calibration.json names (fitted on public 0.30 logs):
    0.45 GiB for Qwen3-8B where the V1 runner's estimate (PIECEWISE and FULL graphs) is 0.78."""
    spec = build_spec(QWEN3_8B)
    v1 = estimate(spec, _dep("0.28.0", VLLM_USE_V2_MODEL_RUNNER="0"))
    v2 = estimate(spec, _dep("0.29.0"))
    assert v1.cudagraph_in_budget and v2.cudagraph_in_budget
    assert abs(v2.cudagraph_bytes / v1.cudagraph_bytes - 0.57) < 0.01
    assert round(v2.cudagraph_bytes / 2**30, 2) == 0.45


def test_before_0_29_the_v2_graphs_are_captured_after_the_kv_cache_outside_the_budget() -> None:
    """They still take memory (checked against what is left outside the budget), sized as the V1 pool: the two
    public pre-0.29 V2 captures fall on either side of it (calibration.json, cudagraph_runner_v2_actual_scale)."""
    spec = build_spec(QWEN3_8B)
    v1 = estimate(spec, _dep("0.28.0", VLLM_USE_V2_MODEL_RUNNER="0"))
    v2 = estimate(spec, _dep("0.28.0"))
    assert v1.cudagraph_in_budget and not v2.cudagraph_in_budget
    assert v2.cudagraph_bytes == v1.cudagraph_bytes > 0
    assert v2.available_kv_cache_bytes > v1.available_kv_cache_bytes + v1.cudagraph_bytes // 2


def _public(rec_id: str) -> dict:
    path = Path(__file__).parent / "fixtures" / "vllm_logs" / "heldout_public.jsonl"
    return next(r for r in map(json.loads, path.read_text().splitlines()) if r["id"] == rec_id)


@pytest.mark.parametrize("rec_id", ["ghs-001", "ghd-026"])
def test_public_0_27_and_0_28_logs_of_dense_qwen3_name_the_v2_runner_and_so_does_gpuplan(rec_id: str) -> None:
    """ghs-001 (Qwen3-32B-AWQ, 0.28.0) logs "Using V2 Model Runner"; ghd-026 (Qwen3-32B, 0.27.1) logs the V2
    runner's "[model_runner.py:329] Model loading took" line. Neither architecture is on those releases' list."""
    rec = _public(rec_id)
    assert "Using V2 Model Runner" in rec["evidence"] or "[model_runner.py:" in rec["evidence"]
    spec = build_spec(rec["hf_config"], rec["model_id"])
    assert resolve(spec, deployment_of(rec)).runner_v2
    # Read as V1 (graphs subtracted, V1 sampler), the 0.27.1 start would keep 2 GiB less KV cache than it logged.
    got = predict(rec)["available_kv_cache_gib"]
    assert abs(got / rec["logged"]["available_kv_cache_gib"] - 1) <= 0.04
