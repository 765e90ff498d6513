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
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ...errors import GpuplanError
from ...model.spec import Attention, ModelSpec
from ...report import KVCacheReport, KVGroup
from ...units import DTYPE_BYTES, cdiv, largest_within, round_up
from .kv_dsv4 import _approximate_gcd
from .kv_usage import chunk_blocks, window_blocks

if TYPE_CHECKING:
    from .kv import KVContext
    from .profiles import Profile

# vLLM's spec classes, as far as grouping tells them apart
FULL = "full"  # FullAttentionSpec
MLA = "mla"  # MLAAttentionSpec (a FullAttentionSpec: one uniform type with FULL)
SLIDING = "sliding"  # SlidingWindowSpec
SLIDING_MLA = "sliding_mla"  # SlidingWindowMLASpec (a SlidingWindowSpec)
CHUNKED = "chunked"  # ChunkedLocalAttentionSpec
STATE = "state"  # MambaSpec: a fixed number of blocks per request
RING = "ring"  # CircularBufferSpec: one block per request for its whole life, its own (small) block size
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
    replicated: bool = False  # STATE: MambaSpec.tp_replicated (every TP rank holds the whole state)

    def blocks(self, seq_len: int, in_flight: int) -> int:
        """cdiv(max_memory_usage_bytes, page): blocks one request of seq_len tokens holds."""
        if self.spec in _WINDOW_TYPES:
            return window_blocks(self.window, in_flight, seq_len, self.block_size)
        if self.spec == CHUNKED:
            return chunk_blocks(self.window, in_flight, seq_len, self.block_size)
        if self.spec == STATE:
            return self.state_blocks
        if self.spec == RING:
            return 1  # CircularBufferSpec.max_memory_usage_bytes: one page for the request's life
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
    if first.spec == RING:  # CircularBufferSpec.is_uniform_with_collection
        return c.spec == RING
    # MambaSpec.is_uniform_with_collection: one page, one count of state blocks, one tp_replicated
    return (
        c.spec == STATE
        and c.page == first.page
        and c.state_blocks == first.state_blocks
        and c.replicated == first.replicated
    )


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
        return b[0].spec in (STATE, RING) or (repeats is None and b[0].spec in _WINDOW_TYPES)

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


@dataclass(frozen=True)
class Recipe:
    """How one family's layers become vLLM 0.33 cache specs (engines/vllm/kv_recipes/<family>.py).

    caches(spec, ctx, ssm_bytes): every layer's `Cache`s in vLLM's registration order, each with its decoder layer;
    token_bytes(attention, ctx): one layer's bytes per token for the report's per-token figure."""

    caches: Callable[[ModelSpec, KVContext, int], list[Cache]]
    token_bytes: Callable[[Attention, KVContext], int]
    # Why the family is planned for one pipeline stage only ("": any stage split)
    single_stage: str = ""


RECIPES: dict[str, Recipe] = {}


def register_recipe(name: str, recipe: Recipe) -> None:
    if name in RECIPES:
        raise ValueError(f"cache recipe {name!r} registered twice")
    RECIPES[name] = recipe


def _recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise GpuplanError("model", f"no KV cache recipe {name!r} is registered") from None


def uses_packed(spec: ModelSpec) -> bool:
    # A cache recipe plans through here too when its layout is layer-outermost (one uniform group plans alike).
    return any(layer.attention.block_outermost or layer.attention.recipe for layer in spec.layers)


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
    if a.recipe:
        return _recipe(a.recipe).token_bytes(a, ctx)
    if a.kind == "mamba":
        return 0  # a recurrent state: no per-token bytes
    if _is_qsa(a):
        return _qsa_token(a, ctx) + a.indexer_head_dim * 2 // a.compress_ratio
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
    return [replace(c, spec=to.get(c.spec, c.spec), window=0) for c in caches]


