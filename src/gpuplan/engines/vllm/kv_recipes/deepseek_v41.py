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
+ 7 UE8M0 scales + 1 pad = 584 B, and every MLA-family page is padded to 576 B (the FlashMLA TMA stride); at the
default block size no block stride alignment applies. The sparse MLA and indexer backends take 64-token kernel
blocks on SM90, the window backend multiples of 32 and the compressor any, so vLLM's default block size 16 becomes 64
(platforms/interface.py _preferred_block_size_for_backends: the smallest lcm every backend accepts).
A larger --block-size (any multiple of 64: supports_block_size) splits into 64-token kernel blocks: both fixed-size
backends get block_stride_alignment MultipleOf(64) (v1/worker/utils.py customize_attention_spec), which
get_block_stride_alignment turns into the page of a 64-token copy of each compressed / indexer spec (19008, 37440,
4608, 8640 B), and the block is rounded up to their lcm, 9,884,160 B (v1/core/kv_cache_planning.py
_get_kv_cache_bytes_per_block): at 128 or 256 a block takes 43x or 21x the pages it holds.
The indexer and sparse MLA backends declare block-outermost layouts only, so kv_packed's generic planning
(_get_packed_kv_cache_groups) applies: vLLM 0.33 has no DeepSeek-specific pool for this family.

On Blackwell (compute capability 10.x: attention.py _use_v41_mxfp8_kv_record is is_device_capability_family(100)):
* a record is V4.1's own MXFP8 one, 512 fp8 dims + 16 UE8M0 scales = 528 B (swa_bytes_per_token), and every packed
  page is padded to 512 B (kv_page_alignment; the indexer key cache takes 512 too, DeepseekV4IndexerCache);
* the default attention class is mega attention (nvidia/model.py _select_dsv4_attn_cls), available when TP leaves
  8 local heads per local wo_a group (flash_mla_mega_attn.py is_available_for: heads and o_groups divisible by TP,
  heads / groups per rank == WV_GROUP_SIZE 8; TP 1, 2, 4, 8 for V4.1-Flash), else FlashMLA sparse. Mega attention
  resolves --kv-cache-dtype auto / fp8 to nvfp4_ds_mla: the compressed cache holds NVFP4 records of 288 B (256 B of
  e2m1 pairs + 32 e4m3 scales, compressed_bytes_per_token) while the window cache keeps the 528-byte record.
  FlashMLA (or an explicit fp8_ds_mla) keeps 528 B in both;
