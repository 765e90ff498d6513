"""DeepSeek-V4.1-Flash under pipeline parallelism in vLLM 0.33 (Hopper, TP 8, PP 2): what each stage holds.

Config: tests/fixtures/oracle/families/deepseek_v41.json (deepseek-ai/DeepSeek-V4.1-Flash): 40 layers, compress
ratios 0, 0, 2 x 18 (layers 2-19), 1 x 20 (layers 20-39), kv sources 2/8/14/20, index sources 2/8/14/20/24/28/32/36,
engram layers 1 and 14, rope_theta 10000 (window-only layers), compress_rope_theta 160000 (compressed layers).

Layer split: get_pp_indices (distributed/utils.py:198-240) gives 40 // 2 = 20 layers a stage, no remainder:
stage 0 = layers 0-19, stage 1 = layers 20-39 (gpuplan's weights.pp_partition is the same rule).

What a stage builds besides its decoder layers (models/deepseek_v41/nvidia/model.py; the comment block above
adapters_deepseek_v41.stage_residents lists every line):
  stage 0: embed_tokens (model.py:780-788), layer 0's hc_attn_fn_broadcast (model.py:1485-1498, first rank only),
           both rotary caches (window-only layers 0-1 ask get_rope for the plain one, layers 2-19 for the YaRN one;
           get_rope's _ROPE_DICT builds only what a local layer asks for), the staged rows of engram layers 1 and
           14 (engram.py:1665-1671, built in the decoder layer), NgramHashState (model.py:899-925: only ranks owning
           an engram layer), top-k and candidate-block buffers (model.py:756-778, every stage), the vision tower
           (towers.py: first stage only under Model Runner V2, which 0.33's _mark_tower_model skips on later stages);
  stage 1: the YaRN rotary cache only (layers 20-39 are all compressed), top-k and candidate-block buffers, the final
           norm (model.py:926-929) and lm_head (model.py:1648-1655); no engram layer, so no staged rows and no
           NgramHashState.

Weights per rank at TP 8 on an H200 (132 SMs: 4,224-byte Humming locks), max_num_batched_tokens 8192; the per-part
bytes are tests/test_deepseek_v41_weights.py's (decoder layer 1,246,013,400 + 6 locks = 1,246,038,744):
  stage 0: 20 x 1,246,038,744 = 24,920,774,880; compressors on 2/8/14: 3 x 10,486,784 = 31,460,352; indexers on
    2/8/14: 3 x 5,738,624 = 17,215,872, wk + k_norm 3 x 131,328 = 393,984; engram layers 1 and 14: 2 x 21,172,352
    = 42,344,704; embedding 165,478,400 + hc_attn_fn_broadcast 491,520; rotary caches 2 x 268,435,456
    = 536,870,912; buffers 16,777,216 + 67,108,864 + 2 x 12,582,912 (staged rows) = 109,051,904; NgramHashState
    517,952; vision tower 104,189,952 + aligner 18,423,040 = 122,612,992
    -> 25,947,213,472 B (24.17 GiB)
  stage 1: 20 x 1,246,038,744 = 24,920,774,880; compressor on 20: 5,243,904; indexers on 20/24/28/32/36:
    5 x 5,738,624 = 28,693,120, wk + k_norm on 20: 131,328; final norm 10,240 + lm_head 165,478,400; the YaRN cache
    268,435,456; buffers 16,777,216 + 67,108,864 = 83,886,080
    -> 25,472,653,408 B (23.72 GiB)
  Together 352,321,536 B more than PP 1's 51,067,545,344: stage 1's own YaRN cache (268,435,456) and top-k /
  candidate buffers (83,886,080).

KV per stage (kv_cache_planning.py:1413-1458 _project_kv_cache_groups_to_worker: the whole model's 9 groups,
tests/test_deepseek_v41.py, each cut to the stage's layers; a group with no layer on the stage keeps its spec, so it
still costs its pages per request, :1253-1285; bytes per block are the stage's own widest group, :574-605):
  stage 0: window groups {0,7,14} ... {5,12,19}: 3 x 19008 = 57024 (six), {6,13}: 38016; MLA {2,8,14}: 3 x 19008
    + 3 x 4608 = 70848; ring {2,8,14}: 3 x 32768 = 98304 -> 98,304 B a block
  stage 1: window groups of 3 (57024) and one of 2 (38016); MLA {20}: 37440 + 8640 = 46080; ring: no layer (0)
    -> 57,024 B a block
  One request of 1,048,576 tokens, three batches of 8192 in flight (config/vllm.py:588-598 max_concurrent_batches:
  async scheduling under Model Runner V2, 0.33's default, keeps pp + 1 batches): 7 window groups x
  (cdiv(127 + 24576, 32) + 1 = 773) + 1048576 / 64 = 16384 + 1 ring = 21,796 blocks on both stages:
  21,796 x 98,304 = 2,142,633,984 B (2.00 GiB) on stage 0, 21,796 x 57,024 = 1,242,895,104 B on stage 1.
  The engine takes the smaller block count of the two stages (kv_cache_planning.py:1580-1594) and reports
  concurrency = that count / 21,796 (kv_cache_utils.py:1120-1155, on stage 0's config, the scheduler's).
"""

