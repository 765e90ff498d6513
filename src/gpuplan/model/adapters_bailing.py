"""inclusionAI's Ling / Ring ("Bailing") models as vLLM builds them.

- model_type bailing_moe: BailingMoeForCausalLM (Ling-lite, Ling-plus 1.x) and BailingMoeV2ForCausalLM (Ling-mini /
  flash / 1T-2.0, Ring-*-2.0), both vllm/model_executor/models/bailing_moe.py. One fused QKV (GQA, optional q/k
  norms), the first `first_k_dense_replace` layers a gated MLP of `intermediate_size`, the rest a routed MoE with a
  replicated gate in `router_dtype`, an fp32 `expert_bias` when `moe_router_enable_expert_bias`, and the shared
  experts fused into one gated MLP of num_shared_experts x moe_shared_expert_intermediate_size.
- model_type bailing_hybrid with BailingMoeV2_5ForCausalLM (Ring-2.5, Ling-2.5/2.6): models/bailing_moe_linear.py.
  Every layer_group_size-th layer is MLA (DeepSeek-style latent attention); the others are Lightning linear
  attention (layers/mamba/linear/bailing_linear_attn.py) whose whole per-request state is one
  [heads, head_dim, head_dim] matrix per layer, in the model dtype. MoE as above, but the gate is fp32 unless
  router_dtype names another type.
- model_type bailing_hybrid with BailingMoeV3ForCausalLM (Ling-3.0): models/bailing_moe_v3.py. Kimi-style delta
  attention (KDA) layers with an fp32 recurrent state, gated MLA on every layer_group_size-th layer and on the tail,
  an fp32 gate and expert bias on every MoE layer.
- model_type bailing_moe_linear (Ring-*-linear-2.0, BailingMoeLinearV2ForCausalLM) has no vLLM class: refused.

No plain Bailing model builds the checkpoints' MTP layers (num_nextn_predict_layers); vLLM drafts with them for the
2.5 hybrids from 0.25 (bailing_moe_mtp.py) and Ling-3.0 from 0.28 (bailing_moe_v3_mtp.py): `_mtp`. These are remote-code
configs: keys a config.json leaves out take the defaults of the checkpoint's own configuration class, which is
what vLLM reads.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from . import builders as b
from .adapters import _embed_head, _head_dim, _int, _rope, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, MtpModule, RopeCache, StateTensor, Tensor

ATT = b.P + "attention."  # the checkpoints' module name for both attention kinds
MLP = b.P + "mlp."


def _is_v1(cfg: dict, outer: dict) -> bool:
    """Ling 1.x: the checkpoint's config class is configuration_bailing_moe.BailingMoeConfig (auto_map), else the
    BailingMoeForCausalLM architecture."""
    auto = (outer.get("auto_map") or cfg.get("auto_map") or {}).get("AutoConfig")
    if isinstance(auto, str) and auto:
        return auto.split(".")[0] == "configuration_bailing_moe"
    return ((outer.get("architectures") or cfg.get("architectures") or [""])[0] or "") == "BailingMoeForCausalLM"


def _flag(cfg: dict, key: str, default: bool) -> bool:
    v = cfg.get(key)
    return default if v is None else bool(v)


def _router(cfg: dict, hidden: int, e: int, *, unset: str | None) -> tuple[Tensor, ...]:
    """GateLinear(params_dtype=router_dtype), replicated and never quantized: "fp32" keeps it in float32, another
    name in bfloat16, and no router_dtype gives `unset` (None: the model dtype). Plus the fp32 expert_bias."""
    rd = cfg.get("router_dtype")
    dtype = unset if rd is None else ("float32" if rd == "fp32" else "bfloat16")
    t = (Tensor(MLP + "gate.weight", "router", (e, hidden), "replicated", dtype=dtype),)
    if _flag(cfg, "moe_router_enable_expert_bias", False):
        t += (Tensor(MLP + "gate.expert_bias", "router", (e,), "replicated", dtype="float32"),)
    return t


def _moe(cfg: dict, hidden: int, bias: bool, *, router_unset: str | None) -> tuple[Mlp, tuple[Tensor, ...]]:
    e, k = _int(cfg, "num_experts"), _int(cfg, "num_experts_per_tok")
    mi = _int(cfg, "moe_intermediate_size")
    # vLLM takes moe_shared_expert_intermediate_size when the config has it, else the experts' width.
    shared = _int(cfg, "moe_shared_expert_intermediate_size", "moe_intermediate_size") * _int(
        cfg, "num_shared_experts", default=0)
    t = _router(cfg, hidden, e, unset=router_unset) + b.experts(hidden, mi, e)
    if shared:
        t += b.gated_mlp(hidden, shared, bias=bias, prefix=MLP + "shared_experts.", kind="shared_experts")
    return Mlp("moe", 0, e, k, mi, shared), t


def _layers(n: int, is_moe, att_for, att_tensors, dense: tuple[Mlp, tuple[Tensor, ...]],
            moe: tuple[Mlp, tuple[Tensor, ...]], norms: tuple[Tensor, ...]) -> list[Layer]:
    cache: dict[tuple, Layer] = {}
    out = []
    for i in range(n):
        att, m = att_for(i), is_moe(i)
        if (id(att), m) not in cache:
            mlp, mlp_t = moe if m else dense
            cache[(id(att), m)] = Layer(att, mlp, att_tensors(att) + mlp_t + norms)
        out.append(cache[(id(att), m)])
    return out


def _mtp(cfg: dict, hidden: int, att: Attention, mlp: Mlp, layer: tuple[Tensor, ...], *, since: str = "",
         eh_quantized: bool = False) -> MtpModule | None:
    """The checkpoint's num_nextn_predict_layers MTP layers (model.layers.N past the last, as the Ling checkpoints
    and vLLM's loaders name them). Each is a MoE decoder layer with the model's MLA attention (BailingMoeV25 /
    BailingMoeV3 MLA and MoE, built with the checkpoint's quantization), beside it enorm, hnorm, final_layernorm and
    eh_proj [hidden, 2 x hidden]: a plain nn.Linear (whole, never quantized) in bailing_moe_mtp.py, a
    ReplicatedLinear with the quantization in bailing_moe_v3_mtp.py. Each layer's shared_head.head is pointed at the
    target's LM head by the proposer (0.16+), and the embedding is the target's, so neither is here."""
    k = _int(cfg, "num_nextn_predict_layers", default=0)
    if k <= 0:
        return None
    n = _int(cfg, "num_hidden_layers")
    own = tuple(t for j in range(k) for t in b.mtp_input(
        f"model.layers.{n + j}.", hidden, f"model.layers.{n + j}.final_layernorm", quantizable=eh_quantized))
    return MtpModule(layers=(Layer(att, mlp, layer),) * k, tensors=own, style="bailing", since=since)


def _mtp_not_loaded(mtp: MtpModule | None) -> tuple[Tensor, ...]:
    """The MTP layers some checkpoints ship, which no Bailing model loads for plain serving."""
    if mtp is None:
        return ()
    return (Tensor("model.mtp", "mtp", (mtp.params,), "replicated"),)


# ----------------------------------------------------------------------------- Ling / Ring 1.x and 2.0


@register("bailing_moe")
def _bailing_moe(cfg: dict, outer: dict, name: str) -> ModelSpec:
    v1 = _is_v1(cfg, outer)
    hidden, n = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers")
    heads = _int(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=0) or heads
    hd = _head_dim(cfg, hidden, heads)
    vocab = _int(cfg, "vocab_size")
    # BailingMoeConfig (1.x) defaults use_bias to True; BailingMoeV2Config to False. vLLM reads both directly.
    bias = _flag(cfg, "use_bias", v1)
    qkv_bias = bias or _flag(cfg, "use_qkv_bias", False)
    # BailingAttention: q/k norms only with use_qk_norm (2.0's class default on); RMSNorm with use_rmsnorm, else a
    # LayerNorm that also allocates a bias the checkpoint does not fill.
    qk_norm = _flag(cfg, "use_qk_norm", not v1)
    att_t = b.attention(hidden, heads, kv, hd, qkv_bias=qkv_bias, o_bias=bias, prefix=ATT, o_name="dense")
    if qk_norm:
        for x in ("query_layernorm", "key_layernorm"):
            att_t += b.norm(ATT + x, hd)
            if not _flag(cfg, "use_rmsnorm", False):  # nn.LayerNorm's bias: allocated, not in the checkpoint
                att_t += (Tensor(ATT + x + ".bias", "norm", (hd,), in_checkpoint=False),)
    # vLLM's cache config takes the text config's sliding_window whatever use_sliding_window says, and
    # BailingMoeConfig (1.x) defaults it to 4096: Ling-lite / Ling-plus are served with a 4096-token window on
    # every layer unless the config.json sets sliding_window to null. BailingMoeV2Config has no window.
    window = cfg.get("sliding_window", 4096 if v1 else None)
    if window:
        att = Attention("sliding_window", heads, kv, hd, window=int(window))
    else:
        att = Attention("full", heads, kv, hd)
    inter = _int(cfg, "intermediate_size", default=0)
    first_dense = _int(cfg, "first_k_dense_replace", default=0 if v1 else 1)
    dense = (Mlp("dense", inter), b.gated_mlp(hidden, inter, bias=bias, prefix=MLP) if first_dense else ())
    moe = _moe(cfg, hidden, bias, router_unset=None)
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    layers = _layers(n, lambda i: i >= first_dense, lambda i: att, lambda a: att_t, dense, moe, norms)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden),
                            embed_name="model.word_embeddings")
    # Rotary width: rotary_dim when the config names it (Ling-1T), else head_dim x partial_rotary_factor.
    rot = _int(cfg, "rotary_dim", default=0) or int(hd * float(cfg.get("partial_rotary_factor") or 1.0))
    rope = tuple(RopeCache(c.positions, rot, c.dtype) for c in _rope(cfg, hd))
    notes: tuple[str, ...] = ()
    if att.kind == "sliding_window" and "sliding_window" not in cfg:
        notes = (f"its config class defaults sliding_window to {window}, which vLLM applies to every layer (the "
                 "checkpoint was trained with full attention; vLLM does not read use_sliding_window)",)
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=rope,
                 # Ling 2.0's MTP layers (Ling-flash/1T): vLLM has no drafter for bailing_moe
                 not_loaded=_mtp_not_loaded(_mtp(cfg, hidden, att, moe[0], att_t + moe[1] + norms)),
                 notes=notes)


# ----------------------------------------------------------------------------- Ring / Ling 2.5 (hybrid)


def _linear_attention(cfg: dict, hidden: int, heads: int, hd: int, bias: bool) -> tuple[Attention, tuple]:
    """BailingMoELinearAttention: multi-head fused QKV (no GQA), optional RMSNorm q/k norms, a column-parallel
    output gate g_proj, the row-parallel dense, and a gated group RMSNorm whose weight is split with the heads.
    State: linear_attention_state_shape, (heads / tp, head_dim, head_dim) in the cache (model) dtype."""
    inner = heads * hd
    t = b.linear(ATT + "query_key_value", "attention", 3 * inner, hidden, "column",
                 bias or _flag(cfg, "use_qkv_bias", False))
    if _flag(cfg, "use_qk_norm", True):
        t += b.norm(ATT + "query_layernorm", hd) + b.norm(ATT + "key_layernorm", hd)
    t += (b.linear(ATT + "g_proj", "attention", inner, hidden, "column")
          + b.linear(ATT + "dense", "attention", hidden, inner, "row", bias)
          + (Tensor(ATT + "g_norm.weight", "norm", (inner,), "column"),))
    state = (StateTensor("recurrent", (heads, hd, hd), 0, "conv", "linear-attention heads"),)
    return Attention("mamba", state=state, state_kind="linear"), t


def _mla(cfg: dict, hidden: int, heads: int) -> tuple[Attention, tuple]:
    """BailingMoeV25MLAAttention (no q/k norms, no output gate): a replicated fused q_a + kv_a projection with
    q_lora_rank, else a column-parallel q_proj beside a replicated kv_a_proj_with_mqa."""
    kvr, rope_d = _int(cfg, "kv_lora_rank", default=512), _int(cfg, "qk_rope_head_dim", default=64)
    nope_d, v_d = _int(cfg, "qk_nope_head_dim", default=128), _int(cfg, "v_head_dim", default=128)
    t = b.mla_attention(hidden, heads, _int(cfg, "q_lora_rank", default=0), kvr, rope_d, nope_d, v_d, prefix=ATT,
                        o_name="dense")
    att = Attention("mla", heads, 1, kvr + rope_d, kv_lora_rank=kvr, qk_rope_head_dim=rope_d,
                    qk_nope_head_dim=nope_d, v_head_dim=v_d)
    return att, t


# BailingMoeV2_5Config's defaults (inclusionAI/Ring-V2.5 models/configuration_bailing_moe_v2_5.py): the config
# object vLLM reads carries them for every key a config.json leaves out.
_V25_DEFAULTS = {"intermediate_size": 5120, "num_experts": 256, "num_shared_experts": 1, "num_experts_per_tok": 8,
                 "moe_intermediate_size": 512, "first_k_dense_replace": 1, "head_dim": 128, "use_qk_norm": True,
                 "moe_router_enable_expert_bias": True, "layer_group_size": 5, "group_norm_size": 4,
                 "kv_lora_rank": 512, "qk_rope_head_dim": 64, "v_head_dim": 128, "qk_nope_head_dim": 128,
                 "partial_rotary_factor": 0.5, "router_dtype": "fp32", "max_position_embeddings": 32768,
                 "rope_theta": 600000.0}


def _hybrid_dims(cfg: dict) -> tuple[int, int, int, int, int, bool]:
    """hidden, layers, heads, head_dim, vocab and the projections' bias flag of the 2.5 and 3.0 hybrids."""
    hidden, heads = _int(cfg, "hidden_size"), _int(cfg, "num_attention_heads")
    hd = _int(cfg, "head_dim", default=0) or hidden // heads
    return (hidden, _int(cfg, "num_hidden_layers"), heads, hd, _int(cfg, "vocab_size"),
            _flag(cfg, "use_bias", False))


def _bailing_v25(cfg: dict, outer: dict, name: str) -> ModelSpec:
    cfg = {**_V25_DEFAULTS, **cfg}
    hidden, n, heads, hd, vocab, bias = _hybrid_dims(cfg)
    # is_linear_layer: with layer_group_size g > 0, every g-th layer (1-based) is MLA and the rest linear; no tail
    # rule (unlike Ling 3.0), and without the key every layer is MLA.
    g = _int(cfg, "layer_group_size", default=1)
    linear = [g > 0 and (i + 1) % g != 0 for i in range(n)]
    lin, lin_t = _linear_attention(cfg, hidden, heads, hd, bias)
    mla, mla_t = _mla(cfg, hidden, heads)
    inter = _int(cfg, "intermediate_size", default=0)
    first_dense = _int(cfg, "first_k_dense_replace")
    e = _int(cfg, "num_experts", default=0)
    dense = (Mlp("dense", inter), b.gated_mlp(hidden, inter, bias=bias, prefix=MLP))
    moe = _moe(cfg, hidden, bias, router_unset="float32")
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    layers = _layers(n, lambda i: e > 1 and i >= first_dense, lambda i: lin if linear[i] else mla,
                     lambda a: lin_t if a is lin else mla_t, dense, moe, norms)
    # BailingMoeV25ForCausalLM always builds its own lm_head (it never ties it to the embedding).
    emb, head = _embed_head(vocab, hidden, False, final_norm=b.norm("model.norm", hidden),
                            embed_name="model.word_embeddings")
    # Two rotary caches: the linear layers rotate head_dim x partial_rotary_factor (NeoX style, 0.5 by the config
    # class's default), the MLA layers their whole qk_rope_head_dim (GPT-J style).
    # get_rope keys its cache on head size and style too, so the two stay separate even when their widths match;
    # the engine tells caches apart by (positions, width, dtype, theta), hence the MLA one carries its base.
    prf = float(cfg.get("partial_rotary_factor") or 0.5)
    ropes = _rope(cfg, hd)
    rope: tuple[RopeCache, ...] = ()
    if any(linear):
        rope += tuple(RopeCache(c.positions, int(hd * prf), c.dtype) for c in ropes)
    if not all(linear):
        theta = float(cfg.get("rope_theta") or 600000.0)
        rope += tuple(RopeCache(c.positions, mla.qk_rope_head_dim, c.dtype, theta=theta) for c in ropes)
    mtp = _mtp(cfg, hidden, mla, moe[0], mla_t + moe[1] + norms, since="0.25")
    spec = _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=mla.head_dim,
                 inter=inter, tie=False, embedding=emb, head=head, rope=rope, not_loaded=_mtp_not_loaded(mtp),
                 mtp=mtp)
    if not any(linear):
        return spec
    # bailing_linear_attn.py normalises the linear attention's output in group_norm_size groups (1 when the config
    # does not say) and asserts the tensor-parallel size divides them.
    groups = _int(cfg, "group_norm_size", default=1)
    return replace(spec, tp_divides=((groups, "the linear attention's output-norm groups (group_norm_size)"),))


