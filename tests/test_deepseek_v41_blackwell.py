"""DeepSeek-V4.1-Flash on Blackwell (B200 / GB200 compute capability 10.0, B300 10.3) in vLLM 0.33: weights and KV.

Config: tests/fixtures/oracle/families/deepseek_v41.json (deepseek-ai/DeepSeek-V4.1-Flash): hidden 5120, 64 heads of
512, q_lora_rank 1280, o_lora_rank 1024 in 8 output groups, 384 MXFP4 experts of 2304 + one shared, swiglu_limit 10,
[32, 32] e8m0 MXFP8 linears, 40 layers, window 128, kv sources 2/8/14/20, index sources 2/8/14/20/24/28/32/36.

Kernels vLLM 0.33 picks on SM 10.x (file:line in src/gpuplan/engines/vllm/humming.py and the cache recipe):
- dense MXFP8 linears: FlashInfer mm_mxfp8 (CuTe-DSL, else CUTLASS: _POSSIBLE_MXFP8_KERNELS order, Humming only
  moves ahead on SM90): fp8 weight n x k unpadded + swizzle_mxfp8_scale's F8_128x4 scale,
  round_up(n, 128) x round_up(k / 32, 4) bytes; no lock buffer;
- wo_a: DeepGEMM MXFP8 bmm (Blackwell only): fp8 weight + packed UE8M0 int32 scale [g, align(r, 4), cdiv(k/32, 4)];
- routed experts: FLASHINFER_TRTLLM_MXFP4_MXFP8 (TrtLlmMxfp4ExpertsModular: sqrtsoftplus routing is not a monolithic
  TRT-LLM method): intermediate per rank rounded to 128, hidden to 256, e2m1 + e8m0, no secondary scale; plus the
  fp32 gemm1_clamp_limit [384] (swiglu_limit) = 1,536 B a layer.

TP 8, one decoder layer, one rank:
  fused_wqa_wkv [1792, 5120]: 9,175,040 + 1792 x 160 = 286,720 -> 9,461,760
  wq_b [4096, 1280]: 5,242,880 + 4096 x 40 = 163,840 -> 5,406,720
  wo_a [1 group x 1024, 4096]: 4,194,304 + 1 x 1024 x cdiv(128, 4) x 4 = 131,072 -> 4,325,376 (Hopper: 8,519,680 bf16)
  wo_b [5120, 1024]: 5,242,880 + 163,840 -> 5,406,720
  attn_sink 256; norms 24,064; hc 3,932,376; gate 3,935,232 (unchanged from Hopper)
  routed: I = 288 -> 384; w13 [768, 5120] 1,966,080 + 122,880; w2 [5120, 384] 983,040 + 61,440 = 3,133,440 per
    expert x 384 = 1,203,240,960; clamp limit 1,536
  shared: gate_up [576, 5120] 2,949,120 + 640 x 160 = 102,400 -> 3,051,520; down [5120, 288] 1,474,560 + 5120 x 12
    = 61,440 -> 1,536,000; 4,587,520
  sum 1,240,322,520 B per layer (Hopper 1,246,013,400 + 6 Humming locks).
Beside the layers (as on Hopper, tests/test_deepseek_v41_weights.py, but FlashInfer instead of Humming):
  compressors 36,704,256; indexers 8 x (wq_b [4096, 1280] 5,406,720 + weights_proj 327,680) = 45,875,200, wk + k_norm
  525,312; engram layers 1 and 14: wkv [3200, 6144] 19,660,800 + 3200 x 192 = 614,400, q/k weights 81,920 ->
  2 x 20,357,120 = 40,714,240; embedding + head + norm + hc_attn_fn_broadcast 331,458,560; rotary caches 536,870,912;
  vision tower 104,189,952 + projector 18,423,040; NgramHashState 517,952; token buffers (top-k, candidate blocks,
  engram staging) 109,051,904 at max_num_batched_tokens 8192, 218,103,808 at 16384 (vLLM's default on a >= 160 GiB
  GPU such as the B200).
  40 x 1,240,322,520 + the rest = 50,837,232,128 B at 8192, 50,946,284,032 B (47.45 GiB) at 16384.

KV cache on SM 10.x (kv_recipes/deepseek_v41.py docstring has the source lines): records 528 B (window) and, under
mega attention (the default at TP 1/2/4/8), 288 B NVFP4 (compressed); pages padded to 512; block 128; the window
cache's block stride aligned to lcm(528, 288) = 3168.
  window (every layer)  32 x 528 = 16896 (already 33 x 512), align 3168
  compressed, ratio 2   64 x 288 = 18432 (layers 2, 8, 14);   ratio 1: 128 x 288 = 36864 (layer 20)
  indexer, ratio 2      64 x 132 = 8448 -> 17 x 512 = 8704;    ratio 1: 128 x 132 = 16896
  ring                  8 x 1024 x 4 = 32768 (layers 2, 8, 14)
Groups: the MLA bucket is unbalanced (3, 3, 1, 1 layers per page), so no repeats; anchor = the MLA bucket,
3 x 18432 + 3 x 8704 + 36864 + 16896 = 135168; window 135168 // 16896 = 8 a block -> 5 groups of 8; ring 4 a block ->
1 group; 7 groups. Bytes per block max(8 x 16896, 135168, 3 x 32768) = 135168, rounded up to lcm(3168, 1, ...) = 3168:
43 x 3168 = 136224.
"""

