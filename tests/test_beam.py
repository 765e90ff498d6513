"""Reflection Beam (model_type beam) as vLLM 0.33 builds it (vllm/models/beam/nvidia): 43 sliding-window (512) and
9 NoPE full-attention layers with a sigmoid output gate, per-head q/k norms and sandwich norms; 3 dense layers then
49 MoE layers of 256 experts with an fp32 router and fp32 correction bias
(tests/fixtures/oracle/families/beam.json; no published config.json was found, so transformers' default BeamConfig,
the 501B shape, stands in for reflection/Beam-1.0-501B-A23B).

No vLLM 0.33 oracle exists: the vLLM numbers here are hand arithmetic from the 0.33 source, written out below."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

import gpuplan.model.adapters_beam  # noqa: F401
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "beam.json").read_text())
BEAM = FX["models"]["beam/transformers-default"]
VLLM = BEAM["vllm_033_derived"]
NAME = "reflection/Beam-1.0-501B-A23B"


def _spec():
    return build_spec(BEAM["config"], NAME)


def _run(tp: int = 1, max_model_len: int = 8192, budget: int = 40_000_000_000, env: tuple = ()):
    dep = Deployment(
        gpu_name="H200",
        gpu_memory_bytes=141 * 10**9,
        vllm_version="0.33.0",
        block_size=16,
        max_model_len=max_model_len,
        kv_cache_memory_bytes=budget,
        tensor_parallel_size=tp,
        max_num_batched_tokens=8192,
        env=env,
    )
    return estimate(_spec(), dep)


def test_beam_is_transformers_501b_plus_the_correction_biases_vllm_holds_as_parameters() -> None:
    spec = _spec()
    assert not spec.generic
    # transformers keeps e_score_correction_bias as a buffer: one 256-vector per MoE layer (49) more in vLLM
    assert spec.total_params == BEAM["hf_params"] + 49 * 256 == VLLM["params"] == 501_267_612_352
    hf = BEAM["hf_by_category"]
    counts = spec.param_counts()
    # attention (q, k, v, o, output gate, gate bias) + q/k norms = transformers' attention + norms
    assert counts["attention"] + counts["norm"] == hf["attention_or_mixer"] + hf["norms"]
    assert counts["experts"] == hf["moe_experts"] == 49 * 256 * 3 * 2560 * 5120
    assert counts["mlp"] == hf["mlp_dense"] == 3 * 3 * 20480 * 5120
    assert counts["router"] == hf["router"] + 49 * 256
    assert [layer.mlp.kind for layer in spec.layers[:4]] == ["dense", "dense", "dense", "moe"]


def test_generic_fallback_was_5_5_percent_high_for_these_reasons() -> None:
    """The fallback made all 52 layers MoE (the first three are dense) and left out the output gate, its per-head
    bias, the q/k norms and the pre/post-feedforward norms:
    3 x (256 x 3 x 2560 x 5120 experts + 256 x 5120 router - 3 x 20480 x 5120 dense MLP) = 29,259,202,560 too many;
    52 x (6144 x 5120 gate + 48 bias + 2 x 128 q/k norms + 2 x 5120 norms) = 1,636,326,848 too few;
    net 27,622,875,712 = 528,890,475,520 - 501,267,599,808 (transformers)."""
    generic = build_spec({**BEAM["config"], "model_type": "beam-unknown-to-gpuplan"}, NAME)
    assert generic.generic and generic.total_params == BEAM["generic_fallback_params"]
    spec = _spec()
    dense, moe = spec.layers[0], spec.layers[3]
    missing = (
        "self_attn.gate_proj",
        "self_attn.gate_bias",
        "q_norm.weight",
        "k_norm.weight",
        "pre_feedforward_layernorm.weight",
        "post_feedforward_layernorm.weight",
    )
    per_layer_missing = sum(t.numel for t in moe.tensors if t.name.endswith(missing))
    assert per_layer_missing == 6144 * 5120 + 48 + 2 * 128 + 2 * 5120
    # less the correction bias: a buffer in transformers, absent from the fallback
    moe_over_dense = moe.numel - dense.numel - 256
    assert moe_over_dense == 256 * 3 * 2560 * 5120 + 256 * 5120 - 3 * 20480 * 5120
    assert (
        3 * moe_over_dense - 52 * per_layer_missing
        == generic.total_params - BEAM["hf_params"]
        == 27_622_875_712
    )


def test_beam_weights_at_tp1_are_bf16_parameters_with_fp32_router_and_a_fp32_rotary_cache() -> None:
    """2 bytes x 501,267,612,352 parameters = 1,002,535,224,704;
    + 2 more bytes for each fp32 router weight and correction bias: 2 x 49 x (256 x 5120 + 256) = 128,475,648;
    + one rotary cache shared by the 43 sliding layers, float32: 8192 positions x 128 x 4 = 4,194,304
    (the 9 full layers are NoPE and build none)
    = 1,002,667,894,656 bytes."""
    spec, r = _spec(), _run()
    assert [(c.positions, c.rotary_dim, c.dtype) for c in spec.rope_caches] == [(8192, 128, "float32")]
    assert r.weights_bytes == VLLM["bytes_tp1"] == 1_002_667_894_656
    assert {t.dtype for t in spec.layers[3].tensors if t.kind == "router"} == {"float32"}


def test_beam_kv_at_tp1_is_six_groups_of_nine_64_kib_pages() -> None:
    """Both layer kinds cache 8 KV heads x (128 K + 128 V) x 2 bytes = 4096 bytes a token (no per-type heads, no
    sinks, no KV sharing), so SlidingWindowSpec(window 512) and FullAttentionSpec pages are equal, 16 x 4096 = 65,536
    bytes, and vLLM 0.33 takes the uniform-page path (the packed path needs two page sizes):
    43 sliding vs 9 full, 43 >= 1.5 x 9, so group size 9: 5 sliding groups (2 padding slots) + 1 full group.
    A block is 9 layers x 65,536 = 589,824 bytes; 40e9 // 589,824 = 67,816 blocks.
    One 8192-token request: full cdiv(8192, 16) = 512 blocks; each sliding group min(511 + 2 x 8192 in flight
    (async scheduling, max_num_batched_tokens 8192), 8192) = 8192 tokens, 512 + 1 = 513 blocks, x 5 = 2565;
    3077 blocks in all. Tokens: int(67,816 / 3077 x 8192) = 180,548."""
    spec, r = _spec(), _run()
    assert spec.attention_kinds == {"sliding_window": 43, "full": 9}
    # every sixth layer is full, and so is the last
    full = [i for i, layer in enumerate(spec.layers) if layer.attention.kind == "full"]
    assert full == [6 * j + 5 for j in range(8)] + [51]
    assert {
        (layer.attention.num_kv_heads, layer.attention.head_dim, layer.attention.window)
        for layer in spec.layers
    } == {(8, 128, 512), (8, 128, None)}
    assert r.kv.num_groups == len(VLLM["groups"]) == 6
    assert r.kv.group_size == VLLM["group_size"] and r.kv.padding_layers == VLLM["padding_layers"]
    assert {g.page_bytes for g in r.kv.groups} == {16 * 8 * 256 * 2}
    assert r.kv.bytes_per_block == VLLM["bytes_per_block_tp1"] == 9 * 65_536
    assert r.num_gpu_blocks == VLLM["num_blocks_tp1"] == 40_000_000_000 // 589_824
    assert r.kv.blocks_per_request == VLLM["blocks_per_request"] == 5 * 513 + 512
    assert r.kv_cache_tokens == VLLM["kv_cache_size_tokens_tp1"] == 67_816 * 8192 // 3077


def test_at_its_8k_context_the_512_window_saves_nothing_but_at_128k_it_saves_most_sliding_blocks() -> None:
    # 8K: in-flight tokens (2 x 8192) already cover the whole request, so a sliding group holds 513 blocks, one more
    # than a full group. 128K (past max_position_embeddings, so only with VLLM_ALLOW_LONG_MAX_MODEL_LEN=1): a sliding
    # group holds cdiv(511 + 16384, 16) + 1 = 1057 blocks against 8192 for the full group.
    short = _run()
    assert [(g.kind, g.blocks_per_request) for g in short.kv.groups] == [
        ("sliding_window", 5 * 513),
        ("full", 512),
    ]
    long = _run(max_model_len=131072, env=(("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1"),))
    assert [(g.kind, g.blocks_per_request) for g in long.kv.groups] == [
        ("sliding_window", 5 * 1057),
        ("full", 8192),
    ]


def test_beam_on_eight_gpus_by_hand() -> None:
    """Per rank at TP=8 (bf16; router and correction bias fp32):
    embedding + LM head 2 x 151936/8 x 5120 x 2 = 388,956,160; final norm 10,240;
    52 x attention: q, output gate and o 3 x 768 x 5120, k and v 1 KV head x 128 x 5120 each, q/k norms 2 x 128,
    gate bias 48/8 = 6: 13,107,462 x 2 bytes = 26,214,924 -> 1,363,176,048; four norms 52 x 4 x 5120 x 2 = 2,129,920;
    3 dense MLPs 3 x 20480/8 x 5120 x 2 = 78,643,200 each -> 235,929,600;
    49 x MoE: experts 256 x 3 x 2560/8 x 5120 x 2 = 2,516,582,400, router 256 x 5120 x 4 = 5,242,880, bias 1,024
    -> 123,569,488,896; rotary cache 4,194,304.
    = 125,563,885,168 bytes. KV: one KV head a rank, 16 x 256 x 2 = 8192-byte pages, 9 to a block."""
    r = _run(tp=8)
    assert r.weights_bytes == VLLM["bytes_tp8"] == 125_563_885_168
    assert r.kv.bytes_per_block == 9 * 16 * 1 * 256 * 2 == 73_728
    assert r.num_gpu_blocks == 40_000_000_000 // 73_728


def test_does_beam_501b_in_bf16_fit_on_8_h100s_no_it_takes_16_or_8_h200s() -> None:
    """8 x H100: 116.94 GiB of weights a GPU (above) cannot load into 80 GB.
    16 x H100 (TP=16: 48 heads split 3 a rank, 8 KV heads copied to 2 ranks each):
    embedding + LM head 2 x 9496 x 5120 x 2 = 194,478,080; final norm 10,240;
    52 x attention (q, gate, o 3 x 384 x 5120; k, v 128 x 5120 each; norms 256; gate bias 3) x 2 = 749,758,776;
    52 x four norms 2,129,920; 3 dense MLPs 3 x 3 x 1280 x 5120 x 2 = 117,964,800;
    49 x (experts 256 x 3 x 160 x 5120 x 2 + router 5,242,880 + bias 1,024) = 61,913,220,096; rotary 4,194,304
    = 62,981,756,216 bytes, and the rest of the card holds the KV cache at its 8K context."""
    spec = _spec()
    h100x8 = estimate_on(spec, gpu="H100", tensor_parallel_size=8, max_model_len=8192)
    assert not h100x8.fits and "weights" in (h100x8.reason or "")
    h100x16 = estimate_on(spec, gpu="H100", tensor_parallel_size=16, max_model_len=8192)
    assert h100x16.weights_bytes == VLLM["bytes_tp16"] == 62_981_756_216
    assert h100x16.fits
    # one KV head a rank again: 8192-byte pages, and the same 3077 blocks an 8K request
    assert h100x16.kv.bytes_per_block == 73_728 and h100x16.kv.blocks_per_request == 3077
    assert h100x16.kv_cache_tokens == int(h100x16.num_gpu_blocks / 3077 * 8192)
    h200x8 = estimate_on(spec, gpu="H200", tensor_parallel_size=8, max_model_len=8192)
    assert h200x8.weights_bytes == VLLM["bytes_tp8"] and h200x8.fits


def test_beam_at_128k_is_refused_by_the_8k_max_position_embeddings() -> None:
    r = estimate_on(_spec(), gpu="H100", tensor_parallel_size=16, max_model_len=131072)
    assert not r.fits and "max_position_embeddings=8192" in (r.reason or "")


def test_a_config_that_leaves_keys_out_gets_vllms_beamconfig_defaults_not_transformers() -> None:
    # vLLM's BeamConfig: 24 layers of 2048, 32/4 heads of 64, every layer sliding (4096) and sparse (128 experts)
    spec = build_spec({"model_type": "beam", "architectures": ["BeamForCausalLM"]})
    other = FX["models"]["beam/vllm-config-defaults"]
    assert spec.total_params == other["hf_params"] + 24 * 128 == other["vllm_033_derived"]["params"]
    assert spec.attention_kinds == {"sliding_window": 24}
    assert {layer.attention.window for layer in spec.layers} == {4096}
    assert [(c.positions, c.rotary_dim) for c in spec.rope_caches] == [(32768, 64)]


def test_nested_rope_parameters_pick_the_sliding_layers_entry() -> None:
    cfg = {
        **BEAM["config"],
        "rope_parameters": {
            "full_attention": None,
            "sliding_attention": {"rope_type": "default", "rope_theta": 500000.0},
        },
    }
    assert [c.theta for c in build_spec(cfg).rope_caches] == [500000.0]


def test_tied_embeddings_are_refused_as_vllm_does() -> None:
    with pytest.raises(ConfigError):
        build_spec({**BEAM["config"], "tie_word_embeddings": True})


def test_beam_on_eight_nvswitch_h200s_gives_480_mib_a_gpu_to_its_multicast_all_reduce_workspace() -> None:
    """BeamModel allocates, outside torch, three Lamport buffers for its fused all-reduce + norm kernels when
    TP is 2/4/8, the model is bf16, 1024 <= hidden <= 8192 (a multiple of 1024), and the GPU is SM 9.x/10.x with
    NVLink multicast. hidden 5120, TP=8, T = max(8192 batched tokens, max_num_seqs) = 8192:
    one-shot min(8192, 3,276,800 // (8 x 5120 x 2) = 40) x 81,920 = 3,276,800 bytes;
    two-shot 2 x cdiv(8192, 8) x 81,920 = 167,772,160 bytes (160 MiB), the larger;
    3 buffers = 503,316,480 bytes = 480 MiB, counted as non-torch memory and so taken from the KV cache."""
    spec = _spec()
    plain = replace(spec, comm_workspace="")
    dep = dict(gpu="H200", tensor_parallel_size=8, max_model_len=8192, max_num_batched_tokens=8192)
    with_ws, without = estimate_on(spec, **dep), estimate_on(plain, **dep)
    assert with_ws.non_torch_bytes - without.non_torch_bytes == 3 * 167_772_160 == 480 * 2**20
    assert without.available_kv_cache_bytes - with_ws.available_kv_cache_bytes == 480 * 2**20
    assert "480 MiB" in next(c.note for c in with_ws.components if c.name == "non_torch")


def test_beam_without_nvlink_multicast_or_on_one_gpu_builds_no_workspace() -> None:
    """A PCIe H100 has no NVLink multicast, one GPU has no all-reduce, and TP=16 is not a size the kernels take."""
    spec = _spec()
    plain = replace(spec, comm_workspace="")
    for gpu, tp in (("H100 PCIe", 8), ("H200", 1), ("H100", 16)):
        a = estimate_on(spec, gpu=gpu, tensor_parallel_size=tp, max_model_len=8192)
        b = estimate_on(plain, gpu=gpu, tensor_parallel_size=tp, max_model_len=8192)
        assert a.non_torch_bytes == b.non_torch_bytes, (gpu, tp)
