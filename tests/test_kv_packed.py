"""Block-outermost KV planning as vLLM 0.33 does it (src/gpuplan/engines/vllm/kv_packed.py), first for Dots3Note.

Dots3Note's layers as vLLM 0.33 registers them (models/dots3_note/nvidia, bf16 KV cache, block size 64: the sparse
backend takes MultipleOf(64), Triton MLA MultipleOf(16), the indexer [64] -> lcm 64):
  * 13 full layers, each the DSA indexer's key cache (MLAAttentionSpec, uint8, 128 + 128 / 128 x 4 = 132 B/token:
    page 64 x 132 = 8,448; kernel blocks [64] -> MultipleOf(64), which at block 64 asks no alignment) registered
    before the sparse MLA cache (MLAAttentionSpec with the head size padded to the sliding row 1024 + 64 = 1088:
    2,176 B/token, page 64 x 2,176 = 139,264; FLASH_ATTN_MLA_SPARSE aligns blocks to one row, 2,176 B);
  * 33 sliding layers: SlidingWindowMLASpec, window 513, 1088 x 2 = 2,176 B/token, page 139,264, no alignment.
The padded sparse backend declares only BLHNC, so the layout is block-outermost. Not one uniform type (MLA and
sliding-window MLA), two page sizes -> _get_packed_kv_cache_groups:
  buckets [13 indexer + 13 MLA] (balanced, 2 page sizes: floor 13) and [33 sliding] (balanced, one size);
  repeats = _approximate_gcd([13, 33], lower 13): padding d=13: 0 + 6 = 6, 14: 1 + 9, 15: 2 + 12, 16: 3 + 15,
  17: 4 + 1 = 5, 18: 5 + 3, ... 33: 20 + 0 -> 17; full bucket cdiv(13, 17) = 1 group, sliding cdiv(33, 17) = 2:
  groups 26 caches (13 x 147,712 = 1,920,256 B), 17 sliding (2,367,488 B), 16 sliding (2,228,224 B).
Bytes per block = the widest group rounded up to lcm(2176, 1, 1): 2,367,488 = 1,088 x 2,176.
A request of L tokens (max_in_flight_tokens = 2 concurrent batches x 8,192 = 16,384) holds cdiv(L, 64) pages in
the full group and cdiv(min(512 + 16,384, L), 64) + 1 in each sliding group.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_dots3_note  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm import kv_packed as P
from gpuplan.engines.vllm.estimate import request_kv_bytes
from gpuplan.errors import GpuplanError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "dots3_note.json").read_text())
KV = 10 * 2**30  # --kv-cache-memory-bytes 10 GiB: 10,737,418,240 B
BLOCK = 17 * 139_264  # 2,367,488
L128K = 131_072


def _dots3():
    return build_spec(FX["models"]["dots3_note/dots3-note-prev"]["config"], "dots-studio/dots3-note-prev")


def _run(**kw):
    base = dict(gpu="H100", tensor_parallel_size=8, max_model_len=L128K, kv_cache_memory_bytes=KV)
    return estimate(_dots3(), **{**base, **kw})


def test_dots3_packs_three_groups_into_2_367_488_byte_blocks() -> None:
    """10,737,418,240 // 2,367,488 = 4,535 blocks."""
    r = _run()
    assert r.kv.block_size == 64
    assert [(g.kind, g.num_layers, g.page_bytes) for g in r.kv.groups] == [
        ("indexer+sparse_mla", 26, 139_264),
        ("sliding_mla_513", 17, 139_264),
        ("sliding_mla_513", 16, 139_264),
    ]
    assert r.kv.bytes_per_block == BLOCK == 2_367_488
    assert r.kv.num_gpu_blocks == KV // BLOCK == 4_535
    # per token: 13 x (2,176 + 132) + 33 x 2,176
    assert r.kv.bytes_per_token == 101_812


def test_repeats_per_group_are_17_for_13_full_and_33_sliding_layers() -> None:
    assert P._approximate_gcd([13, 33], 13) == 17
    assert P._approximate_gcd([13, 26], 13) == 13  # no padding at all


