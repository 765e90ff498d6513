"""Weights per GPU: each quantization's storage and TP/PP sharding, checked on a tiny model by hand."""

from __future__ import annotations

import pytest

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

H, INTER, V, L = 256, 512, 1000, 2  # hidden, intermediate, vocab, layers
TINY = {"model_type": "llama", "hidden_size": H, "intermediate_size": INTER, "num_hidden_layers": L,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": V, "max_position_embeddings": 64,
        "torch_dtype": "bfloat16", "tie_word_embeddings": False}
# per layer: q 256x256, k 128x256, v 128x256, o 256x256, gate/up 512x256, down 256x512 (out x in)
LINEARS = [(256, 256), (128, 256), (128, 256), (256, 256), (512, 256), (512, 256), (256, 512)]
NORMS = 2 * H * L + H
ROPE = 64 * 64 * 2  # max positions x head_dim x bf16
PAD_V = 1024  # vocab padded to a multiple of 64


def weights(cfg: dict, **kw) -> int:
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=85_029_158_912, max_model_len=64, **kw)
    return estimate(build_spec(cfg), dep).weights_bytes


def test_bf16_is_two_bytes_per_parameter_plus_padded_vocab_and_rope():
    lin = sum(o * i for o, i in LINEARS) * L
    assert weights(TINY) == 2 * (lin + NORMS + 2 * PAD_V * H) + ROPE


def test_awq_packs_four_bits_with_fp16_scales_and_packed_zeros_and_keeps_embeddings():
    cfg = {**TINY, "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True}}
    per = sum(o * i // 2 + (i // 128) * o // 2 + (i // 128) * o * 2 for o, i in LINEARS) * L
    assert weights(cfg) == per + 2 * (NORMS + 2 * PAD_V * H) + ROPE


def test_gptq_marlin_drops_zeros_and_adds_act_order_indices():
    cfg = {**TINY, "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True,
                                           "sym": True}}
    per = sum(o * i // 2 + (i // 128) * o * 2 + 8 * i for o, i in LINEARS) * L
    assert weights(cfg) == per + 2 * (NORMS + 2 * PAD_V * H) + ROPE


def test_fp8_block_scales_are_fp32_per_128x128_tile():
    cfg = {**TINY, "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 128]}}
    per = sum(o * i + 4 * -(-o // 128) * -(-i // 128) for o, i in LINEARS) * L
    assert weights(cfg) == per + 2 * (NORMS + 2 * PAD_V * H) + ROPE


def test_online_fp8_and_bitsandbytes_quantize_an_unquantized_checkpoint():
    fp8 = sum(o * i + 8 for o, i in LINEARS) * L
    assert weights(TINY, quantization="fp8") == fp8 + 2 * (NORMS + 2 * PAD_V * H) + ROPE
    bnb = sum(o * i // 2 + (o * i // 64) + 4 * -(-(o * i // 64) // 256) + 64 for o, i in LINEARS) * L
    assert weights(TINY, quantization="bitsandbytes") == bnb + 2 * (NORMS + 2 * PAD_V * H) + ROPE


def test_tensor_parallel_splits_vocab_after_padding_and_replicates_norms():
    lin = sum(o * i for o, i in LINEARS) * L // 2
    assert weights(TINY, tensor_parallel_size=2) == 2 * (lin + NORMS + 2 * (PAD_V // 2) * H) + ROPE


def test_kv_heads_are_replicated_when_tp_exceeds_them():
    # 2 KV heads at TP=4: each rank holds one whole KV head (64 x 256), not half of one
    q_o_mlp = (256 * 256 * 2 + 512 * 256 * 2 + 256 * 512) // 4
    kv = 2 * 64 * 256
    expect = 2 * ((q_o_mlp + kv) * L + NORMS + 2 * (PAD_V // 4) * H) + ROPE
    assert weights(TINY, tensor_parallel_size=4) == expect


def test_pipeline_parallel_puts_embedding_first_and_lm_head_last():
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=85_029_158_912, max_model_len=64, pipeline_parallel_size=2)
    r = estimate(build_spec(TINY), dep)
    first, last = r.per_stage
    assert first["weights_by_kind"].get("embedding") and not first["weights_by_kind"].get("lm_head")
    assert last["weights_by_kind"].get("lm_head") and not last["weights_by_kind"].get("embedding")


def test_moe_experts_split_by_tp_or_owned_whole_under_expert_parallel():
    moe = {"model_type": "mixtral", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 1,
           "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 1024, "num_local_experts": 8,
           "num_experts_per_tok": 2, "max_position_embeddings": 64}
    spec = build_spec(moe)
    base = Deployment(gpu_name="H100", gpu_memory_bytes=85_029_158_912, max_model_len=64, tensor_parallel_size=2)
    tp = estimate(spec, base).per_stage[0]["weights_by_kind"]["experts"]
    ep = estimate(spec, base.with_(enable_expert_parallel=True)).per_stage[0]["weights_by_kind"]["experts"]
    assert tp == ep == 8 * 3 * 256 * 512 * 2 // 2  # same bytes, split differently


def test_mxfp4_experts_are_half_a_byte_plus_e8m0_scales_and_padded_for_marlin():
    cfg = {"model_type": "gpt_oss", "hidden_size": 2880, "intermediate_size": 2880, "num_hidden_layers": 1,
           "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 201088,
           "num_local_experts": 32, "num_experts_per_tok": 4, "sliding_window": 128,
           "max_position_embeddings": 4096, "quantization_config": {"quant_method": "mxfp4"}}
    spec = build_spec(cfg)
    a100 = Deployment(gpu_name="A100-80GB", gpu_memory_bytes=84_986_665_370, compute_capability=8.0,
                      max_model_len=4096)
    ex = estimate(spec, a100).per_stage[0]["weights_by_kind"]["experts"]
    i_pad, h_pad = 2944, 3072  # Marlin: intermediate to 128, hidden to 256
    packed = 32 * (2 * i_pad * h_pad // 2 + 2 * i_pad * h_pad // 32 + h_pad * i_pad // 2 + h_pad * i_pad // 32)
    biases = 32 * (2 * 2880 + 2880) * 2
    assert ex == packed + biases


@pytest.mark.parametrize("tp", [3, 5])
def test_impossible_tensor_parallel_sizes_name_the_field(tp):
    from gpuplan.errors import GpuplanError

    with pytest.raises(GpuplanError) as e:
        weights(TINY, tensor_parallel_size=tp)
    assert e.value.field == "tensor_parallel_size"
