"""Sarvam (models/sarvam.py, bailing_moe.py), openPangu (models/openpangu.py) and Mistral Large 3
(models/mistral_large_3.py) as vLLM 0.33 builds them, checked against vLLM's own build and KV planning
(tests/fixtures/oracle/families/mla.json: configs, their sources, and the oracle's numbers).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.api_python import estimate as api_estimate
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.engines.vllm.weights import Sharding, stage_weights
from gpuplan.errors import GpuplanError
from gpuplan.model.adapters import build_spec
from gpuplan.model.adapters_mla import mistral_large_3_config

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "mla.json").read_text())["models"]
SARVAM_105B, SARVAM_30B = "sarvamai/sarvam-105b", "sarvamai/sarvam-30b"
PANGU_7B, PANGU_R72, PANGU_ULTRA = ("openpangu/openPangu-Embedded-7B", "openpangu/openPangu-R-72B-2512",
                                    "openpangu/openPangu-Ultra-MoE-718B-V1.1")
LARGE_3 = "mistralai/Mistral-Large-3-675B-Instruct-2512"


def _config(model_id: str) -> dict:
    m = FX[model_id]
    return mistral_large_3_config(m["params_json"]) if "params_json" in m else m["config"]


def _spec(model_id: str):
    return build_spec(_config(model_id), model_id)


def _vllm_run(model_id: str):
    """Our estimate for the oracle's run: 40e9 bytes of KV at block size 16, max_model_len 8192, bf16."""
    meta = FX[model_id]["vllm_meta"]
    spec = _spec(model_id)
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.33.0", block_size=16,
                     max_model_len=meta["max_model_len"], kv_cache_memory_bytes=meta["kv_budget_bytes"],
                     dtype="bfloat16")
    return spec, estimate(spec, dep), meta


def _param_bytes(spec, tp: int = 1) -> tuple[int, dict]:
    """Parameter bytes on one rank (no absorbed MLA copies), and the by-kind split with the rotary cache."""
    w = stage_weights(spec, Sharding(tp, tp, 1), None, 2, 1, mla_absorbed=False)[0]
    kinds = dict(w.by_kind)
    return w.total - kinds.get("rope_cache", 0), kinds


ALL = sorted(FX)


@pytest.mark.parametrize("model_id", ALL)
def test_parameter_bytes_and_kv_pages_are_vllms(model_id: str) -> None:
    """Every family is built by its own adapter now, and every byte vLLM allocates for parameters (fp32 gates and
    correction biases included) and every KV page it plans agrees with vLLM 0.32's own build of the same config."""
    spec, r, meta = _vllm_run(model_id)
    assert not spec.generic
    params_bytes, _ = _param_bytes(spec)
    sink_copy = spec.num_layers * 4 * 128 * 192 * 2 if model_id == PANGU_R72 else 0  # see the R-72B test
    assert params_bytes == meta["bytes"] + sink_copy
    assert r.kv.bytes_per_block == meta["bytes_per_block"]
    assert r.num_gpu_blocks == meta["num_blocks"]
    assert r.kv.num_groups == len(meta["groups"]) == 1
    assert r.kv_cache_tokens == meta["kv_cache_size_tokens"]


# ----------------------------------------------------------------------------- Sarvam


def test_sarvam_105b_is_106b_with_its_shared_expert_and_caches_576_values_per_token_per_layer() -> None:
    """Sarvam-105B: 106.03B parameters as vLLM builds them (the write-up from the released config says 106.0B). The
    config names its experts num_experts / num_shared_experts, which the generic DeepSeek path read as no shared
    expert: 31 MoE layers x 3 x 4096 x 2048 = 780,140,544 parameters too few (plus the 31 x 128 gate biases)."""
    spec, r, meta = _vllm_run(SARVAM_105B)
    assert spec.total_params == meta["params"] == 106_031_767_424
    assert spec.param_counts()["shared_experts"] == 31 * 3 * 4096 * 2048
    assert spec.attention_kinds == {"mla": 32}
    assert [layer.mlp.kind for layer in spec.layers[:2]] == ["dense", "moe"]
    gate = {t.name.rsplit(".", 1)[-1]: t.dtype for t in spec.layers[-1].tensors if t.kind == "router"}
    assert gate == {"weight": None, "e_score_correction_bias": "float32"}  # GateLinear in bf16, fp32 bias
    # MLA caches kv_lora_rank + qk_rope_head_dim = 576 values per token per layer: 32 x 576 x 2 = 36,864 bytes
    assert r.kv.bytes_per_block == 16 * 32 * 576 * 2
    # deepseek_yarn with factor 40 over 4096 positions: an fp32 cache of 163,840 positions x 64
    assert [(c.positions, c.rotary_dim, c.dtype) for c in spec.rope_caches] == [(163_840, 64, "float32")]


