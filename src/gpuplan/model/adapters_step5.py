"""StepFun's Step5 (model_type step5, Step5ForCausalLM) and its vision wrapper (step5_vl) as vLLM 0.33 builds them.

vLLM 0.33 serves Step5 from its own package (vllm/models/step5/nvidia: model.py, sparse_attention.py,
sparse_summary_cache.py, csa_tail_ring.py). What it builds:

* GQA attention on every decoder layer, `num_attention_heads` query heads (the sliding layers take
  `swa_num_attention_heads` when set; a layer whose type is `attention_other_setting["attention_type"]` takes that
  entry's heads, groups and head_dim), `num_attention_groups` KV heads, per-head q/k RMSNorms kept in `norm_dtype`
  and, with `use_head_wise_attn_gate`, one gate logit per query head.
* `layer_types` decides each layer: "sliding_attention" layers run a `sliding_window` FlashAttention cache
  (SlidingWindowSpec); the others are full. With a `sparse_config` section (which vLLM requires), every full layer
  is a DSA layer: the q/k/v rows, the indexer's q (sparse_indexer_num_heads x proxy_dim, split by provider group,
  index_tp_size of them), its single-head k and z (proxy_dim each, whole on every rank) and the gate rows are one
  fused column-parallel weight; beside it the indexer's per-head weights `sparse_indexer_w` (split like the indexer
  q), an RMSNorm and a LayerNorm (weight and bias) of proxy_dim in the model dtype, and `ssmax_s`, one fp32 value per
  query head that the kernels never read but the loader fills. A DSA layer registers three caches: its K/V
  (FullAttentionSpec, blocks aligned to 8-token pages), an fp8 summary of every 8-token region (FullAttentionSpec of
  one 256-byte state per 8 tokens) and a ring of the open region's raw indexer rows (CircularBufferSpec, one main
  page a request). Its backend declares only the BLNHC layout, which makes the whole pool block-outermost; the
  recipe in engines/vllm/kv_recipes/step5.py lays the caches out.
* MoE on the layers `moe_layers_enum` / `moe_layer_list` name (by default every layer from 1 on): an fp32 router
  (`moe.gate`) and fp32 `router_bias`, routed experts and a shared expert of `share_expert_dim`; other layers a
  gated MLP of `intermediate_size`. `use_moe` is not read.
* Embedding and an untied LM head (tied when tie_word_embeddings), final norm in `norm_dtype`; the trailing
  `num_nextn_predict_layers` MTP layers (mtp.py: a decoder layer, enorm, hnorm, eh_proj and its own shared head)
  are skipped by the main model's loader.
* Rotary caches per get_rope key, over max_position_embeddings positions: per layer the theta of
  `rope_theta[i]` (a list) and `partial_rotary_factors[i]`, `rope_scaling` only on `yarn_only_types`; each DSA
  layer adds the indexer's rotary (sparse_indexer_rope_dim of proxy_dim, with `rope_scaling` whatever the type).
* One 128 MiB FlashInfer workspace per GPU, allocated when the first DSA layer is built (a buffer, no parameter).

step5_vl (Step5ForConditionalGeneration) is Step3p7's PerceptionEncoder frontend and projector around this text model.
"""

from __future__ import annotations

from ..errors import ConfigError
from . import builders as b
from .adapters import _embed_head, _int, _rope, _spec, _with, register
from .adapters_step import _perception_encoder
from .spec import Attention, Layer, Mlp, ModelSpec, RopeCache, Tensor

RECIPE = "step5"
FLASHINFER_WORKSPACE = 128 << 20  # Step5FlashInferSparse._workspace, uint8, one per device
SPARSE_DEFAULTS = {  # vLLM's Step5SparseConfig defaults (config.py)
    "proxy_dim": 256,
    "sparse_indexer_rope_dim": 32,
    "sparse_indexer_num_heads": 16,
    "sparse_indexer_num_k_heads": 1,
    "index_tp_size": 4,
    "topk": 512,
    "region_block_size": 8,
}
_NORM_DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp32": "float32", "float32": "float32",
                "float": "float32"}