import json
import types
from dataclasses import replace
from pathlib import Path

import gpuplan.engines.vllm.kv_recipes.deepseek_v41 as recipe
import gpuplan.model.adapters_deepseek_v41 as v41
from gpuplan.engines.vllm import kv_packed as P
from gpuplan.engines.vllm.kv import KVContext
from gpuplan.engines.vllm.weights import Sharding, stage_weights

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "deepseek_v41.json").read_text())
OUTER = FX["models"]["deepseek-ai/DeepSeek-V4.1-Flash"]["config"]
TEXT = v41.text_config(OUTER)
SPEC = v41.model_spec(OUTER, "deepseek-ai/DeepSeek-V4.1-Flash", 129280)
H200 = Sharding(8, 8, 1, compute_capability=9.0, sm_count=132)
MILLION = 1_048_576  # max_position_embeddings
CTX = KVContext(tp=8, kv_bytes=1, kv_cache_dtype="auto", model_dtype_bytes=2, block_size=None,
                max_model_len=MILLION, mnbt=8192, in_flight_factor=3, hybrid_manager=True, compute_capability=9.0)


def _stage_plan(lo: int, hi: int, ctx: KVContext = CTX) -> P.PackedPlan:
    spec = types.SimpleNamespace(layers=[types.SimpleNamespace(attention=a) for a in v41.attention_layers(TEXT)])
    return P.plan_caches(recipe.caches(spec, ctx, 4), ctx.mnbt * ctx.in_flight_factor, lo, hi)


def test_which_stage_builds_the_rotary_caches_and_the_engram_state():
    """PP 2: stage 0 has window-only and compressed layers and both engram layers; stage 1 only ratio-1 layers.
    PP 4 (10 layers a stage): engram layer 14 sits on stage 1, which then keeps its own NgramHashState too."""
    assert v41.stage_residents(OUTER, 0, 20) == {
        "rope_thetas": (10000.0, 160000.0), "engram_layers": (1, 14), "ngram_hash_state": True}
    assert v41.stage_residents(OUTER, 20, 40) == {
        "rope_thetas": (160000.0,), "engram_layers": (), "ngram_hash_state": False}
    assert [v41.stage_residents(OUTER, lo, lo + 10)["engram_layers"] for lo in (0, 10, 20, 30)] == [(1,), (14,), (), ()]


def test_weights_per_stage_at_tp8_pp2_on_h200():
    """The docstring's sums: 25,947,213,472 B on stage 0, 25,472,653,408 B on stage 1."""
    s0, s1 = v41.pipeline_stage_weights(OUTER, SPEC, H200, 2, 8192)
    assert (s0.layers, s1.layers) == ((0, 20), (20, 40))
    b0, b1 = dict(s0.by_kind), dict(s1.by_kind)
    assert b0["rope_cache"] == 536_870_912 and b1["rope_cache"] == 268_435_456
    assert b0["buffers"] == 109_051_904 and b1["buffers"] == 83_886_080
    assert "lm_head" not in b0 and "embedding" not in b1 and "vision" not in b1
    assert s0.total == 25_947_213_472
    assert s1.total == 25_472_653_408
    pp1 = stage_weights(SPEC, H200, SPEC.quant, 2, 1, mla_absorbed=True, mnbt=8192)[0].total
    assert s0.total + s1.total - pp1 == 268_435_456 + 83_886_080


