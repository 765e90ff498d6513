"""GLM-5-Next's KV caches as vLLM 0.33 lays them out (models/glm5next on the NVIDIA path).

The kpool tail cache runs on KpoolTailBackend, which declares only the BLHNC layout, so the whole pool is
block-outermost (kv_packed). Registration order, layer by layer:

* a KDA layer (Glm5NextLinearAttention): a MambaSpec of kda_state_shape -- conv (3 x heads x hd / tp, kernel-1) in
  the model dtype and recurrent (heads / tp, hd, hd) in fp32 -- padded to the attention page
  (cache_config.mamba_page_size_padded). In align mode (prefix caching, on by default) a request holds 2 states,
  3 when FlashKDA exports prefill checkpoints (kda_prefill_checkpoint_alignment: 16 tokens);
* an MLA layer, in the order Glm5NextMLAAttention builds them:
  - the indexer's key cache (Glm5NextIndexerCache): MLAAttentionSpec, uint8, head_size 128 + 128 / 128 x 4 = 132
    (fp8 values + one fp32 scale), tokens_per_state = index_kpool: block / kpool entries a block. Its backend
    (Glm5NextIndexerBackend) takes kernel blocks of kpool x (32, 64) entries only (SM90/SM100; 64 only on SM120),
    so customize_attention_spec sets block_stride_alignment MultipleOf(kpool x 64): no alignment while the block
    is at most that, else the page of that many tokens;
  - the tail ring (Glm5NextTailCache): CircularBufferSpec of ring = kpool x next_power_of_2(cdiv(kpool + drafts,
    kpool)) tokens (16 without drafts), 2 head slots (raw key, gate score) of 128 bf16 whatever the KV dtype:
    one block per request for its whole life, its own block size;
  - the sparse MLA latent: MLAAttentionSpec of kv_lora_rank + qk_rope_head_dim (512) in the KV dtype, on
    FLASHINFER_MLA_SPARSE_SM90 (head size 512 on Hopper) or FLASH_ATTN_MLA_SPARSE, both MultipleOf(64) kernel
    blocks with blocks aligned to whole rows (sparse_utils.align_blocks_to_rows: 1024 bytes in bf16).

Block size (platforms/interface.py): phase 1 picks the smallest size every non-SSM backend takes (the indexer's
kpool x 32 = 512 for kpool 16, since 16 is not a multiple of it); phase 2 (_align_hybrid_block_size, backend =
the first layer's, the indexer) raises it so one MLA page of 1024 bytes a token covers the largest KDA state:
a = max(min indexer kernel block, block) (at least 128 for MLA; lcm with the checkpoint alignment 16 in align
mode), block = a x cdiv(state, a x 1024), rounded up to the lcm of every backend's smallest kernel block (512);
then the state is padded to block x 1024. A user --block-size below that is raised; one above stays.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ....errors import GpuplanError
from ....model.spec import Attention, ModelSpec
from ....units import cdiv, round_up
from .. import kv_packed as P

if TYPE_CHECKING:
    from ..kv import KVContext

NAME = "glm5_next"
INDEXER_ENTRY = 128 + 128 // 128 * 4  # index_head_dim fp8 values + one fp32 scale per 128
TAIL_SLOTS, TAIL_HEAD = 2, 128  # [raw key, gate score] x index_head_dim, bf16
PAGED_MQA_PAGES = (32, 64)  # deep_gemm.get_paged_mqa_page_sizes on SM90 / SM100 (SM120: 64 only)
SPARSE_KERNEL = 64  # the sparse MLA backends: MultipleOf(64)
MLA_MIN_BLOCK = 128  # _align_hybrid_block_size: hybrid MLA blocks are multiples of 128
KDA_CHECKPOINT_ALIGNMENT = 16  # kda_prefill_checkpoint_alignment("flashkda")


def _args(a: Attention) -> dict:
    return dict(a.recipe_args)


def _mla_row(a: Attention, ctx: KVContext) -> int:
    return (a.kv_lora_rank + a.qk_rope_head_dim) * int(ctx.kv_bytes)


def _check(ctx: KVContext) -> None:
    if ctx.kv_cache_dtype not in P.SIXTEEN_BIT or ctx.kv_bytes != 2:
        raise GpuplanError("kv_cache_dtype", "gpuplan models GLM-5-Next's sparse MLA cache in 16 bits only (its FP8 "
                           "layouts on the sparse MLA backends are not read)", accepted=list(P.SIXTEEN_BIT))
    if not ctx.hybrid_manager:
        raise GpuplanError("model", "GLM-5-Next's KDA states need vLLM's hybrid KV cache manager")
    if ctx.mamba_mode not in ("none", "align"):
        raise GpuplanError("model", f"mamba_cache_mode {ctx.mamba_mode!r} is not modelled for GLM-5-Next")
    if not 9.0 <= ctx.compute_capability < 11.0:
        raise GpuplanError("gpu", "gpuplan reads GLM-5-Next's indexer and sparse MLA block sizes for Hopper and "
                           "Blackwell data-center GPUs (SM90 / SM100) only", accepted=["H100", "H200", "B200"])


def _kda_page(a: Attention, ctx: KVContext, ssm_bytes: int) -> int:
    return P._state_page(a, ctx, ssm_bytes)


def caches(spec: ModelSpec, ctx: KVContext, ssm_bytes: int) -> list[P.Cache]:
    _check(ctx)
    mla = [layer.attention for layer in spec.layers if layer.attention.kind == "mla"]
    kda = [layer.attention for layer in spec.layers if layer.attention.kind == "mamba"]
    if not mla:
        raise GpuplanError("model", "a GLM-5-Next model without MLA layers is not modelled")
    kpool = int(_args(mla[0])["index_kpool"])
    kernels = [kpool * n for n in PAGED_MQA_PAGES]
    per_tok = _mla_row(mla[0], ctx)  # the MLA page of one token (model_config.use_mla)
    # phase 1: the smallest size every backend takes (indexer: kpool x 32 / 64; tail: any; sparse MLA: 64s)
    bs = ctx.block_size or min(c for c in (math.lcm(k, SPARSE_KERNEL) for k in kernels))
    align_mode = ctx.mamba_mode == "align"
    checkpoints = align_mode and bool(kda) and all(a.state_kind in ctx.mamba_checkpoint for a in kda)
    state = max((_kda_page(a, ctx, ssm_bytes) for a in kda), default=0)
    padded = None
    if state:
        a = max(min(kernels), bs, MLA_MIN_BLOCK)
        if checkpoints:
            a = math.lcm(a, KDA_CHECKPOINT_ALIGNMENT)
        need = a * cdiv(state, a * per_tok)
        need = round_up(need, math.lcm(min(kernels), SPARSE_KERNEL))  # every backend's smallest kernel block
        bs = max(bs, need)
        if bs * per_tok != state:
            padded = bs * per_tok
    if bs % min(kernels) or bs % SPARSE_KERNEL:
        raise GpuplanError("block_size", f"GLM-5-Next's indexer needs blocks of a multiple of {min(kernels)} tokens",
                           accepted=[str(min(kernels) * m) for m in (1, 2, 4)])
    ring = kpool  # kpool x next_power_of_2(cdiv(kpool + 0 drafts, kpool))
    # KVCacheSpec.get_block_stride_alignment of MultipleOf(kpool x 64): whole kernel blocks when a block splits
    kernel = math.gcd(max(kernels), bs)
    idx_align = 1 if kernel == bs else kernel // kpool * INDEXER_ENTRY
    blocks = (2 + int(checkpoints)) if align_mode else 1
    out: list[P.Cache] = []
    for i, layer in enumerate(spec.layers):
        a = layer.attention
        if a.kind == "mamba":
            page = padded if padded is not None else _kda_page(a, ctx, ssm_bytes)
            out.append(P.Cache("kda", P.STATE, bs, page, state_blocks=blocks, layer=i))
        elif a.kind == "mla":
            row = _mla_row(a, ctx)
            out += [
                P.Cache("indexer", P.MLA, bs, bs // kpool * INDEXER_ENTRY, align=idx_align, layer=i),
                P.Cache("kpool_tail", P.RING, ring, TAIL_SLOTS * ring * TAIL_HEAD * 2, layer=i),
                P.Cache("sparse_mla", P.MLA, bs, bs * row, align=row, layer=i),
            ]
        elif a.needs_kv:
            raise GpuplanError("model", f"a {a.kind} layer in GLM-5-Next is not modelled")
    return out


def token_bytes(a: Attention, ctx: KVContext) -> int:
    """One layer's bytes per token: the MLA row plus the indexer's entry per kpool tokens (rounded down); a KDA
    state has none."""
    if a.kind != "mla":
        return 0
    return _mla_row(a, ctx) + INDEXER_ENTRY // int(_args(a)["index_kpool"])


P.register_recipe(NAME, P.Recipe(caches=caches, token_bytes=token_bytes))