# ----------------------------------------------------------------------------- Ling 3.0 (hybrid KDA + MLA)

# BailingMoeV3TextConfig's defaults (vLLM's vllm/transformers_utils/configs/bailing_moe_v3_vl.py, adapted from the
# checkpoints' configuration_bailing_moe_v3.py) for the keys the model reads.
_V3_DEFAULTS = {"intermediate_size": 5120, "num_experts": 256, "num_shared_experts": 1, "num_experts_per_tok": 8,
                "moe_intermediate_size": 512, "moe_shared_expert_intermediate_size": 512, "first_k_dense_replace": 1,
                "head_dim": 128, "layer_group_size": 5, "kv_lora_rank": 512, "qk_rope_head_dim": 64, "v_head_dim": 128,
                "qk_nope_head_dim": 128, "short_conv_kernel_size": 4, "max_position_embeddings": 32768,
                "rope_theta": 600000.0}


def _kda_v3(cfg: dict, hidden: int, heads: int, hd: int) -> tuple[Attention, tuple]:
    """BailingMoeV3KimiDeltaAttention (no_kda_lora): q, k, v and the per-head beta b_proj fused column-parallel
    (qkvb_proj), a full-rank forget gate f_proj and output gate g_proj, float32 dt_bias, A_log and the three short
    convolutions (built without the quantization config), an o_norm over head_dim and the row-parallel o_proj.
    State (kda_state_shape / kda_state_dtype): the short-conv window over q, k, v in the cache dtype and a
    [heads, head_dim, head_dim] recurrent state that stays float32."""
    proj, ck = heads * hd, _int(cfg, "short_conv_kernel_size")
    t = (b.linear(ATT + "q_proj", "attention", proj, hidden, "column")
         + b.linear(ATT + "k_proj", "attention", proj, hidden, "column")
         + b.linear(ATT + "v_proj", "attention", proj, hidden, "column")
         + b.linear(ATT + "b_proj", "attention", heads, hidden, "column")
         + b.linear(ATT + "f_proj", "attention", proj, hidden, "column")
         + (Tensor(ATT + "dt_bias", "attention", (proj,), "column", dtype="float32"),)
         + tuple(Tensor(ATT + f"{x}_conv1d.weight", "attention", (proj, ck), "column", dtype="float32")
                 for x in "qkv")
         + (Tensor(ATT + "A_log", "attention", (heads,), "head", dtype="float32"),)
         + b.linear(ATT + "g_proj", "attention", proj, hidden, "column")
         + b.norm(ATT + "o_norm", hd)
         + b.linear(ATT + "o_proj", "attention", hidden, proj, "row"))
    state = (StateTensor("conv", (ck - 1, 3 * proj), 1, "conv"),
             StateTensor("recurrent", (heads, hd, hd), 0, "float32", "KDA heads"))
    return Attention("mamba", state=state, state_kind="kda"), t