import json
import types
from dataclasses import replace
from pathlib import Path

import pytest

import gpuplan.api_python as api
import gpuplan.engines.vllm.kv_recipes.deepseek_v41 as recipe
import gpuplan.model.adapters_deepseek_v41 as v41
from gpuplan.engines.vllm import humming as H
from gpuplan.engines.vllm import kv_packed as P
from gpuplan.engines.vllm.kv import KVContext
from gpuplan.engines.vllm.weights import Sharding, stage_weights
from gpuplan.errors import GpuplanError

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "deepseek_v41.json").read_text())
OUTER = FX["models"]["deepseek-ai/DeepSeek-V4.1-Flash"]["config"]
TEXT = v41.text_config(OUTER)
SPEC = v41.model_spec(OUTER, "deepseek-ai/DeepSeek-V4.1-Flash", 129280)
LEN = 131072
B200_BYTES = 191_514_017_792  # src/gpuplan/data/gpus.json (torch total_memory)
B200 = KVContext(tp=8, kv_bytes=1, kv_cache_dtype="auto", model_dtype_bytes=2, block_size=None,
                 max_model_len=LEN, mnbt=8192, in_flight_factor=1, hybrid_manager=True, compute_capability=10.0)


def _kv_spec():
    return types.SimpleNamespace(layers=[types.SimpleNamespace(attention=a) for a in v41.attention_layers(TEXT)])


def _plan(ctx: KVContext = B200) -> P.PackedPlan:
    return P.plan_caches(recipe.caches(_kv_spec(), ctx, 4), ctx.mnbt * ctx.in_flight_factor)


def _weights(tp: int, mnbt: int, cc: float = 10.0):
    sh = Sharding(tp, tp, 1, compute_capability=cc, sm_count=148)
    return stage_weights(SPEC, sh, SPEC.quant, 2, 1, mla_absorbed=True, mnbt=mnbt)[0]


# ----------------------------------------------------------------------------- weights


def test_flashinfer_mxfp8_pads_only_the_swizzled_scale():
    """No weight padding; the scale goes to 128-row x 4-column tiles: [576, 5120] -> 640 x 160 scale bytes,
    [5120, 288] -> 5120 x round_up(9, 4) = 12."""
    assert H.flashinfer_mxfp8_linear_bytes(576, 5120) == 576 * 5120 + 640 * 160
    assert H.flashinfer_mxfp8_linear_bytes(5120, 288) == 5120 * 288 + 5120 * 12
    assert H.flashinfer_mxfp8_linear_bytes(1792, 5120) == 9_461_760  # already tile-aligned: plain MXFP8 size
    with pytest.raises(GpuplanError):  # mm_mxfp8 needs N, K >= 128; the Marlin fallback is not read
        H.flashinfer_mxfp8_linear_bytes(64, 5120)


