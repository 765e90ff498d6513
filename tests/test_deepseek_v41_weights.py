"""DeepSeek-V4.1-Flash's weights per GPU on Hopper, the parts read to the byte in vLLM 0.33 (not yet the whole model).

Config: tests/fixtures/oracle/families/deepseek_v41.json (deepseek-ai/DeepSeek-V4.1-Flash): hidden 5120, 64 heads of
512 (rope 64), q_lora_rank 1280, o_lora_rank 1024 in 8 output groups, 384 routed experts of 2304 (MXFP4, block
[32, 32] e8m0 MXFP8 linears), one shared expert, hc_mult 4, vocab 129280, 40 layers.

Kernels on SM 9.0 (src/gpuplan/engines/vllm/humming.py has the file:line of each rule):
- dense MXFP8 linears: Humming (priority.py puts Humming ahead of Marlin on SM90), rows padded to 256, columns to
  128 (utils/humming/linear.py:141-142), 1 B per weight + 1 B of e8m0 per 32;
- wo_a (is_bmm, attention.py:398-399): re-selected from [DeepGEMM bmm (Blackwell only), emulation]
  (kernels/linear/__init__.py:970-975), so bf16 at load plus its e8m0 scale (kernels/linear/mxfp8/emulation.py);
- routed experts: Mxfp4MoEMethod with MXFP8 activations (deepseek_v41/quant_config.py), Humming W4A8: per-rank
  intermediate rounded up to 64 (fused_moe/oracle/mxfp4.py final else), then padded 256 / 128
  (utils/humming/moe.py:411-412), e2m1 half a byte, e8m0 scales, one fp32 secondary scale per expert per matrix
  (humming config.py use_fused_e8m0_scale -> WeightScale2Type.TENSOR).

TP 8, one decoder layer, one rank:
  fused_wqa_wkv (replicated) [1280 + 512 = 1792, 5120]: 1792 x 5120 = 9,175,040 + 1792 x 160 = 286,720 -> 9,461,760
  wq_b [64 x 512 / 8 = 4096, 1280]: 5,242,880 + 163,840 = 5,406,720
  wo_a [8 x 1024 / 8 = 1024, 64 x 512 / 8 = 4096], bf16: 8,388,608 + 1024 x 128 = 131,072 -> 8,519,680
  wo_b [5120, 8192 / 8 = 1024]: 5,242,880 + 163,840 = 5,406,720
  attn_sink: FlashMLA pads 8 local heads to 64 (nvidia/flashmla.py get_padded_num_q_heads), fp32: 256
  norms (bf16): q_norm 1280 + kv_norm 512 + attn_norm 5120 + ffn_norm 5120 = 12,032 x 2 = 24,064
  hc_{attn,ffn}_{fn,base,scale} fp32 (nvidia/model.py:440-484): mix = (2 + 4) x 4 = 24, hc_dim = 20480:
    2 x (24 x 20480 + 24 + 3) x 4 = 3,932,376
  gate: GateLinear without quant_config, bf16 [384, 5120] = 3,932,160 + fp32 e_score_correction_bias and bias_vl
    (deepseek_v4/nvidia/model.py:268-318) 2 x 1536 = 3,935,232
  routed experts, 384 per rank: I = 2304 / 8 = 288 -> 320; w13 [640 -> 768, 5120]: 768 x 2560 = 1,966,080
    + 768 x 160 = 122,880 + 4; w2 [5120, 320 -> 384]: 5120 x 192 = 983,040 + 5120 x 12 = 61,440 + 4
    = 3,133,448 per expert x 384 = 1,203,244,032
  shared expert (Humming MXFP8): gate_up [2 x 288 = 576 -> 768, 5120] = 4,055,040; down [5120, 288 -> 384]
    = 2,027,520 -> 6,082,560
  sum: 1,246,013,400 B per layer per rank.
Model level (nvidia/model.py): embedding and LM head bf16 [129280 / 8 = 16160, 5120] = 165,478,400 each; final norm
10,240; hc_attn_fn_broadcast [24, 5120] fp32 = 491,520 (finalize_mhc_broadcast_weights, model.py:1485-1498);
topk_indices_buffer [8192, 512] int32 = 16,777,216 (model.py:759); candidate_block_buffer [8192, 2048] int32
= 67,108,864 (model.py:772).

Not read (so the model stays unregistered): compressor and indexer tensors, the engram block (wkv's padding, the GPU
buffers of EngramBatch / NgramHashState, the pinned host tables), rotary caches, the vision tower that
DeepseekV41ForCausalLM always builds unless images are disabled.
"""

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_deepseek_v41 as v41
from gpuplan.engines.vllm import humming as H
from gpuplan.errors import ConfigError, GpuplanError

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "deepseek_v41.json").read_text())
TEXT = v41.text_config(FX["models"]["deepseek-ai/DeepSeek-V4.1-Flash"]["config"])
H100_BYTES = 85_029_158_912  # src/gpuplan/data/gpus.json (cudaMemGetInfo total)


