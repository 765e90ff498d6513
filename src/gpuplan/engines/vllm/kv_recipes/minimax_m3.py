"""MiniMax-M3's KV caches as vLLM 0.33 plans them (models/minimax_m3/{nvidia/model.py, common/indexer.py,
common/sparse_attention.py}; v1/core/kv_cache_planning.py).

Per decoder layer, in registration order:
- a plain layer (vLLM's generic Attention): FullAttentionSpec of max(1, kv heads / TP) heads, K and V of head_dim,
  in the KV cache dtype;
- a sparse layer: first the indexer's side cache (MiniMaxM3IndexerCache, registered while the layer builds its
  indexer): MLAAttentionSpec of one head of the index dim, key only (MLA's head_size_v is 0), in the indexer dtype
  (attention_config.indexer_kv_dtype, "auto" = bf16 for M3, independent of --kv-cache-dtype); then the layer's own
  main cache, the same FullAttentionSpec as a plain layer.

Block size (platforms/interface.py _preferred_block_size_for_backends): the default 16 is not taken by the M3
sparse backend (MINIMAX_M3_SPARSE: kernel blocks [128]) nor by its indexer backend ([128]); the candidates are the
lcms of one size per backend, the dense layers' FlashAttention adding MultipleOf(16), so 128. A --block-size must be
a multiple of 128 (supports_block_size). Fixed kernel sizes make customize_attention_spec align those specs' block
strides to whole 128-token kernel blocks; every page here is a whole number of those, so the alignment adds nothing.

Layout and grouping: no backend of this model on CUDA declares a layout except FlashInfer on Blackwell (LBHNC,
BLHNC) and the NVFP4 MSA backend (LBHNC); the specs mix head/page shapes, so resolve_kv_cache_layout keeps the
block-compact candidates and picks LBNHC (LBHNC on Blackwell): layer-outermost. MLAAttentionSpec registers with
FullAttentionSpec as its uniform type base, and every spec has the same block size and DCP sharding, so
get_kv_cache_groups makes one UniformTypeKVCacheSpecs group of all layers whatever their page sizes
(validate_kv_cache_layout allows mixed pages in one group under a block-compact layout). Its bytes per block are
every layer's block stride summed (_get_kv_cache_bytes_per_block, layer-outer branch): each page rounded to its
alignment, i.e. the pages summed. A request needs cdiv(len, block) blocks (max_memory_usage_bytes of a uniform-type
group: the most pages any layer needs x the summed page). kv_packed's plan of one uniform group with alignment 1
gives exactly these numbers, so the recipe feeds it.
"""

from __future__ import annotations

from ....errors import GpuplanError
from ....model.spec import Attention, ModelSpec
from .. import kv_packed as P

NAME = "minimax_m3"
KERNEL_BLOCK = 128  # MINIMAX_M3_SPARSE / MINIMAX_M3_SPARSE_INDEXER get_supported_kernel_block_sizes
INDEXER_BYTES = 2  # the indexer cache in bf16 (indexer_kv_dtype "auto")
# --kv-cache-dtype the sparse backend's Triton path (Hopper; MSA on Blackwell) takes; nvfp4 needs the SM100 MSA
# backend and packs its own pages (customize_spec), which is not modelled.
KV_DTYPES = ("auto", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2")


def _index_dim(a: Attention) -> int:
    return int(dict(a.recipe_args).get("index_dim", 0))


def _main_token(a: Attention, ctx) -> int:
    """FullAttentionSpec bytes per token: heads on the rank x (K + V) x head_dim x the KV dtype's bytes."""
    return max(1, a.num_kv_heads // ctx.tp) * 2 * a.head_dim * int(ctx.kv_bytes)


def _block_size(ctx) -> int:
    bs = ctx.block_size or KERNEL_BLOCK
    if bs % KERNEL_BLOCK:
        raise GpuplanError("block_size", f"MiniMax-M3's sparse attention and indexer backends page in blocks of "
                           f"{KERNEL_BLOCK} tokens; a block size must be a multiple of it",
                           accepted=["128", "256", "512"])
    return bs


def _check(ctx) -> None:
    if ctx.kv_cache_dtype not in KV_DTYPES:
        raise GpuplanError("kv_cache_dtype", "MiniMax-M3's sparse attention keeps a 16-bit or FP8 KV cache on the "
                           "paths gpuplan has read (nvfp4 needs the SM100 MSA backend's own page packing)",
                           accepted=list(KV_DTYPES))
    if int(ctx.kv_bytes) != ctx.kv_bytes:
        raise GpuplanError("kv_cache_dtype", f"a {ctx.kv_bytes}-byte KV element is not modelled for MiniMax-M3",
                           accepted=list(KV_DTYPES))


def caches(spec: ModelSpec, ctx, ssm_bytes: int) -> list[P.Cache]:
    _check(ctx)
    bs = _block_size(ctx)
    out: list[P.Cache] = []
    for i, layer in enumerate(spec.layers):
        a = layer.attention
        if not a.needs_kv:
            continue
        if a.recipe != NAME:
            raise GpuplanError("model", f"a {a.kind} layer beside MiniMax-M3's layers is not modelled")
        idx = _index_dim(a)
        if idx:
            out.append(P.Cache("indexer", P.MLA, bs, bs * idx * INDEXER_BYTES, layer=i))
        out.append(P.Cache("full", P.FULL, bs, bs * _main_token(a, ctx), layer=i))
    return out


def token_bytes(a: Attention, ctx) -> int:
    _check(ctx)
    return _main_token(a, ctx) + _index_dim(a) * INDEXER_BYTES


P.register_recipe(NAME, P.Recipe(caches=caches, token_bytes=token_bytes))