def test_one_128k_request_takes_2578_pages_so_4535_blocks_serve_1_76_of_them() -> None:
    """Pages at L = 131,072: full 131,072 / 64 = 2,048; each sliding group cdiv(min(16,896, 131,072), 64) + 1 = 265:
    2,048 + 2 x 265 = 2,578. Concurrency 4,535 / 2,578 = 1.759 -> 1.76x; tokens int(1.759 x 131,072) = 230,570.
    One request needs 2,578 x 2,367,488 = 6,103,384,064 B (5.68 GiB)."""
    r = _run()
    assert [g.blocks_per_request for g in r.kv.groups] == [2_048, 265, 265]
    assert r.kv.blocks_per_request == 2_578
    assert r.kv.max_concurrency == 1.76
    assert r.kv_cache_tokens == int(4_535 / 2_578 * L128K) == 230_570
    dep = Deployment(
        gpu_name="H100", gpu_memory_bytes=80 * 2**30, tensor_parallel_size=8, max_model_len=L128K
    )
    assert request_kv_bytes(_dots3(), dep, L128K) == 2_578 * BLOCK == 6_103_384_064
    assert r.fits


def test_the_longest_context_10_gib_hold_is_256_256_tokens() -> None:
    """At the config's 524,288: 8,192 + 530 = 8,722 pages x 2,367,488 = 20,649,230,336 B = 19.23 GiB > 10 GiB.
    The fit is checked against 10 GiB less the null block: (10,737,418,240 - 2,367,488) // 2,367,488 = 4,534 pages,
    530 of them the sliding groups' -> 4,004 full pages x 64 = 256,256 tokens."""
    r = _run(max_model_len=524_288)
    assert not r.fits
    assert "19.23 GiB KV cache is needed" in r.reason
    assert r.max_model_len_fit == (4_534 - 530) * 64 == 256_256
    assert _run(max_model_len=256_256).fits
    assert not _run(max_model_len=256_257).fits


def test_block_size_128_pads_the_block_to_whole_rows_and_indexer_kernel_blocks() -> None:
    """--block-size 128: pages 278,528 (MLA and sliding) and 16,896 (indexer), whose MultipleOf(64) kernel blocks
    make it align to a 64-token page, 8,448 B. Groups as before; the widest 17 x 278,528 = 4,734,976 rounds up to
    lcm(2,176, 8,448) = 143,616: 33 x 143,616 = 4,739,328 B -> 10 GiB // 4,739,328 = 2,265 blocks."""
    r = _run(block_size=128)
    assert r.kv.bytes_per_block == 4_739_328
    assert r.kv.num_gpu_blocks == 2_265
    # 1,024 + 2 x (cdiv(16,896, 128) + 1 = 133)
    assert r.kv.blocks_per_request == 1_290


def test_pipeline_stages_pack_their_own_layers_and_share_the_smaller_pool() -> None:
    """PP 2 x TP 4: stages [0, 23) and [23, 46). Full layers 0, 1, 5, ..., 45: 7 | 6. The 33 sliding layers split
    every other one into the 17- and 16-layer groups: 8 + 8 on stage 0, 9 + 8 on stage 1. Stage 0's widest group is
    8 x 139,264 = 1,114,112 (full 7 x 147,712 = 1,033,984) -> 9,637 blocks; stage 1's 9 x 139,264 = 1,253,376 ->
    8,566, which both use. With two stages the V2 model runner keeps pp + 1 = 3 batches in flight
    (max_concurrent_batches), so a sliding group holds cdiv(512 + 3 x 8192, 64) + 1 = 393 pages: a request takes
    2,048 + 2 x 393 = 2,834, and concurrency is 8,566 / 2,834 = 3.02x."""
    r = _run(tensor_parallel_size=4, pipeline_parallel_size=2)
    assert [(s["layers"], s["num_blocks"]) for s in r.per_stage] == [([0, 23], 9_637), ([23, 46], 8_566)]
    assert r.kv.bytes_per_block == 1_253_376
    assert (r.kv.blocks_per_request, r.kv.max_concurrency) == (2_834, 3.02)
    assert r.kv_cache_tokens == int(8_566 / 2_834 * L128K)