* the window cache's block stride must hold whole rows of both records: block_stride_alignment
  lcm(528, compressed record) = 3168 B with NVFP4, 528 with fp8_ds_mla (DeepseekV4SWACache,
  packed_block_stride_alignment), which rounds the bytes per block up (kv_cache_planning.py
  _get_kv_cache_bytes_per_block: the lcm of every layer's alignment);
* the sparse MLA, mega and indexer backends take 128-token kernel blocks off SM90 (sparse_mla.py:116, :313;
  v1/attention/backends/mla/indexer.py:367), so the default block size is 128. A larger --block-size splits into
  128-token kernel blocks (worker/utils.py customize_attention_spec: block_stride_alignment MultipleOf(128), whose
  alignment is a 128-token page) and is refused here; the 32-token window block and the 8-row ring are unchanged.

Not modelled (refused): the plain-row FlashInfer backends (--kv-cache-dtype bfloat16), the MXFP4 indexer cache,
speculative decoding (it widens the ring), Blackwell block sizes other than 128, and GPUs other than SM 9.0 / 10.x.
"""

from __future__ import annotations

import math
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

# Blackwell (SM 10.x)
RECORD_SM100 = 512 + 512 // 32  # V4.1's MXFP8 record: 512 fp8 dims + one UE8M0 scale per 32 = 528 B
NVFP4_RECORD = 256 + 32  # nvfp4_ds_mla's compressed record: 512 e2m1 values in 256 B + 32 e4m3 scales = 288 B
PAGE_ALIGN_SM100 = 512  # kv_page_alignment (and the indexer cache's page alignment) on SM 10.x
KERNEL_BLOCK_SM100 = 128  # sparse MLA / mega / indexer kernel block off SM90
WV_GROUP_SIZE = 8  # mega attention: local heads per local wo_a group
KV_DTYPES_SM100 = ("auto", "fp8", "fp8_ds_mla", "nvfp4_ds_mla")


def _args(a: Attention) -> dict[str, int]:
    return {k: int(v) for k, v in a.recipe_args}


def _blackwell(ctx: KVContext) -> bool:
    return 100 <= round(float(ctx.compute_capability) * 10) < 110


def mega_attention(heads: int, groups: int, tp: int) -> bool:
    """DeepseekV4MegaAttnAttention.is_available_for (the SM100 default when true): heads and output groups divide
    over TP, and each rank keeps WV_GROUP_SIZE heads per output group."""
    if not heads or not groups or heads % tp or groups % tp:
        return False
    lh, lg = heads // tp, groups // tp
    return lg > 0 and lh % WV_GROUP_SIZE == 0 and lh // lg == WV_GROUP_SIZE


def _records(a: Attention, ctx: KVContext) -> tuple[int, int, int]:
    """(window record, compressed record, page alignment) for this GPU and KV dtype."""
    if not _blackwell(ctx):
        return RECORD, RECORD, PAGE_ALIGN
    mega = mega_attention(a.num_heads, _args(a).get("o_groups", 0), ctx.tp)
    dtype = ctx.kv_cache_dtype
    if dtype == "nvfp4_ds_mla" and not mega:
        raise GpuplanError(
            "kv_cache_dtype",
            f"nvfp4_ds_mla is read only by mega attention, which TP {ctx.tp} rules out for this model "
            "(it needs 8 heads per output group on each rank); vLLM's FlashMLA backend refuses it",
            accepted=["auto", "fp8", "fp8_ds_mla"],
        )
    compressed = NVFP4_RECORD if mega and dtype in ("auto", "fp8", "nvfp4_ds_mla") else RECORD_SM100
    return RECORD_SM100, compressed, PAGE_ALIGN_SM100


def _check(ctx: KVContext) -> int:
    if not ctx.hybrid_manager:
        raise GpuplanError(
            "disable_hybrid_kv_cache_manager",
            "DeepSeek-V4.1's ring and window caches need vLLM's hybrid KV cache manager",
            accepted=["false"],
        )
    if _blackwell(ctx):
        return _check_blackwell(ctx)
    if not 9.0 <= ctx.compute_capability < 10.0:
        raise GpuplanError(
            "gpu",
            "gpuplan reads DeepSeek-V4.1's KV layout for Hopper (SM90) and Blackwell (SM 10.x) only",
            accepted=["H100", "H200", "H20", "H800", "B200", "GB200", "B300"],
        )
    if ctx.kv_cache_dtype not in KV_DTYPES:
        raise GpuplanError(
            "kv_cache_dtype",
            "DeepSeek-V4.1's FlashMLA backend stores the packed fp8_ds_mla records only ('auto' and 'fp8' resolve "
            "to it); a bf16 KV row needs the FlashInfer sparse backend, whose layout gpuplan has not read",
            accepted=list(KV_DTYPES),
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


def _check_blackwell(ctx: KVContext) -> int:
    if ctx.kv_cache_dtype not in KV_DTYPES_SM100:
        raise GpuplanError(
            "kv_cache_dtype",
            "DeepSeek-V4.1's FlashMLA / mega attention backends store packed records only ('auto' and 'fp8' "
            "resolve to nvfp4_ds_mla under mega attention, else fp8_ds_mla); a bf16 KV row needs the FlashInfer "
            "sparse backend, whose layout gpuplan has not read",
            accepted=list(KV_DTYPES_SM100),
        )
    bs = ctx.block_size or KERNEL_BLOCK_SM100
    if bs != KERNEL_BLOCK_SM100:
        raise GpuplanError(
            "block_size",
            f"on Blackwell DeepSeek-V4.1's sparse MLA and indexer kernels take {KERNEL_BLOCK_SM100}-token blocks; "
            "a larger block is split into kernel blocks whose page alignment gpuplan does not plan",
            accepted=[str(KERNEL_BLOCK_SM100)],
        )
    return bs


def _page(entries: int, width: int, align: int = PAGE_ALIGN) -> int:
    """A packed page: entries x width bytes, padded to the page alignment (_apply_alignment_padding): FlashMLA's
    576-byte TMA stride on SM90, 512 on SM 10.x."""
    return round_up(entries * width, align)


def layer_caches(a: Attention, bs: int, layer: int, ctx: KVContext | None = None) -> list[P.Cache]:
    """One decoder layer's caches, in vLLM's registration order (`ctx` None: Hopper's records)."""
    g = _args(a)
    r, out = g["ratio"], []
    swa, comp, align = _records(a, ctx) if ctx is not None else (RECORD, RECORD, PAGE_ALIGN)
    # SM 10.x: the window cache's blocks hold whole rows of both records (packed_block_stride_alignment)
    stride = math.lcm(swa, comp) if align == PAGE_ALIGN_SM100 else 1
    # The sparse MLA and indexer backends declare one fixed kernel block (64 on SM90, 128 off it), so
    # customize_attention_spec (v1/worker/utils.py:476-486) gives both specs block_stride_alignment MultipleOf(kernel);
    # get_block_stride_alignment (v1/kv_cache_interface.py:224-234) turns it into the page of a kernel-block-sized copy
    # when --block-size is larger (1 when it equals the kernel block)
    kernel = math.gcd(KERNEL_BLOCK_SM100 if align == PAGE_ALIGN_SM100 else KERNEL_BLOCK, bs)
    if g["kv_source"]:
        k_align = _page(kernel // r, comp, align) if kernel != bs else 1
        out.append(P.Cache(f"compressed_{r}", P.MLA, bs, _page(bs // r, comp, align), align=k_align, layer=layer))
        if g["index_owner"]:
            i_align = _page(kernel // r, INDEXER_ROW, align) if kernel != bs else 1
            out.append(P.Cache(f"indexer_{r}", P.MLA, bs, _page(bs // r, INDEXER_ROW, align), align=i_align,
                               layer=layer))
    out.append(P.Cache(f"window_{a.window}", P.SLIDING_MLA, SWA_BLOCK, _page(SWA_BLOCK, swa, align),
                       window=a.window or 0, align=stride, layer=layer))
    if g["kv_source"] and r > 1:
        # CircularBufferSpec(head_size=2 x head_dim, head_size_v=0, float32): no alignment padding
        out.append(P.Cache("compressor_ring", P.RING, RING_ROWS, RING_ROWS * 2 * a.head_dim * FP32, layer=layer))
    return out


def caches(spec: ModelSpec, ctx: KVContext, ssm_bytes: int) -> list[P.Cache]:
    del ssm_bytes
    bs = _check(ctx)
    out: list[P.Cache] = []
    for i, layer in enumerate(spec.layers):
        out += layer_caches(layer.attention, bs, i, ctx)
    return out


def token_bytes(a: Attention, ctx: KVContext) -> int:
    """Bytes a token adds to one layer's full-length caches (the window and the ring do not grow)."""
    g = _args(a)
    if not g["kv_source"]:
        return 0
    comp = _records(a, ctx)[1]
    return (comp + (INDEXER_ROW if g["index_owner"] else 0)) // g["ratio"]


P.register_recipe("deepseek_v41", P.Recipe(
    # Any pipeline split: plan_caches groups the whole model's caches and projects the groups on each stage's layers,
    # as get_kv_cache_configs does (kv_cache_planning.py:1413-1458 _project_kv_cache_groups_to_worker; a group with no
    # layer on a stage keeps its spec, so a request still takes its pages there, and each stage's bytes per block are
    # its own layers' widest group, :574-605); the engine keeps the smallest stage block count (:1580-1594). The
    # weights each stage builds are placed by the adapter (adapters_deepseek_v41: RopeCache / TokenBuffer layers).
    caches=caches, token_bytes=token_bytes))
