"""DeepSeek-V4's KV cache layout, as vLLM plans it from 0.20 (read in the 0.20, 0.21 and 0.22 wheels).

Every DeepSeek-V4 layer owns several caches (vllm/models/deepseek_v4, v1/kv_cache_interface.py):
  * a sliding-window MLA cache (block 64, 584 B per token: 448 fp8 NoPE + 64 bf16 RoPE + 8 scale bytes);
  * on compressed layers (ratio 4 or 128) a compressed MLA cache: block = --block-size, holding
    block / ratio entries of 584 B, and the compressor's fp32 running state (a small sliding window);
  * on ratio-4 layers a lightning-indexer key cache (128 fp8 + 4 scale bytes per entry) and its compressor state.
Every page is padded to FlashMLA's 576-byte alignment. vLLM groups the full-length caches into one group and the
windowed ones by (block size, window) (kv_cache_utils.group_and_unify_kv_cache_specs), pads the windowed pages up
to a full-group page size, splits them into sub-groups of `num_layer_tuples` layers
(_get_kv_cache_groups_uniform_groups), and sizes the pool in layer tuples (_get_kv_cache_config_deepseek_v4).
All of it is exact arithmetic; nothing here is fitted.

Later releases (read in the 0.23-0.33 wheels) keep the per-layer specs and pages (fp8_ds_mla) and change the pool:
  * 0.23: the pool is cut per page size, with as many slots as the fullest group has (no longer whole tuples);
  * 0.26: window caches hold window - 1 + max_num_batched_tokens x max_concurrent_batches (async scheduling);
  * 0.27: window pages keep their own size, each group packs densely into one block, the widest group sets the
    bytes per block, and a request needs the groups' pages summed (concurrency);
  * 0.29: the generic packed grouping (kv_cache_planning._get_packed_kv_cache_groups) picks the layer repeats from
    the balanced buckets only, and the admission check counts a request's pages x the pool's bytes per block.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import GpuplanError
from ...model.spec import Attention
from ...report import KVCacheReport, KVGroup
from ...units import cdiv, largest_within, round_up
from .kv_usage import window_blocks

if TYPE_CHECKING:
    from .profiles import Profile

ENTRY_BYTES = 584  # fp8_ds_mla entry of DeepSeek-V4
ALIGN = 576  # FlashMLA page alignment
SWA_BLOCK = 64  # the window cache's block, fixed so its page equals a 256-token ratio-4 page
STATE_BLOCK = {4: 4, 128: 8}  # compressor-state blocks, fixed the same way
FP32 = 4
DEFAULT_BLOCK = 256  # DeepseekSparseSWABackend.get_preferred_block_size


@dataclass(frozen=True)
class Cache:
    """One of vLLM's per-layer KV specs."""

    name: str
    block_size: int
    page: int  # bytes per block, padded to the alignment
    window: int = 0  # 0: full length (an MLAAttentionSpec); else a SlidingWindowMLASpec
    layer: int = 0  # the decoder layer that owns it (pipeline stages own layer ranges)

    def blocks(self, seq_len: int, mnbt: int) -> int:
        """max_memory_usage_bytes // page: blocks one request of seq_len tokens holds."""
        if not self.window:
            return cdiv(seq_len, self.block_size)
        return window_blocks(self.window, mnbt, seq_len, self.block_size)


