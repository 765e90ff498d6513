"""The KV cache of a model whose attention backends declare a block-outermost layout, as vLLM 0.33 plans it.

vLLM resolves one KV cache layout for the whole model from the layouts its backends declare
(v1/attention/backends/utils.py: get_supported_kv_cache_layouts, resolve_kv_cache_layout): backends that declare
nothing accept any layout, so a single backend declaring only BLHNC (Dots3Note's padded sparse MLA backend) makes
the model block-outermost. Standard models stay layer-outermost (LBNHC, planned in kv.py). A block-outermost pool
keeps, inside every block, one page of each layer of a group side by side, so pages of different sizes can share a
block, and vLLM groups such a model's layers its own way (v1/core/kv_cache_planning.py):

* get_kv_cache_groups: layers of one uniform type (UniformTypeKVCacheSpecs.is_uniform_type: one block size and,
  after the first layer's spec, FullAttentionSpec / MLAAttentionSpec alike, sliding windows of one size, ...)
  form one group whatever their page sizes; otherwise, with more than one page size,
* _get_packed_kv_cache_groups: layers go greedily, in the model's order, into the first bucket of their uniform
  type. A bucket is "balanced" when every page size in it has as many layers. The largest balanced bucket that
  mixes page sizes is kept whole and sets a floor; _approximate_gcd picks the repeats per group (the d >= floor
  with least round-up padding over the balanced buckets' layer counts per page size, ties to the larger d); each
  balanced bucket splits into cdiv(count, repeats) groups, taking every n-th repeat of its page-size pattern.
  Recurrent states (and, with no repeats chosen, sliding windows) are capped at the states the widest group's
  block already holds;
* _get_kv_cache_bytes_per_block: the widest group's pages summed, rounded up to the lcm of every layer's block
  stride alignment (a sparse MLA backend aligns blocks to whole cache rows, sparse_utils.align_blocks_to_rows; a
  backend with fixed kernel block sizes to whole kernel blocks, worker/utils.customize_attention_spec);
* num_blocks = available // bytes per block; the admission check (_max_memory_usage_bytes_from_groups) charges a
  request its pages in every group x the bytes per block, against the memory less one block (the null block);
* "GPU KV cache size" / "Maximum concurrency" (kv_cache_utils.get_kv_cache_capacity): concurrency = num_blocks /
  the groups' pages of one max_model_len request summed; tokens = int(concurrency x max_model_len).
With pipeline parallelism the groups are made for the whole model and projected on each stage
(_project_kv_cache_groups_to_worker): a stage's bytes per block are its own layers' pages; a group without a layer
on the stage still counts its pages.

`plan_caches` takes vLLM's per-layer specs (`Cache`) and is general; `layer_caches` turns an `Attention` into them
for the layer shapes read so far (Dots3Note's), and refuses the rest. DeepSeek-V4 keeps its own planner
(kv_dsv4.py), which has the same packing but per-release pool rules.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import GpuplanError
from ...model.spec import Attention, ModelSpec
from ...report import KVCacheReport, KVGroup
from ...units import cdiv, round_up
from .kv_dsv4 import _approximate_gcd

if TYPE_CHECKING:
    from .kv import KVContext
    from .profiles import Profile

# vLLM's spec classes, as far as grouping tells them apart
FULL = "full"  # FullAttentionSpec
MLA = "mla"  # MLAAttentionSpec (a FullAttentionSpec: one uniform type with FULL)
SLIDING = "sliding"  # SlidingWindowSpec
SLIDING_MLA = "sliding_mla"  # SlidingWindowMLASpec (a SlidingWindowSpec)
CHUNKED = "chunked"  # ChunkedLocalAttentionSpec
STATE = "state"  # MambaSpec / CircularBufferSpec: a fixed number of blocks per request
_FULL_TYPES = (FULL, MLA)
_WINDOW_TYPES = (SLIDING, SLIDING_MLA)

SPARSE_KERNEL_BLOCK = 64  # FLASH_ATTN_MLA_SPARSE: MultipleOf(64); DEEPSEEK_V32_INDEXER on CUDA: [64]
INDEXER_QUANT_BLOCK = 128  # the DSA indexer key cache: fp8 values + one fp32 scale per 128
SIXTEEN_BIT = ("auto", "bfloat16", "float16")


@dataclass(frozen=True)
class Cache:
    """One layer's KV cache spec (one entry of vLLM's kv_cache_spec dict)."""

    name: str
    spec: str  # FULL | MLA | SLIDING | SLIDING_MLA | CHUNKED | STATE
    block_size: int
    page: int  # page_size_bytes
    window: int = 0  # SLIDING*: sliding_window; CHUNKED: attention_chunk_size
    align: int = 1  # get_block_stride_alignment(), bytes
    state_blocks: int = 1  # STATE: blocks one request holds
    layer: int = 0  # the decoder layer that owns it (pipeline stages own layer ranges)

    def blocks(self, seq_len: int, in_flight: int) -> int:
        """cdiv(max_memory_usage_bytes, page): blocks one request of seq_len tokens holds."""
        # windows: window - 1 + max_in_flight_tokens, +1 for a window astride two blocks
        if self.spec in _WINDOW_TYPES:
            return cdiv(min(self.window - 1 + in_flight, seq_len), self.block_size) + 1
        if self.spec == CHUNKED:
            return cdiv(min(self.window + in_flight, seq_len), self.block_size)
        if self.spec == STATE:
            return self.state_blocks
        return cdiv(seq_len, self.block_size)


def _uniform_with(first: Cache, c: Cache) -> bool:
    """UniformTypeKVCacheSpecs.is_uniform_type, asked of a bucket whose first spec is `first`."""
    if c.block_size != first.block_size:
        return False
    if first.spec in _FULL_TYPES:
        return c.spec in _FULL_TYPES
    if first.spec == SLIDING:  # isinstance(spec, SlidingWindowSpec): SlidingWindowMLASpec too
        return c.spec in _WINDOW_TYPES and c.window == first.window
    if first.spec in (SLIDING_MLA, CHUNKED):
        return c.spec == first.spec and c.window == first.window
    return c.spec == STATE and c.page == first.page and c.state_blocks == first.state_blocks


def _most_per_page(caches: list[Cache]) -> int:
    """UniformTypeKVCacheSpecs.get_max_layers_per_page_size."""
    return Counter(c.page for c in caches).most_common(1)[0][1]


def group_caches(caches: list[Cache]) -> list[tuple[Cache, ...]]:
    """vLLM 0.33's KV cache groups of a block-outermost model (get_kv_cache_groups), in vLLM's order."""
    if not caches:
        return []
    if all(_uniform_with(caches[0], c) for c in caches):
        return [tuple(caches)]  # one uniform spec or one uniform type: a single group
    if len({c.page for c in caches}) <= 1:
        raise GpuplanError(
            "model",
            "a block-outermost KV layout with one page size and several layer types "
            "(vLLM's unified-page grouping under a block-outermost pool) is not modelled",
        )
    buckets: list[list[Cache]] = []
    for c in caches:
        for b in buckets:
            if _uniform_with(b[0], c):
                b.append(c)
                break
        else:
            buckets.append([c])
    info = []
    for b in buckets:
        by_page: dict[int, list[Cache]] = {}
        for c in b:
            by_page.setdefault(c.page, []).append(c)
        info.append((b, by_page, len({len(v) for v in by_page.values()}) == 1))
    floor = max((_most_per_page(b) for b, by_page, bal in info if bal and len(by_page) > 1), default=0)
    repeats = _approximate_gcd([_most_per_page(b) for b, _p, bal in info if bal], floor) if floor else None

    def n_groups(b: list[Cache], balanced: bool) -> int:
        return cdiv(_most_per_page(b), repeats) if balanced and repeats is not None else 1

    def widest(by_page: dict[int, list[Cache]], n: int) -> int:
        return sum(cdiv(len(v), n) * p for p, v in by_page.items())

    def is_state(b: list[Cache]) -> bool:
        return b[0].spec == STATE or (repeats is None and b[0].spec in _WINDOW_TYPES)

    anchor = max(widest(by_page, len(b) if is_state(b) else n_groups(b, bal)) for b, by_page, bal in info)
    groups: list[tuple[Cache, ...]] = []
    for b, by_page, bal in info:
        n = n_groups(b, bal)
        if anchor and is_state(b):  # a state group takes the states the block already fits, not a wider block
            n = max(n, cdiv(len(b), max(anchor // b[0].page, 1)))
        if n == 1:
            groups.append(tuple(b))
            continue
        # one layer of each page size per repeat (vLLM's zip drops the rest of an unbalanced bucket)
        pattern = list(zip(*by_page.values(), strict=False))
        if len(pattern) * len(by_page) != len(b):
            raise GpuplanError(
                "model",
                "vLLM 0.33 cannot split this model's KV cache: a bucket of unequal layer "
                "counts per page size would lose layers (its exact-partition check fails)",
            )
        for i in range(n):
            groups.append(tuple(c for rep in pattern[i::n] for c in rep))
    return groups


@dataclass(frozen=True)
class PackedPlan:
    """The block-outermost layout of one pipeline stage (the attributes the estimate reads of any plan)."""

    block_size: int
    # projected on the stage; a group with no layer there keeps its caches
    groups: tuple[tuple[Cache, ...], ...]
    stage_pages: tuple[int, ...]  # each group's pages summed over the stage's layers
    bytes_per_block: int
    in_flight: int  # max_in_flight_tokens
    hybrid: bool = True
    padding_layers: int = 0

    @property
    def num_groups(self) -> int:
        return len(self.groups)

    @property
    def group_size(self) -> int:
        return max((len(g) for g in self.groups), default=0)

    @property
    def min_block_size(self) -> int:
        return min(c.block_size for g in self.groups for c in g)


def bytes_per_block(stage: list[tuple[Cache, ...]]) -> int:
    """_get_kv_cache_bytes_per_block (block-outermost): the widest group's pages, rounded up to every layer's block
    stride alignment."""
    widest = max((sum(c.page for c in g) for g in stage), default=0)
    if not widest:
        return 0
    return round_up(widest, math.lcm(*(c.align for g in stage for c in g)))


def plan_caches(
    caches: list[Cache], in_flight: int, lo: int = 0, hi: int | None = None, *, hybrid: bool = True
) -> PackedPlan:
    """Group the whole model's caches, then project the groups on the stage's decoder layers [lo, hi)."""
    groups = group_caches(caches)
    hi = max((c.layer for c in caches), default=0) + 1 if hi is None else hi
    stage = [tuple(c for c in g if lo <= c.layer < hi) for g in groups]
    return PackedPlan(
        groups[0][0].block_size if groups else 0,
        tuple(s or g for s, g in zip(stage, groups, strict=True)),
        tuple(sum(c.page for c in s) for s in stage),
        bytes_per_block(stage),
        in_flight,
        hybrid,
    )


# ----------------------------------------------------------------------------- from gpuplan's Attention


def uses_packed(spec: ModelSpec) -> bool:
    return any(layer.attention.block_outermost for layer in spec.layers)


def block_size(ctx: KVContext) -> int:
    """The sparse MLA backends and the DSA indexer take blocks of a multiple of 64 tokens; vLLM's default 16 is
    raised to the smallest size every backend takes (platforms/interface.py _preferred_block_size_for_backends)."""
    bs = ctx.block_size or SPARSE_KERNEL_BLOCK
    if bs % SPARSE_KERNEL_BLOCK:
        raise GpuplanError(
            "block_size",
            f"this model's sparse MLA and indexer caches need a block size that is a "
            f"multiple of {SPARSE_KERNEL_BLOCK}",
            accepted=["64", "128", "256"],
        )
    return bs


def layer_caches(a: Attention, ctx: KVContext, bs: int, layer: int = 0) -> list[Cache]:
    """The caches vLLM 0.33 registers for one decoder layer of a block-outermost model, in its order.

    Read for Dots3Note (models/dots3_note/nvidia): a sliding layer is dense MLA on a Triton MLA backend
    (SlidingWindowMLASpec; kernel blocks MultipleOf(16), so no block stride alignment); a full layer is sparse MLA
    on a FLASH_ATTN_MLA_SPARSE backend (MLAAttentionSpec of the padded row, blocks aligned to whole rows) with the
    DSA indexer's key cache registered before it (MLAAttentionSpec, uint8, kernel blocks of 64)."""
    if a.kind != "mla" or not (a.window or a.sparse):
        raise GpuplanError(
            "model",
            "gpuplan's block-outermost KV planning is read for sliding-window MLA and "
            f"sparse MLA layers only (vLLM 0.33's Dots3Note); this model has a {a.kind} layer "
            "whose backend alignment it has not read",
        )
    if ctx.kv_cache_dtype not in SIXTEEN_BIT or ctx.kv_bytes != 2:
        raise GpuplanError(
            "kv_cache_dtype",
            "the padded sparse MLA backend of this model (FLASH_ATTN_MLA_SPARSE) "
            "keeps a 16-bit KV cache only",
            accepted=["auto", "bfloat16", "float16"],
        )
    row = (a.kv_row or a.kv_lora_rank + a.qk_rope_head_dim) * 2  # MLA: one latent row, no separate V
    if a.window:
        return [Cache(f"sliding_mla_{a.window}", SLIDING_MLA, bs, bs * row, window=a.window, layer=layer)]
    out = []
    if a.indexer_head_dim:
        entry = a.indexer_head_dim + a.indexer_head_dim // INDEXER_QUANT_BLOCK * 4
        kernel = math.gcd(SPARSE_KERNEL_BLOCK, bs)  # KVCacheSpec.get_block_stride_alignment of MultipleOf(64)
        out.append(
            Cache("indexer", MLA, bs, bs * entry, align=1 if kernel == bs else kernel * entry, layer=layer)
        )
    out.append(Cache("sparse_mla", MLA, bs, bs * row, align=row, layer=layer))
    return out


