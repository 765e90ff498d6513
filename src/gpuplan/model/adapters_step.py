"""StepFun's Step3 text model, Step-3.5 and Step-3.7 as vLLM 0.33 builds them.

step3p5 (vllm/model_executor/models/step3p5.py, Step-3.5-Flash): GQA layers that are full or sliding-window by
`layer_types`, with more query heads on the sliding layers (`num_sliding_attention_heads`, or the hub config's
`attention_other_setting`) and the same KV heads (`num_attention_groups`) and head size on both; per-head q/k
GemmaRMSNorms and, with `use_head_wise_attn_gate`, a `g_proj` giving one sigmoid gate per head. Layers listed as
sparse (`mlp_layer_types`, or the hub's `moe_layers_enum`) carry a routed MoE whose router weight and
`router_bias` are fp32 parameters, plus a shared expert of `share_expert_dim`; the rest a gated MLP. RoPE differs
per layer type (theta, partial rotary factor, scaling), so there is one rotary cache per type. The trailing
`num_nextn_predict_layers` MTP layers are skipped by the main model's loader; step3p5_mtp.py builds them to draft
for speculative decoding (MtpModule).

step3p7 (step3p7.py, Step-3.7-Flash): the step3p5 text model behind step_vl.py's PerceptionEncoder, a ViT with
layer scales, learned positions and a 2-D RoPE table per block, two strided convolutions, and a column-parallel
projector to the text width.

step3_text (step3_text.py, Step3's language model) and step3_vl (step3_vl.py, Step3): one KV head of
`head_dim` for every layer, with a low-rank query: a replicated fused q/k/v projection whose q part is
`share_q_dim` wide, an RMSNorm on it, then a column-parallel `wq` up to heads x head_dim. MoE layers
(`moe_layers_enum`) add a shared expert beside a routed MoE whose gate stays in the model dtype.
"""

from __future__ import annotations

from dataclasses import replace

from ..units import cdiv
from . import builders as b
from .adapters import _embed_head, _head_dim, _int, _layer_types, _rope, _spec, _with, register
from .spec import Attention, Layer, Mlp, ModelSpec, MtpModule, MultimodalSpec, RopeCache, Tensor

# ----------------------------------------------------------------------------- Step-3.5 / Step-3.7 text


def _sparse_layers(cfg: dict, n: int, total: int) -> list[bool]:
    """Which of `total` layers (decoder and MTP) carry the MoE block, as transformers' Step3p7TextConfig (the class
    vLLM 0.33 loads step3p5 configs with) derives them: `mlp_layer_types` (+ `mtp_mlp_layer_types`), else the hub's
    `moe_layers_enum` (a comma-separated string or a list), else every layer from the fourth on."""
    mlp_types = cfg.get("mlp_layer_types")
    if isinstance(mlp_types, list):
        types = [str(t) for t in mlp_types[:n]] + [str(t) for t in cfg.get("mtp_mlp_layer_types") or []]
        return [i < len(types) and types[i] == "sparse" for i in range(total)]
    enum = cfg.get("moe_layers_enum")
    if enum is not None:
        items = str(enum).split(",") if isinstance(enum, str) else list(enum)
        chosen = {int(str(i).strip()) for i in items if str(i).strip()}
        return [i in chosen for i in range(total)]
    return [3 <= i < n for i in range(total)]


def _attention_types(cfg: dict, n: int, mtp: int) -> list[str]:
    """Layer types of the decoder and then of the MTP layers. Hub configs pad `layer_types` with the MTP layers'
    entries; configs saved by transformers move those to `mtp_layer_types`. No list: every layer full."""
    types = _layer_types(cfg, n) or ["full_attention"] * n
    raw = cfg.get("layer_types") if isinstance(cfg.get("layer_types"), list) else []
    tail = [str(t) for t in (cfg.get("mtp_layer_types") or raw[n:n + mtp])]
    return types + (tail + ["full_attention"] * mtp)[:mtp]


