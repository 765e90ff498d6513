"""KV cache as vLLM plans it: per-layer specs and page sizes, hybrid grouping, block counts, and the
"GPU KV cache size: N tokens" / "Maximum concurrency for L tokens per request" lines.

Exact (computed from vLLM's kv_cache_interface / kv_cache_utils rules), per version profile; see
../shared/reference/vllm-memory-model.md §2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...errors import GpuplanError
from ...model.spec import Attention, ModelSpec
from ...report import KVCacheReport, KVGroup
from ...units import DTYPE_BYTES, cdiv, largest_within
from . import kv_dsv4 as D
from . import kv_packed as P
from . import kv_recipes  # noqa: F401  (registers the families' cache recipes)
from .kv_usage import chunk_blocks, window_blocks
from .profiles import Profile, tokens_formula

FP8_DS_MLA_BYTES_PER_TOKEN = 656  # 512 fp8 NoPE + 4 fp32 tile scales + 64 bf16 RoPE values
INDEXER_BYTES_PER_TOKEN = 132  # DeepSeek-V3.2 indexer: 128 fp8 values + one fp32 scale

KV_DTYPES = ("auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla")


@dataclass(frozen=True)
class LayerKV:
    """One attention layer's KV cache spec on one GPU."""

    kind: str  # full | sliding_window | chunked_local | mla | mamba
    bytes_per_token: int  # attention kinds: per token per layer; mamba: whole state
    window: int = 0
    chunk: int = 0
    is_state: bool = False
    checkpoint: bool = False  # a recurrent state that keeps a prefill-checkpoint block per request (0.32+)
    block: int = 0  # tokens per block the layer fixes itself (Inkling's short-conv state); 0: the engine's

    def key(self) -> tuple:
        return (self.kind, self.bytes_per_token, self.window, self.chunk, self.checkpoint, self.block)

    def page(self, block_size: int) -> int:
        """Bytes of one block of this layer on its own: block_size tokens, or one whole state."""
        return self.bytes_per_token if self.is_state else self.bytes_per_token * (self.block or block_size)


@dataclass(frozen=True)
class KVContext:
    tp: int
    kv_bytes: float  # bytes per element of the KV cache
    kv_cache_dtype: str
    model_dtype_bytes: int
    block_size: int | None  # user's --block-size
    max_model_len: int
    mnbt: int
    in_flight_factor: int
    hybrid_manager: bool
    compute_capability: float
    mamba_mode: str = "none"  # none | align | all (vLLM's mamba_cache_mode, prefix caching on hybrids)
    # align mode (0.32+): state kinds whose layers keep a prefill-checkpoint block per request ("gdn" also puts
    # blocks on FlashInfer's 64-token grid)
    mamba_checkpoint: frozenset[str] = frozenset()
    attention_free: bool = False  # only recurrent layers (Mamba, Mamba-2): one state block of max_model_len
    sparse_mla: bool = False  # DeepSeek-V3.2 / GLM-5 layers: sparse MLA backends, 64-token blocks
    head_size_v: bool = True  # V cached at its own head size (0.20+); before, padded to the key head size
    # Speculative decoding: a Mamba / linear-attention state block per draft token and request (MambaSpec
    # num_speculative_blocks = num_speculative_tokens, whatever the method)
    spec_state_blocks: int = 0


def kv_element_bytes(kv_cache_dtype: str, model_dtype_bytes: int) -> float:
    if kv_cache_dtype == "auto":
        return model_dtype_bytes
    if kv_cache_dtype in ("bfloat16", "float16", "half"):
        return 2
    if kv_cache_dtype.startswith("fp8"):
        return 1
    raise GpuplanError("kv_cache_dtype", f"unsupported KV cache dtype {kv_cache_dtype!r}", accepted=KV_DTYPES)