def test_humming_pads_rows_to_256_and_columns_to_128():
    assert H.padded(1792, 5120) == (1792, 5120)
    assert H.padded(576, 5120) == (768, 5120)
    assert H.padded(5120, 288) == (5120, 384)
    assert H.mxfp8_linear_bytes(576, 5120) == 768 * 5120 + 768 * 160
    assert H.mxfp4_expert_intermediate(288) == 320
    assert H.mxfp4_w4a8_matrix_bytes(640, 5120) == 1_966_080 + 122_880 + 4


def test_one_layer_at_tp8_on_hopper():
    b = v41.hopper_layer_bytes(TEXT, 8)
    assert b == {
        "attn_sink": 256, "fused_wqa_wkv": 9_461_760, "wq_b": 5_406_720, "wo_a": 8_519_680, "wo_b": 5_406_720,
        "norms": 24_064, "hc": 3_932_376, "gate": 3_935_232, "routed_experts": 1_203_244_032,
        "shared_experts": 6_082_560,
    }
    assert sum(b.values()) == 1_246_013_400


def test_routed_experts_at_other_tp_sizes():
    """TP 4: I = 576 (already a multiple of 64); w13 [1152 -> 1280, 5120] = 3,276,800 + 204,800 + 4; w2 [5120,
    576 -> 640] = 1,638,400 + 102,400 + 4; 5,222,408 x 384 = 2,005,404,672.
    TP 1: I = 2304; w13 [4608, 5120] = 11,796,480 + 737,280 + 4; w2 [5120, 2304] = 5,898,240 + 368,640 + 4;
    18,800,648 x 384 = 7,219,448,832.
    EP over 8 ranks: 48 whole experts a rank, 48 x 18,800,648 = 902,431,104."""
    assert v41.hopper_layer_bytes(TEXT, 4)["routed_experts"] == 2_005_404_672
    assert v41.hopper_layer_bytes(TEXT, 1)["routed_experts"] == 7_219_448_832
    assert v41.hopper_layer_bytes(TEXT, 8, ep=True)["routed_experts"] == 902_431_104


def test_wo_a_is_held_in_bf16_on_hopper():
    """TP 1: [8192, 4096] bf16 = 67,108,864 + 8192 x 128 = 1,048,576 of e8m0 -> 68,157,440 (twice MXFP8's size)."""
    assert v41.hopper_layer_bytes(TEXT, 1)["wo_a"] == 68_157_440


def test_model_level_tensors_and_buffers_at_tp8():
    assert v41.hopper_model_level_bytes(TEXT, 8, mnbt=8192) == {
        "embedding": 165_478_400, "lm_head": 165_478_400, "norm": 10_240, "hc_attn_fn_broadcast": 491_520,
        "topk_indices_buffer": 16_777_216, "candidate_block_buffer": 67_108_864,
    }


def test_what_the_read_parts_already_take_on_each_of_8_h100s():
    """40 x 1,246,013,400 + 415,344,640 = 50,255,880,640 B (46.80 GiB) per GPU before the unread parts, activations,
    CUDA graphs and the KV cache (432.2 MiB per 128K request, tests/test_deepseek_v41.py). Whether it fits at 128K on
    8 H100s (a 0.9 budget of 76,526,243,020 B) or 8 H200s is not answered until the rest is read."""
    per_gpu = 40 * sum(v41.hopper_layer_bytes(TEXT, 8).values()) + sum(
        v41.hopper_model_level_bytes(TEXT, 8, mnbt=8192).values())
    assert per_gpu == 50_255_880_640
    assert per_gpu < int(0.9 * H100_BYTES)


def test_does_it_fit_on_4_h100s_no():
    """At TP 4 the read parts alone exceed an H100's 0.9 budget: 40 x 2,071,562,200 = 82,862,488,000 B
    (+ 2 x 330,956,800 embedding and head) > 0.9 x 85,029,158,912 = 76,526,243,020 B."""
    per_gpu = 40 * sum(v41.hopper_layer_bytes(TEXT, 4).values()) + sum(
        v41.hopper_model_level_bytes(TEXT, 4, mnbt=8192).values())
    assert 40 * sum(v41.hopper_layer_bytes(TEXT, 4).values()) == 82_862_488_000
    assert per_gpu > int(0.9 * H100_BYTES)


@pytest.mark.parametrize("cc", [8.0, 10.0, 10.3, 12.0, None])
def test_gpus_other_than_hopper_are_refused(cc):
    with pytest.raises(GpuplanError) as e:
        v41.hopper_layer_bytes(TEXT, 8, compute_capability=cc)
    assert e.value.field == "gpu"
    with pytest.raises(GpuplanError):
        v41.hopper_model_level_bytes(TEXT, 8, mnbt=8192, compute_capability=cc)


def test_tp_that_does_not_divide_the_output_groups_is_refused():
    with pytest.raises(ConfigError):
        v41.hopper_layer_bytes(TEXT, 16)