def test_with_the_hybrid_manager_off_the_sliding_layers_join_one_full_length_group() -> None:
    """unify_hybrid_kv_cache_specs: SlidingWindowMLASpec -> MLAAttentionSpec, so every cache is a FullAttentionSpec
    and the model is one group: 13 x (139,264 + 8,448) + 33 x 139,264 = 6,515,968, rounded up to 2,176 ->
    2,995 x 2,176 = 6,517,120 B per block; a 128K request takes 2,048 pages."""
    r = _run(disable_hybrid_kv_cache_manager=True)
    assert (r.kv.num_groups, r.kv.bytes_per_block, r.kv.blocks_per_request) == (1, 6_517_120, 2_048)
    assert r.kv.num_gpu_blocks == KV // 6_517_120 == 1_647


def test_dots3_refuses_an_fp8_kv_cache() -> None:
    # the padded sparse MLA backend (FLASH_ATTN_MLA_SPARSE) keeps auto / bfloat16 / float16 only
    with pytest.raises(GpuplanError, match="16-bit"):
        _run(kv_cache_dtype="fp8")


# ----------------------------------------------------------------------------- the planner on its own


def _c(name, spec, page, n, *, window=0, align=1, bs=16):
    return [P.Cache(f"{name}{i}", spec, bs, page, window=window, align=align) for i in range(n)]


def test_one_uniform_type_of_two_page_sizes_is_one_group() -> None:
    """MLA 1,000 B (aligned to 8) and indexer 300 B pages are both FullAttentionSpec: one group, 10 x 1,300 =
    13,000 B per block (already a multiple of lcm(8, 1))."""
    caches = [
        c
        for pair in zip(_c("idx", P.MLA, 300, 10), _c("mla", P.MLA, 1_000, 10, align=8), strict=True)
        for c in pair
    ]
    plan = P.plan_caches(caches, in_flight=256)
    assert plan.num_groups == 1 and plan.bytes_per_block == 13_000
    assert P.blocks_per_request(plan, 1_000) == 63  # cdiv(1,000, 16)


def test_without_a_mixed_balanced_bucket_sliding_layers_fill_the_full_groups_block() -> None:
    """4 full layers of 1,000 B and 9 sliding (window 128) of 600 B: no balanced bucket mixes page sizes, so no
    repeats; the sliding bucket counts as state: anchor = max(4,000, one layer 600) = 4,000 holds 4,000 // 600 = 6
    sliding pages -> cdiv(9, 6) = 2 groups of 5 and 4 layers. Block 4,000 B. A 1,000-token request at 256 in
    flight: 63 full pages + 2 x (cdiv(min(127 + 256, 1,000), 16) + 1 = 25) = 113."""
    plan = P.plan_caches(_c("f", P.FULL, 1_000, 4) + _c("s", P.SLIDING, 600, 9, window=128), in_flight=256)
    assert [len(g) for g in plan.groups] == [4, 5, 4]
    assert plan.bytes_per_block == 4_000
    assert P.blocks_per_request(plan, 1_000) == 113
    assert P.needed_bytes(plan, 1_000) == 113 * 4_000


def test_a_bucket_that_would_lose_layers_is_refused() -> None:
    """A sliding bucket of three 600-B and one 300-B pages (unbalanced) split into cdiv(4, 2,000 // 600) = 2 groups
    would zip to one pattern repeat and drop two layers; vLLM's exact-partition check fails."""
    caches = (
        _c("f", P.FULL, 1_000, 2)
        + _c("s", P.SLIDING, 600, 3, window=128)
        + _c("t", P.SLIDING, 300, 1, window=128)
    )
    with pytest.raises(GpuplanError, match="lose layers"):
        P.plan_caches(caches, in_flight=256)