def _sparse(cfg: dict) -> dict | None:
    """get_step5_sparse_config: None when the section says enabled=false; the geometry vLLM insists on checked."""
    for name in ("step5_sparse_config", "step3p5_sparse_config"):
        if cfg.get(name) is not None:
            raise ConfigError("config", f"Step5 reads its sparse layout from sparse_config; {name} is unsupported")
    sec = cfg.get("sparse_config")
    if not isinstance(sec, dict):
        raise ConfigError("config", "vLLM 0.33 serves only Step5 checkpoints with a sparse_config section "
                                    "(dense-only checkpoints are refused)")
    if sec.get("enabled") is False:
        return None
    out = {}
    for k, v in SPARSE_DEFAULTS.items():
        raw = sec.get(k)
        if raw is None and k == "index_tp_size":
            raw = sec.get("num_provider_groups")  # the checkpoint's name for it
        out[k] = int(raw) if raw not in (None, "") else v
    apply = tuple(str(t).strip().lower() for t in (sec.get("apply_to_layer_types") or ["full_attention"]))
    if apply != ("full_attention",):
        raise ConfigError("config", f"Step5 DSA applies to full_attention layers only, got {apply}")
    if out["proxy_dim"] != 256 or out["region_block_size"] != 8 or out["sparse_indexer_num_k_heads"] != 1:
        raise ConfigError("config", "Step5 DSA requires proxy_dim 256, region_block_size 8 and one indexer K head")
    if not 1 <= out["topk"] <= 1024:
        raise ConfigError("config", f"Step5 DSA requires topk in [1, 1024], got {out['topk']}")
    g, h = out["index_tp_size"], out["sparse_indexer_num_heads"]
    if g <= 0 or h <= 0 or h % g or h // g not in (2, 4):
        raise ConfigError("config", f"Step5 DSA needs sparse_indexer_num_heads / index_tp_size in (2, 4), got {h}/{g}")
    return out


def _moe_layers(cfg: dict, total: int, n: int) -> set[int]:
    """_get_step5_moe_layer_indices: moe_layers_enum (a comma string or list) and moe_layer_list must agree; neither:
    layers 1 .. n-1."""
    def parse(v) -> set[int] | None:
        if v is None:
            return None
        items = v.split(",") if isinstance(v, str) else list(v)
        return {int(str(x).strip()) for x in items if str(x).strip()}

    enum, lst = parse(cfg.get("moe_layers_enum")), parse(cfg.get("moe_layer_list"))
    if enum is not None and lst is not None and enum != lst:
        raise ConfigError("config", "Step5 moe_layers_enum and moe_layer_list describe different layers")
    idx = enum if enum is not None else lst if lst is not None else set(range(1, n))
    if any(not 0 <= i < total for i in idx):
        raise ConfigError("config", f"Step5 MoE layer indices must be in [0, {total})")
    return idx


def _per_layer(values, i: int, name: str, default):
    """_per_layer_value: a list must reach layer i."""
    if not values:
        return default
    if i >= len(values):
        raise ConfigError("config", f"Step5 {name} has {len(values)} entries, but layer {i} needs one")
    return values[i]


def _norm(name: str, size: int, dtype: str | None) -> Tensor:
    return Tensor(name, "norm", (size,), dtype=dtype)