def test_sarvam_105b_weights_split_over_eight_gpus_as_vllm_shards_them() -> None:
    """TP=8 by hand from sarvam.py: q_proj, kv_b_proj, o_proj, the experts, the shared expert, the dense MLP and the
    vocabulary split eight ways; kv_a_proj_with_mqa, the norms and the gate stay whole on every rank."""
    spec = _spec(SARVAM_105B)
    attn = 12288 * 4096 // 8 + 576 * 4096 + 512 + 16384 * 512 // 8 + 4096 * 8192 // 8
    norms = 2 * 4096
    dense_mlp = 3 * 16384 * 4096 // 8
    moe = 128 * 3 * 4096 * 2048 // 8 + 128 * 4096 + 3 * 4096 * 2048 // 8
    vocab = 2 * 262144 * 4096 // 8 + 4096
    elements = 32 * (attn + norms) + dense_mlp + 31 * moe + vocab
    hand = 2 * elements + 31 * 128 * 4  # the correction bias is fp32
    got, kinds = _param_bytes(spec, tp=8)
    assert got == hand
    assert kinds["rope_cache"] == 163_840 * 64 * 4
    assert got / 2**30 == pytest.approx(24.84, abs=0.01)  # GiB of parameters per GPU at TP=8


def test_sarvam_30b_routes_in_fp32_behind_a_dense_first_layer() -> None:
    """Sarvam-30B is bailing_moe.py's GQA MoE: 32.15B parameters, router_dtype fp32 keeps the 128 x 4096 gate of
    each of the 18 MoE layers in fp32 (the generic MoE path had it in bf16, 18.9 MB short), per-head q/k RMSNorms,
    and 4 KV heads of 64: 19 x 2 x 4 x 64 x 2 = 19,456 bytes of KV per token."""
    spec, r, meta = _vllm_run(SARVAM_30B)
    assert spec.total_params == meta["params"] == 32_152_650_368
    gate = {t.name.rsplit(".", 1)[-1]: t.dtype for t in spec.layers[-1].tensors if t.kind == "router"}
    assert gate == {"weight": "float32", "expert_bias": "float32"}
    assert spec.attention_kinds == {"full": 19}
    assert r.kv.bytes_per_block == 16 * 19 * 2 * 4 * 64 * 2
    assert sum(layer.mlp.kind == "moe" for layer in spec.layers) == 18


# ----------------------------------------------------------------------------- openPangu


def test_pangu_embedded_7b_has_biased_attention_and_plain_full_attention_layers() -> None:
    """openPangu-Embedded-7B: its single `bias: true` puts biases on q, k, v and o_proj (34 x 10,240 parameters the
    generic Llama path missed). No sliding window and no sinks: 34 full-attention layers of 8 KV heads of 128."""
    spec, r, meta = _vllm_run(PANGU_7B)
    # vLLM pads the 153,376-token vocabulary to 153,408 in the embedding and the head: 2 x 32 x 4096 parameters
    assert spec.total_params + 2 * 32 * 4096 == meta["params"] == 8_031_150_080
    biases = {t.name for t in spec.layers[0].tensors if t.name.endswith(".bias")}
    assert {b.rsplit(".", 2)[-2] for b in biases} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert spec.attention_kinds == {"full": 34}
    assert r.kv.bytes_per_block == 16 * 34 * 2 * 8 * 128 * 2


def test_pangu_embedded_honours_interleaved_sliding_windows_like_vllm() -> None:
    """openpangu.py gives a standard-attention layer the window interleaved_sliding_window[i % len] (None: full)."""
    cfg = {**FX[PANGU_7B]["config"], "interleaved_sliding_window": [4096, 4096, 4096, None]}
    spec = build_spec(cfg)
    assert spec.attention_kinds == {"sliding_window": 26, "full": 8}
    assert spec.layers[3].attention.kind == "full" and spec.layers[0].attention.window == 4096