def plan(
    spec: ModelSpec, lo: int, hi: int, ctx: KVContext, profile: Profile, ssm_bytes: int = 4
) -> PackedPlan:
    if not profile.at_least("0.33"):
        raise GpuplanError(
            "vllm_version",
            "gpuplan reads the block-outermost KV planning of vLLM 0.33 only; "
            "this model's KV layout in older releases is not modelled",
            accepted=["0.33"],
        )
    recipes = {layer.attention.recipe for layer in spec.layers if layer.attention.recipe}
    if recipes:
        if len(recipes) > 1:
            raise GpuplanError("model", f"layers of several cache recipes in one model: {sorted(recipes)}")
        recipe = _recipe(recipes.pop())
        if recipe.single_stage and (lo, hi) != (0, len(spec.layers)):
            raise GpuplanError("pipeline_parallel_size", recipe.single_stage, accepted=["1"])
        caches = recipe.caches(spec, ctx, ssm_bytes)
        return plan_caches(caches, ctx.mnbt * ctx.in_flight_factor, lo, hi, hybrid=ctx.hybrid_manager)
    if any(_is_qsa(layer.attention) or layer.attention.kind == "mamba" for layer in spec.layers):
        caches = qsa_hybrid_caches(spec, ctx, ssm_bytes)
        if (lo, hi) != (0, len(spec.layers)):
            raise GpuplanError(
                "pipeline_parallel_size",
                "gpuplan plans this model's packed KV cache (QSA + recurrent states) for one "
                "pipeline stage only",
                accepted=["1"],
            )
        return plan_caches(caches, ctx.mnbt * ctx.in_flight_factor, lo, hi, hybrid=True)
    bs = block_size(ctx)
    caches: list[Cache] = []
    seen: dict[int, list[Cache]] = {}
    for i, layer in enumerate(spec.layers):
        a = layer.attention
        if not a.needs_kv:
            continue
        if id(a) not in seen:
            seen[id(a)] = layer_caches(a, ctx, bs)
        caches += [replace(c, layer=i) for c in seen[id(a)]]
    if not ctx.hybrid_manager:
        caches = _promote(caches)
    return plan_caches(caches, ctx.mnbt * ctx.in_flight_factor, lo, hi, hybrid=ctx.hybrid_manager)


# ----------------------------------------------------------------------------- QSA layers beside recurrent states
# Read for Qwen4Exp (models/qwen4_exp/nvidia, common/qsa_cache.py; vLLM 0.33). A QSA layer registers, in this order,
# the indexer's raw-key ring (QSAKeyStateCache: CircularBufferSpec), its compressed key cache (QSACompressedKeyCache:
# MLAAttentionSpec with tokens_per_state = the compression ratio) and the main K/V page (FullAttentionSpec). The QSA
# state backend declares only BLNHC / BLHNC, which makes the whole pool block-outermost. Recurrent layers are
# MambaSpecs padded to the attention page.

QSA_KERNEL_BLOCK = 16  # Qwen4ExpQSAFlashAttentionBackend: MultipleOf(16); the QSA state backend takes any
GDN_CHECKPOINT_ALIGNMENT = 64  # FLASHINFER_GDN_CHECKPOINT_ALIGNMENT (mamba/gdn/qwen_gdn_linear_attn.py)
ROPE_AXES, BF16_PER_INT64 = 3, 4  # QSAKeyStateCache keeps 3 int64 MRoPE positions after the key (4 bf16 each)
QSA_KV_DTYPES = ("auto", "bfloat16", "fp8", "fp8_e4m3")


def _is_qsa(a: Attention) -> bool:
    return a.block_outermost and a.kind == "full" and a.compress_ratio > 0 and a.indexer_head_dim > 0


