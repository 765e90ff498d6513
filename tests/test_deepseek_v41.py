"""DeepSeek-V4.1's KV cache on Hopper as vLLM 0.33 plans it (models/deepseek_v41 + kv_cache_planning's packed path).

Config: deepseek-ai/DeepSeek-V4.1-Flash/config.json as quoted in public repositories (fixture
tests/fixtures/oracle/families/deepseek_v41.json): 40 layers, compress_ratios 0,0, 2 x 18 (layers 2-19), 1 x 20
(layers 20-39) and three MTP entries, kv sources 2/8/14/20, index sources 2/8/14/20/24/28/32/36, window 128.

Only the KV layout is pinned: the weights are not modelled yet (see the adapter module's docstring), so
deepseek_v41 stays refused by name and no parameter count is claimed.

Per-layer specs on SM90 (FlashMLA sparse, fp8_ds_mla records of 584 B, pages padded to 576 B), block size 64
(the sparse MLA and indexer backends' kernel block on SM90; the window backend takes multiples of 32):
  window (every layer)    SlidingWindowMLASpec, block 32: 32 x 584 = 18688 -> 33 x 576 = 19008 B
  compressed, ratio 2     MLAAttentionSpec (layers 2, 8, 14): 64/2 x 584 = 18688 -> 19008 B
  compressed, ratio 1     MLAAttentionSpec (layer 20): 64 x 584 = 37376 -> 65 x 576 = 37440 B
  indexer keys, ratio 2   MLAAttentionSpec (layers 2, 8, 14): 32 x 132 = 4224 -> 8 x 576 = 4608 B
  indexer keys, ratio 1   MLAAttentionSpec (layer 20): 64 x 132 = 8448 -> 15 x 576 = 8640 B
  compressor ring         CircularBufferSpec (layers 2, 8, 14): 8 rows x 1024 fp32 = 32768 B
Layers 24/28/32/36 (index sources, not kv sources) and every other compressed layer register no cache of their own.

Grouping (_get_packed_kv_cache_groups): buckets window (40 x 19008, balanced, one size), MLA (3 x 19008 + 3 x 4608
+ 37440 + 8640: unbalanced) and ring (3 x 32768). No balanced bucket mixes page sizes, so no repeats are chosen and
the window bucket counts as a state bucket. Anchor = the widest fixed group = the MLA bucket,
57024 + 13824 + 37440 + 8640 = 116928 B. Window: 116928 // 19008 = 6 a block -> cdiv(40, 6) = 7 groups
(5 of 6 layers, 2 of 5); ring: 116928 // 32768 = 3 -> 1 group. 9 groups; bytes per block = max(6 x 19008 = 114048,
116928, 98304) = 116928 (every block stride alignment is 1 on SM90).

Blocks per request at max_model_len 131072, 8192 tokens in flight: window groups cdiv(min(127 + 8192, 131072), 32)
+ 1 = 261 each; MLA group 131072 / 64 = 2048; ring 1 -> 7 x 261 + 2048 + 1 = 3876 blocks = 3876 x 116928 =
453212928 B (432.2 MiB) per request on every GPU (one latent KV head: every TP rank holds the whole cache).
"""

import json
import types
from dataclasses import replace
from pathlib import Path

import pytest

import gpuplan.engines.vllm.kv_recipes.deepseek_v41 as recipe  # noqa: F401  (registers the recipe)
import gpuplan.model.adapters_deepseek_v41 as v41
from gpuplan.engines.vllm import kv_packed as P
from gpuplan.engines.vllm.kv import KVContext
from gpuplan.errors import ConfigError, GpuplanError

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "deepseek_v41.json").read_text())
CONFIG = FX["models"]["deepseek-ai/DeepSeek-V4.1-Flash"]["config"]
LEN = 131072
H200 = KVContext(tp=8, kv_bytes=1, kv_cache_dtype="auto", model_dtype_bytes=2, block_size=None,
                 max_model_len=LEN, mnbt=8192, in_flight_factor=1, hybrid_manager=True, compute_capability=9.0)


def _spec(cfg: dict = CONFIG):
    """What the recipe reads of a ModelSpec: its layers' attention."""
    layers = [types.SimpleNamespace(attention=a) for a in v41.attention_layers(v41.text_config(cfg))]
    return types.SimpleNamespace(layers=layers)


def _plan(ctx: KVContext = H200) -> P.PackedPlan:
    return P.plan_caches(recipe.caches(_spec(), ctx, 4), ctx.mnbt * ctx.in_flight_factor)