def _query_heads(cfg: dict, i: int, layer_type: str) -> int:
    """vLLM's _get_num_attention_heads: sliding layers take num_sliding_attention_heads (transformers fills it from
    the hub's attention_other_setting); a per_layer_config entry overrides the rest."""
    if layer_type == "sliding_attention":
        heads = cfg.get("num_sliding_attention_heads")
        other = cfg.get("attention_other_setting")
        if not heads and isinstance(other, dict):
            heads = other.get("num_attention_heads")
        if heads:
            return int(heads)
    per_layer = cfg.get("per_layer_config")
    if isinstance(per_layer, dict):  # transformers writes the keys as zero-padded strings ("01")
        entry = {int(k): v for k, v in per_layer.items() if str(k).isdigit()}.get(i)
        if isinstance(entry, dict) and entry.get("num_attention_heads"):
            return int(entry["num_attention_heads"])
    return _int(cfg, "num_attention_heads")


def _step3p5_ropes(cfg: dict, types: list[str], hd: int) -> tuple[RopeCache, ...]:
    """One rotary cache per attention type, as get_rope keys them. transformers' config gives each type the theta
    and partial rotary factor of its first layer and merges `rope_scaling` into the full-attention type only
    (saved configs already hold per-type `rope_parameters`)."""
    positions = _int(cfg, "max_position_embeddings", default=4096 * 32)
    nested = cfg.get("rope_parameters") if isinstance(cfg.get("rope_parameters"), dict) else {}
    out: list[RopeCache] = []
    for kind in dict.fromkeys(types):
        if isinstance(nested.get(kind), dict):
            params = dict(nested[kind])
        else:
            i = types.index(kind)
            theta, factors = cfg.get("rope_theta", 10000.0), cfg.get("partial_rotary_factors")
            params = {"rope_type": "default", "rope_theta": theta[i] if isinstance(theta, list) else theta,
                      "partial_rotary_factor": factors[i] if isinstance(factors, list) else 1.0}
            if kind == "full_attention" and isinstance(cfg.get("rope_scaling"), dict):
                params.update(cfg["rope_scaling"])
        factor = float(params.get("partial_rotary_factor") or 1.0)
        rope = _rope({"max_position_embeddings": positions, "rope_scaling": params,
                      "partial_rotary_factor": factor}, hd)
        out.extend(RopeCache(r.positions, r.rotary_dim, theta=float(params.get("rope_theta") or 10000.0))
                   for r in rope)
    return tuple(out)


def _step3p5_attention(hidden: int, heads: int, kv: int, hd: int, cfg: dict) -> tuple[Tensor, ...]:
    t = b.attention(hidden, heads, kv, hd, qkv_bias=bool(cfg.get("attention_bias")), qk_norm=True)
    if cfg.get("use_head_wise_attn_gate"):
        # One gate logit per query head: a column-parallel [heads, hidden] projection.
        t += b.linear(b.P + "self_attn.g_proj", "attention", heads, hidden, "column")
    return t


def _step3p5_text(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers")
    hd = _head_dim(cfg, hidden, _int(cfg, "num_attention_heads"))
    kv = _int(cfg, "num_attention_groups", "num_key_value_heads")
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    e = _int(cfg, "moe_num_experts", "n_routed_experts", "num_local_experts")
    k = _int(cfg, "moe_top_k", "num_experts_per_tok", default=8)
    mi, shared = _int(cfg, "moe_intermediate_size"), _int(cfg, "share_expert_dim", "share_expert_dims")
    window = _int(cfg, "sliding_window", default=0)
    mtp = _int(cfg, "num_nextn_predict_layers", "num_mtp_layers", default=0)
    types = _attention_types(cfg, n, mtp)
    sparse = _sparse_layers(cfg, n, n + mtp)

    moe = Mlp("moe", 0, e, k, mi, shared)
    moe_t = (b.router(hidden, e, name=b.P + "moe.gate", fp32=True)
             + (Tensor(b.P + "moe.router_bias", "router", (e,), "replicated", dtype="float32"),)
             + b.experts(hidden, mi, e, prefix=b.P + "moe.experts")
             + b.gated_mlp(hidden, shared, prefix=b.P + "share_expert.", kind="shared_experts"))
    dense_t = b.gated_mlp(hidden, inter)
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)

    def attention(i: int) -> Attention:
        heads = _query_heads(cfg, i, types[i])
        if types[i] == "sliding_attention" and window:
            return Attention("sliding_window", heads, kv, hd, window=window)
        return Attention("full", heads, kv, hd)

    cache: dict[tuple, Layer] = {}

    def layer(i: int) -> Layer:
        att = attention(i)
        key = (att, sparse[i])
        if key not in cache:
            att_t = _step3p5_attention(hidden, att.num_heads, kv, hd, cfg)
            mlp, mlp_t = (moe, moe_t) if sparse[i] else (Mlp("dense", inter), dense_t)
            cache[key] = Layer(att, mlp, att_t + mlp_t + norms)
        return cache[key]

    layers = [layer(i) for i in range(n)]
    # vLLM's Step3p5ForCausalLM allocates its own lm_head whatever tie_word_embeddings says.
    emb, head = _embed_head(vocab, hidden, False, final_norm=b.norm("model.norm", hidden))
    module = _step3p5_mtp([layer(i) for i in range(n, n + mtp)], n, hidden, vocab) if mtp else None
    not_loaded: tuple[Tensor, ...] = ()
    if module:
        numel = sum(t.numel for x in module.layers for t in x.tensors) + sum(t.numel for t in module.tensors)
        not_loaded = (Tensor("model.layers.mtp", "mtp", (numel,), "replicated"),)
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=_int(cfg, "num_attention_heads"),
                 head_dim=hd, inter=inter, tie=False, embedding=emb, head=head,
                 rope=_step3p5_ropes(cfg, types[:n], hd), not_loaded=not_loaded, mtp=module)


