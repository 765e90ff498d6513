"""Step5's KV caches as vLLM 0.33 plans them (vllm/models/step5/nvidia; adapter: model/adapters_step5.py).

The DSA layers' backend (Step5DSAAttentionBackend) declares only the BLNHC layout, so the pool is block-outermost.
Block size: the layers run FLASH_ATTN (kernel blocks MultipleOf(16); head_dim 192 takes neither FA4 fixed size),
STEP5_DSA (the same) and two backends that take any size, so vLLM keeps its default 16
(platforms/interface.py _preferred_block_size_for_backends); a --block-size must be a multiple of 16.
Per decoder layer, in registration order (static_forward_context):

* sliding layer: SlidingWindowSpec(block 16, max(1, kv/tp) heads, K and V of head_dim, the KV dtype), window
  `sliding_window`; no stride alignment (FLASH_ATTN's sizes are MultipleOf, not fixed);
* DSA layer: its K/V, FullAttentionSpec of the same shape, customised by the backend to
  block_stride_alignment=MultipleOf(8): get_block_stride_alignment = the page of an 8-token block
  (gcd(8, block) = 8 < block); then the region summaries (Step5SparseSummaryCacheLayer: FullAttentionSpec, 1 head of
  256 uint8, head_size_v 0, tokens_per_state 8: block / 8 x 256 bytes, whatever --kv-cache-dtype says); then the
  tail ring (Step5CSATailRing: CircularBufferSpec of the main block size sized to exactly the main page, bf16,
  block_stride_alignment 1024, one page a request for its life). The ring must hold 7 + speculative-token rows of
  1024 bytes in that page, else vLLM stops and asks for a larger --block-size.

KV dtypes: the DSA impl takes auto / bfloat16 / fp8 / fp8_e4m3 (it refuses float16 and other quantized dtypes);
the sliding layers follow the same --kv-cache-dtype. The grouping is kv_packed.group_caches (vLLM's
_get_packed_kv_cache_groups): the DSA K/V and summary pages share one FullAttentionSpec bucket (balanced, two page
sizes), the sliding layers one bucket and the rings another.
"""

from __future__ import annotations

import math

from ....errors import GpuplanError
from ....model.spec import Attention, ModelSpec
from .. import kv_packed as P

RECIPE = "step5"
KERNEL_BLOCK = 16  # FLASH_ATTN: MultipleOf(16)
DSA_PAGE_TOKENS = 8  # Step5DSAAttentionBackend.customize_spec: block_stride_alignment=MultipleOf(8)
SUMMARY_TOKENS, SUMMARY_BYTES = 8, 256  # one fp8 256-wide summary per 8-token region
RING_ROW = 1024  # one bf16 [index_k | index_z] row: 2 x 256 x 2 bytes
RING_ROWS = 7  # + speculative tokens (Step5CSATailRing.required_rows); gpuplan plans no drafts
KV_DTYPES = ("auto", "bfloat16", "fp8", "fp8_e4m3")
DSA_CAPABILITIES = (9.0, 10.0, 10.3)  # Step5DSAAttentionBackend.supports_compute_capability


def _role(a: Attention) -> str:
    return dict(a.recipe_args).get("role", "")


def _per_token(a: Attention, ctx) -> int:
    """K and V of head_dim for the rank's KV heads (replicated when tp exceeds them), in the KV dtype."""
    return max(1, a.num_kv_heads // ctx.tp) * 2 * a.head_dim * int(ctx.kv_bytes)


def _check(spec: ModelSpec, ctx) -> int:
    if ctx.kv_cache_dtype not in KV_DTYPES:
        raise GpuplanError("kv_cache_dtype", "Step5's DSA attention keeps a BF16 or FP8-e4m3 KV cache only",
                           accepted=list(KV_DTYPES))
    if not ctx.hybrid_manager:
        raise GpuplanError("model", "Step5's KV layout with the hybrid KV cache manager off is not modelled")
    if ctx.compute_capability and round(ctx.compute_capability, 1) not in DSA_CAPABILITIES:
        raise GpuplanError("gpu", "Step5's DSA attention runs on SM 9.0, 10.0 and 10.3 GPUs only "
                                  "(H100/H200, B200/GB200, B300/GB300)")
    bs = ctx.block_size or KERNEL_BLOCK
    if bs % KERNEL_BLOCK:
        raise GpuplanError("block_size", f"Step5's FlashAttention layers need a block size that is a multiple of "
                                         f"{KERNEL_BLOCK}", accepted=["16", "32", "64", "128"])
    for layer in spec.layers:
        a = layer.attention
        if _role(a) != "dsa":
            continue
        # _validate_step5_dsa_parallel_geometry: whole KV groups (and provider groups) a rank, or one replicated,
        # and 4, 8 or 16 query heads per local KV group
        kv, tp = a.num_kv_heads, ctx.tp
        if kv % tp and tp % kv:
            raise GpuplanError("tensor_parallel_size", f"Step5 needs the TP size to divide its {kv} KV groups "
                                                       "or be a multiple of them")
        local = kv // tp if kv % tp == 0 else 1
        if a.num_heads % tp or (a.num_heads // tp) // local not in (4, 8, 16):
            raise GpuplanError("tensor_parallel_size", "Step5's DSA kernels need 4, 8 or 16 query heads per "
                                                       "KV group on each GPU")
        page = bs * _per_token(a, ctx)
        if page % RING_ROW or page // RING_ROW < RING_ROWS:
            raise GpuplanError("block_size", f"Step5's CSA tail ring needs {RING_ROWS} rows of {RING_ROW} bytes in "
                                             f"one {page}-byte KV page: vLLM asks for a larger --block-size",
                               accepted=[str(bs * 2)])
    return bs


def caches(spec: ModelSpec, ctx, ssm_bytes: int) -> list[P.Cache]:
    bs = _check(spec, ctx)
    out: list[P.Cache] = []
    for i, layer in enumerate(spec.layers):
        a = layer.attention
        role = _role(a)
        page = bs * _per_token(a, ctx)
        if role == "sliding":
            out.append(P.Cache("sliding", P.SLIDING, bs, page, window=int(a.window or 0), layer=i))
        elif role == "full":
            out.append(P.Cache("full", P.FULL, bs, page, layer=i))
        elif role == "dsa":
            kernel = math.gcd(DSA_PAGE_TOKENS, bs)
            align = 1 if kernel == bs else kernel * _per_token(a, ctx)
            out += [
                P.Cache("dsa", P.FULL, bs, page, align=align, layer=i),
                P.Cache("dsa_summary", P.FULL, bs, bs // SUMMARY_TOKENS * SUMMARY_BYTES, layer=i),
                P.Cache("csa_ring", P.RING, bs, page, align=RING_ROW, layer=i),
            ]
        else:
            raise GpuplanError("model", f"a Step5 layer of role {role!r} is not modelled")
    return out


def token_bytes(a: Attention, ctx) -> int:
    """One layer's bytes per token: its K/V, plus the summaries' 256 bytes per 8 tokens on a DSA layer."""
    return _per_token(a, ctx) + (SUMMARY_BYTES // SUMMARY_TOKENS if _role(a) == "dsa" else 0)


P.register_recipe(RECIPE, P.Recipe(caches=caches, token_bytes=token_bytes))
