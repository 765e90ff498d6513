"""Baidu ERNIE-4.5 as vLLM 0.33 builds it (models/ernie45.py, ernie45_moe.py, ernie45_vl.py, ernie45_vl_moe.py):
the 0.3B dense model on Llama's class, the 21B-A3B / 300B-A47B MoE models with fp32 routers and fp32 correction
biases, and the VL models with text and vision experts of different widths, a vision tower, a resampler and a 3-D
RoPE buffer in every layer. Configs and transformers' parameter counts: tests/fixtures/oracle/families/ernie45.json
(how each config was put together is recorded there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan
import gpuplan.model.adapters_ernie45  # noqa: F401
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "ernie45.json").read_text())
M = FX["models"]
KEYS = {"0.3B": "ernie4_5/ERNIE-4.5-0.3B", "21B": "ernie4_5_moe/ERNIE-4.5-21B-A3B",
        "300B": "ernie4_5_moe/ERNIE-4.5-300B-A47B", "VL-28B": "ernie4_5_moe_vl/ERNIE-4.5-VL-28B-A3B",
        "VL-424B": "ernie4_5_moe_vl/ERNIE-4.5-VL-424B-A47B"}
ROPE = 131072 * 128 * 2  # get_rope's one shared bf16 cos/sin cache: max_position_embeddings x head_dim
VL_ROPE = 4 * 131072 * 128 * 2  # Ernie4_5_VLRotaryEmbedding's own buffer in every layer: 4 x positions x head_dim


def _spec(short: str):
    return build_spec(M[KEYS[short]]["config"], "baidu/ERNIE-4.5-" + short)


@pytest.mark.parametrize("short", list(KEYS))
def test_every_ernie_45_model_has_exactly_transformers_parameter_count(short: str) -> None:
    # transformers holds the correction biases (moe_statics) as parameters too, so nothing is added or removed;
    # the VL models are counted on transformers' native class built from the same shapes.
    spec = _spec(short)
    assert not spec.generic
    assert spec.total_params == M[KEYS[short]]["hf_params"]


def test_pinned_parameter_counts() -> None:
    assert [_spec(s).total_params for s in KEYS] == [
        360_748_032, 21_825_437_888, 299_484_163_264, 29_399_294_336, 423_526_285_184]


def test_21b_has_27_moe_layers_with_fp32_routers_and_leaves_its_mtp_layer_in_the_checkpoint() -> None:
    spec = _spec("21B")
    assert [layer.mlp.kind for layer in spec.layers[:2]] == ["dense", "moe"]
    assert sum(layer.mlp.kind == "moe" for layer in spec.layers) == 27
    router = [t for t in spec.layers[1].tensors if t.kind == "router"]
    assert {t.name.rsplit(".", 1)[-1]: t.dtype for t in router} == {"weight": "float32",
                                                                     "e_score_correction_bias": "float32"}
    # One MTP layer as vLLM's ErnieMTP builds it: two 2560 norms, a 2560 x 5120 projection and a Llama layer
    # (q/o 2 x 2560 x 2560, k/v 2 x 512 x 2560, MLP 3 x 2560 x 12288, two norms).
    assert sum(t.numel for t in spec.extra_not_loaded) == 123_217_920


def test_300b_weights_at_tp1_and_tp8_are_the_hand_sums() -> None:
    """bf16, 2 bytes; routers and correction biases fp32. At TP=1:
    embedding + untied LM head 2 x 103424 x 8192; final norm 8192;
    54 x (q 8192 x 8192, k and v 1024 x 8192, o 8192 x 8192, two 8192 norms);
    layers 0-2 dense: 3 x 28672 x 8192; 51 MoE layers: 64 x 3 x 3584 x 8192 experts, router 64 x 8192 (4 bytes),
    bias 64 (4 bytes); RoPE cache 131072 x 128 = 599,055,364,864 bytes.
    At TP=8 the embedding, LM head, q/o, MLP and expert widths are split by 8 and each rank keeps one of the 8 KV heads
    (k, v 128 x 8192); router, bias, norms and the RoPE cache stay whole = 75,006,440,192 bytes."""
    spec = _spec("300B")
    tp1 = estimate_on(spec, gpu="H200", tensor_parallel_size=1, max_model_len=4096)
    assert tp1.weights_bytes == 599_055_364_864
    tp8 = estimate_on(spec, gpu="H200", tensor_parallel_size=8, max_model_len=4096)
    emb = 103424 // 8 * 8192 * 2
    att = (8192 // 8 * 8192 * 2 + 2 * 128 * 8192) * 2 + 2 * 8192 * 2
    moe = 64 * 3 * (3584 // 8) * 8192 * 2 + 64 * 8192 * 4 + 64 * 4
    assert tp8.weights_bytes == 2 * emb + 8192 * 2 + 54 * att + 3 * 3 * 3584 * 8192 * 2 + 51 * moe + ROPE
    assert tp8.weights_bytes == 75_006_440_192


def test_300b_kv_is_54_full_layers_and_an_8_gib_budget_holds_310688_tokens_at_tp8() -> None:
    """One group of 54 full-attention layers (FullAttentionSpec), block 16.
    TP=1: 54 x (K + V) x 8 heads x 128 x 2 bytes = 221,184 bytes a token, 3,538,944 a block.
    TP=8: one KV head per rank, 27,648 bytes a token, 442,368 a block; 8 GiB / 442,368 = 19,418 blocks
    (floor of 19,418.07) = 310,688 tokens."""
    spec = _spec("300B")
    assert spec.attention_kinds == {"full": 54}
    tp1 = estimate_on(spec, gpu="H200", tensor_parallel_size=1, max_model_len=4096)
    assert tp1.kv.bytes_per_block == 16 * 54 * 2 * 8 * 128 * 2 == 3_538_944
    r = estimate(spec, Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, tensor_parallel_size=8,
                                  max_model_len=131072, kv_cache_memory_bytes=8 * 2**30))
    assert r.kv.num_groups == 1
    assert r.kv.bytes_per_block == 16 * 54 * 2 * 1 * 128 * 2 == 442_368
    assert r.num_gpu_blocks == 8 * 2**30 // 442_368 == 19_418
    assert r.kv_cache_tokens == 19_418 * 16 == 310_688


def test_kv_heads_are_replicated_when_tp_exceeds_them() -> None:
    """ERNIE-4.5-0.3B: 18 layers, 2 KV heads of 128. TP=1: 18 x 2 x 2 x 128 x 2 = 18,432 bytes a token (294,912 a
    block). TP=8: each rank keeps a copy of one KV head, 9,216 bytes a token (147,456 a block), not 2/8 of a head.
    Weights at TP=8: tied embedding 103424/8 x 1024; 18 x (q 256 x 1024, k and v 128 x 1024, o 1024 x 256,
    MLP 3 x 384 x 1024, two norms); final norm; RoPE 131072 x 128 = 130,885,632 bytes."""
    spec = _spec("0.3B")
    tp1 = estimate_on(spec, gpu="H100", tensor_parallel_size=1, max_model_len=131072)
    tp8 = estimate_on(spec, gpu="H100", tensor_parallel_size=8, max_model_len=131072)
    assert tp1.kv.bytes_per_block == 16 * 18 * 2 * 2 * 128 * 2 == 294_912
    assert tp8.kv.bytes_per_block == 16 * 18 * 2 * 1 * 128 * 2 == 147_456
    assert tp8.weights_bytes == (103424 // 8 * 1024 + 1024 + 18 * (256 * 1024 * 2 + 2 * 128 * 1024
                                                                    + 3 * 384 * 1024 + 2 * 1024)) * 2 + ROPE


def test_does_ernie_300b_in_bf16_fit_on_8_h100s_at_128k_no_on_8_h200s_yes() -> None:
    # 69.9 GiB of weights per H100 leave nothing of the 72 GiB (0.9 x 80) for a KV cache; an H200 has room for
    # two million tokens.
    spec = _spec("300B")
    h100 = estimate_on(spec, gpu="H100", tensor_parallel_size=8, max_model_len=131072)
    assert h100.weights_bytes == 75_006_440_192
    assert not h100.fits
    h200 = estimate_on(spec, gpu="H200", tensor_parallel_size=8, max_model_len=131072)
    assert h200.weights_bytes == h100.weights_bytes
    assert h200.fits and h200.kv_cache_tokens > 131072


def test_ernie_21b_a3b_does_not_fit_on_one_l40s() -> None:
    """TP=1, bf16: tied embedding 103424 x 2560; 28 x (q, o 2560 x 2560, k, v 512 x 2560, two norms); layer 0's MLP
    3 x 12288 x 2560; 27 x (experts 64 x 3 x 1536 x 2560, shared 3 x 3072 x 2560, fp32 router 64 x 2560 and bias);
    final norm; RoPE 131072 x 128 = 43,693,281,024 bytes (40.7 GiB), more than 0.9 x 44.4 GiB of an L40S."""
    spec = _spec("21B")
    r = estimate_on(spec, gpu="L40S", tensor_parallel_size=1, max_model_len=32768)
    h = 2560
    moe = 64 * 3 * 1536 * h * 2 + 64 * h * 4 + 64 * 4 + 3 * 3072 * h * 2
    att = (2 * h * h + 2 * 512 * h) * 2 + 2 * h * 2
    assert r.weights_bytes == 103424 * h * 2 + h * 2 + 28 * att + 3 * 12288 * h * 2 + 27 * moe + ROPE
    assert r.weights_bytes == 43_693_281_024
    assert r.kv.bytes_per_block == 16 * 28 * 2 * 4 * 128 * 2  # 57,344 bytes a token
    assert not r.fits


def test_vl_layers_hold_text_and_vision_experts_of_their_own_widths_and_their_own_rope_buffer() -> None:
    spec = _spec("VL-28B")
    layer = spec.layers[1]
    shapes = {t.name.split(".mlp.")[-1]: t.shape for t in layer.tensors if ".mlp." in t.name}
    assert shapes["text_experts.w13_weight"] == (64, 2 * 1536, 2560)
    assert shapes["vision_experts.w13_weight"] == (64, 2 * 512, 2560)
    assert shapes["e_score_correction_bias"] == (2, 64)
    assert shapes["shared_experts.gate_proj"] == (2 * 1536, 2560)
    cache = [t for t in layer.tensors if t.kind == "rope_cache"]
    assert [(t.shape, t.in_checkpoint) for t in cache] == [((4 * 131072, 128), False)]
    assert spec.layers[0].mlp.kind == "dense" and spec.rope_caches == ()


def test_vl_moe_ranges_give_a_dense_branch_outside_one_modalitys_range() -> None:
    # Text experts stop after layer 2 here: layers 3.. keep vision experts and a dense text MLP of intermediate_size.
    cfg = {**M[KEYS["VL-28B"]]["config"], "moe_layer_end_index": [2, 27]}
    spec = build_spec(cfg)
    names = [t.name for t in spec.layers[5].tensors]
    assert "model.layers.{i}.mlp.text_experts.gate_proj" in names
    assert "model.layers.{i}.mlp.text_experts.w13_weight" not in names
    assert spec.total_params == M[KEYS["VL-28B"]]["hf_params"] - 25 * (
        64 * 3 * 1536 * 2560 + 64 * 2560 - 3 * 12288 * 2560)


def test_does_ernie_vl_424b_fit_on_8_h200s() -> None:
    """TP=8, bf16: the 300B text model's 75,006,440,192 bytes less its one shared RoPE cache, plus per layer its own
    4 x 131072 x 128 RoPE buffer (128 MiB x 54), plus in 51 MoE layers the vision experts 64 x 3 x 1536/8 x 8192,
    their fp32 gate 64 x 8192 and the second row of the fp32 bias (64); the vision tower (32 blocks of TP-split
    qkv / proj / fc1 / fc2 with biases, whole LayerNorms, the whole 1280 x 588 patch Linear, final LayerNorm, an 80-byte
    inv_freq) = 159,360,080 bytes; the resampler (spatial / temporal / output ColumnParallel linears split by 8,
    LayerNorms and the RMSNorm whole, the 40-byte token-id buffer) = 43,318,312 bytes.
    Total 113,333,257,848 bytes (105.6 GiB): it fits at 128K; a text-only start-up builds neither tower."""
    spec = _spec("VL-424B")
    r = estimate_on(spec, gpu="H200", tensor_parallel_size=8, max_model_len=131072)
    vision_moe = 51 * (64 * 3 * 1536 // 8 * 8192 * 2 + 64 * 8192 * 4 + 64 * 4)
    towers = 159_360_080 + 43_318_312
    assert r.weights_bytes == 75_006_440_192 - ROPE + 54 * VL_ROPE + vision_moe + towers == 113_333_257_848
    assert r.kv.bytes_per_block == 442_368 and r.kv.num_groups == 1
    assert r.fits
    text_only = estimate(spec, Deployment(gpu_name="H200", gpu_memory_bytes=141 * 10**9, tensor_parallel_size=8,
                                          max_model_len=131072, language_model_only=True))
    assert r.weights_bytes - text_only.weights_bytes == towers


def test_transformers_native_vl_config_is_refused_since_vllm_reads_the_remote_code_keys() -> None:
    with pytest.raises(ConfigError, match="remote-code"):
        build_spec(M[KEYS["VL-28B"]]["config_native"])


MTP1 = {"method": "mtp", "num_speculative_tokens": 1}


def _21b(version: str = "0.33", **kw):
    return estimate_on(_spec("21B"), gpu="H100", tensor_parallel_size=2, max_model_len=32768, vllm_version=version,
                       **kw)


def test_ernie_21b_mtp_drafts_with_one_dense_llama_layer_and_a_bf16_projection() -> None:
    """ErnieMTP at TP=2 in bf16: a Llama layer (20 query heads of 128 and 4 KV heads split two ways, o_proj, the
    12288-wide gated MLP split two ways, two norms), and beside it mtp_emb_norm, mtp_hidden_norm and the plain
    mtp_linear_proj [2560, 5120] whole on each GPU. The embedding and LM head are the target's."""
    h, inter = 2560, 12288
    layer = 2 * (2 * 10 * 128 * h + 2 * 2 * 128 * h + 3 * inter // 2 * h + 2 * h)
    own = 2 * (2 * h + h * 2 * h)
    assert _21b(speculative_config=MTP1).weights_bytes - _21b().weights_bytes == layer + own == 136_335_360
    # the module is what the main model's loader leaves in the checkpoint
    mtp = _spec("21B").mtp
    assert mtp is not None and mtp.num_modules == 1
    assert sum(t.numel for x in mtp.layers for t in x.tensors) + sum(t.numel for t in mtp.tensors) == 123_217_920


def test_ernie_21b_mtp_layer_caches_kv_beside_the_28_target_layers() -> None:
    base, mtp = _21b(), _21b(speculative_config={"method": "ernie_mtp", "num_speculative_tokens": 1})
    assert base.kv.bytes_per_token * 29 == mtp.kv.bytes_per_token * 28
    assert [(g.kind, g.num_layers) for g in mtp.kv.groups] == [("full", 29)]


def test_ernie_mtp_is_refused_before_0_10_2_and_for_the_dense_and_vl_models() -> None:
    with pytest.raises(gpuplan.GpuplanError) as e:
        _21b("0.10.1", speculative_config=MTP1)
    assert e.value.field == "speculative_config.method" and "vllm_version >= 0.10.2" in e.value.accepted
    assert _21b("0.10.2", speculative_config=MTP1).weights_bytes > _21b("0.10.2").weights_bytes
    for short in ("0.3B", "VL-28B"):  # vLLM maps only ernie4_5_moe targets to ErnieMTP
        with pytest.raises(gpuplan.GpuplanError) as e:
            estimate_on(_spec(short), gpu="H200", tensor_parallel_size=1, max_model_len=8192,
                        speculative_config=MTP1)
        assert e.value.field == "speculative_config.method"