def layer_kv(a: Attention, ctx: KVContext, ssm_dtype_bytes: int) -> LayerKV | None:
    """The spec of one layer on one GPU (None: the layer stores no KV)."""
    if not a.needs_kv:
        return None
    if a.kind == "dsv4":
        return LayerKV("dsv4", D.bytes_per_token([a]))
    b = ctx.kv_bytes
    if a.block_outermost or a.recipe:
        # A block-outermost model (Dots3Note) or a cache recipe's: planned by kv_packed; here only its caches'
        # bytes per token.
        return LayerKV(a.kind, P.bytes_per_token(a, ctx), window=a.window or 0)
    if a.kind == "mla" and a.window:
        # Sliding-window MLA outside DeepSeek-V4 and outside a block-outermost layout: vLLM's grouping of such a
        # SlidingWindowMLASpec has not been read; refuse rather than size the window as a full-length cache.
        raise GpuplanError("model", "the KV cache of sliding-window MLA layers outside a block-outermost layout "
                           "is not modelled")
    if a.kind == "mla":
        per_tok = FP8_DS_MLA_BYTES_PER_TOKEN if ctx.kv_cache_dtype == "fp8_ds_mla" else int(
            (a.kv_lora_rank + a.qk_rope_head_dim) * b)
        if a.indexer_head_dim:
            per_tok += INDEXER_BYTES_PER_TOKEN
        return LayerKV("mla", per_tok)
    if a.kind == "mamba":
        return state_kv(a, ctx, ssm_dtype_bytes)
    if a.own_block:
        # Inkling's short-conv state: a SlidingWindowSpec of own_block tokens a block, K-only (head_size_v 0), in
        # the model dtype whatever --kv-cache-dtype says (models/inkling/*/sconv_swa_attn.py).
        return LayerKV(a.kind, max(1, a.num_kv_heads // ctx.tp) * a.head_dim * ctx.model_dtype_bytes,
                       window=a.window or 0, block=a.own_block)
    heads = max(1, a.num_kv_heads // ctx.tp)
    v_dim = a.v_head_dim if a.v_head_dim and (ctx.head_size_v or a.v_own_size) else a.head_dim
    per_tok = int(heads * (a.head_dim + v_dim) * b)
    if a.kind == "sliding_window":
        return LayerKV("sliding_window", per_tok, window=a.window or 0)
    if a.kind == "chunked_local":
        return LayerKV("chunked_local", per_tok, chunk=a.chunk or 0)
    return LayerKV("full", per_tok)


def state_kv(a: Attention, ctx: KVContext, ssm_dtype_bytes: int) -> LayerKV:
    """One request's recurrent state of a layer on one GPU (MambaSpec: the sum of its state tensors)."""
    total = 0
    for st in a.state:
        if st.dtype == "ssm":
            dt = ssm_dtype_bytes
        elif st.dtype == "conv":
            dt = ctx.model_dtype_bytes
        else:  # a dtype the layer fixes (KDA's float32 recurrent state)
            dt = DTYPE_BYTES[st.dtype]
        total += st.rank_numel(ctx.tp) * dt
    return LayerKV("mamba", total, chunk=a.chunk or 0, is_state=True, checkpoint=a.state_kind in ctx.mamba_checkpoint)


def default_block_size(specs: list[LayerKV], ctx: KVContext, profile: Profile) -> int:
    if ctx.block_size:
        return ctx.block_size
    if ctx.sparse_mla:
        return 64  # every sparse MLA backend (FlashMLA-sparse, FlashInfer's) pages in multiples of 64 tokens
    if any(s.kind == "mla" for s in specs):
        cc = ctx.compute_capability
        sizes = profile.mla_block_size
        return sizes["blackwell"] if cc >= 10 else sizes["hopper"] if cc >= 9 else sizes["other"]
    return 16


def _mla_hybrid_alignment(bs: int, ctx: KVContext, profile: Profile) -> int:
    """The block-size step vLLM rounds an MLA + recurrent-state model's attention block to (Kimi-Linear).
    0.12–0.19 (models/config.py, HybridAttentionMambaModelConfig): 64 for every MLA backend but an explicitly chosen
    CUTLASS_MLA. From 0.20 (platforms/interface.py, _align_hybrid_block_size): the larger of the block size and the
    backend's smallest kernel block (FlashAttention-MLA on Hopper: 16; FlashInfer-MLA on Blackwell: 32); from 0.27
    at least 128, which the TRT-LLM / FlashInfer MLA decode kernels need."""
    if not profile.at_least("0.20"):
        return 64
    step = max(bs, 32 if ctx.compute_capability >= 10 else 16)
    return max(step, 128) if profile.at_least("0.27") else step


def request_blocks(s: LayerKV, seq_len: int, bs: int, ctx: KVContext, profile: Profile) -> int:
    """Blocks one request of seq_len tokens needs in a group of this spec (vLLM's max_memory_usage)."""
    if s.is_state:
        # MambaSpec.max_memory_usage_bytes: one state; with prefix caching ("align") the running state and the
        # last block-aligned one (+ a prefill checkpoint: Mamba-2 from 0.32, Qwen's GDN from 0.33); "all" keeps a
        # state per block. Speculative decoding adds one per draft token.
        if ctx.mamba_mode == "all":
            return cdiv(seq_len, bs)
        if ctx.mamba_mode == "align":
            return 2 + int(s.checkpoint) + ctx.spec_state_blocks
        return 1 + ctx.spec_state_blocks
    in_flight = ctx.mnbt * ctx.in_flight_factor
    if s.kind == "sliding_window" and ctx.hybrid_manager:
        return window_blocks(s.window, in_flight, seq_len, bs)
    if s.kind == "chunked_local" and ctx.hybrid_manager:
        return chunk_blocks(s.chunk, in_flight, seq_len, bs)
    return cdiv(seq_len, bs)


@dataclass(frozen=True)
class KVPlan:
    """Grouping of one pipeline stage's layers."""

    block_size: int
    types: tuple[tuple[LayerKV, int, int], ...]  # (spec, real layer count, groups of this spec)
    group_size: int
    page_bytes: int  # unified page per layer per block
    bytes_per_block: int
    hybrid: bool
    min_block_size: int
    padding_layers: int

    @property
    def num_groups(self) -> int:
        return sum(g for _, _, g in self.types) if self.hybrid else 1


def plan_stage(specs: list[LayerKV], ctx: KVContext, profile: Profile) -> KVPlan:
    if not specs:
        return KVPlan(16, (), 0, 0, 0, False, 16, 0)
    has_state = any(s.is_state for s in specs)
    manager = ctx.hybrid_manager or has_state
    if not manager:
        # Every windowed layer is allocated full length; all layers form one group.
        specs = [LayerKV("full" if s.kind in ("sliding_window", "chunked_local") else s.kind, s.bytes_per_token)
                 for s in specs]
    bs = default_block_size(specs, ctx, profile)
    if ctx.attention_free:
        # MambaModelConfig: without prefix caching (never on for attention-free models) mamba_block_size is
        # max_model_len, so a block holds one request's state and "tokens" are blocks x max_model_len.
        bs = ctx.max_model_len
    attn = [s for s in specs if not s.is_state]
    if has_state and attn:
        # Hybrid attention + Mamba: vLLM raises the attention block (a user's --block-size too, when smaller)
        # to a multiple of it whose page covers one request's state (platforms: _align_hybrid_block_size).
        state_page = max(s.bytes_per_token for s in specs if s.is_state)
        per_tok = max(s.bytes_per_token for s in attn)
        if ctx.mamba_mode == "all":
            # States are cached at Mamba chunk boundaries: the config's Mamba-2 chunk_size; Mamba1 has none
            # and vLLM uses 2048 (ModelConfig.get_mamba_chunk_size).
            chunk = math.lcm(max(s.chunk for s in specs if s.is_state) or 2048, bs)
            bs = chunk * cdiv(cdiv(state_page, per_tok), chunk)
        else:
            if "gdn" in ctx.mamba_checkpoint:
                bs = math.lcm(bs, 64)  # FLASHINFER_GDN_CHECKPOINT_ALIGNMENT
            step = _mla_hybrid_alignment(bs, ctx, profile) if any(s.kind == "mla" for s in attn) else bs
            # vLLM only ever raises the block size here (a larger --block-size stays)
            bs = max(bs, step * cdiv(state_page, step * per_tok))
    counts: dict[tuple, tuple[LayerKV, int]] = {}
    for s in specs:
        k = s.key()
        counts[k] = (s, counts[k][1] + 1 if k in counts else 1)
    distinct = list(counts.values())
    if len(distinct) == 1 or (not has_state and len({s.kind for s, _ in distinct}) == 1
                              and len({s.block for s, _ in distinct}) == 1
                              and profile.at_least("0.11")):
        # Uniform spec, or one attention type with different shapes (UniformTypeKVCacheSpecs):
        # one group, each layer its own page.
        total = sum(s.page(bs) * n for s, n in distinct)
        n_layers = sum(n for _, n in distinct)
        return KVPlan(bs, tuple((s, n, 1) for s, n in distinct), n_layers, distinct[0][0].page(bs), total,
                      False, bs, 0)
    # Hybrid: unify page sizes, then cut each type into groups of group_size layers.
    attn_pages = [s.page(bs) for s, _ in distinct if not s.is_state]
    page = max(attn_pages) if attn_pages else max(s.bytes_per_token for s, _ in distinct)
    if has_state:
        state_max = max(s.bytes_per_token for s, _ in distinct if s.is_state)
        page = max(page, state_max)
    block_sizes = []
    for s, _ in distinct:
        if s.is_state:
            continue
        p = s.page(bs)
        if page % p:
            raise GpuplanError("model", "KV page sizes of this model's layer types cannot be unified "
                               f"({p} vs {page} bytes per block)")
        block_sizes.append((s.block or bs) * (page // p))
    n_min = min(n for _, n in distinct)
    n_max = max(n for _, n in distinct)
    group_size = n_min
    if profile.group_size_rule == "min_or_max" and n_max < 1.5 * n_min:
        group_size = n_max
    types = tuple((s, n, cdiv(n, group_size)) for s, n in distinct)
    padding = sum(g * group_size - n for _, n, g in types)
    return KVPlan(bs, types, group_size, page, group_size * page, True,
                  min(block_sizes) if block_sizes else bs, padding)


def stage_specs(spec: ModelSpec, lo: int, hi: int, ctx: KVContext, ssm_bytes: int) -> list[LayerKV]:
    out = []
    seen: dict[int, list[LayerKV]] = {}
    for layer in spec.layers[lo:hi]:
        a = layer.attention
        if id(a) not in seen:
            s = layer_kv(a, ctx, ssm_bytes)
            seen[id(a)] = [s] if s is not None else []
            if a.state and a.kind != "mamba":
                # Attention and Mamba side by side in one layer (Falcon-H1): vLLM registers the mixer as a cache
                # layer of its own, so the layer holds a KV page and a state.
                seen[id(a)].append(state_kv(a, ctx, ssm_bytes))
        out += seen[id(a)]
    return out


def plan_for(spec: ModelSpec, lo: int, hi: int, ctx: KVContext, ssm_bytes: int, profile: Profile):
    """The stage's KV layout: DeepSeek-V4's own grouping, or the generic one."""
    if "dsv4" in spec.attention_kinds:
        # vLLM groups the whole model's layers, then projects the groups on each stage.
        return D.plan([layer.attention for layer in spec.layers], ctx.block_size, ctx.mnbt, lo, hi,
                      profile=profile, in_flight=ctx.in_flight_factor)
    if P.uses_packed(spec):
        return P.plan(spec, lo, hi, ctx, profile, ssm_bytes)  # a block-outermost layout: vLLM 0.33's packed groups
    specs = stage_specs(spec, lo, hi, ctx, ssm_bytes)
    if profile.engine == "v0":
        # V0 pages attention layers only (CacheEngine counts attention layers); recurrent states live in the
        # model's own cache, which the budget charges.
        specs = [s for s in specs if not s.is_state]
    return plan_stage(specs, ctx, profile)


def _type_block(plan: KVPlan, s: LayerKV, page: int) -> int:
    """Tokens a block of one layer type holds in a hybrid plan: its own block size (else the plan's), scaled so its
    page fills the unified page (vLLM's unify_kv_cache_spec_page_size)."""
    return (s.block or plan.block_size) * (page // s.page(plan.block_size))


def blocks_per_request(plan: KVPlan, seq_len: int, ctx: KVContext, profile: Profile) -> int:
    if isinstance(plan, D.DSV4Plan):
        return D.blocks_per_request(plan, seq_len)
    if isinstance(plan, P.PackedPlan):
        return P.blocks_per_request(plan, seq_len)
    if not plan.hybrid and len(plan.types) > 1:
        # One UniformTypeKVCacheSpecs group (one attention type, several layer shapes) whose block holds every
        # layer's page: a request takes the most blocks any of its layers needs (max_memory_usage_bytes: max pages
        # x summed page, the same from 0.11 to 0.33), not one set per layer shape. HY V4's MLA layers with and
        # without an indexer cache; full-attention layers of two head shapes (MiMo-V2 with the manager off).
        return max(request_blocks(s, seq_len, plan.block_size, ctx, profile) for s, _n, _g in plan.types)
    total = 0
    for s, _n, groups in plan.types:
        bs = _type_block(plan, s, plan.page_bytes) \
            if (plan.hybrid and not s.is_state and s.bytes_per_token) else plan.block_size
        total += groups * request_blocks(s, seq_len, bs, ctx, profile)
    return total


def needed_bytes(plan: KVPlan, seq_len: int, ctx: KVContext, profile: Profile) -> int:
    """vLLM's check that one max-length request fits: before 0.14 the sum over real layers of each layer's max
    memory usage (check_enough_kv_cache_memory); from 0.14 a hybrid plan's groups each reserve their pages in every
    one of the group_size pools, padding slots included (_max_memory_usage_bytes_from_groups: group_size x page x
    the groups' blocks summed, i.e. bytes per block x blocks per request)."""
    if isinstance(plan, D.DSV4Plan):
        return D.needed_bytes(plan, seq_len)
    if isinstance(plan, P.PackedPlan):
        return P.needed_bytes(plan, seq_len)
    if plan.hybrid and profile.flag_from("padded_fit"):
        return plan.bytes_per_block * blocks_per_request(plan, seq_len, ctx, profile)
    total = 0
    for s, n, _g in plan.types:
        if plan.hybrid:
            page = plan.page_bytes
            bs = _type_block(plan, s, page) if not s.is_state \
                else plan.block_size
        else:
            bs = plan.block_size
            page = s.page(bs)
        total += n * request_blocks(s, seq_len, bs, ctx, profile) * page
    return total


def kv_report(plan: KVPlan, num_blocks: int, ctx: KVContext, profile: Profile, kv_dtype: str,
              bytes_per_token: int) -> KVCacheReport:
    if isinstance(plan, D.DSV4Plan):
        return D.kv_report(plan, num_blocks, ctx.max_model_len, kv_dtype, bytes_per_token, tokens_formula(profile))
    if isinstance(plan, P.PackedPlan):
        return P.kv_report(plan, num_blocks, ctx.max_model_len, kv_dtype, bytes_per_token)
    L = ctx.max_model_len
    need = blocks_per_request(plan, L, ctx, profile)
    conc = num_blocks / need if need else 0.0
    if not plan.types:
        tokens = 0
    elif (formula := tokens_formula(profile)) == "concurrency_x_len":
        tokens = int(conc * L)
    elif plan.hybrid and formula == "groups_min_bs":
        tokens = (num_blocks // plan.num_groups) * plan.min_block_size
    else:
        tokens = num_blocks * plan.block_size
    if profile.concurrency_formula == "tokens_over_len":
        conc = tokens / L if L else 0.0
    groups = []
    for s, n, g in plan.types:
        bs = plan.block_size
        if plan.hybrid and not s.is_state and s.bytes_per_token:
            bs = _type_block(plan, s, plan.page_bytes)
        groups.append(KVGroup(s.kind, n, plan.page_bytes if plan.hybrid else s.page(plan.block_size),
                              bs, g * request_blocks(s, L, bs, ctx, profile)))
    return KVCacheReport(
        kv_cache_dtype=kv_dtype, block_size=plan.block_size, bytes_per_token=bytes_per_token,
        bytes_per_block=plan.bytes_per_block, num_groups=plan.num_groups, group_size=plan.group_size,
        groups=tuple(groups), hybrid_manager=plan.hybrid, num_gpu_blocks=num_blocks, kv_cache_tokens=tokens,
        max_concurrency=round(conc, 2), blocks_per_request=need, max_model_len=L,
        padding_layers=plan.padding_layers, mamba_cache_mode=ctx.mamba_mode)


def max_fitting_len(plan: KVPlan, available: int, ctx: KVContext, profile: Profile, upper: int,
                    null_block: bool) -> int:
    """Longest max_model_len whose one request fits the available KV memory (vLLM's estimate)."""
    if isinstance(plan, D.DSV4Plan):
        return D.max_fitting_len(plan, available - (plan.bytes_per_block if null_block else 0), upper)
    if isinstance(plan, P.PackedPlan):
        return P.max_fitting_len(plan, available - (plan.bytes_per_block if null_block else 0), upper)
    budget = available - (plan.bytes_per_block if null_block else 0)
    return largest_within(lambda n: needed_bytes(plan, n, ctx, profile), budget, upper)


def request_kv_bytes(spec: ModelSpec, dep, seq_len: int) -> int:
    """Per-GPU KV bytes one request of seq_len tokens holds (see estimate.request_kv_bytes)."""
    from .estimate import request_kv_bytes as _impl

    return _impl(spec, dep, seq_len)
