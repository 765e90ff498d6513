"""DeepSeek-V4.1's KV caches as vLLM 0.33 registers them on Hopper (models/deepseek_v41, NVIDIA path).

Read in attention.py (DeepseekV4Attention, DeepseekV4IndexerCache), compressor.py (CompressorStateCache),
v1/attention/backends/mla/sparse_swa.py (DeepseekV4SWACache) and nvidia/model.py (_select_dsv4_attn_cls):

* every decoder layer owns a sliding-window cache (SlidingWindowMLASpec) of a fixed 32-token block, whatever
  --block-size says, holding one packed fp8_ds_mla record per token;
* only the layers named in kv_source_layer_ids own a compressed cache (MLAAttentionSpec, block = --block-size,
  tokens_per_state = the layer's compress ratio 1 or 2, so block / ratio records a block); the other compressed
  layers read the latest source at or below them and register nothing;
* a layer both in index_source_layer_ids and a kv source owns the lightning indexer's key cache (MLAAttentionSpec,
  uint8 rows of 128 fp8 values + one fp32 scale = 132 B, block / ratio rows a block); index sources that are not
  kv sources share that cache;
* a ratio-2 kv source's compressor keeps the open group's [kv, score] rows in a ring (CircularBufferSpec): one
  block a request for its whole life, block = max(8, next power of two >= speculative tokens + 2) rows of
  2 x head_dim fp32; a ratio-1 compressor has no gate and no ring.
Registration order inside a layer (static_forward_context): the attention layer itself (compressed cache), the
indexer key cache, the window cache, the compressor ring.

On Hopper (FlashMLA sparse attention, nvidia/flashmla.py) a record is DeepSeek-V4's: 448 fp8 NoPE + 64 bf16 RoPE
+ 7 UE8M0 scales + 1 pad = 584 B, and every MLA-family page is padded to 576 B (the FlashMLA TMA stride); no block
stride alignment applies. The sparse MLA and indexer backends take 64-token kernel blocks on SM90, the window
backend multiples of 32 and the compressor any, so vLLM's default block size 16 becomes 64
(platforms/interface.py _preferred_block_size_for_backends: the smallest lcm every backend accepts).
The indexer and sparse MLA backends declare block-outermost layouts only, so kv_packed's generic planning
(_get_packed_kv_cache_groups) applies: vLLM 0.33 has no DeepSeek-specific pool for this family.

Not modelled (refused): Blackwell (SM100 stores V4.1's 528-byte MXFP8 records on 512-byte pages, 128-token
blocks, and its default mega attention keeps an NVFP4 compressed cache), the plain-row FlashInfer backends
(--kv-cache-dtype bfloat16), the MXFP4 indexer cache, and speculative decoding (it widens the ring).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ....errors import GpuplanError
from ....units import round_up
from .. import kv_packed as P

if TYPE_CHECKING:
    from ....model.spec import Attention, ModelSpec
    from ..kv import KVContext

RECORD = 584  # fp8_ds_mla record of one token (448 fp8 NoPE + 64 bf16 RoPE + 7 UE8M0 scales + pad)
PAGE_ALIGN = 576  # FlashMLA's TMA stride: every packed page is padded to it on SM90
SWA_BLOCK = 32  # DeepseekV4SWACache(block_size=32) in DeepseekV4Attention
KERNEL_BLOCK = 64  # DeepseekV4SparseMLABackend / DeepseekV41IndexerBackend on SM90
INDEXER_ROW = 128 + 128 // 128 * 4  # fp8 indexer key: 128 values + one fp32 scale per 128
RING_ROWS = 8  # CompressorStateCache: max(8, next power of two >= num_speculative_tokens + 2), no drafts
FP32 = 4
KV_DTYPES = ("auto", "fp8", "fp8_ds_mla")


def _args(a: Attention) -> dict[str, int]:
    return {k: int(v) for k, v in a.recipe_args}


def _check(ctx: KVContext) -> int:
    if not 9.0 <= ctx.compute_capability < 10.0:
        raise GpuplanError(
            "gpu",
            "gpuplan reads DeepSeek-V4.1's KV layout for Hopper (SM90) only; on Blackwell vLLM keeps 528-byte "
            "MXFP8 records on 512-byte pages in 128-token blocks (and mega attention an NVFP4 compressed cache)",
            accepted=["H100", "H200", "H20", "H800"],
        )
    if ctx.kv_cache_dtype not in KV_DTYPES:
        raise GpuplanError(
            "kv_cache_dtype",
            "DeepSeek-V4.1's FlashMLA backend stores the packed fp8_ds_mla records only ('auto' and 'fp8' resolve "
            "to it); a bf16 KV row needs the FlashInfer sparse backend, whose layout gpuplan has not read",
            accepted=list(KV_DTYPES),
        )
    if not ctx.hybrid_manager:
        raise GpuplanError(
            "disable_hybrid_kv_cache_manager",
            "DeepSeek-V4.1's ring and window caches need vLLM's hybrid KV cache manager",
            accepted=["false"],
        )
    bs = ctx.block_size or KERNEL_BLOCK
    if bs % KERNEL_BLOCK:
        raise GpuplanError(
            "block_size",
            f"DeepSeek-V4.1's sparse MLA and indexer kernels take {KERNEL_BLOCK}-token blocks on SM90; vLLM "
            "accepts multiples of it only",
            accepted=["64", "128", "256"],
        )
    return bs


def _page(entries: int, width: int) -> int:
    """A packed page: entries x width bytes, padded to FlashMLA's 576-byte stride (_apply_alignment_padding)."""
    return round_up(entries * width, PAGE_ALIGN)


def layer_caches(a: Attention, bs: int, layer: int) -> list[P.Cache]:
    """One decoder layer's caches, in vLLM's registration order."""
    g = _args(a)
    r, out = g["ratio"], []
    if g["kv_source"]:
        out.append(P.Cache(f"compressed_{r}", P.MLA, bs, _page(bs // r, RECORD), layer=layer))
        if g["index_owner"]:
            out.append(P.Cache(f"indexer_{r}", P.MLA, bs, _page(bs // r, INDEXER_ROW), layer=layer))
    out.append(P.Cache(f"window_{a.window}", P.SLIDING_MLA, SWA_BLOCK, _page(SWA_BLOCK, RECORD),
                       window=a.window or 0, layer=layer))
    if g["kv_source"] and r > 1:
        # CircularBufferSpec(head_size=2 x head_dim, head_size_v=0, float32): no alignment padding
        out.append(P.Cache("compressor_ring", P.RING, RING_ROWS, RING_ROWS * 2 * a.head_dim * FP32, layer=layer))
    return out


def caches(spec: ModelSpec, ctx: KVContext, ssm_bytes: int) -> list[P.Cache]:
    del ssm_bytes
    bs = _check(ctx)
    out: list[P.Cache] = []
    for i, layer in enumerate(spec.layers):
        out += layer_caches(layer.attention, bs, i)
    return out


def token_bytes(a: Attention, ctx: KVContext) -> int:
    """Bytes a token adds to one layer's full-length caches (the window and the ring do not grow)."""
    del ctx
    g = _args(a)
    if not g["kv_source"]:
        return 0
    return (RECORD + (INDEXER_ROW if g["index_owner"] else 0)) // g["ratio"]


P.register_recipe("deepseek_v41", P.Recipe(
    caches=caches, token_bytes=token_bytes,
    single_stage="gpuplan sizes DeepSeek-V4.1 for one pipeline stage: which stage holds the engram hash state, the "
                 "rotary caches and the per-token buffers is not read"))