def _bailing_v3(cfg: dict, outer: dict, name: str) -> ModelSpec:
    cfg = {**_V3_DEFAULTS, **cfg}
    hidden, n, heads, hd, vocab, bias = _hybrid_dims(cfg)
    # _is_kda_layer: MLA on every g-th layer and on the tail past the last whole group, KDA elsewhere.
    g = _int(cfg, "layer_group_size")
    kda_layer = [not ((i + 1) % g == 0 or i >= n // g * g) for i in range(n)]
    kda, kda_t = _kda_v3(cfg, hidden, heads, hd)
    mla, mla_t = _mla(cfg, hidden, heads)
    # The MLA output gate (gated_attention_proj_granularity_type): one sigmoid per head or per element, a
    # column-parallel g_proj. (Block-FP8 checkpoints may keep a head-wise gate whole on every rank.)
    gate = cfg.get("gated_attention_proj_granularity_type")
    g_out = heads if gate == "head_wise" else heads * mla.v_head_dim if gate == "element_wise" else 0
    if g_out:
        mla_t += b.linear(ATT + "g_proj", "attention", g_out, hidden, "column")
    inter = _int(cfg, "intermediate_size")
    e = cfg.get("num_experts")
    first_dense = _int(cfg, "first_k_dense_replace")
    dense = (Mlp("dense", inter), b.gated_mlp(hidden, inter, bias=bias, prefix=MLP))
    # BailingMoeV3MoE: an fp32 gate and fp32 expert_bias on every MoE layer, whatever router_dtype says; the shared
    # experts are num_shared_experts x moe_shared_expert_intermediate_size.
    shared = _int(cfg, "moe_shared_expert_intermediate_size") * _int(cfg, "num_shared_experts")
    moe_t = (Tensor(MLP + "gate.weight", "router", (int(e or 0), hidden), "replicated", dtype="float32"),
             Tensor(MLP + "gate.expert_bias", "router", (int(e or 0),), "replicated", dtype="float32"))
    moe_t += b.experts(hidden, _int(cfg, "moe_intermediate_size"), int(e or 0))
    moe_t += b.gated_mlp(hidden, shared, bias=bias, prefix=MLP + "shared_experts.", kind="shared_experts")
    moe = (Mlp("moe", 0, int(e or 0), _int(cfg, "num_experts_per_tok"), _int(cfg, "moe_intermediate_size"), shared),
           moe_t)
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    layers = _layers(n, lambda i: e is not None and i >= first_dense, lambda i: kda if kda_layer[i] else mla,
                     lambda a: kda_t if a is kda else mla_t, dense, moe, norms)
    # BailingMoeV3ForCausalLM never ties its lm_head.
    emb, head = _embed_head(vocab, hidden, False, final_norm=b.norm("model.norm", hidden),
                            embed_name="model.word_embeddings")
    # KDA layers have no position encoding; the MLA layers rotate qk_rope_head_dim (partial_rotary_factor ignored).
    rope = tuple(RopeCache(c.positions, mla.qk_rope_head_dim, c.dtype) for c in _rope(cfg, mla.qk_rope_head_dim)) \
        if not all(kda_layer) else ()
    # MTP layers are stored as model.layers.N past num_hidden_layers, which load_weights skips.
    mtp = _mtp(cfg, hidden, mla, moe[0], mla_t + moe_t + norms, since="0.28", eh_quantized=True)
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=mla.head_dim,
                 inter=inter, tie=False, embedding=emb, head=head, rope=rope, not_loaded=_mtp_not_loaded(mtp),
                 mtp=mtp)


@register("bailing_hybrid")
def _bailing_hybrid(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Ring-2.5 / Ling-2.5 / 2.6 (BailingMoeV2_5ForCausalLM) and Ling-3.0 (BailingMoeV3ForCausalLM, the default of
    the model_type's config class) share model_type bailing_hybrid; the architecture picks the vLLM model."""
    arch = (outer.get("architectures") or cfg.get("architectures") or ["BailingMoeV3ForCausalLM"])[0] or ""
    if arch == "BailingMoeV2_5ForCausalLM":
        return _bailing_v25(cfg, outer, name)
    if arch == "BailingMoeV3ForCausalLM":
        return _bailing_v3(cfg, outer, name)
    raise ConfigError("config", f"model_type 'bailing_hybrid' with architecture {arch!r} is not modelled",
                      accepted=["BailingMoeV2_5ForCausalLM", "BailingMoeV3ForCausalLM"])


@register("bailing_moe_linear")
def _bailing_moe_linear(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Ring-mini-linear-2.0 / Ring-flash-linear-2.0 declare BailingMoeLinearV2ForCausalLM, which no vLLM release
    registers (vLLM's hybrid Bailing class is BailingMoeV2_5ForCausalLM, with MLA full-attention layers)."""
    arch = (outer.get("architectures") or cfg.get("architectures") or [""])[0] or ""
    raise ConfigError("config", f"{arch or 'model_type bailing_moe_linear'} (Ring-*-linear-2.0) has no vLLM model "
                      "class in any release up to 0.33, so vLLM refuses it; vLLM's hybrid Bailing class is "
                      "BailingMoeV2_5ForCausalLM (model_type bailing_hybrid)")