def bytes_per_token(a: Attention, ctx: KVContext) -> int:
    """Bytes a token takes in one layer's caches (the report's per-token figure)."""
    bs = block_size(ctx)
    return sum(c.page for c in layer_caches(a, ctx, bs)) // bs


def _promote(caches: list[Cache]) -> list[Cache]:
    """Hybrid manager off (unify_hybrid_kv_cache_specs -> _promote_local_kv_cache_specs): window layers are
    allocated full length (SlidingWindowMLASpec -> MLAAttentionSpec, the others -> FullAttentionSpec); pages and
    block sizes here are already the full layers'."""
    kinds = {c.spec for c in caches}
    if not kinds & set(_FULL_TYPES) or not kinds & {SLIDING, SLIDING_MLA, CHUNKED}:
        return caches
    to = {SLIDING_MLA: MLA, SLIDING: FULL, CHUNKED: FULL}
    return [
        Cache(c.name, to.get(c.spec, c.spec), c.block_size, c.page, 0, c.align, c.state_blocks, c.layer)
        for c in caches
    ]


def plan(spec: ModelSpec, lo: int, hi: int, ctx: KVContext, profile: Profile) -> PackedPlan:
    if not profile.at_least("0.33"):
        raise GpuplanError(
            "vllm_version",
            "gpuplan reads the block-outermost KV planning of vLLM 0.33 only; "
            "this model's KV layout in older releases is not modelled",
            accepted=["0.33"],
        )
    bs = block_size(ctx)
    caches: list[Cache] = []
    seen: dict[int, list[Cache]] = {}
    for i, layer in enumerate(spec.layers):
        a = layer.attention
        if not a.needs_kv:
            continue
        if id(a) not in seen:
            seen[id(a)] = layer_caches(a, ctx, bs)
        caches += [
            Cache(c.name, c.spec, c.block_size, c.page, c.window, c.align, c.state_blocks, i)
            for c in seen[id(a)]
        ]
    if not ctx.hybrid_manager:
        caches = _promote(caches)
    return plan_caches(caches, ctx.mnbt * ctx.in_flight_factor, lo, hi, hybrid=ctx.hybrid_manager)