def test_pangu_r72b_sink_attention_caches_192_wide_keys_and_128_wide_values() -> None:
    """openPangu-R-72B-2512 (PanguProMoEV2ForCausalLM): sink attention, not MLA. Each of the 50 layers caches 4 KV
    heads of a 192-wide key (128 + 64 RoPE) and a 128-wide value: 50 x 4 x 320 x 2 = 128,000 bytes per token. The
    generic path took 72-wide heads (4608 / 64) for K and V: 57,600 bytes, 2.2x the tokens vLLM plans. The 128
    learned sink tokens live inside the paged cache and take no extra pages. 73.77B parameters (card: 74B); the
    K-normed copy of the sink keys that post_weight_load keeps (50 x 4 x 128 x 192 in bf16) is counted as memory."""
    spec, r, meta = _vllm_run(PANGU_R72)
    assert spec.total_params == meta["params"] == 73_765_885_408
    a = spec.layers[0].attention
    assert (a.kind, a.num_kv_heads, a.head_dim, a.v_head_dim) == ("full", 4, 192, 128)
    assert r.kv.bytes_per_block == 16 * 50 * 4 * (192 + 128) * 2 == meta["bytes_per_block"]
    assert [(c.positions, c.rotary_dim) for c in spec.rope_caches] == [(131072, 64)]
    norms = {t.name.rsplit(".", 2)[-2] for t in spec.layers[-1].tensors if t.kind == "norm"}
    assert norms == {"k_layernorm", "input_layernorm", "post_attention_layernorm", "pre_mlp_layernorm",
                     "post_mlp_layernorm"}
    assert sum(layer.mlp.kind == "moe" for layer in spec.layers) == 46
    assert any("num_experts" in n for n in spec.notes)  # the hub spelling was read as the DeepSeek keys
    # openpangu.py's sink attention cannot replicate KV heads: TP 4 splits the 4 heads, TP 8 is refused as vLLM does
    assert estimate(spec, Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, tensor_parallel_size=4)).fits
    with pytest.raises(GpuplanError, match="sink attention's KV heads"):
        estimate(spec, Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, tensor_parallel_size=8))


def test_pangu_r72b_splits_its_four_kv_heads_and_sinks_over_two_gpus() -> None:
    spec = _spec(PANGU_R72)
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.33.0", block_size=16,
                     tensor_parallel_size=2, max_model_len=8192, kv_cache_memory_bytes=40 * 10**9)
    assert estimate(spec, dep).kv.bytes_per_block == 16 * 50 * 2 * 320 * 2
    sinks = {t.name.rsplit(".", 1)[-1]: t for t in spec.layers[0].tensors if "sink" in t.name}
    assert set(sinks) == {"param_sink_key", "param_sink_value", "sink_key_normed"}
    assert not sinks["sink_key_normed"].in_checkpoint and sinks["param_sink_value"].in_checkpoint


def test_pangu_ultra_is_deepseek_mla_with_sandwich_norms_and_an_unloaded_mtp_layer() -> None:
    """openPangu-Ultra-MoE-718B (a reconstructed config, see the fixture): 719.09B as vLLM builds it. Over the generic
    DeepSeek path it adds the sandwich norms (61 x 2 x 7680) and the fp32 correction bias (58 x 256) that
    router_enable_expert_bias asks for, and keeps the deepseek_yarn rotary cache in fp32. The MTP layer is skipped
    by openpangu.py's loader."""
    spec, r, meta = _vllm_run(PANGU_ULTRA)
    assert spec.total_params == meta["params"] == 719_093_782_528
    assert spec.attention_kinds == {"mla": 61}
    assert r.kv.bytes_per_block == 16 * 61 * 576 * 2
    assert [(c.positions, c.rotary_dim, c.dtype) for c in spec.rope_caches] == [(131072, 64, "float32")]
    assert [t.kind for t in spec.extra_not_loaded] == ["mtp"]
    assert spec.param_counts()["norm"] - 61 * 2 * 7680 == build_spec(
        {**_config(PANGU_ULTRA), "sandwich_norm": False}).param_counts()["norm"]


# ----------------------------------------------------------------------------- Mistral Large 3