def test_wo_a_stays_fp8_on_blackwell():
    """DeepGEMM's bmm keeps the fp8 weight; its packed UE8M0 scale is r x cdiv(k/32, 4) int32 per group:
    TP 8: 1024 x 4096 + 1024 x 32 x 4 = 4,325,376 (half of Hopper's bf16 copy, 8,519,680)."""
    assert H.deepgemm_mxfp8_bmm_bytes(1024, 4096, 1024) == 4_325_376
    assert H.deepgemm_mxfp8_bmm_bytes(8192, 4096, 1024) == 8 * 4_325_376  # TP 1: eight groups
    assert H.deepgemm_mxfp8_bmm_bytes(6, 4096, 3) == 6 * 4096 + 2 * 4 * 4 * 32  # r = 3 rows aligned to 4


def test_trtllm_experts_round_the_intermediate_to_128():
    """TP 8: 288 -> 384, 3,133,440 per expert (Humming: 3,133,448 with two fp32 secondary scales);
    TP 4: 576 -> 640, w13 [1280, 5120] 3,276,800 + 204,800, w2 [5120, 640] 1,638,400 + 102,400 = 5,222,400."""
    assert H.trtllm_mxfp4_expert_dims(5120, 288) == (5120, 384)
    assert H.trtllm_mxfp4_expert_bytes(5120, 288) == 3_133_440
    assert H.trtllm_mxfp4_expert_bytes(5120, 576) == 5_222_400


def test_what_each_of_8_b200s_holds_after_loading():
    """The docstring's sum: 40 layers of 1,240,322,520 B plus the model-level parts; the routed experts are
    40 x (1,203,240,960 + 1,536) = 48,129,699,840 B."""
    w8k = _weights(8, 8192)
    by = dict(w8k.by_kind)
    assert by["experts"] == 40 * (1_203_240_960 + 1_536)
    assert by["shared_experts"] == 40 * 4_587_520
    assert by["attention"] == 40 * (256 + 9_461_760 + 5_406_720 + 4_325_376 + 5_406_720) + 36_700_160 \
        + 45_875_200 + 524_288  # compressors, indexer wq_b + weights_proj, wk (the norms count as "norm")
    assert w8k.total == 50_837_232_128
    assert _weights(8, 16384).total == 50_946_284_032


def test_b300_loads_the_same_bytes_as_b200():
    assert _weights(8, 16384, cc=10.3).total == _weights(8, 16384).total


def test_blackwell_holds_less_than_hopper_per_gpu():
    """Hopper at TP 8 / 8192 tokens: 51,067,545,344 B (tests/test_deepseek_v41_weights.py). Blackwell drops wo_a's
    bf16 copy (40 x 4,194,304 = 167,772,160), Humming's padding of the shared expert (40 x (6,082,560 - 4,587,520)
    = 59,801,600) and of engram's wkv (2 x (21,086,208 - 20,275,200) = 1,622,016), the 250 Humming lock buffers
    (250 x 4,224 = 1,056,000) and the experts' fp32 secondary scales less the clamp tensor (40 x (3,072 - 1,536)
    = 61,440): 230,313,216 B less."""
    hopper = stage_weights(SPEC, Sharding(8, 8, 1, compute_capability=9.0, sm_count=132), SPEC.quant, 2, 1,
                           mla_absorbed=True, mnbt=8192)[0].total
    assert hopper - _weights(8, 8192).total == 230_313_216


# ----------------------------------------------------------------------------- KV cache