def layer_caches(a: Attention, block_size: int, layer: int = 0) -> list[Cache]:
    r = a.compress_ratio or 1
    out = [Cache("window", SWA_BLOCK, round_up(SWA_BLOCK * ENTRY_BYTES, ALIGN), a.window or 0, layer)]
    if r == 1:
        return out
    if block_size % r:
        raise GpuplanError("block_size", f"DeepSeek-V4's compressed layers need a block size divisible by {r}",
                           accepted=["256", "512"])
    coff = 2 if r == 4 else 1
    out.append(Cache(f"compressed_{r}", block_size, round_up(block_size // r * ENTRY_BYTES, ALIGN), 0, layer))
    sb = STATE_BLOCK[r]
    out.append(Cache(f"compressor_state_{r}", sb, round_up(sb * 2 * coff * a.head_dim * FP32, ALIGN), coff * r,
                     layer))
    if r == 4 and a.indexer_head_dim:
        idx_entry = a.indexer_head_dim + a.indexer_head_dim // 128 * 4  # fp8 values + one fp32 scale per 128
        out.append(Cache("indexer", block_size, round_up(block_size // r * idx_entry, ALIGN), 0, layer))
        out.append(Cache("indexer_state", sb, round_up(sb * 2 * coff * a.indexer_head_dim * FP32, ALIGN), coff * r,
                         layer))
    return out


@dataclass(frozen=True)
class Group:
    """A KV cache group: its layers' caches (one UniformTypeKVCacheSpecs), pages already padded."""

    caches: tuple[Cache, ...]

    @property
    def page_sum(self) -> int:
        return sum(c.page for c in self.caches)

    def layer_tuples(self) -> int:
        return Counter(c.page for c in self.caches).most_common(1)[0][1]

    def pages(self, seq_len: int, mnbt: int) -> int:
        return max(c.blocks(seq_len, mnbt) for c in self.caches)


@dataclass(frozen=True)
class DSV4Plan:
    """The grouped layout of one pipeline stage (same attributes the generic KVPlan exposes to the estimate)."""

    block_size: int
    groups: tuple[Group, ...]  # projected on the stage; a group with no layer there keeps its global caches
    tuple_bytes: int  # one block of each distinct full-group page size
    num_tuples: int  # tuple slots every group reserves (the admission check)
    pool_tuples: int  # tuple slots the stage's pool is cut into
    mnbt: int
    hybrid: bool = True
    padding_layers: int = 0
    pool_bytes: int = 0  # >= 0.23: the pool's bytes per block when it is no longer cut in whole layer tuples
    need_from_pool: bool = False  # >= 0.29: a request's bytes are its pages x the pool's bytes per block
    conc_sum_pages: bool = False  # >= 0.27: blocks per request are the groups' pages, summed

    @property
    def bytes_per_block(self) -> int:
        return self.pool_bytes or self.tuple_bytes * self.pool_tuples

    @property
    def num_groups(self) -> int:
        return len(self.groups)

    @property
    def group_size(self) -> int:
        return max(len(g.caches) for g in self.groups)

    @property
    def min_block_size(self) -> int:
        return min(c.block_size for g in self.groups for c in g.caches)


def _approximate_gcd(values: list[int], lower: int) -> int:
    """vLLM's choice of tuples per group: the d >= lower with least total round-up padding (ties: larger d)."""
    best_d, best_pad = lower, None
    for d in range(max(1, lower), max(values) + 1):
        pad = sum((d - x % d) % d for x in values)
        if best_pad is None or pad < best_pad or (pad == best_pad and d > best_d):
            best_d, best_pad = d, pad
    return best_d


def _repeats_0_29(buckets: list[list[Cache]]) -> int:
    """vLLM >= 0.29 (_get_packed_kv_cache_groups): layer repeats per group, chosen over the balanced buckets (equal
    layer counts per page size) only, at least the largest balanced bucket that mixes page sizes."""
    counts = [(len(set(Counter(c.page for c in cs).values())) == 1, len({c.page for c in cs}),
               Group(tuple(cs)).layer_tuples()) for cs in buckets]
    floor = max((n for bal, sizes, n in counts if bal and sizes > 1), default=0)
    if not floor:
        raise GpuplanError("model", "DeepSeek-V4 without ratio-4 layers: vLLM >= 0.29 then sizes the compressor "
                           "states as per-block state buckets, which gpuplan does not model")
    return _approximate_gcd([n for bal, _s, n in counts if bal], floor)


def plan(attns: list[Attention], block_size: int | None, mnbt: int, lo: int = 0, hi: int | None = None, *,
         profile: Profile | None = None, in_flight: int = 1) -> DSV4Plan:
    """Group the whole model's caches as vLLM does, then project the groups on the stage's layers [lo, hi).

    `profile` selects the release's planning (flags read in vLLM's source, see the branches below); without one,
    the 0.20-0.22 planning. `in_flight` is vLLM's max_concurrent_batches (max_in_flight_tokens, >= 0.26)."""
    flag = (lambda f: profile.flag_from(f)) if profile is not None else (lambda f: False)
    slots, packed, need_pool = flag("dsv4_slot_pool"), flag("dsv4_packed_pool"), flag("dsv4_pool_need")
    if flag("dsv4_in_flight"):
        mnbt *= in_flight  # SlidingWindowSpec holds window - 1 + max_in_flight_tokens
    bs = block_size or DEFAULT_BLOCK
    hi = len(attns) if hi is None else hi
    full: list[Cache] = []
    windowed: dict[tuple[int, int], list[Cache]] = {}
    for i, a in enumerate(attns):
        for c in layer_caches(a, bs, i):
            if c.window:
                windowed.setdefault((c.block_size, c.window), []).append(c)
            else:
                full.append(c)
    if not full:
        raise GpuplanError("model", "DeepSeek-V4 without compressed layers: vLLM's grouping needs at least one")
    full_group = Group(tuple(full))
    full_pages = sorted({c.page for c in full})
    counts = [full_group.layer_tuples()] + [Group(tuple(cs)).layer_tuples() for cs in windowed.values()]
    n_tuples = _repeats_0_29([full, *windowed.values()]) if need_pool else _approximate_gcd(counts, counts[0])
    groups = [full_group]
    padding = 0
    for cs in windowed.values():
        by_page: dict[int, list[Cache]] = {}
        for c in cs:
            if packed:  # >= 0.27: window pages keep their own size (the pool packs each group densely)
                by_page.setdefault(c.page, []).append(c)
                continue
            larger = [p for p in full_pages if p >= c.page]
            if not larger:
                raise GpuplanError("block_size", f"block size {bs} leaves DeepSeek-V4's window caches larger "
                                   "than its compressed pages; vLLM needs --block-size 256 or more",
                                   accepted=["256", "512"])
            by_page.setdefault(min(larger), []).append(Cache(c.name, c.block_size, min(larger), c.window, c.layer))
        sizes = {len(v) for v in by_page.values()}
        if len(sizes) != 1:  # vLLM asserts the same too
            raise GpuplanError("model", "DeepSeek-V4 window caches of one group have unequal layer counts per "
                               "page size; vLLM cannot lay them out")
        per_size = sizes.pop()
        n_sub = cdiv(per_size, n_tuples)
        tuples = list(zip(*by_page.values(), strict=True))
        for i in range(n_sub):
            groups.append(Group(tuple(c for t in tuples[i::n_sub] for c in t)))
        padding += n_sub * n_tuples - per_size
    # Projection on the stage (_project_kv_cache_groups_to_worker).
    projected, pool = [], 0
    for g in groups:
        mine = Group(tuple(c for c in g.caches if lo <= c.layer < hi))
        projected.append(mine if mine.caches else g)
        if mine.caches:
            pool = max(pool, mine.layer_tuples())
    first = projected[0]
    stage = [[c for c in g.caches if lo <= c.layer < hi] for g in groups]
    pool_bytes = 0
    if packed:  # >= 0.27 (_get_packed_kv_cache_layout / _get_kv_cache_bytes_per_block): the widest group's pages
        pool_bytes = max(sum(c.page for c in cs) for cs in stage)
    elif slots:  # 0.23-0.26 (_bucket_layers_by_page_size): per page size, as many slots as the fullest group has
        sizes = {c.page for cs in stage for c in cs}
        pool_bytes = sum(p * max(sum(c.page == p for c in cs) for cs in stage) for p in sizes)
    return DSV4Plan(bs, tuple(projected), sum({c.page for c in first.caches}),
                    max(g.layer_tuples() for g in projected), pool, mnbt, padding_layers=padding,
                    pool_bytes=pool_bytes, need_from_pool=need_pool, conc_sum_pages=packed)


def needed_bytes(p: DSV4Plan, seq_len: int) -> int:
    """_max_memory_usage_bytes_from_groups: every group reserves the global tuple layout (<= 0.28), or its pages of
    the pool's blocks (>= 0.29)."""
    if p.need_from_pool:
        return sum(g.pages(seq_len, p.mnbt) for g in p.groups) * p.bytes_per_block
    return sum(p.num_tuples * g.pages(seq_len, p.mnbt) * p.tuple_bytes for g in p.groups)


def blocks_per_request(p: DSV4Plan, seq_len: int) -> int:
    """get_max_concurrency_for_kv_cache_config: groups' usage over the first group's page (<= 0.26), or the groups'
    pages summed (>= 0.27)."""
    if p.conc_sum_pages:
        return sum(g.pages(seq_len, p.mnbt) for g in p.groups)
    usage = sum(g.pages(seq_len, p.mnbt) * g.page_sum for g in p.groups)
    return cdiv(usage, p.groups[0].page_sum)


def max_fitting_len(p: DSV4Plan, available: int, upper: int) -> int:
    return largest_within(lambda n: needed_bytes(p, n), available, upper)


def kv_report(p: DSV4Plan, num_blocks: int, max_model_len: int, kv_dtype: str, bytes_per_token: int,
              tokens_formula: str) -> KVCacheReport:
    need = blocks_per_request(p, max_model_len)
    conc = num_blocks / need if need else 0.0
    if tokens_formula == "concurrency_x_len":  # >= 0.21
        tokens = int(conc * max_model_len)
    else:  # 0.20: blocks per group x the smallest group block size (a compressor state's 4 tokens)
        tokens = num_blocks // p.num_groups * p.min_block_size
    groups = tuple(
        KVGroup("+".join(sorted({c.name for c in g.caches})), len(g.caches), max(c.page for c in g.caches),
                min(c.block_size for c in g.caches), g.pages(max_model_len, p.mnbt))
        for g in p.groups)
    return KVCacheReport(
        kv_cache_dtype=kv_dtype, block_size=p.block_size, bytes_per_token=bytes_per_token,
        bytes_per_block=p.bytes_per_block, num_groups=p.num_groups, group_size=p.group_size, groups=groups,
        hybrid_manager=True, num_gpu_blocks=num_blocks, kv_cache_tokens=tokens,
        max_concurrency=round(conc, 2), blocks_per_request=need, max_model_len=max_model_len,
        padding_layers=p.padding_layers)


def bytes_per_token(attns: list[Attention]) -> int:
    """Per-token bytes of the full-length caches (the window and state caches do not grow with the context)."""
    total = 0
    for a in attns:
        r = a.compress_ratio or 1
        if r > 1:
            total += ENTRY_BYTES / r
            if r == 4 and a.indexer_head_dim:
                total += (a.indexer_head_dim + a.indexer_head_dim // 128 * 4) / r
    return int(total)