def test_mistral_large_3_params_json_sizes_as_vllm_builds_mistral_large_3() -> None:
    """Mistral Large 3 ships only a Mistral params.json. Remapped as vLLM remaps it, it is a DeepSeek-V3 decoder:
    673.42B text parameters (the card's 675B adds the vision encoder), softmax routing without a correction bias,
    61 MLA layers of 576 values per token, and the YaRN rotary cache (factor 36 over 8192) kept in fp32."""
    cfg = _config(LARGE_3)
    assert (cfg["model_type"], cfg["architectures"]) == ("deepseek_v3", ["MistralLarge3ForCausalLM"])
    spec, r, meta = _vllm_run(LARGE_3)
    assert spec.total_params == meta["params"] == 673_421_089_792
    assert spec.architecture == "MistralLarge3ForCausalLM"
    assert not any("correction_bias" in t.name for layer in spec.layers for t in layer.tensors)
    assert r.kv.bytes_per_block == 16 * 61 * 576 * 2
    assert [(c.positions, c.rotary_dim, c.dtype) for c in spec.rope_caches] == [(294_912, 64, "float32")]


def test_mistral_large_3_fp8_checkpoint_keeps_its_quantization_config() -> None:
    params = {**FX[LARGE_3]["params_json"], "quantization": {"qformat_weight": "fp8_e4m3", "qscheme_act": "TENSOR"}}
    assert mistral_large_3_config(params)["quantization_config"] == {"quant_method": "fp8",
                                                                     "activation_scheme": "static"}
    with pytest.raises(Exception, match="Mistral Large 3"):
        mistral_large_3_config({"dim": 4096, "n_layers": 32})


# ----------------------------------------------------------------------------- end to end


def test_sarvam_105b_serves_on_four_h100s_with_room_for_long_contexts() -> None:
    """106B bf16 parameters over 4 H100s: 49.5 GiB of parameters per GPU, 49.54 GiB with the fp32 rotary cache (MLA's
    W_UK_T / W_UV are views of the bf16 kv_b_proj, not copies), and an MLA cache of 36,864 bytes per token: the full
    128K context fits more than four times over."""
    r = api_estimate(_spec(SARVAM_105B), gpu="H100", tensor_parallel_size=4, max_model_len=131072,
                     vllm_version="0.33.0")
    assert r.fits
    assert r.weights_bytes / 2**30 == pytest.approx(49.54, abs=0.01)
    assert r.kv.bytes_per_token == 32 * 576 * 2
    assert r.kv_cache_tokens > 4 * 131072


def test_pangu_r72b_caches_128_wide_values_on_0_14_too_where_other_models_still_padded_v() -> None:
    """openpangu.py runs its sink attention on FlashAttentionDiffKVBackend with head_size_v = v_channels from 0.14,
    the first release that serves it; vLLM's general head_size_v (padding V to the key width before) came in 0.20."""
    spec = _spec(PANGU_R72)
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.14.0", block_size=16,
                     tensor_parallel_size=2, max_model_len=8192, kv_cache_memory_bytes=40 * 10**9)
    assert estimate(spec, dep).kv.bytes_per_block == 16 * 50 * 2 * (192 + 128) * 2


# ----------------------------------------------------------------------------- W_UK_T / W_UV


def _absorbed(model: str, version: str, **dep) -> int:
    r = api_estimate(model, gpu="H100", max_model_len=8192, vllm_version=version, **dep)
    return r.per_stage[0]["weights_by_kind"].get("mla_absorbed", 0)


def test_fp8_deepseek_v3_keeps_a_bf16_copy_of_kv_b_proj_and_bf16_v2_lite_does_not() -> None:
    """MLAAttention.process_weights_after_loading splits get_and_maybe_dequant_weights(kv_b_proj): an FP8 kv_b_proj
    is dequantized into a new bf16 tensor that W_UK_T / W_UV keep alive (61 layers x 128/8 heads x (128 + 128) x
    512 x 2 bytes at TP=8); a bf16 one is returned as is, and the split and permutes are views of it."""
    assert _absorbed("deepseek-ai/DeepSeek-V3", "0.19.0", tensor_parallel_size=8) == 61 * 16 * 256 * 512 * 2
    assert _absorbed("deepseek-ai/DeepSeek-V2-Lite", "0.19.0") == 0


def test_v0_builds_the_same_copies_from_0_8_only() -> None:
    """V0's MLA backend (attention/backends/mla/common.py) took V1's W_UK_T / W_UV in 0.8.0; 0.6 had no MLA."""
    fp8 = {"tensor_parallel_size": 8}
    assert _absorbed("deepseek-ai/DeepSeek-V3", "0.8.5", env={"VLLM_USE_V1": "0"}, **fp8) == 61 * 16 * 256 * 512 * 2
    assert _absorbed("deepseek-ai/DeepSeek-V3", "0.6.6", **fp8) == 0