def test_page_sizes_and_alignment_on_b200():
    pages = {c.name: (c.spec, c.block_size, c.page, c.align) for c in recipe.caches(_kv_spec(), B200, 4)}
    assert pages == {
        "window_128": (P.SLIDING_MLA, 32, 16896, 3168),
        "compressed_2": (P.MLA, 128, 18432, 1),
        "compressed_1": (P.MLA, 128, 36864, 1),
        "indexer_2": (P.MLA, 128, 8704, 1),
        "indexer_1": (P.MLA, 128, 16896, 1),
        "compressor_ring": (P.RING, 8, 32768, 1),
    }


def test_groups_and_bytes_per_block_on_b200():
    p = _plan()
    assert [len(g) for g in p.groups] == [8, 8, 8, 8, 8, 8, 3]
    assert p.bytes_per_block == 136224  # 135168 rounded up to 3168


def test_how_many_128k_requests_fit_in_20_gib_of_kv_on_one_b200():
    """8192 tokens in flight: window groups cdiv(127 + 8192, 32) + 1 = 261 each -> 5 x 261 + 1024 + 1 = 2330 blocks
    = 317,401,920 B a request. 20 GiB // 136224 = 157643 blocks; 157643 / 2330 = 67.66 requests;
    int(67.657... x 131072) = 8,868,061 tokens."""
    p = _plan()
    assert P.blocks_per_request(p, LEN) == 2330 and P.needed_bytes(p, LEN) == 317_401_920
    blocks = 20 * 2**30 // p.bytes_per_block
    report = P.kv_report(p, blocks, LEN, "nvfp4_ds_mla", 0)
    assert blocks == 157643
    assert (report.max_concurrency, report.kv_cache_tokens) == (67.66, 8868061)


def test_an_explicit_fp8_ds_mla_keeps_528_byte_compressed_records():
    """--kv-cache-dtype fp8_ds_mla: compressed 64 x 528 = 33792 (ratio 2), 128 x 528 = 67584 (ratio 1); window stride
    lcm(528, 528) = 528. MLA bucket 3 x 33792 + 3 x 8704 + 67584 + 16896 = 211968; window 12 a block -> 4 groups; ring 1;
    6 groups; bytes per block round_up(211968, 528) = 402 x 528 = 212256; 4 x 261 + 1024 + 1 = 2069 blocks."""
    p = _plan(replace(B200, kv_cache_dtype="fp8_ds_mla"))
    assert (p.num_groups, p.bytes_per_block, P.blocks_per_request(p, LEN)) == (6, 212256, 2069)


def test_tp_16_falls_back_to_flashmla_and_its_528_byte_records():
    """64 heads and 8 output groups over 16 ranks: mega attention is unavailable (groups do not divide), so the
    FlashMLA backend's fp8_ds_mla records apply (the same plan as an explicit fp8_ds_mla)."""
    assert not recipe.mega_attention(64, 8, 16) and recipe.mega_attention(64, 8, 4)
    assert _plan(replace(B200, tp=16)).bytes_per_block == 212256
    with pytest.raises(GpuplanError) as e:
        recipe.caches(_kv_spec(), replace(B200, tp=16, kv_cache_dtype="nvfp4_ds_mla"), 4)
    assert e.value.field == "kv_cache_dtype"


def test_per_token_bytes_on_b200():
    """(288 + 132) / 2 = 210 on layers 2, 8, 14; 288 + 132 = 420 on layer 20."""
    assert sum(recipe.token_bytes(a, B200) for a in v41.attention_layers(TEXT)) == 3 * 210 + 420


@pytest.mark.parametrize("change, field", [
    ({"block_size": 256}, "block_size"),
    ({"block_size": 64}, "block_size"),
    ({"kv_cache_dtype": "bfloat16", "kv_bytes": 2}, "kv_cache_dtype"),
    ({"hybrid_manager": False}, "disable_hybrid_kv_cache_manager"),
    ({"compute_capability": 12.0}, "gpu"),
])
def test_unread_blackwell_options_are_refused(change, field):
    with pytest.raises(GpuplanError) as e:
        recipe.caches(_kv_spec(), replace(B200, **change), 4)
    assert e.value.field == field


