"""What a model *is*, independent of any serving engine.

A ModelSpec is a list of layers, each with an attention kind (which decides its KV cache) and a
parameter inventory (which decides its weights), plus the tensors outside the layers. Adapters in
`gpuplan.model.adapters` build it from an HF config.json; nothing here knows about vLLM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from math import prod

from ..units import cdiv

# How a tensor is split over tensor-parallel ranks, as vLLM's linear layers do it.
#   column   : output dim (shape[0]) / tp                 (ColumnParallelLinear, gate_up, q)
#   row      : input dim (shape[1]) / tp                  (RowParallelLinear, o_proj, down)
#   kv       : KV-head output dim; heads replicated when tp > kv heads
#   vocab    : vocabulary padded to 64, then / tp         (VocabParallelEmbedding, ParallelLMHead)
#   replicated: whole on every rank                       (norms, routers, MLA down-projections)
#   expert_col / expert_row: fused MoE [E, out, in]; inner dim / tp, or whole experts / ep
#   head     : per-head vectors (e.g. attention sinks): shape[0] / tp
PARALLEL_KINDS = ("column", "row", "kv", "vocab", "replicated", "expert_col", "expert_row", "head")

# Parameter groups used in the inventory (and in reports).
TENSOR_KINDS = (
    "embedding",
    "attention",
    "mlp",
    "experts",
    "shared_experts",
    "router",
    "norm",
    "lm_head",
    "vision",
    "projector",
    "mtp",
    "other",
)


@dataclass(frozen=True)
class Tensor:
    """One parameter tensor. `name` is the HF module path ("{i}" stands for the layer index)."""

    name: str
    kind: str
    shape: tuple[int, ...]
    parallel: str = "replicated"
    # A linear weight that a quantization method may pack (as opposed to norms, biases, embeddings).
    linear: bool = False
    # For parallel == "kv": number of KV heads in shape[0] (the rest is head_dim).
    heads: int = 0
    # Stored dtype override ("float32" for some norms/sinks); None: the model dtype.
    dtype: str | None = None
    # True for tensors read from a checkpoint header: bytes are numel x dtype as stored (packed ints,
    # scales, ...), sharded by `parallel`; no quantization method is applied on top.
    stored: bool = False
    # False for buffers vLLM allocates that the checkpoint does not hold (e.g. Gemma-4's V slot on k_eq_v
    # layers, filled with K): they count in weights, not in the parameter count.
    in_checkpoint: bool = True
    # Fused experts (expert_col / expert_row): the smallest per-rank intermediate slice when the experts are split
    # over TP (vLLM's kimi_k3 model pads moe_intermediate_size up to this many rows per partition); 0: no floor.
    min_shard: int = 0
    # Kept in host memory, not on the GPU (Qwen4Exp's n-gram embedding table in pinned CPU memory, read over UVA):
    # a parameter of the model, but no part of "Model loading took".
    host: bool = False
    # vLLM allocates it only in releases before this one ("": in every release), e.g. the K/V slots of Gemma-4's
    # KV-shared layers, which 0.30 stopped building.
    until: str = ""
    # vLLM allocates it only from this release on ("": in every release), e.g. the per-module LM heads Step-3.5's MTP
    # drafter keeps since its own proposer (0.23) stopped pointing them at the target's.
    since: str = ""
    # vLLM splits it over TP only when TP divides this count (an encoder's attention heads), else keeps it whole on
    # every rank (0: split as `parallel` says at any TP).
    split_if_tp_divides: int = 0
    # A per-rank layout that engines/vllm/humming.py sizes (its LAYOUTS: Humming's padded MXFP8 / MXFP4 weights on
    # Hopper, the MXFP8 emulation kernel's bf16 copy) instead of numel x dtype or a quantization method ("": none).
    layout: str = ""
    # A vision/audio tower's or projector's Linear (kind "vision" / "projector", linear=True) that vLLM builds with the
    # model's quant_config: the QuantConfig methods under which it is quantized, subject to the checkpoint's ignore
    # list, matched against `name` (vLLM's module prefix for it, e.g. "visual.blocks.0.attn.qkv"). (): kept in the
    # model dtype under every method, the default for towers whose vLLM code has not been read for this.
    tower_quant: tuple[str, ...] = ()
    # A model-level extra (ModelSpec.extra, not a tower) that vLLM builds on every pipeline stage holding one of these
    # layers (indices into ModelSpec.layers), e.g. DeepSeek-V4.1's n-gram hash state on the stages owning an engram
    # layer; (): on the first stage only.
    on_layers: tuple[int, ...] = ()

    @property
    def numel(self) -> int:
        return prod(self.shape)


@dataclass(frozen=True)
class StateTensor:
    """One per-request recurrent state tensor of a Mamba / linear-attention layer.

    `shape` is the full (tp=1) shape; `tp_dim` is the dimension divided by tp (None: not divided).
    `dtype` "conv" / "ssm" picks vLLM's mamba_cache_dtype / mamba_ssm_cache_dtype; or a concrete dtype.
    `split_unit` names what the split dimension counts (heads, groups, channels) for error messages;
    `whole_when_one`: a split dimension of size 1 is kept whole on every rank instead of refusing the TP size
    (Mamba-2's single B/C group); any other split dimension must divide by tp, as vLLM asserts.
    """

    name: str
    shape: tuple[int, ...]
    tp_dim: int | None
    dtype: str = "conv"
    split_unit: str = "channels"
    whole_when_one: bool = False

    def rank_numel(self, tp: int) -> int:
        """Elements one TP rank holds for one request (the split dimension rounded up)."""
        return prod(cdiv(size, tp) if d == self.tp_dim else size for d, size in enumerate(self.shape))


@dataclass(frozen=True)
class Attention:
    """How a layer attends, which is what decides its KV cache.

    kind: full | sliding_window | chunked_local | mla | mamba | dsv4 | none

    dsv4 is DeepSeek-V4's attention: a sliding-window MLA cache on every layer, plus on compressed layers
    (compress_ratio 4 or 128) a compressed MLA cache and the compressor's running state, plus on ratio-4
    layers a lightning-indexer key cache and its compressor state.
    """

    kind: str
    num_heads: int = 0
    num_kv_heads: int = 0
    head_dim: int = 0
    v_head_dim: int | None = None
    window: int | None = None  # sliding_window
    chunk: int | None = None  # chunked_local
    kv_lora_rank: int = 0  # mla
    qk_rope_head_dim: int = 0  # mla
    qk_nope_head_dim: int = 0  # mla
    state: tuple[StateTensor, ...] = ()  # mamba / linear attention
    state_kind: str = ""  # mamba1 | mamba2 | gdn (Qwen's) | olmo_gdn | short_conv | linear
    # Layers that reuse another layer's KV (Gemma-3n style) store nothing.
    kv_shared: bool = False
    # DeepSeek-V3.2-style indexer cache per layer (bytes per token, fp8 layout).
    indexer_head_dim: int = 0
    # Sparse MLA (DeepSeek-V3.2, GLM-5): served by the sparse MLA backends, which pick the KV layout and block
    # size; true also on layers whose indexer is skipped (they reuse another layer's top-k indices).
    sparse: bool = False
    compress_ratio: int = 0  # dsv4: 1 (window only), 4 or 128
    # V cached at v_head_dim in every vLLM that serves the layer, before the general head_size_v of 0.20
    # (openPangu's sink attention runs on its own DiffKV backend from 0.14).
    v_own_size: bool = False
    # A cache layer that fixes its own block size and keeps the model dtype whatever --kv-cache-dtype says
    # (Inkling's short-conv state: a K-only SlidingWindowSpec of own_block tokens a block); 0: neither.
    own_block: int = 0
    # The model's KV cache is block-outermost (vLLM 0.33: one of its attention backends declares only BLHNC /
    # BLNHC layouts, and vLLM resolves one layout per model), so vLLM packs pages of different sizes side by side
    # in each block (engines/vllm/kv_packed.py). gpuplan cannot see backends: the adapter sets it on every layer.
    block_outermost: bool = False
    # MLA cache rows padded to this many elements (0: kv_lora_rank + qk_rope_head_dim); Dots3Note's full layers
    # pad theirs to the sliding layers' row width.
    kv_row: int = 0
    # A layer whose caches a family module in engines/vllm/kv_recipes lays out for kv_packed's planner (vLLM 0.33's
    # newer families, whose cache kinds fit no field above); `recipe_args` holds that family's per-layer numbers
    # as (name, value) pairs, which only its recipe reads.
    recipe: str = ""
    recipe_args: tuple[tuple[str, int | float | str], ...] = ()

    @property
    def needs_kv(self) -> bool:
        return self.kind != "none" and not self.kv_shared


@dataclass(frozen=True)
class Mlp:
    """The feed-forward part of a layer; used for the activation estimate (weights are in tensors)."""

    kind: str = "dense"  # dense | moe | none
    intermediate_size: int = 0
    num_experts: int = 0
    top_k: int = 0
    moe_intermediate_size: int = 0
    shared_intermediate_size: int = 0


@dataclass(frozen=True, eq=False)  # identity hash: layers are shared objects and cache keys
class Layer:
    attention: Attention
    mlp: Mlp
    tensors: tuple[Tensor, ...]
    # Part of the vLLM decoder layer before it (LongCat's second attention, a looped layer's later caches): a
    # pipeline split never separates the two, since vLLM splits its decoder layers, not their KV caches.
    continues: bool = False

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.tensors)


@dataclass(frozen=True)
class RopeCache:
    """A rotary cos/sin cache that vLLM builds once and shares: [positions, rotary_dim]."""

    positions: int
    rotary_dim: int
    dtype: str | None = None  # None: model dtype
    theta: float | None = None  # caches that differ only in rope base are separate (DeepSeek-V4)
    # Multimodal RoPE (mrope_section): MRotaryEmbedding caches 4 x the positions, since video positions can run past
    # the token count; from `mrope_single_from` this model passes positions_factor=1 (Qwen3-VL, Qwen3.5: 0.32).
    mrope: bool = False
    mrope_single_from: str = ""
    # A vision tower's own table: built with the tower, so absent where the tower is not (--language-model-only).
    tower: bool = False
    # Built only on the pipeline stages holding one of these layers (indices into ModelSpec.layers), when the layers
    # build their own rotary embedding (DeepSeek-V4.1: a cache per rope theta, made by the layers that use it); ():
    # on every stage.
    layers: tuple[int, ...] = ()

    def cached_positions(self, at_least) -> int:
        """Positions vLLM caches; `at_least(version)` tells whether the running vLLM is that version or newer."""
        if not self.mrope or (self.mrope_single_from and at_least(self.mrope_single_from)):
            return self.positions
        return 4 * self.positions


@dataclass(frozen=True)
class TokenBuffer:
    """A persistent buffer the model allocates at load time, sized by max_num_batched_tokens
    (counted in vLLM's "Model loading took"): [mnbt, width] of `dtype` (None: model dtype)."""

    name: str
    width: int
    dtype: str | None = None
    last_stage_only: bool = False
    # The width is this many units of `width` split over the TP ranks, rounded up (DeepSeek-V4.1's engram staging
    # rows: cdiv(hash heads, tp) x head_dim a token); 0: `width` on every rank.
    tp_units: int = 0
    # From this vLLM release the buffer exists only where the vision tower is built, so a text-only start (or a
    # pipeline stage without the tower) has none (Qwen3-VL / Qwen3-Omni deepstack buffers from 0.28); "": always.
    with_tower_from: str = ""
    # Allocated inside these layers (indices into ModelSpec.layers), so only on the pipeline stages holding one of
    # them (DeepSeek-V4.1's engram staging rows); (): on every stage (or the last, with last_stage_only).
    layers: tuple[int, ...] = ()


class ModuleQuant:
    """A mixed-precision checkpoint's format per module (ModelOpt MIXED_PRECISION `quantized_layers`): module name
    (the text model's spelled "model.layers.N...") -> (the checkpoint's algorithm name, that module's QuantConfig).
    A module it does not name stays in the model dtype. Immutable, its hash computed once: a checkpoint lists
    hundreds of modules, and the weight tally's caches hash the QuantConfig holding this on every layer."""

    __slots__ = ("_entries", "_under", "_hash", "_formats", "algos", "uses")

    def __init__(self, entries: dict[str, tuple[str, QuantConfig]]):
        self._entries = dict(entries)
        # vLLM's prefix lookup (modelopt.py _resolve_quant_algo): a fused MoE module takes the format of the first
        # listed module under it ("...mlp.experts" <- "...mlp.experts.0.gate_proj").
        under: dict[str, QuantConfig] = {}
        for name, (_, q) in self._entries.items():
            parts = name.split(".")
            for k in range(1, len(parts)):
                under.setdefault(".".join(parts[:k]), q)
        self._under = under
        self.algos = tuple(sorted({a for a, _ in self._entries.values()}))
        self._hash = hash(tuple(sorted((n, a) for n, (a, _) in self._entries.items())))
        self._formats = frozenset(q for _, q in self._entries.values())
        # (algorithm, where) -> the first module using it; where: "moe" (under a fused MoE module), "lm_head", "linear"
        uses: dict[tuple[str, str], str] = {}
        for name, (a, _) in sorted(self._entries.items()):
            where = "moe" if ".experts" in name else "lm_head" if name == "lm_head" else "linear"
            uses.setdefault((a, where), name)
        self.uses = uses

    def exact(self, name: str) -> QuantConfig | None:
        hit = self._entries.get(name)
        return hit[1] if hit else None

    def under(self, name: str) -> QuantConfig | None:
        return self._under.get(name)

    def algo_names(self) -> dict[str, str]:
        return {n: a for n, (a, _) in self._entries.items()}

    def formats(self) -> frozenset[QuantConfig]:
        return self._formats

    def mapped(self, fn: Callable[[QuantConfig], QuantConfig]) -> ModuleQuant:
        """The same modules with every format passed through `fn`."""
        return ModuleQuant({n: (a, fn(q)) for n, (a, q) in self._entries.items()})

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModuleQuant) and (self is other or (
            self._hash == other._hash and self._entries == other._entries))

    def __repr__(self) -> str:
        return f"ModuleQuant({len(self._entries)} modules: {', '.join(self.algos)})"


@dataclass(frozen=True)
class QuantConfig:
    """A checkpoint's quantization, normalised from config.json's quantization_config."""

    method: str  # fp8 | compressed-tensors | awq | gptq | bitsandbytes | gguf | mxfp4 | nvfp4 | ...
    bits: int = 16
    group_size: int = 0  # 0: per-channel / not grouped
    desc_act: bool = False
    symmetric: bool = True
    weight_block: tuple[int, int] | None = None  # FP8 block-wise
    scheme: str = ""  # compressed-tensors scheme: w8a8_int8 | w8a8_fp8 | w4a16 | w8a16 | nvfp4
    ignore: tuple[str, ...] = ()  # module names / "re:" regexes that stay unquantized
    lm_head_quantized: bool = False
    experts_only: bool = False  # MXFP4: only MoE experts are quantized
    gguf_types: tuple[tuple[str, str], ...] = ()  # GGUF: (tensor name, ggml type) when known
    source: str = "checkpoint"  # checkpoint | online (--quantization on an unquantized checkpoint)
    kv_cache_fp8: bool = False  # the checkpoint declares an FP8 KV cache (kv_cache_scheme / kv_cache_quant_algo)
    experts_format: str = ""  # MoE experts stored differently from the other linears (e.g. "mxfp4")
    fp8_marlin: bool = False  # FP8 weights repacked for the weight-only Marlin kernel (no native FP8 on the GPU)
    only: tuple[str, ...] = ()  # module prefixes outside which nothing is quantized (AutoRound's block names)
    origin: str = ""  # the checkpoint's own quant_method where vLLM serves it through another (auto-round -> gptq)
    modules: ModuleQuant | None = None  # mixed precision: each listed module's own format (method "modelopt_mixed")


@dataclass(frozen=True)
class EncoderShape:
    """A Qwen-VL-style vision tower as vLLM's V1 profile run drives it: one max-size image or video (its size set by
    the processor's max_pixels, which lives in preprocessor_config.json, not config.json) goes through every
    block at once, so the tower's activations at that patch count can exceed the language model's own peak."""

    patch_input: int  # values per patch in pixel_values (channels x temporal_patch x patch^2); float32 on the GPU
    patch_size: int
    merge: int  # spatial_merge_size: merge^2 patches make one LLM token
    temporal_patch: int
    hidden: int
    intermediate: int
    mlp_live: int  # intermediate-width tensors alive at the MLP peak: 3 gated (gate_up + act), 2 plain (fc1 + act)
    hidden_live: int  # hidden-width tensors alive then (block input, norm output, attention output, residual)
    rotary_bytes: int  # per-patch rotary cos/sin table
    max_pixels: int = 12845056  # Qwen2/2.5-VL checkpoints ship max_pixels 12845056 (3584 x 3584)
    # How vLLM sizes the profile's items: "qwen2_vl" (Qwen2VLProcessingInfo: videos are frames of the largest image)
    # or "qwen3_vl" (Qwen3VLProcessingInfo: the video processor's own pixel budget, spread over the frames).
    processor: str = "qwen2_vl"
    video_max_pixels: int = 0  # qwen3_vl: the video processor's size["longest_edge"], over all frames
    video_min_pixels: int = 0  # qwen3_vl: its size["shortest_edge"]
    outputs: int = 1  # text-width vectors the tower emits per token (Qwen3-VL: the merger's and one per deepstack level)
    # Which vLLM vision block the tower runs ("qwen2_5_vl": qwen2_5_vl.py's, "qwen2_vl": qwen2_vl.py's), for the
    # releases whose attention phase encoder_profile counts tensor by tensor; "" keeps the MLP-phase count only.
    block: str = ""


@dataclass(frozen=True)
class MultimodalSpec:
    """Enough about a vision/audio tower to size its weights and its profile-run outputs."""

    params: int
    tokens_per_item: int
    hidden_size: int
    # Tensors the encoder builds lazily in its first forward (the profile run) and keeps: they land in the
    # profiled peak, not in "Model loading took" (e.g. MoonViT's 512x512 2-D RoPE table).
    profile_buffer_bytes: int = 0
    # Attention heads the encoder splits over TP with no fallback: vLLM asserts TP divides them (0: no such check).
    tp_heads: int = 0
    # How the V1 profile run exercises the tower, where known from vLLM's model code (None: calibrated term only).
    encoder: EncoderShape | None = None


@dataclass(frozen=True)
class SequenceParallelRule:
    """Tensor kinds a model's vLLM code keeps whole on every GPU under sequence-parallel MoE (expert parallelism with
    TP > 1 and DP > 1, vLLM's default all2all backend), where they are otherwise split over TP: each rank then runs
    them on its own slice of the tokens. `since`: the first release whose model code does it; `pp1`: only without
    pipeline parallelism; `unless_env`: an environment variable that, set to 1, keeps them split."""

    kinds: tuple[str, ...]
    since: str
    pp1: bool = False
    unless_env: str | None = None


@dataclass(frozen=True)
class ServingLimits:
    """What a model's own vLLM code asserts at start-up beyond memory: the reach of the one attention backend it
    runs on. A deployment outside it cannot start, whatever the memory says."""

    who: str  # whose assertion, for the verdict ("vLLM's Flint attention, FlashInfer only")
    model_dtypes: tuple[str, ...] = ()  # resolved model dtypes it takes; () any
    kv_dtypes: tuple[str, ...] = ()  # --kv-cache-dtype values it takes; () any
    capabilities: tuple[tuple[float, float], ...] = ()  # [low, high) compute-capability ranges; () any


@dataclass(frozen=True)
class MaxLenLimit:
    """The longest max_model_len vLLM accepts for a config, and its default when none is given."""

    derived: int  # from the smallest length key, scaled by RoPE scaling as vLLM does
    key: str  # the config key it came from, for the error message
    default: int  # max_model_len when the user gives none (LongRoPE models default to the short length)
    model_max_length: int | None = None  # a config-level override vLLM also accepts


@dataclass(frozen=True)
class MtpModule:
    """The multi-token-prediction modules a checkpoint carries (num_nextn_predict_layers), as vLLM builds them when
    they draft for speculative decoding (--speculative-config method "mtp"); otherwise vLLM skips them at load. The
    draft shares the target's embedding and LM head (spec_decode's load_model), so only its own parts are here."""

    layers: tuple[Layer, ...]  # one decoder layer per module, each with a KV cache of its own
    # Outside the layers: the modules' input norms and projection, their head norm; Tensor.until / Tensor.since mark
    # a per-module copy of the LM head (shared_head.head) in the releases that keep it.
    tensors: tuple[Tensor, ...]
    style: str  # whose vLLM module: "deepseek" (deepseek_mtp.py, glm4_moe_mtp.py), "deepseek_v4", "mimo_v2", "qwen_next",
    # "nemotron_h", "step3p5", "ernie", "longcat", "bailing", "hy_v3"; separate drafts: "eagle", "eagle3", "draft_model",
    # "gemma4_assistant"
    since: str | None = None  # the first vLLM release that drafts with it, where later than the model's own
    modules: int = 0  # the MTP modules (draft steps) the layers make up; 0: one per layer

    @property
    def num_modules(self) -> int:
        return self.modules or len(self.layers)

    @property
    def params(self) -> int:
        """Parameters the checkpoint holds for the module (buffers vLLM adds are not among them)."""
        return sum(t.numel for t in self.tensors + tuple(t for x in self.layers for t in x.tensors) if t.in_checkpoint)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model_type: str
    architecture: str
    hidden_size: int
    vocab_size: int
    num_attention_heads: int
    head_dim: int
    intermediate_size: int
    max_position_embeddings: int
    torch_dtype: str
    tie_word_embeddings: bool
    layers: tuple[Layer, ...]
    embedding: tuple[Tensor, ...]  # tensors of the first PP stage (embedding, its norm)
    head: tuple[Tensor, ...]  # tensors of the last PP stage (final norm, lm_head)
    extra: tuple[Tensor, ...] = ()  # vision tower, projector, MTP layers loaded by vLLM
    extra_not_loaded: tuple[Tensor, ...] = ()  # in the checkpoint, not loaded by vLLM (e.g. MTP)
    mtp: MtpModule | None = None  # the checkpoint's MTP modules, loaded only to draft for speculative decoding
    rope_caches: tuple[RopeCache, ...] = ()
    token_buffers: tuple[TokenBuffer, ...] = ()
    residual_streams: int = 1  # hyper-connections (DeepSeek-V4's hc_mult): the residual is this many hidden wide
    quant: QuantConfig | None = None
    multimodal: MultimodalSpec | None = None
    # A model whose config forces fp32 SSM state, etc.
    mamba_ssm_dtype: str | None = None
    # The first release whose model-config hook reads that config value (NemotronH's from 0.13); before it vLLM
    # keeps the model dtype. None: every release reads it.
    mamba_ssm_dtype_from: str | None = None
    # Where the config names none: the SSM state dtype a model's vLLM config hook picks, by release
    # ((first version, dtype), ... ascending); before the first, the model dtype.
    mamba_ssm_dtype_defaults: tuple[tuple[str, str], ...] = ()
    # The first release whose "ssm" state follows an explicit --mamba-ssm-cache-dtype (Kimi-K3's KDA layer from 0.30,
    # GLM-5-Next's from 0.32); before it vLLM keeps the auto dtype whatever the flag says. None: every release.
    mamba_ssm_flag_from: str | None = None
    # The values that release accepts for this model (kda_state_dtype raises on float16); (): all of them.
    mamba_ssm_flag_values: tuple[str, ...] = ()
    max_len_limit: MaxLenLimit | None = None  # None: the config names no length, vLLM trusts the user's
    generic: bool = False  # built by the generic-decoder fallback
    # attention_chunk_size as vLLM's ModelConfig reads it from the text config: set, it keeps the hybrid KV cache
    # manager off unless VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE, chunked layers or not
    attention_chunk_size: int | None = None
    attention_chunk_dropped_from: str | None = None  # the vLLM version that strips a stray one for this model
    sequence_parallel: tuple[SequenceParallelRule, ...] = ()  # what sequence-parallel MoE replicates
    # Sizes vLLM asserts the tensor-parallel size divides, beyond heads and vocabulary: (size, what it is).
    tp_divides: tuple[tuple[int, str], ...] = ()
    # Times a token runs through the decoder layers' weights, on average (looped decoders re-run their layers:
    # IQuest-Coder Loop loop_num times, HRM-Text H_cycles x (L_cycles + 1) / 2); memory is unaffected, speed is not.
    layer_runs: float = 1.0
    # A communication workspace the model allocates outside torch while it loads (engines/vllm/comm_workspace.py
    # sizes it; vLLM counts it as non-torch memory): "beam_lamport" is Beam's multicast all-reduce. "" for none.
    comm_workspace: str = ""
    serving_limits: ServingLimits | None = None
    notes: tuple[str, ...] = field(default=())
    # Tensors read from the checkpoint's headers (stored=True); when present, weights are exact bytes.
    checkpoint: tuple[Tensor, ...] | None = None
    source: str = "config"  # catalog | catalog-estimated | config | local | hub | gguf

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_decoder_layers(self) -> int:
        """vLLM's decoder layers, the units a pipeline split divides (num_layers counts KV-cache layers)."""
        return sum(1 for i, x in enumerate(self.layers) if i == 0 or not x.continues)

    @property
    def max_model_len_limit(self) -> int:
        """The longest context vLLM accepts without VLLM_ALLOW_LONG_MAX_MODEL_LEN."""
        return self.max_len_limit.derived if self.max_len_limit else self.max_position_embeddings

    @property
    def num_kv_heads(self) -> int:
        for layer in self.layers:
            if layer.attention.num_kv_heads:
                return layer.attention.num_kv_heads
        return 0

    def param_counts(self) -> dict[str, int]:
        """Exact parameter count per tensor kind (the checkpoint's logical parameters)."""
        return dict(self._param_counts)

    @cached_property
    def _param_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        tensors: list[Tensor] = list(self.embedding) + list(self.head) + list(self.extra)
        per_layer: dict[int, int] = {}
        for layer in self.layers:
            per_layer[id(layer)] = per_layer.get(id(layer), 0) + 1
        uniq = {id(layer): layer for layer in self.layers}
        for key, n in per_layer.items():
            for t in uniq[key].tensors:
                if t.in_checkpoint:
                    counts[t.kind] = counts.get(t.kind, 0) + t.numel * n
        seen_tied = False
        for t in tensors:
            if t.kind == "lm_head" and self.tie_word_embeddings:
                seen_tied = True
                continue
            if not t.in_checkpoint:  # buffers and padding vLLM allocates beside the checkpoint's parameters
                continue
            counts[t.kind] = counts.get(t.kind, 0) + t.numel
        if seen_tied:
            counts.setdefault("lm_head", 0)
        counts["total"] = sum(v for k, v in counts.items())
        return counts

    @property
    def total_params(self) -> int:
        return self._param_counts["total"]

    # Cached: the engine asks these several times per estimate, and a spec's layers never change.
    @cached_property
    def attention_free(self) -> bool:
        """Every layer recurrent (Mamba, Mamba-2): no attention KV cache at all."""
        return bool(self.layers) and all(layer.attention.kind == "mamba" for layer in self.layers)

    @cached_property
    def is_moe(self) -> bool:
        return any(layer.mlp.kind == "moe" for layer in self.layers)

    @cached_property
    def attention_kinds(self) -> dict[str, int]:  # shared: read it, do not change it
        kinds: dict[str, int] = {}
        for layer in self.layers:
            kinds[layer.attention.kind] = kinds.get(layer.attention.kind, 0) + 1
        return kinds
