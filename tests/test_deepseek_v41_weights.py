"""DeepSeek-V4.1-Flash's weights per GPU on Hopper, read to the byte in vLLM 0.33, part by part and then whole.

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

The rest (compressors, indexers, the engram block, rotary caches, the vision tower, NgramHashState) is read in the
second half below; model_type deepseek_v41 is registered, with len(tokenizer) taken as vocab_size.
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


# ----------------------------------------------------------------------------- the whole model through weights.py

import gpuplan.api_python as api  # noqa: E402
import gpuplan.engines.vllm.kv_recipes.deepseek_v41  # noqa: E402,F401  (registers the cache recipe)
from gpuplan.engines.vllm.weights import Sharding, stage_weights  # noqa: E402

OUTER = FX["models"]["deepseek-ai/DeepSeek-V4.1-Flash"]["config"]
TOKENIZER_LEN = 129280  # an INPUT, not read: len(tokenizer) sizes NgramHashState.token_map; the registered adapter
# takes vocab_size (129,280) for it
SPEC = v41.model_spec(OUTER, "deepseek-ai/DeepSeek-V4.1-Flash", TOKENIZER_LEN)
LOCKS = 132 * 8 * 4  # utils/humming.py create_humming_locks on a 132-SM H100 / H200: int32 [SMs x 8]


def test_humming_locks_follow_the_sm_count():
    assert H.locks_bytes(132) == 4224
    assert H.locks_bytes(114) == 3648  # H100 PCIe
    with pytest.raises(GpuplanError):
        H.locks_bytes(None)


def test_whole_model_weights_on_each_of_8_h100s():
    """TP 8, max_num_batched_tokens 8192, one rank (each Humming layer adds its 4,224-byte lock buffer):
    40 decoder layers x (1,246,013,400 read before + 6 locks: fused_wqa_wkv, wq_b, wo_b, shared gate_up / down,
      the experts object) = 49,841,549,760
    compressors (compressor.py:292-304, bf16, replicated): layers 2/8/14 [1024, 5120] + norm 512 = 10,486,784 each;
      layer 20 [512, 5120] + norm = 5,243,904 -> 36,704,256
    indexers on the 8 index sources (attention.py:1385-1397): wq_b Humming [4096, 1280] 5,406,720 + 4,224,
      weights_proj bf16 [32, 5120] 327,680 -> 5,738,624 x 8 = 45,908,992; wk bf16 [128, 512] + k_norm on the 4 kv
      sources (attention.py:1418-1425): 131,328 x 4 = 525,312
    engram layers 1 and 14 (engram.py:1629-1645): wkv [25600 / 8 = 3200 -> 3328, 6144] 20,447,232 + 638,976 + 4,224,
      q_weight / k_weight bf16 2 x [4, 5120] 81,920 -> 21,172,352 x 2 = 42,344,704; tables: pinned host, 0
    model level: embedding and LM head 2 x 165,478,400, final norm 10,240, hc_attn_fn_broadcast 491,520 -> 331,458,560
    rotary caches (deepseek_scaling_rope.py:241-255): fp32 [65536 x 16, 64] at theta 160000 and [1048576, 64] at
      theta 10000 -> 2 x 268,435,456 = 536,870,912
    token buffers: top-k [8192, 512] int32 16,777,216, candidate blocks [8192, 2048] int32 67,108,864, engram staged
      rows bf16 [8192, cdiv(24, 8) = 3, 256] x 2 layers 25,165,824 -> 109,051,904
    vision tower (vl_model.py:155-171, bf16, 16 heads split over 8): patch embed 602,112 + 1,024, final norm 1,024;
      32 blocks x (2 x 1,024 norms + wqkv 393,216 + 384 + wo 131,072 + 1,024 + w1 720,896 + w2 360,448 = 1,609,088)
      -> 52,094,976 x 2 = 104,189,952; aligner w1 [640, 9216] + 640, w2 [5120, 640] + 5,120 -> 9,180,800 x 2
      = 18,361,600, image_start / end / newline fp32 61,440 -> 18,423,040
    NgramHashState (engram.py:466-472): token_map int32 [129,280] 517,120, primes int64 [2, 3, 8] 384, offsets
      int64 [2, 24] 384, multipliers int64 [2, 4] 64 -> 517,952
    total 51,067,545,344 B (47.56 GiB)."""
    sh = Sharding(8, 8, 1, compute_capability=9.0, sm_count=132)
    w = stage_weights(SPEC, sh, SPEC.quant, 2, 1, mla_absorbed=True, mnbt=8192)[0]
    by = dict(w.by_kind)
    assert by["experts"] == 40 * (1_203_244_032 + LOCKS)
    assert by["rope_cache"] == 536_870_912 and by["buffers"] == 109_051_904
    assert by["vision"] == 104_189_952 and by["projector"] == 18_423_040
    assert "mla_absorbed" not in by  # no kv_b_proj in V4.1
    assert w.total == 51_067_545_344


def test_does_deepseek_v41_flash_fit_on_8_h100s_at_128k_yes():
    """Weights 51,067,545,344 B per GPU (above); the KV layout is the recipe's (116,928-byte blocks, 9 groups);
    with async scheduling two batches are in flight, so a window group needs cdiv(127 + 2 x 8192, 32) + 1 = 517
    blocks: 7 x 517 + 2048 + 1 = 5668 blocks per 128K request."""
    r = api.estimate(SPEC, gpu="H100", tensor_parallel_size=8, max_model_len=131072)
    assert r.fits and r.weights_bytes == 51_067_545_344
    assert (r.kv.bytes_per_block, r.kv.num_groups, r.kv.blocks_per_request) == (116928, 9, 5668)
    assert r.kv.max_concurrency > 30  # about 34 requests of 128K (calibrated activation / graph terms)


def test_does_it_fit_on_8_h200s_at_128k_yes_with_about_3_6x_the_kv():
    h100 = api.estimate(SPEC, gpu="H100", tensor_parallel_size=8, max_model_len=131072)
    h200 = api.estimate(SPEC, gpu="H200", tensor_parallel_size=8, max_model_len=131072)
    assert h200.fits and h200.weights_bytes == h100.weights_bytes
    assert h200.kv.kv_cache_tokens > 3.5 * h100.kv.kv_cache_tokens


def test_it_does_not_fit_on_4_h100s():
    r = api.estimate(SPEC, gpu="H100", tensor_parallel_size=4, max_model_len=131072)
    assert not r.fits


@pytest.mark.parametrize("gpu", ["A100", "RTX PRO 6000"])
def test_unread_gpus_are_refused_naming_the_gpu(gpu):
    with pytest.raises(GpuplanError) as e:
        api.estimate(SPEC, gpu=gpu, tensor_parallel_size=8, max_model_len=131072)
    assert e.value.field == "gpu"


def test_expert_parallelism_is_refused():
    with pytest.raises(GpuplanError) as e:
        api.estimate(SPEC, gpu="H200", tensor_parallel_size=8, max_model_len=131072, enable_expert_parallel=True)
    assert e.value.field == "enable_expert_parallel"


def test_the_config_alone_builds_the_registered_adapter_with_the_same_weights():
    """build_spec on config.json (model_type deepseek_v41) is model_spec with len(tokenizer) = vocab_size."""
    from gpuplan.model.adapters import build_spec

    spec = build_spec(json.loads(json.dumps(OUTER)), "deepseek-ai/DeepSeek-V4.1-Flash")
    assert spec.model_type == "deepseek_v41" and not spec.generic
    assert spec.total_params == SPEC.total_params and spec.extra == SPEC.extra
    assert api.estimate(spec, gpu="H100", tensor_parallel_size=8, max_model_len=131072).weights_bytes == 51_067_545_344


def test_two_pipeline_stages_hold_the_single_stage_weights_plus_what_stage_1_builds_again():
    """PP 2 at TP 8 on H200s: the 51,067,545,344 B of one stage, plus stage 1's own YaRN rotary cache (268,435,456 B)
    and top-k / candidate buffers (8192 x (512 + 2048) x 4 = 83,886,080 B); every other tensor is on one stage only
    (tests/test_deepseek_v41_pp.py has the split)."""
    r = api.estimate(SPEC, gpu="H200", tensor_parallel_size=8, pipeline_parallel_size=2, max_model_len=131072)
    assert sum(st["weights_bytes"] for st in r.per_stage) == 51_067_545_344 + 268_435_456 + 83_886_080