def test_which_layers_own_which_caches():
    """Window caches on all 40 layers; compressed caches on the kv sources only; indexer keys on the kv sources
    that are also index sources; compressor rings on the ratio-2 kv sources."""
    cs = recipe.caches(_spec(), H200, 4)
    owners = {}
    for c in cs:
        owners.setdefault(c.name, []).append(c.layer)
    assert owners == {
        "window_128": list(range(40)),
        "compressed_2": [2, 8, 14], "indexer_2": [2, 8, 14], "compressor_ring": [2, 8, 14],
        "compressed_1": [20], "indexer_1": [20],
    }
    # vLLM's registration order inside a kv-source layer: attention (compressed), indexer keys, window, ring
    assert [c.name for c in cs if c.layer == 2] == ["compressed_2", "indexer_2", "window_128", "compressor_ring"]
    assert [c.name for c in cs if c.layer == 20] == ["compressed_1", "indexer_1", "window_128"]


def test_page_sizes_and_block_sizes_on_hopper():
    pages = {c.name: (c.spec, c.block_size, c.page) for c in recipe.caches(_spec(), H200, 4)}
    assert pages == {
        "window_128": (P.SLIDING_MLA, 32, 19008),
        "compressed_2": (P.MLA, 64, 19008),
        "compressed_1": (P.MLA, 64, 37440),
        "indexer_2": (P.MLA, 64, 4608),
        "indexer_1": (P.MLA, 64, 8640),
        "compressor_ring": (P.RING, 8, 32768),
    }


def test_groups_and_bytes_per_block():
    p = _plan()
    assert p.num_groups == 9
    assert [len(g) for g in p.groups] == [6, 6, 6, 6, 6, 5, 5, 8, 3]
    assert [sum(c.page for c in g) for g in p.groups][-2:] == [116928, 98304]
    assert p.bytes_per_block == 116928


def test_how_much_kv_does_one_128k_request_take_per_gpu():
    """7 window groups x 261 + 2048 compressed/indexer blocks + 1 ring block = 3876 blocks of 116928 B."""
    p = _plan()
    assert P.blocks_per_request(p, LEN) == 3876
    assert P.needed_bytes(p, LEN) == 453212928  # 432.2 MiB, the same on every TP rank


def test_how_many_128k_requests_fit_in_20_gib_of_kv_cache():
    """num_blocks = 20 GiB // 116928 = 183658; concurrency 183658 / 3876 = 47.38; tokens int(47.38 x 131072)."""
    p = _plan()
    blocks = 20 * 2**30 // p.bytes_per_block
    report = P.kv_report(p, blocks, LEN, "fp8_ds_mla", 0)
    assert blocks == 183658
    assert report.max_concurrency == 47.38
    assert report.kv_cache_tokens == 6210635


def test_a_larger_block_size_scales_the_full_length_pages_only():
    """--block-size 128: compressed 64 x 584 -> 37440 (ratio 2), 128 x 584 = 74752 -> 130 x 576 = 74880
    (ratio 1); indexer 64 x 132 -> 8640, 128 x 132 = 16896 -> 30 x 576 = 17280; window and ring unchanged.
    MLA group 3 x 37440 + 3 x 8640 + 74880 + 17280 = 230400 B; window 230400 // 19008 = 12 a block ->
    cdiv(40, 12) = 4 groups; ring 1 group. Blocks at 128K: 4 x 261 + 1024 + 1 = 2069.

    The pages sum to 230400 B, but that is not the block (this test pinned 230400 before; vLLM 0.33's source says
    otherwise). On SM90 the sparse MLA backend (models/deepseek_v41/sparse_mla.py:116-117) and the indexer backend
    (v1/attention/backends/mla/indexer.py:366-367) declare one fixed kernel block, [64], so the worker's
    customize_attention_spec (v1/worker/utils.py:476-486) sets block_stride_alignment = MultipleOf(64) on the
    compressed and indexer specs (the indexer's own alignment is None without indexer_sparse_logits,
    models/deepseek_v41/attention.py:1300-1310, config/attention.py:100; the window backend's MultipleOf(32) and the
    compressor's MultipleOf(1) are not fixed sizes, so those specs keep none). get_block_stride_alignment
    (v1/kv_cache_interface.py:224-234): gcd(64, 128) = 64 != 128, so the alignment is the page of a 64-token copy
    of the spec (copy_with_new_block_size re-runs _apply_alignment_padding): 19008 (compressed ratio 2), 37440
    (ratio 1), 4608 (indexer ratio 2), 8640 (indexer ratio 1). _get_kv_cache_bytes_per_block
    (v1/core/kv_cache_planning.py:574-605) rounds the widest group up to the lcm of every layer's alignment:
    lcm(19008, 37440, 4608, 8640) = 2^9 x 3^3 x 5 x 11 x 13 = 9,884,160 B, so one 128-token block takes
    9,884,160 B (42.9 x the pages it holds)."""
    p = _plan(replace(H200, block_size=128))
    assert [sum(c.page for c in g) for g in p.groups][-2] == 230400  # the widest group's pages
    assert p.bytes_per_block == 9_884_160
    assert p.num_groups == 6
    assert P.blocks_per_request(p, LEN) == 2069