def _step3p5_mtp(layers: list[Layer], n: int, hidden: int, vocab: int) -> MtpModule:
    """vLLM's Step3p5MTP (step3p5_mtp.py, 0.16-0.33): MTP layer j is decoder layer n + j (attention by its layer
    type, MLP dense unless listed as sparse), built with the checkpoint's quantization under the prefix
    model.layers.{n + j}.mtp_block, plus enorm, hnorm, a plain nn.Linear eh_proj [H, 2H] (whole on every GPU, never
    quantized) and a shared head: a norm and a vocab-parallel LM head. The embedding is the target's. Until 0.22 the
    generic proposer pointed each shared_head.head at the target's LM head (freeing the loaded copy); 0.23's
    Step3p5MTPProposer keeps the per-layer heads, which drafting reads."""
    mods = tuple(replace(x, tensors=tuple(replace(t, name=t.name.replace(b.P, b.P + "mtp_block."))
                                          for t in x.tensors)) for x in layers)
    own: list[Tensor] = []
    for j in range(len(layers)):
        p = f"model.layers.{n + j}."
        own += b.mtp_input(p, hidden, p + "shared_head.norm")
        own.append(Tensor(p + "shared_head.head", "mtp", (vocab, hidden), "vocab", since="0.23"))
    return MtpModule(layers=mods, tensors=tuple(own), style="step3p5")


@register("step3p5")
def _step3p5(cfg: dict, outer: dict, name: str) -> ModelSpec:
    return _step3p5_text(cfg, outer, name)