# ----------------------------------------------------------------------------- what vLLM checks and prints


def blocks_per_request(p: PackedPlan, seq_len: int) -> int:
    """The groups' pages of one request summed (get_max_concurrency_for_kv_cache_config)."""
    return sum(max(c.blocks(seq_len, p.in_flight) for c in g) for g in p.groups)


def needed_bytes(p: PackedPlan, seq_len: int) -> int:
    """_max_memory_usage_bytes_from_groups: a request's pages x the pool's bytes per block."""
    return blocks_per_request(p, seq_len) * p.bytes_per_block


def max_fitting_len(p: PackedPlan, available: int, upper: int) -> int:
    """_estimate_max_model_len_from_groups, given the memory already less the null block."""
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if needed_bytes(p, mid) <= available:
            lo = mid
        else:
            hi = mid - 1
    return lo


def kv_report(
    p: PackedPlan, num_blocks: int, max_model_len: int, kv_dtype: str, bytes_per_token: int
) -> KVCacheReport:
    need = blocks_per_request(p, max_model_len)
    conc = num_blocks / need if need else 0.0
    groups = tuple(
        KVGroup(
            "+".join(dict.fromkeys(c.name for c in g)),
            len(g),
            max(c.page for c in g),
            min(c.block_size for c in g),
            max(c.blocks(max_model_len, p.in_flight) for c in g),
        )
        for g in p.groups
    )
    return KVCacheReport(
        kv_cache_dtype=kv_dtype,
        block_size=p.block_size,
        bytes_per_token=bytes_per_token,
        bytes_per_block=p.bytes_per_block,
        num_groups=p.num_groups,
        group_size=p.group_size,
        groups=groups,
        hybrid_manager=p.hybrid,
        num_gpu_blocks=num_blocks,
        kv_cache_tokens=int(conc * max_model_len),
        max_concurrency=round(conc, 2),
        blocks_per_request=need,
        max_model_len=max_model_len,
    )