def test_block_size_256_takes_the_same_aligned_block():
    """--block-size 256: compressed 128 x 584 -> 74880 (ratio 2), 256 x 584 = 149504 -> 260 x 576 = 149760
    (ratio 1); indexer 128 x 132 -> 17280, 256 x 132 = 33792 -> 59 x 576 = 33984. MLA group 3 x 74880 + 3 x 17280
    + 149760 + 33984 = 460224 B; window 460224 // 19008 = 24 a block -> cdiv(40, 24) = 2 groups; ring 1 -> 4 groups.
    Kernel block gcd(64, 256) = 64: the same 64-token alignments, lcm 9,884,160 -> bytes per block 9,884,160.
    Blocks at 128K: 2 x 261 + 512 + 1 = 1035."""
    p = _plan(replace(H200, block_size=256))
    assert (p.num_groups, p.bytes_per_block, P.blocks_per_request(p, LEN)) == (4, 9_884_160, 1035)


def test_block_stride_alignment_is_one_at_the_kernel_block():
    """At the default 64 (= the kernel block) every alignment is 1 (get_block_stride_alignment returns 1 when the
    kernel block equals the block), so the block is the widest group's pages, 116928 B."""
    assert {c.align for c in recipe.caches(_spec(), H200, 4)} == {1}
    aligns = {c.name: c.align for c in recipe.caches(_spec(), replace(H200, block_size=128), 4)}
    assert aligns == {"compressed_2": 19008, "compressed_1": 37440, "indexer_2": 4608, "indexer_1": 8640,
                      "window_128": 1, "compressor_ring": 1}


def test_does_block_size_128_give_more_kv_on_8_h200s_no_about_43x_less():
    """20 GiB of KV cache: 183,658 blocks of 116,928 B at the default 64 (47.38 requests of 128K, above);
    at 128 only 20 GiB // 9,884,160 = 2172 blocks of 2069 a request -> 1.05 requests."""
    p = _plan(replace(H200, block_size=128))
    blocks = 20 * 2**30 // p.bytes_per_block
    report = P.kv_report(p, blocks, LEN, "fp8_ds_mla", 0)
    assert blocks == 2172
    assert report.max_concurrency == 1.05


def test_per_token_bytes_of_the_full_length_caches():
    """(584 + 132) / 2 = 358 on layers 2, 8, 14; 584 + 132 = 716 on layer 20; nothing elsewhere."""
    per_layer = [recipe.token_bytes(a, H200) for a in v41.attention_layers(v41.text_config(CONFIG))]
    assert sum(per_layer) == 3 * 358 + 716
    assert per_layer[0] == per_layer[21] == 0


@pytest.mark.parametrize("change, field", [
    ({"compute_capability": 12.0}, "gpu"),
    ({"kv_cache_dtype": "bfloat16", "kv_bytes": 2}, "kv_cache_dtype"),
    ({"block_size": 32}, "block_size"),
    ({"hybrid_manager": False}, "disable_hybrid_kv_cache_manager"),
])
def test_unread_options_are_refused(change, field):
    with pytest.raises(GpuplanError) as e:
        recipe.caches(_spec(), replace(H200, **change), 4)
    assert e.value.field == field


def test_a_compressed_layer_below_every_source_is_refused_like_vllm():
    text = dict(CONFIG["text_config"], kv_source_layer_ids=[8, 14, 20])
    with pytest.raises(ConfigError):
        v41.attention_layers(v41.text_config(dict(CONFIG, text_config=text)))


def test_block_size_128_on_8_h200s_at_128k_end_to_end():
    """The whole estimate: blocks of 9,884,160 B; with two batches in flight a 128K request holds
    4 x (cdiv(127 + 2 x 8192, 32) + 1 = 517) + 131072 / 128 + 1 = 3093 blocks, and the concurrency falls below
    1/40 of the default block size's (116,928-byte blocks)."""
    import gpuplan.api_python as api

    spec = v41.model_spec(CONFIG, "deepseek-ai/DeepSeek-V4.1-Flash", 129280)
    default = api.estimate(spec, gpu="H200", tensor_parallel_size=8, max_model_len=LEN)
    big = api.estimate(spec, gpu="H200", tensor_parallel_size=8, max_model_len=LEN, block_size=128)
    assert (big.kv.bytes_per_block, big.kv.blocks_per_request) == (9_884_160, 3093)
    assert default.kv.bytes_per_block == 116928 and big.weights_bytes == default.weights_bytes
    assert big.kv.max_concurrency < default.kv.max_concurrency / 40