def _perception_encoder(vis: dict, text_hidden: int, projector_bias: bool
                        ) -> tuple[tuple[Tensor, ...], MultimodalSpec, tuple[RopeCache, ...]]:
    """step_vl.py's PerceptionEncoder and Step3p7's vit_large_projector. Hub configs spell the sizes width /
    layers / heads / ls_init_value, transformers' saved configs hidden_size / num_hidden_layers /
    num_attention_heads / layer_scale_init_value; the defaults are vLLM's PerceptionEncoderConfig's.
    Per block: biased fused qkv and fc1 (column-parallel), biased out_proj and fc2 (row-parallel, their biases
    whole), two LayerNorms and, with a layer-scale value, two scale vectors. Then a bias-free patch convolution,
    a LayerNorm before the blocks (use_ln_pre) and after (use_ln_post), a learned position table, two biased 3x3
    stride-2 convolutions (width -> 2 width -> 4 width) and a column-parallel projector from 4 width."""
    w = _int(vis, "width", "hidden_size", default=1536)
    n = _int(vis, "layers", "num_hidden_layers", default=47)
    heads = _int(vis, "heads", "num_attention_heads", default=16)
    ratio = vis.get("mlp_ratio")
    mlp = int(w * float(ratio)) if ratio else _int(vis, "intermediate_size", default=int(w * (8960 / 1536)))
    p, img = _int(vis, "patch_size", default=14), _int(vis, "image_size", default=728)
    scale = vis.get("ls_init_value", vis.get("layer_scale_init_value", 0.1)) is not None
    cls = bool(vis.get("use_cls_token", False))
    grid = img // p
    column = n * (3 * w * w + 3 * w + mlp * w + mlp)
    row = n * (w * w + mlp * w)
    whole = (n * (w + w + 4 * w + (2 * w if scale else 0))  # out_proj and fc2 biases, two LayerNorms, scales
             + 3 * p * p * w  # patch convolution, no bias
             + 2 * w * (int(vis.get("use_ln_pre", True)) + int(bool(vis.get("use_ln_post", False))))
             + ((int(cls) + grid * grid) * w if vis.get("use_abs_posemb", True) else 0) + (w if cls else 0)
             + 9 * w * 2 * w + 2 * w + 9 * 2 * w * 4 * w + 4 * w)  # the two downsampling convolutions
    proj = 4 * w * text_hidden + (text_hidden if projector_bias else 0)
    tensors = (Tensor("vision_model.column", "vision", (column,), "column"),
               Tensor("vision_model.row", "vision", (row,), "row"),
               Tensor("vision_model.replicated", "vision", (whole,)),
               Tensor("vit_large_projector", "projector", (proj,), "column"))
    tokens = cdiv(cdiv(grid, 2), 2)  # two stride-2 convolutions with padding 1
    mm = MultimodalSpec(column + row + whole + proj, tokens * tokens, text_hidden, tp_heads=heads)
    # Every block's PerceptionEncoderRope2D keeps an fp32 frequency table of (grid^2 + cls) x head_dim as a
    # buffer, built at load time: one cache entry for all of them.
    table = RopeCache(n * (grid * grid + int(cls)), w // heads, dtype="float32", tower=True)
    return tensors, mm, (table,)


@register("step3p7")
def _step3p7(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = outer.get("text_config") if isinstance(outer.get("text_config"), dict) else cfg
    inner = _step3p5_text(text, outer, name)
    vis = outer.get("vision_config")
    if not isinstance(vis, dict) or text is outer:
        return inner
    extra, mm, ropes = _perception_encoder(vis, _int(text, "hidden_size"), bool(outer.get("projector_bias")))
    return _with(inner, extra=inner.extra + extra, multimodal=mm, rope_caches=inner.rope_caches + ropes)


# ----------------------------------------------------------------------------- Step3 (step3_text, step3_vl)

# vLLM's Step3TextConfig (transformers_utils/configs/step3_vl.py) fills these when a config leaves them out.
_STEP3_TEXT_DEFAULTS = {"hidden_size": 7168, "intermediate_size": 18432, "num_attention_heads": 64,
                        "num_hidden_layers": 61, "max_seq_len": 65536, "vocab_size": 128815,
                        "moe_intermediate_size": 5120, "moe_num_experts": 48, "moe_top_k": 3,
                        "max_position_embedding": 65536, "share_expert_dim": 5120, "share_q_dim": 2048,
                        "head_dim": 256, "moe_layers_enum": ",".join(str(i) for i in range(4, 60))}


def _step3_text(cfg: dict, outer: dict, name: str) -> ModelSpec:
    cfg = {**_STEP3_TEXT_DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    hidden, n, heads = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "num_attention_heads")
    hd, sq = _int(cfg, "head_dim"), _int(cfg, "share_q_dim")
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    e, k, mi = _int(cfg, "moe_num_experts"), _int(cfg, "moe_top_k"), _int(cfg, "moe_intermediate_size")
    shared = _int(cfg, "share_expert_dim")
    p = b.P + "self_attn."
    # Step3TextAttention hard-codes one KV head: q (share_q_dim wide), k and v come out of one ReplicatedLinear,
    # so every rank holds them whole; wq lifts the normalised q to all heads.
    att_t = (b.linear(p + "q_proj", "attention", sq, hidden, "replicated")
             + b.linear(p + "k_proj", "attention", hd, hidden, "replicated")
             + b.linear(p + "v_proj", "attention", hd, hidden, "replicated")
             + b.norm(p + "inter_norm", sq)
             + b.linear(p + "wq", "attention", heads * hd, sq, "column")
             + b.linear(p + "o_proj", "attention", hidden, heads * hd, "row"))
    att = Attention("full", heads, 1, hd)
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    sparse = _sparse_layers({"moe_layers_enum": cfg["moe_layers_enum"]}, n, n)
    moe_t = (b.router(hidden, e, name=b.P + "moe.gate") + b.experts(hidden, mi, e, prefix=b.P + "moe.experts")
             + b.gated_mlp(hidden, shared, prefix=b.P + "share_expert.", kind="shared_experts"))
    moe_layer = Layer(att, Mlp("moe", 0, e, k, mi, shared), att_t + moe_t + norms)
    dense_layer = Layer(att, Mlp("dense", inter), att_t + b.gated_mlp(hidden, inter) + norms)
    layers = [moe_layer if sparse[i] else dense_layer for i in range(n)]
    emb, head = _embed_head(vocab, hidden, False, final_norm=b.norm("model.norm", hidden))
    # get_rope caches max_position_embedding (singular) positions over the whole head.
    scaling = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    rope = _rope({"max_position_embeddings": _int(cfg, "max_position_embedding"), "rope_scaling": scaling}, hd)
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=False, embedding=emb, head=head, rope=rope)


@register("step3_text")
def _step3_text_adapter(cfg: dict, outer: dict, name: str) -> ModelSpec:
    return _step3_text(cfg, outer, name)


# vLLM's Step3VisionEncoderConfig defaults.
_STEP3_VISION_DEFAULTS = {"hidden_size": 1792, "intermediate_size": 3072, "output_hidden_size": 4096,
                          "num_hidden_layers": 63, "num_attention_heads": 16, "num_channels": 3,
                          "image_size": 728, "patch_size": 14}


def _step3_vision(vis: dict, text_hidden: int, stride: int, projector_bias: bool
                  ) -> tuple[tuple[Tensor, ...], MultimodalSpec]:
    """step3_vl.py's Step3VisionTransformer: a class embedding, a biased patch convolution, a learned table of
    (image_size / patch_size)^2 + 1 positions, and CLIP-style blocks (biased fused qkv and fc1 column-parallel,
    biased out_proj and fc2 row-parallel, two LayerNorms); then two convolutions (a 2x2 one at
    understand_projector_stride to output_hidden_size, a 3x3 stride-2 one doubling it) and an nn.Linear projector,
    all three whole on every GPU."""
    vis = {**_STEP3_VISION_DEFAULTS, **vis}
    w, n, heads = _int(vis, "hidden_size"), _int(vis, "num_hidden_layers"), _int(vis, "num_attention_heads")
    mlp, out = _int(vis, "intermediate_size"), _int(vis, "output_hidden_size")
    p, img, ch = _int(vis, "patch_size"), _int(vis, "image_size"), _int(vis, "num_channels")
    grid = img // p
    column = n * (3 * w * w + 3 * w + mlp * w + mlp)
    row = n * (w * w + mlp * w)
    whole = (n * (2 * w + 4 * w) + w + ch * p * p * w + w + (grid * grid + 1) * w
             + 4 * w * out + out + 9 * out * 2 * out + 2 * out
             + 2 * out * text_hidden + (text_hidden if projector_bias else 0))
    tensors = (Tensor("vision_model.column", "vision", (column,), "column"),
               Tensor("vision_model.row", "vision", (row,), "row"),
               Tensor("vision_model.replicated", "vision", (whole,)))
    side = cdiv((grid - 2) // stride + 1, 2)  # a 2x2 convolution, then a 3x3 stride-2 one with padding 1
    return tensors, MultimodalSpec(column + row + whole, side * side, text_hidden, tp_heads=heads)


@register("step3_vl")
def _step3_vl(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = outer.get("text_config") if isinstance(outer.get("text_config"), dict) else {}
    inner = _step3_text(text, outer, name)
    vis = outer.get("vision_config") if isinstance(outer.get("vision_config"), dict) else {}
    # Step3VLConfig builds the default vision tower when vision_config is absent.
    extra, mm = _step3_vision(vis, inner.hidden_size, _int(outer, "understand_projector_stride", default=1),
                              bool(outer.get("projector_bias", True)))
    return _with(inner, extra=inner.extra + extra, multimodal=mm)