def test_the_spec_places_rotary_caches_and_engram_buffers_by_layer():
    """The spec's placements (RopeCache.layers, TokenBuffer.layers, Tensor.on_layers) are what keeps stage 1 exact:
    without them weights.stage_weights would put both rotary caches and both engram staged-row buffers there too,
    268,435,456 + 2 x 12,582,912 = 293,601,280 B that vLLM does not allocate on stage 1. With them the generic
    per-stage sizing equals the independent reading (pipeline_stage_weights), at PP 2 and at PP 4, where engram
    layer 14 puts a second NgramHashState (517,952 B) on stage 1."""
    plain = replace(SPEC, rope_caches=tuple(replace(r, layers=()) for r in SPEC.rope_caches),
                    token_buffers=tuple(replace(b, layers=()) for b in SPEC.token_buffers),
                    extra=tuple(replace(t, on_layers=()) for t in SPEC.extra))
    generic = stage_weights(plain, H200, SPEC.quant, 2, 2, mla_absorbed=True, mnbt=8192)
    placed = stage_weights(SPEC, H200, SPEC.quant, 2, 2, mla_absorbed=True, mnbt=8192)
    assert generic[0].total == placed[0].total
    assert generic[1].total - placed[1].total == 293_601_280
    for pp in (2, 4):
        assert ([w.total for w in stage_weights(SPEC, H200, SPEC.quant, 2, pp, mla_absorbed=True, mnbt=8192)]
                == [w.total for w in v41.pipeline_stage_weights(OUTER, SPEC, H200, pp, 8192)])
    # PP 4, stage 1 (layers 10-19, all ratio 2, engram layer 14): the plain spec would hold the plain rotary cache and
    # layer 1's staged rows there but not the NgramHashState: 268,435,456 + 12,582,912 - 517,952 = 280,500,416 B
    plain4 = stage_weights(plain, H200, SPEC.quant, 2, 4, mla_absorbed=True, mnbt=8192)
    placed4 = stage_weights(SPEC, H200, SPEC.quant, 2, 4, mla_absorbed=True, mnbt=8192)
    assert plain4[1].total - placed4[1].total == 280_500_416


def test_kv_per_stage_at_pp2():
    """Stage 0: 98,304 B a block (the compressor rings of layers 2/8/14 are the widest group); stage 1: 57,024 B.
    Both stages keep all 9 groups and need 21,796 blocks for a 1M-token request."""
    p0, p1 = _stage_plan(0, 20), _stage_plan(20, 40)
    assert p0.stage_pages == (57024,) * 6 + (38016, 70848, 98304)
    assert p1.stage_pages == (57024,) * 5 + (38016, 57024, 46080, 0)
    assert (p0.bytes_per_block, p1.bytes_per_block) == (98_304, 57_024)
    assert P.blocks_per_request(p0, MILLION) == P.blocks_per_request(p1, MILLION) == 21_796
    assert (P.needed_bytes(p0, MILLION), P.needed_bytes(p1, MILLION)) == (2_142_633_984, 1_242_895_104)
    whole = _stage_plan(0, 40)
    assert whole.bytes_per_block == 116_928 and P.blocks_per_request(whole, MILLION) == 21_796


def test_a_larger_block_size_per_stage_keeps_the_aligned_block():
    """--block-size 128 under PP: each stage rounds its widest group up to the lcm of its own layers' kernel-page
    alignments (kv_cache_planning.py:597-605 takes them over the stage's projected groups only): stage 0 holds the
    ratio-2 sources only, lcm(19008, 4608) = 2^9 x 3^3 x 11 = 152,064; stage 1 only layer 20, lcm(37440, 8640)
    = 2^6 x 3^3 x 5 x 13 = 112,320. Globally 4 window groups of 10 layers (230400 // 19008 = 12 a block): 5 of each
    on a stage, 5 x 19008 = 95,040. Stage 0's widest group: MLA 3 x 37440 + 3 x 8640 = 138,240 -> 152,064; stage 1's:
    window 95,040 (MLA 74880 + 17280 = 92,160) -> 112,320. Both far below the whole model's 9,884,160."""
    ctx = replace(CTX, block_size=128)
    assert _stage_plan(0, 20, ctx).stage_pages == (95040,) * 4 + (138240, 98304)
    assert _stage_plan(0, 20, ctx).bytes_per_block == 152_064
    assert _stage_plan(20, 40, ctx).bytes_per_block == 112_320