# ----------------------------------------------------------------------------- the user's questions


def test_does_deepseek_v41_flash_fit_on_4_b200s_at_128k_yes():
    """TP 4 (mega attention: 16 heads, 2 groups a rank). Weights 84,363,099,904 B (78.57 GiB) per GPU, under a 0.9
    budget of 172,362,616,012 B. KV: vLLM's B200 defaults put 16384 tokens a step and async scheduling two steps in
    flight, so a window group needs cdiv(127 + 32768, 32) + 1 = 1029 blocks: 5 x 1029 + 1024 + 1 = 6170 blocks of
    136224 B per 128K request; about 100 such requests fit (calibrated activation / graph terms)."""
    r = api.estimate(SPEC, gpu="B200", tensor_parallel_size=4, max_model_len=LEN)
    assert r.fits and r.weights_bytes == 84_363_099_904
    assert (r.kv.bytes_per_block, r.kv.num_groups, r.kv.blocks_per_request) == (136224, 7, 6170)
    assert r.kv.max_concurrency > 90


def test_on_8_b200s_each_gpu_holds_47_gib_of_weights():
    r = api.estimate(SPEC, gpu="B200", tensor_parallel_size=8, max_model_len=LEN)
    assert r.fits and r.weights_bytes == 50_946_284_032
    assert r.kv.max_concurrency > 1.3 * api.estimate(
        SPEC, gpu="B200", tensor_parallel_size=4, max_model_len=LEN).kv.max_concurrency


def test_b300_fits_more_than_twice_the_128k_requests_of_a_b200_at_tp4():
    b200 = api.estimate(SPEC, gpu="B200", tensor_parallel_size=4, max_model_len=LEN)
    b300 = api.estimate(SPEC, gpu="B300", tensor_parallel_size=4, max_model_len=LEN)
    assert b300.weights_bytes == b200.weights_bytes
    assert b300.kv.max_concurrency > 2 * b200.kv.max_concurrency


@pytest.mark.parametrize("gpu", ["A100", "RTX PRO 6000"])
def test_gpus_whose_kernels_are_unread_are_still_refused(gpu):
    with pytest.raises(GpuplanError) as e:
        api.estimate(SPEC, gpu=gpu, tensor_parallel_size=8, max_model_len=LEN)
    assert e.value.field == "gpu"


def test_pipeline_stages_on_blackwell_hold_what_vllm_builds_there():
    """TP 4, PP 2 on B200s (max_num_batched_tokens 16384): the stages keep Hopper's placement rules (the layers own
    their rotary caches and engram rows, tests/test_deepseek_v41_pp.py), with Blackwell's kernels. Stage 1 holds
    only the YaRN cache (268,435,456 B) and the top-k / candidate buffers, 16384 x (512 + 2048) x 4 = 167,772,160 B;
    stage 0 both caches and the engram staged rows too, 2 x 16384 x cdiv(24, 4) x 256 x 2 = 100,663,296 B more."""
    r = api.estimate(SPEC, gpu="B200", tensor_parallel_size=4, pipeline_parallel_size=2, max_model_len=LEN)
    sh = Sharding(4, 4, 1, compute_capability=10.0, sm_count=148)
    read = v41.pipeline_stage_weights(OUTER, SPEC, sh, 2, r.max_num_batched_tokens)
    assert [st["weights_bytes"] for st in r.per_stage] == [w.total for w in read]
    by0, by1 = (st["weights_by_kind"] for st in r.per_stage)
    assert (by0["rope_cache"], by1["rope_cache"]) == (536_870_912, 268_435_456)
    assert (by0["buffers"], by1["buffers"]) == (167_772_160 + 100_663_296, 167_772_160)