def _step5_text(cfg: dict, outer: dict, name: str) -> ModelSpec:
    if cfg.get("quantization_config") or outer.get("quantization_config"):
        # DSA layers fuse q/k/v with the indexer into one plain GEMM that vLLM refuses to quantize; the rest of a
        # quantized Step5 checkpoint has not been read.
        raise ConfigError("config", "quantized Step5 checkpoints are not modelled")
    if str(cfg.get("att_impl_type", "GQA")) != "GQA":
        raise ConfigError("config", f"Step5 supports att_impl_type GQA only, got {cfg.get('att_impl_type')!r}")
    if cfg.get("attention_bias"):
        raise ConfigError("config", "Step5 attention_bias is not supported by vLLM")
    hidden, n = _int(cfg, "hidden_size", default=5120), _int(cfg, "num_hidden_layers", default=48)
    heads0 = _int(cfg, "num_attention_heads", default=40)
    kv0 = _int(cfg, "num_attention_groups", default=8)
    if kv0 <= 1:
        raise ConfigError("config", "Step5 weight loading supports GQA only (num_attention_groups > 1)")
    vocab, inter = _int(cfg, "vocab_size", default=65536), _int(cfg, "intermediate_size", default=13312)
    e, k = _int(cfg, "moe_num_experts", default=16), _int(cfg, "moe_top_k", default=4)
    mi = _int(cfg, "moe_intermediate_size", default=10240)
    shared = _int(cfg, "share_expert_dim", default=mi * k)
    mtp = _int(cfg, "num_nextn_predict_layers", default=0)
    total = n + mtp
    raw_types = cfg.get("layer_types_with_mtp") or cfg.get("layer_types") or []
    if raw_types and len(raw_types) < total:
        raise ConfigError("config", f"Step5 layer_types must cover the {n} decoder and {mtp} MTP layers")
    types = [str(t) for t in raw_types[:total]]
    window = cfg.get("sliding_window")
    norm_dtype = _NORM_DTYPES.get(str(cfg.get("norm_dtype", "bf16")).lower())
    if norm_dtype is None:
        raise ConfigError("config", f"unknown Step5 norm_dtype {cfg.get('norm_dtype')!r}")
    norm_dt = None if norm_dtype == "bfloat16" else norm_dtype  # the model dtype, or fp32
    sparse = _sparse(cfg)
    moe_idx = _moe_layers(cfg, total, n)
    if moe_idx & set(range(n)) and not (cfg.get("use_moe_router_bias") and cfg.get("need_fp32_gate")):
        raise ConfigError("config", "Step5 MoE requires use_moe_router_bias=true and need_fp32_gate=true")
    limits = cfg.get("swiglu_limits") or []
    if any(lim not in (None, 0, 7, 7.0) for lim in limits):
        raise ConfigError("config", "Step5's fused MoE supports only swiglu_limit 7.0")
    gate = bool(cfg.get("use_head_wise_attn_gate", False))
    other = cfg.get("attention_other_setting") if isinstance(cfg.get("attention_other_setting"), dict) else None
    positions = _int(cfg, "max_position_embeddings", "max_seq_len", default=4096)
    theta, factors = cfg.get("rope_theta", 500000), cfg.get("partial_rotary_factors") or []
    scaling = cfg.get("rope_scaling") if isinstance(cfg.get("rope_scaling"), dict) else None
    yarn_only = cfg.get("yarn_only_types") or []

    def shape(i: int) -> tuple[str, int, int, int, bool]:
        """(layer type as Step5Attention reads it, heads, KV heads, head_dim, DSA?) of layer i."""
        t = types[i] if types else ("sliding_attention" if i % 2 == 0 else "full_attention")
        h, kv, hd = heads0, kv0, cfg.get("head_dim")
        if other and i < len(types) and types[i] == other.get("attention_type"):
            h, kv, hd = int(other["num_attention_heads"]), int(other["num_attention_groups"]), other["head_dim"]
        sliding = window is not None and t == "sliding_attention"
        if sliding and cfg.get("swa_num_attention_heads") is not None:
            h = int(cfg["swa_num_attention_heads"])
        hd = int(hd) if hd else hidden // h
        # _is_step5_full_attention_layer: a layer past the list counts as full
        dsa = sparse is not None and not sliding and (types[i] if i < len(types) else "full_attention") == "full_attention"
        return t, h, kv, hd, dsa

    def attn_tensors(h: int, kv: int, hd: int, dsa: bool) -> tuple[Tensor, ...]:
        p = b.P + "self_attn."
        t = (b.linear(p + "q_proj", "attention", h * hd, hidden, "column")
             + b.linear(p + "k_proj", "attention", kv * hd, hidden, "kv", heads=kv)
             + b.linear(p + "v_proj", "attention", kv * hd, hidden, "kv", heads=kv)
             + b.linear(p + "o_proj", "attention", hidden, h * hd, "row")
             + (_norm(p + "q_norm.weight", hd, norm_dt), _norm(p + "k_norm.weight", hd, norm_dt)))
        if gate:  # one gate row per query head, split with the heads (fused into qkvg / qkv_indexer or apart)
            t += b.linear(p + "g_proj", "attention", h, hidden, "column")
        if dsa:
            if not gate:
                raise ConfigError("config", "Step5 DSA layers require use_head_wise_attn_gate=true")
            if hd != 192:
                raise ConfigError("config", f"Step5's DSA backend takes head_dim 192 only, got {hd}")
            pd, ih, g = sparse["proxy_dim"], sparse["sparse_indexer_num_heads"], sparse["index_tp_size"]
            if g != kv:
                raise ConfigError("config", f"Step5 DSA provider groups ({g}) must equal the KV heads ({kv})")
            # The indexer q and w split by provider group (whole groups a rank, replicated past index_tp_size
            # ranks): the "kv" kind with the groups as heads. k and z are one head, whole on every rank.
            t += (b.linear(p + "sparse_indexer_q", "attention", ih * pd, hidden, "kv", heads=g, quantizable=False)
                  + b.linear(p + "sparse_indexer_k", "attention", pd, hidden, "replicated", quantizable=False)
                  + b.linear(p + "sparse_indexer_z", "attention", pd, hidden, "replicated", quantizable=False)
                  + b.linear(p + "sparse_indexer_w", "attention", ih, hidden, "kv", heads=g, quantizable=False)
                  + (_norm(p + "sparse_indexer_q_norm.weight", pd, None),
                     _norm(p + "sparse_indexer_k_norm.weight", pd, None),
                     _norm(p + "sparse_indexer_k_norm.bias", pd, None),
                     Tensor(p + "ssmax_s", "attention", (h,), dtype="float32")))
        return t

    def mlp_tensors(moe: bool) -> tuple[Tensor, ...]:
        if moe:
            return (b.router(hidden, e, name=b.P + "moe.gate", fp32=True)
                    + (Tensor(b.P + "moe.router_bias", "router", (e,), dtype="float32"),)
                    + b.experts(hidden, mi, e, prefix=b.P + "moe.experts")
                    + b.gated_mlp(hidden, shared, prefix=b.P + "share_expert.", kind="shared_experts"))
        return b.gated_mlp(hidden, inter)

    norms = (_norm(b.P + "input_layernorm.weight", hidden, norm_dt),
             _norm(b.P + "post_attention_layernorm.weight", hidden, norm_dt))
    cache: dict[tuple, Layer] = {}
    layers: list[Layer] = []
    ropes: dict[tuple, RopeCache] = {}
    any_dsa = False
    for i in range(n):
        t, h, kv, hd, dsa = shape(i)
        sliding = window is not None and t == "sliding_attention"
        any_dsa |= dsa
        if sparse is None:  # no DSA backend: FlashAttention's layer-outermost layout, plain full / sliding layers
            att = (Attention("sliding_window", h, kv, hd, window=int(window)) if sliding
                   else Attention("full", h, kv, hd))
        else:
            role = "sliding" if sliding else "dsa" if dsa else "full"
            att = Attention("sliding_window" if sliding else "full", h, kv, hd,
                            window=int(window) if sliding else None, block_outermost=True, recipe=RECIPE,
                            recipe_args=(("role", role),))
        moe = i in moe_idx
        key = (att, moe)
        if key not in cache:
            mlp = Mlp("moe", 0, e, k, mi, shared) if moe else Mlp("dense", inter)
            cache[key] = Layer(att, mlp, attn_tensors(h, kv, hd, dsa) + mlp_tensors(moe) + norms)
        layers.append(cache[key])
        # get_rope caches, one per distinct (rotary dim, theta, parameters)
        th = _per_layer(theta, i, "rope_theta", None) if isinstance(theta, list) else theta
        f = float(_per_layer(factors, i, "partial_rotary_factors", 1.0))
        params = scaling if scaling is not None and not (yarn_only and t not in yarn_only) else None
        for rd_head, factor, prm in ((hd, f, params),) + (
                ((sparse["proxy_dim"], sparse["sparse_indexer_rope_dim"] / sparse["proxy_dim"], scaling),)
                if dsa else ()):
            (r,) = _rope({"max_position_embeddings": positions, "rope_scaling": dict(prm or {}),
                          "partial_rotary_factor": factor}, rd_head)
            rc = RopeCache(r.positions, r.rotary_dim, theta=float(th) if th is not None else None)
            ropes.setdefault((rc.positions, rc.rotary_dim, rc.theta), rc)

    tie = bool(cfg.get("tie_word_embeddings", False))
    emb, head = _embed_head(vocab, hidden, tie, final_norm=(_norm("model.norm.weight", hidden, norm_dt),))
    extra: tuple[Tensor, ...] = ()
    if any_dsa:
        # Step5FlashInferSparse allocates it while the model is built: in "Model loading took", not a parameter.
        extra = (Tensor("step5_dsa.flashinfer_workspace", "buffers", (FLASHINFER_WORKSPACE,), dtype="uint8",
                        in_checkpoint=False),)
    not_loaded: tuple[Tensor, ...] = ()
    if mtp:
        numel = 0
        for i in range(n, total):
            _t, h, kv, hd, dsa = shape(i)
            numel += sum(x.numel for x in attn_tensors(h, kv, hd, dsa) + mlp_tensors(i in moe_idx) + norms)
            numel += 2 * hidden * hidden + 3 * hidden + vocab * hidden  # eh_proj, enorm, hnorm, shared head
        not_loaded = (Tensor("model.layers.mtp", "mtp", (numel,)),)
    spec = _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads0,
                 head_dim=int(cfg.get("head_dim") or hidden // heads0), inter=inter, tie=tie, embedding=emb,
                 head=head, rope=tuple(ropes.values()), extra=extra, not_loaded=not_loaded)
    return _with(spec, max_position_embeddings=positions)


@register("step5")
def _step5(cfg: dict, outer: dict, name: str) -> ModelSpec:
    return _step5_text(cfg, outer, name)


@register("step5_vl")
def _step5_vl(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Step5VLConfig: text_config (Step5Config), vision_config (PerceptionEncoderConfig, its defaults when absent),
    projector_bias (default false)."""
    text = outer.get("text_config") if isinstance(outer.get("text_config"), dict) else {}
    inner = _step5_text(text, outer, name)
    vis = outer.get("vision_config") if isinstance(outer.get("vision_config"), dict) else {}
    extra, mm, ropes = _perception_encoder(vis, inner.hidden_size, bool(outer.get("projector_bias", False)))
    return _with(inner, extra=inner.extra + extra, multimodal=mm, rope_caches=inner.rope_caches + ropes)