def _qsa_token(a: Attention, ctx: KVContext) -> int:
    """The main page's bytes per token: FullAttentionSpec of max(1, kv heads / tp) heads, K and V of head_dim,
    bf16 or (fp8) one byte."""
    return max(1, a.num_kv_heads // ctx.tp) * 2 * a.head_dim * int(ctx.kv_bytes)


def _state_page(a: Attention, ctx: KVContext, ssm_bytes: int) -> int:
    """MambaSpec.page_size_bytes before padding: the state tensors of one request on one rank. A state with no split
    dimension is tp_replicated (Qwen4Exp's PLE conv state: short_conv_state_shape with tp_world_size=1)."""
    total = 0
    for st in a.state:
        dt = (
            ssm_bytes
            if st.dtype == "ssm"
            else ctx.model_dtype_bytes
            if st.dtype == "conv"
            else DTYPE_BYTES[st.dtype]
        )
        total += st.rank_numel(ctx.tp) * dt
    return total


def _replicated(a: Attention) -> bool:
    return all(st.tp_dim is None for st in a.state)


def _exports_checkpoints(states: list[Attention], ctx: KVContext) -> bool:
    """get_mamba_prefill_checkpoint_alignment is not None: in align mode every Mamba layer declares a checkpoint
    alignment, and then every one of them keeps a prefill-checkpoint block (num_prefill_checkpoint_blocks=1).
    estimate.py decides which state kinds do (ctx.mamba_checkpoint: Qwen's GDN on FlashInfer, with Qwen4Exp's PLE
    short conv beside it)."""
    for a in states:
        if a.state_kind not in ("gdn", "ple_conv"):
            raise GpuplanError("model", f"a {a.state_kind} state in a block-outermost KV layout is not modelled")
    return bool(states) and all(a.state_kind in ctx.mamba_checkpoint for a in states)


def qsa_hybrid_caches(spec: ModelSpec, ctx: KVContext, ssm_bytes: int) -> list[Cache]:
    """Every layer's caches of a QSA + recurrent-state model at vLLM 0.33's block size, in vLLM's order.

    Block size (platforms/interface.py update_block_size_for_backend, _align_hybrid_block_size): vLLM's default 16
    (both backends take it), then the attention page of one token, FullAttentionSpec(max(1, kv/tp) heads, head_dim)
    in the KV dtype, must cover the largest MambaSpec page of get_mamba_specs_from_config (GDN's, or the PLE conv
    state's, which no TP rank divides): block = a x cdiv(mamba page, a x page per token), a = the block size
    (lcm with the checkpoint grid 64 in align mode when every layer exports checkpoints), rounded up to 16; a larger
    --block-size stays. Every MambaSpec is then padded to block x page per token (none when equal)."""
    if ctx.kv_cache_dtype not in QSA_KV_DTYPES:
        raise GpuplanError(
            "kv_cache_dtype",
            "Qwen4Exp's QSA attention keeps a BF16 or FP8-e4m3 main KV cache only",
            accepted=list(QSA_KV_DTYPES),
        )
    if not ctx.hybrid_manager:
        raise GpuplanError("model", "this model's recurrent states need vLLM's hybrid KV cache manager")
    if ctx.mamba_mode not in ("none", "align"):
        raise GpuplanError("model", f"mamba_cache_mode {ctx.mamba_mode!r} is not modelled for this model")
    qsa = [layer.attention for layer in spec.layers if _is_qsa(layer.attention)]
    states = [layer.attention for layer in spec.layers if layer.attention.kind == "mamba"]
    if not qsa or any(not a.block_outermost for a in states):
        raise GpuplanError(
            "model", "recurrent states in a block-outermost KV layout need QSA attention layers"
        )
    per_tok = _qsa_token(qsa[0], ctx)
    mamba = max(_state_page(a, ctx, ssm_bytes) for a in states) if states else 0
    bs = ctx.block_size or QSA_KERNEL_BLOCK
    if bs % QSA_KERNEL_BLOCK:
        raise GpuplanError(
            "block_size",
            f"this model's QSA attention needs a block size that is a multiple of {QSA_KERNEL_BLOCK}",
            accepted=["16", "32", "64"],
        )
    checkpoints = _exports_checkpoints(states, ctx)
    padded = None
    if mamba:
        step = math.lcm(bs, GDN_CHECKPOINT_ALIGNMENT) if checkpoints else bs
        need = round_up(step * cdiv(mamba, step * per_tok), QSA_KERNEL_BLOCK)
        bs = max(bs, need)
        if bs * per_tok != mamba:
            padded = bs * per_tok
    blocks = (2 + int(checkpoints)) if ctx.mamba_mode == "align" else 1
    out: list[Cache] = []
    for i, layer in enumerate(spec.layers):
        a = layer.attention
        if a.kind == "mamba":
            page = padded if padded is not None else _state_page(a, ctx, ssm_bytes)
            out.append(
                Cache(a.state_kind, STATE, bs, page, state_blocks=blocks, layer=i, replicated=_replicated(a))
            )
        elif _is_qsa(a):
            r = a.compress_ratio
            cap = round_up(r, r)  # round_up(ratio + speculative tokens, ratio); no drafts
            width = a.indexer_head_dim
            # model_config.uses_mrope: the ring keeps each token's 3 MRoPE positions after its key
            if any(rc.mrope for rc in spec.rope_caches):
                width = round_up(width, BF16_PER_INT64) + ROPE_AXES * BF16_PER_INT64
            out += [
                Cache("qsa_ring", RING, cap, cap * width * 2, layer=i),
                # the indexer key cache: bf16 (attention_config's indexer_kv_dtype default), bs / ratio rows a block
                Cache("qsa_compressed", MLA, bs, bs // r * a.indexer_head_dim * 2, layer=i),
                Cache("qsa", FULL, bs, bs * _qsa_token(a, ctx), layer=i),
            ]
        elif a.needs_kv:
            raise GpuplanError("model", f"a {a.kind} layer beside QSA layers is not modelled")
    return out


# ----------------------------------------------------------------------------- what vLLM checks and prints


def blocks_per_request(p: PackedPlan, seq_len: int) -> int:
    """The groups' pages of one request summed (get_max_concurrency_for_kv_cache_config)."""
    return sum(max(c.blocks(seq_len, p.in_flight) for c in g) for g in p.groups)


def needed_bytes(p: PackedPlan, seq_len: int) -> int:
    """_max_memory_usage_bytes_from_groups: a request's pages x the pool's bytes per block."""
    return blocks_per_request(p, seq_len) * p.bytes_per_block


def max_fitting_len(p: PackedPlan, available: int, upper: int) -> int:
    """_estimate_max_model_len_from_groups, given the memory already less the null block."""
    return largest_within(lambda n: needed_bytes(p, n), available, upper)


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
