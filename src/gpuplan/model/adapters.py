"""HF config.json -> ModelSpec, one small adapter per model_type.

Each adapter states the model's layers (attention kind, MLP kind) and its exact parameter inventory.
Unknown model_types with the standard fields fall back to a generic Llama-style decoder and say so;
a config that cannot be interpreted raises ConfigError (never a guess).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from dataclasses import replace as _replace_dc
from functools import cache
from typing import Any

from ..datafiles import data_json
from ..errors import ConfigError
from . import builders as b
from .quant_config import parse_quant_config
from .spec import (
    Attention,
    EncoderShape,
    Layer,
    MaxLenLimit,
    Mlp,
    ModelSpec,
    MtpModule,
    MultimodalSpec,
    RopeCache,
    SequenceParallelRule,
    StateTensor,
    Tensor,
    TokenBuffer,
)
from .tower_linears import Tower, clip_tower, siglip_tower

Adapter = Callable[[dict, dict, str], ModelSpec]
ADAPTERS: dict[str, Adapter] = {}

# Wrapper model_types whose language model lives in text_config.
MULTIMODAL_WRAPPERS = {"llama4", "gemma3", "mistral3", "llava", "llava_next", "gemma4", "qwen2_vl",
                       "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "mllama", "idefics3", "paligemma", "glm4v",
                       "glm4v_moe", "exaone4_5"}
# Qwen-VL configs may be flat (the text fields at the top) or nest them in text_config.
QWEN_VL = {"qwen2_vl", "qwen2_5_vl"}


def register(*types: str) -> Callable[[Adapter], Adapter]:
    def deco(fn: Adapter) -> Adapter:
        for t in types:
            ADAPTERS[t] = fn
        return fn

    return deco


# ----------------------------------------------------------------------------- helpers


def _int(cfg: dict, *keys: str, default: int | None = None) -> int:
    for k in keys:
        v = cfg.get(k)
        if v is not None:
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
                raise ConfigError("config", f"'{k}' must be a non-negative number, got {v!r}")
            return int(v)
    if default is not None:
        return default
    raise ConfigError("config", f"config.json lacks '{keys[0]}' (model_type {cfg.get('model_type')!r})")


def _dtype(cfg: dict, outer: dict) -> str:
    d = cfg.get("torch_dtype") or cfg.get("dtype") or outer.get("torch_dtype") or outer.get("dtype") or "bfloat16"
    d = str(d).replace("torch.", "")
    return {"float": "float32", "half": "float16", "bf16": "bfloat16", "fp16": "float16"}.get(d, d)


def _head_dim(cfg: dict, hidden: int, heads: int) -> int:
    hd = cfg.get("head_dim")
    if hd:
        return int(hd)
    if heads <= 0 or hidden % heads:
        raise ConfigError("config", f"hidden_size {hidden} is not divisible by num_attention_heads {heads}")
    return hidden // heads


def _core_dims(cfg: dict) -> tuple[int, int, int, int, int]:
    """hidden size, layers, attention heads, KV heads, head dim: the prologue of most adapters."""
    hidden, n, heads = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "num_attention_heads")
    return hidden, n, heads, _int(cfg, "num_key_value_heads", default=heads), _head_dim(cfg, hidden, heads)


def _rotary_dim(cfg: dict, head_dim: int) -> int:
    f = cfg.get("partial_rotary_factor")
    if f is None:
        f = cfg.get("rotary_pct")
    if f is None and isinstance(cfg.get("rope_parameters"), dict):
        f = cfg["rope_parameters"].get("partial_rotary_factor")
    return int(head_dim * float(f)) if f else head_dim


def _rope(cfg: dict, head_dim: int, dtype: str | None = None) -> tuple[RopeCache, ...]:
    if cfg.get("position_embedding_type") == "alibi" or cfg.get("alibi") or cfg.get("model_type") == "mpt":
        return ()
    pos = _int(cfg, "max_position_embeddings", "n_positions", "max_seq_len", "seq_length", default=2048)
    scaling = cfg.get("rope_scaling") or {}
    rtype = scaling.get("rope_type") or scaling.get("type") if isinstance(scaling, dict) else None
    if rtype in ("yarn", "deepseek_yarn") and scaling.get("original_max_position_embeddings"):
        # vLLM's YaRN caches original_max_position * factor positions.
        pos = int(scaling["original_max_position_embeddings"] * scaling.get("factor", 1))
    elif rtype in ("linear", "dynamic") and scaling.get("factor"):
        # Linear and dynamic-NTK scaling cache max_position * factor positions.
        pos = int(pos * float(scaling["factor"]))
    params = cfg.get("rope_parameters") if isinstance(cfg.get("rope_parameters"), dict) else scaling
    if isinstance(params, dict) and (params.get("rope_type") or params.get("type")) in ("longrope", "su"):
        # Phi-3's LongRoPE keeps the short-factor cache for original_max_position_embeddings positions and the
        # long-factor cache for max_position_embeddings, concatenated (phi3_long_rope_scaled_rope.py, 0.5-0.33).
        pos += _int(params, "original_max_position_embeddings", default=0) or _int(
            cfg, "original_max_position_embeddings", default=0)
    # get_rope builds MRotaryEmbedding for a default-type RoPE with an mrope_section (Qwen2-VL's "mrope" is renamed).
    mrope = isinstance(params, dict) and "mrope_section" in params and (
        params.get("rope_type") or params.get("type") or "default") in ("default", "mrope")
    return (RopeCache(pos, _rotary_dim(cfg, head_dim), dtype, mrope=mrope),)


# The config keys vLLM reads a model's length limit from; the smallest one present wins
# (vllm/transformers_utils/model_arch_config_convertor.py: derive_max_model_len_and_key).
_MAX_LEN_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
                 "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len")


def _max_len_limit(cfg: dict, outer: dict) -> MaxLenLimit | None:
    """vLLM's derived max_model_len (vllm/config/model.py: _get_and_verify_max_len); None when no key is set."""
    found = [(int(cfg[k]), k) for k in _MAX_LEN_KEYS if isinstance(cfg.get(k), (int, float)) and cfg[k] > 0]
    if not found:
        return None
    derived, key = min(found)
    mml = next((n for n, k in found if k == "model_max_length"), None)
    if mml is not None:  # Command-R / Cohere: this key overrides the others
        derived, key = mml, "model_max_length"
    rope = cfg.get("rope_parameters") if isinstance(cfg.get("rope_parameters"), dict) else cfg.get("rope_scaling")
    longrope = False
    if isinstance(rope, dict) and "gemma3" not in str(outer.get("model_type") or cfg.get("model_type")):
        # Gemma 3's max_position_embeddings is already the scaled length; vLLM skips it by name.
        rtype = rope.get("rope_type") or rope.get("type") or "default"
        longrope = rtype == "longrope"
        if rtype not in ("su", "longrope", "llama3"):
            factor = rope.get("factor") or 1.0
            if rtype == "yarn" and rope.get("original_max_position_embeddings"):
                derived = int(rope["original_max_position_embeddings"])
            derived = int(derived * float(factor))
    default = derived
    if longrope and cfg.get("original_max_position_embeddings"):
        default = int(cfg["original_max_position_embeddings"])  # vLLM's LongRoPE default: the short length
    return MaxLenLimit(derived=derived, key=key, default=default, model_max_length=mml)


def _layer_types(cfg: dict, n: int) -> list[str] | None:
    lt = cfg.get("layer_types")
    if isinstance(lt, list) and len(lt) >= n:
        return [str(x) for x in lt[:n]]
    return None


def _spec(name: str, cfg: dict, outer: dict, layers: list[Layer], *, hidden: int, vocab: int, heads: int,
          head_dim: int, inter: int, tie: bool, embedding: tuple[Tensor, ...], head: tuple[Tensor, ...],
          rope: tuple[RopeCache, ...] = (), extra: tuple[Tensor, ...] = (), not_loaded: tuple[Tensor, ...] = (),
          multimodal: MultimodalSpec | None = None, notes: tuple[str, ...] = (), generic: bool = False,
          mamba_ssm_dtype: str | None = None, token_buffers: tuple[TokenBuffer, ...] = (),
          residual_streams: int = 1, mtp: MtpModule | None = None) -> ModelSpec:
    arch = (outer.get("architectures") or cfg.get("architectures") or [""])[0] or ""
    qc = outer.get("quantization_config") or cfg.get("quantization_config")
    quant = parse_quant_config(qc) if qc else None
    if quant is not None and (str(outer.get("expert_dtype") or cfg.get("expert_dtype") or "") == "fp4"
                              or (isinstance(qc, dict) and qc.get("store_dtype") == "mxfp4")):
        # FP8 block linears with MXFP4 routed experts: DeepSeek-V4 (config key expert_dtype) and FP8 configs whose
        # store_dtype is mxfp4 (MiMo-V2.6; vLLM's Fp8Config serves those experts with Mxfp4MoEMethod from 0.24).
        quant = _replace_dc(quant, experts_format="mxfp4")
    return ModelSpec(
        name=name,
        model_type=str(outer.get("model_type") or cfg.get("model_type")),
        architecture=arch,
        hidden_size=hidden,
        vocab_size=vocab,
        num_attention_heads=heads,
        head_dim=head_dim,
        intermediate_size=inter,
        max_position_embeddings=_int(cfg, "max_position_embeddings", "n_positions", "max_seq_len", "seq_length",
                                     default=2048),
        max_len_limit=_max_len_limit(cfg, outer),
        torch_dtype=_dtype(cfg, outer),
        tie_word_embeddings=tie,
        layers=tuple(layers),
        embedding=embedding,
        head=head,
        extra=extra,
        extra_not_loaded=not_loaded,
        mtp=mtp,
        rope_caches=rope,
        token_buffers=token_buffers,
        residual_streams=residual_streams,
        quant=quant,
        multimodal=multimodal,
        mamba_ssm_dtype=mamba_ssm_dtype,
        generic=generic,
        notes=notes,
        attention_chunk_size=_int(cfg, "attention_chunk_size", default=0) or None,
    )


def _tie(cfg: dict, outer: dict, default: bool = False) -> bool:
    v = cfg.get("tie_word_embeddings")
    if v is None:
        v = outer.get("tie_word_embeddings")
    return default if v is None else bool(v)


def _embed_head(vocab: int, hidden: int, tie: bool, *, final_norm: tuple[Tensor, ...],
                embed_name: str = "model.embed_tokens", head_name: str = "lm_head",
                head_bias: bool = False, embed_extra: tuple[Tensor, ...] = ()) -> tuple[tuple, tuple]:
    emb = (b.embedding(vocab, hidden, embed_name),) + embed_extra
    head = final_norm + b.lm_head(vocab, hidden, head_name, head_bias)
    return emb, head


# ----------------------------------------------------------------------------- Llama family


def _llama_like(cfg: dict, outer: dict, name: str, *, qkv_bias: bool | None = None, qk_norm: bool = False,
                norm_bias: bool = False, generic: bool = False, extra_norms: int = 0,
                sw_pattern: Callable[[int], bool] | None = None, notes: tuple[str, ...] = ()) -> ModelSpec:
    hidden = _int(cfg, "hidden_size", "n_embd", "d_model")
    n = _int(cfg, "num_hidden_layers", "n_layer", "num_layers")
    heads = _int(cfg, "num_attention_heads", "n_head")
    kv = _int(cfg, "num_key_value_heads", default=heads)
    hd = _head_dim(cfg, hidden, heads)
    inter = _int(cfg, "intermediate_size", "ffn_hidden_size", default=4 * hidden)
    vocab = _int(cfg, "vocab_size")
    if qkv_bias is None:
        qkv_bias = bool(cfg.get("attention_bias") or cfg.get("qkv_bias") or cfg.get("use_qkv_bias"))
    o_bias = bool(cfg.get("attention_bias")) if not cfg.get("use_qkv_bias") else False
    mlp_bias = bool(cfg.get("mlp_bias"))
    tie = _tie(cfg, outer)
    window = cfg.get("sliding_window") or cfg.get("sliding_window_size")
    types = _layer_types(cfg, n)
    per_layer_norms: tuple[Tensor, ...] = b.norm(b.P + "input_layernorm", hidden, norm_bias) + b.norm(
        b.P + "post_attention_layernorm", hidden, norm_bias)
    for k in range(extra_norms):
        per_layer_norms += b.norm(b.P + f"extra_norm_{k}", hidden, norm_bias)
    tensors = (b.attention(hidden, heads, kv, hd, qkv_bias=qkv_bias, o_bias=o_bias, qk_norm=qk_norm)
               + b.gated_mlp(hidden, inter, bias=mlp_bias) + per_layer_norms)
    layers = []
    cache: dict[str, Layer] = {}
    for i in range(n):
        sliding = False
        if types is not None:
            sliding = types[i] == "sliding_attention"
        elif sw_pattern is not None:
            sliding = sw_pattern(i)
        kind = "sliding_window" if (sliding and window) else "full"
        if kind not in cache:
            att = Attention(kind, heads, kv, hd, window=int(window) if kind == "sliding_window" else None)
            cache[kind] = Layer(att, Mlp("dense", inter), tensors)
        layers.append(cache[kind])
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden, norm_bias))
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd), generic=generic, notes=notes)


@register("llama", "mistral", "granite", "yi", "internlm2", "exaone", "solar", "ministral")
def _llama(cfg: dict, outer: dict, name: str) -> ModelSpec:
    return _llama_like(cfg, outer, name)


@register("starcoder2")
def _starcoder2(cfg: dict, outer: dict, name: str) -> ModelSpec:
    # Non-gated MLP (c_fc, c_proj) and LayerNorms, all with biases; tied embeddings.
    hidden, n, heads, kv, hd = _core_dims(cfg)
    inter = _int(cfg, "intermediate_size", default=4 * hidden)
    vocab = _int(cfg, "vocab_size")
    bias = bool(cfg.get("use_bias", True))
    t = (b.attention(hidden, heads, kv, hd, qkv_bias=bias, o_bias=bias)
         + b.plain_mlp(hidden, inter, bias=bias, up=b.P + "mlp.c_fc", down=b.P + "mlp.c_proj")
         + b.norm(b.P + "input_layernorm", hidden, True) + b.norm(b.P + "post_attention_layernorm", hidden, True))
    window = cfg.get("sliding_window")
    att = Attention("sliding_window", heads, kv, hd, window=int(window)) if window and cfg.get("layer_types") \
        else Attention("full", heads, kv, hd)
    layer = Layer(att, Mlp("dense", inter), t)
    tie = _tie(cfg, outer, True)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden, True))
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd))


@register("cohere", "cohere2")
def _cohere(cfg: dict, outer: dict, name: str) -> ModelSpec:
    # Parallel attention + MLP behind one LayerNorm (no bias); optional per-head q/k LayerNorms.
    spec = _llama_like(cfg, outer, name)
    a = spec.layers[0].attention
    keep = tuple(t for t in spec.layers[0].tensors if "post_attention_layernorm" not in t.name)
    if cfg.get("use_qk_norm"):
        keep += (Tensor(b.P + "self_attn.q_norm.weight", "norm", (a.num_heads, a.head_dim)),
                 Tensor(b.P + "self_attn.k_norm.weight", "norm", (a.num_kv_heads, a.head_dim)))
    cache: dict[int, Layer] = {}
    layers = []
    for layer in spec.layers:
        if id(layer.attention) not in cache:
            cache[id(layer.attention)] = Layer(layer.attention, layer.mlp, keep)
        layers.append(cache[id(layer.attention)])
    return _with(spec, layers=tuple(layers))


@register("olmo2")
def _olmo2(cfg: dict, outer: dict, name: str) -> ModelSpec:
    # OLMo-2 normalises the whole q and k projections (not per head): norms of heads*d and kv_heads*d.
    spec = _llama_like(cfg, outer, name)
    a = spec.layers[0].attention
    extra = b.norm(b.P + "self_attn.q_norm", a.num_heads * a.head_dim) + b.norm(
        b.P + "self_attn.k_norm", a.num_kv_heads * a.head_dim)
    layer = Layer(a, spec.layers[0].mlp, spec.layers[0].tensors + extra)
    return _with(spec, layers=tuple(layer for _ in spec.layers))


@register("qwen2")
def _qwen2(cfg: dict, outer: dict, name: str) -> ModelSpec:
    # Qwen2 uses sliding window only when use_sliding_window is set (and then above max_window_layers).
    if not cfg.get("use_sliding_window"):
        cfg = {**cfg, "layer_types": None, "sliding_window": None}
    return _llama_like(cfg, outer, name, qkv_bias=True)


@register("qwen3")
def _qwen3(cfg: dict, outer: dict, name: str) -> ModelSpec:
    if not cfg.get("use_sliding_window"):
        cfg = {**cfg, "layer_types": None, "sliding_window": None}
    return _llama_like(cfg, outer, name, qkv_bias=bool(cfg.get("attention_bias")), qk_norm=True)


@register("stablelm")
def _stablelm(cfg: dict, outer: dict, name: str) -> ModelSpec:
    return _llama_like(cfg, outer, name, qkv_bias=bool(cfg.get("use_qkv_bias")), norm_bias=True)


@register("phi3")
def _phi3(cfg: dict, outer: dict, name: str) -> ModelSpec:
    # vLLM's Phi-3 is Llama-shaped (fused qkv/gate_up hold the same parameters); it ignores the
    # config's sliding_window unless layer_types asks for it.
    cfg = {**cfg, "sliding_window": None} if not cfg.get("layer_types") else cfg
    return _llama_like(cfg, outer, name)


@register("gemma")
def _gemma(cfg: dict, outer: dict, name: str) -> ModelSpec:
    cfg = {**cfg, "tie_word_embeddings": cfg.get("tie_word_embeddings", True)}
    return _llama_like(cfg, outer, name)


@register("gemma2")
def _gemma2(cfg: dict, outer: dict, name: str) -> ModelSpec:
    cfg = {**cfg, "tie_word_embeddings": cfg.get("tie_word_embeddings", True)}
    # Gemma-2 alternates local (even layers) and global attention; two extra norms around the MLP.
    return _llama_like(cfg, outer, name, extra_norms=2, sw_pattern=lambda i: i % 2 == 0)


def _gemma3_text(cfg: dict, outer: dict, name: str, extra: tuple = (), mm: MultimodalSpec | None = None,
                 notes: tuple[str, ...] = ()) -> ModelSpec:
    cfg = {**cfg, "tie_word_embeddings": _tie(cfg, outer, True)}
    pattern = int(cfg.get("sliding_window_pattern") or 6)
    spec = _llama_like(cfg, outer, name, qk_norm=True, extra_norms=2,
                       sw_pattern=lambda i: (i + 1) % pattern != 0, notes=notes)
    hd = spec.head_dim
    # Local layers use their own rope base: a second rotary cache.
    ropes = spec.rope_caches + (RopeCache(spec.max_position_embeddings, hd),)
    return _with(spec, extra=extra, multimodal=mm, rope_caches=ropes)


@register("gemma3_text")
def _gemma3t(cfg: dict, outer: dict, name: str) -> ModelSpec:
    return _gemma3_text(cfg, outer, name)


@register("gemma3")
def _gemma3(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = outer.get("text_config") or cfg
    vis = outer.get("vision_config") or {}
    extra: tuple[Tensor, ...] = ()
    mm = None
    if vis:
        vh = _int(vis, "hidden_size", default=1152)
        vparams = _siglip_params(vis)
        th = _int(text, "hidden_size")
        proj = vh * th + vh  # mm_input_projection_weight + mm_soft_emb_norm
        # gemma3_mm.py: SiglipVisionModel gets the quant_config (q/k/v and out_proj quantized; so400m's MLP is not,
        # 4304 not being a multiple of 64); the projector is a bare nn.Parameter and a norm, whole on every rank
        tower = siglip_tower(vis, "vision_tower", _int(vis, "num_hidden_layers", default=27), post_norm=True)
        extra = tower.tensors() + (Tensor("multi_modal_projector", "projector", (proj,)),)
        mm = MultimodalSpec(vparams + proj, int(outer.get("mm_tokens_per_image") or 256), th)
    return _gemma3_text(text, outer, name, extra, mm)


def _vit_layer(h: int, inter: int) -> int:
    """One ViT encoder layer with biases: q/k/v/o, fc1/fc2, two LayerNorms (SigLIP, CLIP, Llama 4's encoder)."""
    return 4 * (h * h + h) + (h * inter + inter) + (inter * h + h) + 4 * h


def _siglip_params(vis: dict) -> int:
    h = _int(vis, "hidden_size", default=1152)
    n = _int(vis, "num_hidden_layers", default=27)
    inter = _int(vis, "intermediate_size", default=4304)
    patch = _int(vis, "patch_size", default=14)
    img = _int(vis, "image_size", default=896)
    ch = _int(vis, "num_channels", default=3)
    per_layer = _vit_layer(h, inter)
    positions = (img // patch) ** 2
    return n * per_layer + (ch * patch * patch * h + h) + positions * h + 2 * h


# ----------------------------------------------------------------------------- older decoders


@register("phi")
def _phi(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden = _int(cfg, "hidden_size", "n_embd")
    n = _int(cfg, "num_hidden_layers", "n_layer")
    heads = _int(cfg, "num_attention_heads", "n_head")
    kv = _int(cfg, "num_key_value_heads", default=heads)
    hd = hidden // heads
    inter = _int(cfg, "intermediate_size", "n_inner", default=4 * hidden)
    vocab = _int(cfg, "vocab_size")
    p = b.P + "self_attn."
    t = (b.attention(hidden, heads, kv, hd, qkv_bias=True, o_bias=True, o_name="dense")
         + b.plain_mlp(hidden, inter) + b.norm(b.P + "input_layernorm", hidden, True))
    del p
    layer = Layer(Attention("full", heads, kv, hd), Mlp("dense", inter), t)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.final_layernorm", hidden, True),
                            head_bias=True)
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd))


@register("gpt_neox")
def _neox(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden = _int(cfg, "hidden_size")
    n = _int(cfg, "num_hidden_layers")
    heads = _int(cfg, "num_attention_heads")
    hd = hidden // heads
    inter = _int(cfg, "intermediate_size", default=4 * hidden)
    vocab = _int(cfg, "vocab_size")
    bias = cfg.get("attention_bias", True)
    t = (b.attention(hidden, heads, heads, hd, qkv_bias=bias, o_bias=bias, o_name="dense",
                     prefix="gpt_neox.layers.{i}.attention.")
         + b.plain_mlp(hidden, inter, up="gpt_neox.layers.{i}.mlp.dense_h_to_4h",
                       down="gpt_neox.layers.{i}.mlp.dense_4h_to_h")
         + b.norm("gpt_neox.layers.{i}.input_layernorm", hidden, True)
         + b.norm("gpt_neox.layers.{i}.post_attention_layernorm", hidden, True))
    layer = Layer(Attention("full", heads, heads, hd), Mlp("dense", inter), t)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("gpt_neox.final_layer_norm", hidden, True),
                            embed_name="gpt_neox.embed_in", head_name="embed_out")
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd))


@register("falcon", "RefinedWeb", "RefinedWebModel")
def _falcon(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden = _int(cfg, "hidden_size", "n_embd")
    n = _int(cfg, "num_hidden_layers", "n_layer")
    heads = _int(cfg, "num_attention_heads", "n_head")
    hd = hidden // heads
    new_arch = bool(cfg.get("new_decoder_architecture"))
    if new_arch:
        kv = _int(cfg, "num_kv_heads", "n_head_kv", default=heads)
    elif cfg.get("multi_query", True):
        kv = 1
    else:
        kv = heads
    inter = _int(cfg, "ffn_hidden_size", default=4 * hidden)
    vocab = _int(cfg, "vocab_size")
    bias = bool(cfg.get("bias", False))
    p = "transformer.h.{i}."
    t = (b.attention(hidden, heads, kv, hd, qkv_bias=bias, o_bias=bias, o_name="dense",
                     prefix=p + "self_attention.")
         + b.plain_mlp(hidden, inter, bias=bias, up=p + "mlp.dense_h_to_4h", down=p + "mlp.dense_4h_to_h"))
    if new_arch and cfg.get("num_ln_in_parallel_attn", 2) == 2:
        t += b.norm(p + "ln_attn", hidden, True) + b.norm(p + "ln_mlp", hidden, True)
    else:
        t += b.norm(p + "input_layernorm", hidden, True)
        if not cfg.get("parallel_attn", True):
            t += b.norm(p + "post_attention_layernorm", hidden, True)
    layer = Layer(Attention("full", heads, kv, hd), Mlp("dense", inter), t)
    tie = _tie(cfg, outer, True)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("transformer.ln_f", hidden, True),
                            embed_name="transformer.word_embeddings")
    rope = () if cfg.get("alibi") else _rope(cfg, hd)
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=rope)


@register("mpt")
def _mpt(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden = _int(cfg, "d_model", "hidden_size")
    n = _int(cfg, "n_layers", "num_hidden_layers")
    heads = _int(cfg, "n_heads", "num_attention_heads")
    hd = hidden // heads
    inter = int(_int(cfg, "expansion_ratio", default=4) * hidden)
    vocab = _int(cfg, "vocab_size")
    attn_cfg = cfg.get("attn_config") or {}
    kv = int(attn_cfg.get("kv_n_heads") or heads)
    bias = not cfg.get("no_bias", True)
    p = "transformer.blocks.{i}."
    t = (b.attention(hidden, heads, kv, hd, qkv_bias=bias, o_bias=bias, o_name="out_proj", prefix=p + "attn.")
         + b.plain_mlp(hidden, inter, bias=bias, up=p + "ffn.up_proj", down=p + "ffn.down_proj")
         + b.norm(p + "norm_1", hidden, bias) + b.norm(p + "norm_2", hidden, bias))
    layer = Layer(Attention("full", heads, kv, hd), Mlp("dense", inter), t)
    emb, head = _embed_head(vocab, hidden, True, final_norm=b.norm("transformer.norm_f", hidden, bias),
                            embed_name="transformer.wte")
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=True, embedding=emb, head=head, rope=())


# ----------------------------------------------------------------------------- MoE


def _moe_layers(cfg: dict, n: int, is_moe: Callable[[int], bool], att_for: Callable[[int], Attention],
                att_tensors: Callable[[Attention], tuple[Tensor, ...]], dense_inter: int, hidden: int,
                moe: Mlp, moe_tensors: tuple[Tensor, ...], norms: tuple[Tensor, ...]) -> list[Layer]:
    cache: dict[tuple, Layer] = {}
    layers = []
    for i in range(n):
        att = att_for(i)
        m = is_moe(i)
        key = (att, m)
        if key not in cache:
            mlp_t = moe_tensors if m else b.gated_mlp(hidden, dense_inter)
            cache[key] = Layer(att, moe if m else Mlp("dense", dense_inter), att_tensors(att) + mlp_t + norms)
        layers.append(cache[key])
    return layers


def _moe_decoder(cfg: dict, outer: dict, name: str, *, experts_key: str, prefix: str, qkv_bias: bool,
                 qk_norm: bool, is_moe: Callable[[int], bool], layer_types: bool = False) -> ModelSpec:
    """A Llama-style decoder whose MLP is a routed MoE, optionally with a gated shared expert
    (Mixtral, Qwen2-MoE, Qwen3-MoE)."""
    hidden, n, heads, kv, hd = _core_dims(cfg)
    # transformers has spelled the expert count several ways across versions
    e = _int(cfg, experts_key, "num_experts", "num_local_experts", "n_routed_experts")
    k = _int(cfg, "num_experts_per_tok", default=2)
    mi = _int(cfg, "moe_intermediate_size", "intermediate_size")
    si = _int(cfg, "shared_expert_intermediate_size", default=0)
    inter = _int(cfg, "intermediate_size", default=mi)
    vocab = _int(cfg, "vocab_size")
    moe = Mlp("moe", 0, e, k, mi, si)
    moe_t = b.router(hidden, e, name=prefix + "gate") + b.experts(hidden, mi, e, prefix=prefix + "experts")
    if si:
        moe_t += b.gated_mlp(hidden, si, prefix=prefix + "shared_expert.", kind="shared_experts")
        moe_t += (Tensor(prefix + "shared_expert_gate.weight", "router", (1, hidden), "replicated"),)
    att = Attention("full", heads, kv, hd)
    att_for: Callable[[int], Attention] = lambda i: att  # noqa: E731
    window = cfg.get("sliding_window") or cfg.get("sliding_window_size")
    types = _layer_types(cfg, n) if layer_types else None
    if types and window:  # layer_types names the sliding layers (Cohere2-MoE, EXAONE-MoE, Granite-MoE-SWA)
        swa = Attention("sliding_window", heads, kv, hd, window=int(window))
        att_for = lambda i: swa if types[i] == "sliding_attention" else att  # noqa: E731
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    layers = _moe_layers(cfg, n, is_moe, att_for,
                         lambda a: b.attention(hidden, heads, kv, hd, qkv_bias=qkv_bias, qk_norm=qk_norm),
                         inter, hidden, moe, moe_t, norms)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd))


def _sparse_step(cfg: dict) -> Callable[[int], bool]:
    step = int(cfg.get("decoder_sparse_step") or 1)
    only_mlp = set(cfg.get("mlp_only_layers") or [])
    num_e = int(cfg.get("num_experts") or cfg.get("num_local_experts") or 0)
    return lambda i: num_e > 0 and i not in only_mlp and (i + 1) % step == 0


@register("mixtral")
def _mixtral(cfg: dict, outer: dict, name: str) -> ModelSpec:
    cfg = {**cfg, "moe_intermediate_size": _int(cfg, "intermediate_size"), "shared_expert_intermediate_size": 0}
    return _moe_decoder(cfg, outer, name, experts_key="num_local_experts", prefix=b.P + "block_sparse_moe.",
                        qkv_bias=False, qk_norm=False, is_moe=lambda i: True)


@register("qwen2_moe")
def _qwen2_moe(cfg: dict, outer: dict, name: str) -> ModelSpec:
    return _moe_decoder(cfg, outer, name, experts_key="num_experts", prefix=b.P + "mlp.", qkv_bias=True,
                        qk_norm=False, is_moe=_sparse_step(cfg))


@register("qwen3_moe")
def _qwen3_moe(cfg: dict, outer: dict, name: str) -> ModelSpec:
    cfg = {**cfg, "shared_expert_intermediate_size": 0}
    return _moe_decoder(cfg, outer, name, experts_key="num_experts", prefix=b.P + "mlp.",
                        qkv_bias=bool(cfg.get("attention_bias")), qk_norm=True, is_moe=_sparse_step(cfg))


@register("gpt_oss")
def _gpt_oss(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, heads = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads)
    hd = _int(cfg, "head_dim", default=64)
    e, k = _int(cfg, "num_local_experts", "num_experts"), _int(cfg, "num_experts_per_tok", "experts_per_token")
    mi = _int(cfg, "intermediate_size")
    vocab = _int(cfg, "vocab_size")
    window = _int(cfg, "sliding_window", default=128)
    types = _layer_types(cfg, n) or ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n)]
    moe = Mlp("moe", 0, e, k, mi)
    moe_t = b.router(hidden, e, name=b.P + "mlp.router", bias=True) + b.experts(hidden, mi, e, bias=True)
    sinks = (Tensor(b.P + "self_attn.sinks", "attention", (heads,), "head", dtype="float32"),)
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    full = Attention("full", heads, kv, hd)
    swa = Attention("sliding_window", heads, kv, hd, window=window)
    layers = _moe_layers(cfg, n, lambda i: True, lambda i: swa if types[i] == "sliding_attention" else full,
                         lambda a: b.attention(hidden, heads, kv, hd, qkv_bias=True, o_bias=True) + sinks,
                         mi, hidden, moe, moe_t, norms)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=mi,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd, "float32"))


@register("llama4", "llama4_text")
def _llama4(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = outer.get("text_config") or cfg
    hidden, n, heads = _int(text, "hidden_size"), _int(text, "num_hidden_layers"), _int(text, "num_attention_heads")
    kv = _int(text, "num_key_value_heads", default=heads)
    hd = _head_dim(text, hidden, heads)
    e, k = _int(text, "num_local_experts"), _int(text, "num_experts_per_tok", default=1)
    mi = _int(text, "intermediate_size")
    dense_i = _int(text, "intermediate_size_mlp", default=mi)
    vocab = _int(text, "vocab_size")
    step = int(text.get("interleave_moe_layer_step") or 1)
    moe_layers = text.get("moe_layers")
    moe_set = set(moe_layers) if moe_layers else {i for i in range(n) if (i + 1) % step == 0}
    chunk = text.get("attention_chunk_size")
    nope = text.get("no_rope_layers")
    if not nope:
        nope = [0 if (i + 1) % 4 == 0 else 1 for i in range(n)]  # every 4th layer is NoPE (global)
    moe = Mlp("moe", 0, e, k, mi, mi)
    moe_t = (b.router(hidden, e, name=b.P + "feed_forward.router")
             + b.experts(hidden, mi, e, prefix=b.P + "feed_forward.experts")
             + b.gated_mlp(hidden, mi, prefix=b.P + "feed_forward.shared_expert.", kind="shared_experts"))
    full = Attention("full", heads, kv, hd)
    local = Attention("chunked_local", heads, kv, hd, chunk=int(chunk)) if chunk else full
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    layers = _moe_layers(text, n, lambda i: i in moe_set, lambda i: local if nope[i] else full,
                         lambda a: b.attention(hidden, heads, kv, hd), dense_i, hidden, moe, moe_t, norms)
    tie = _tie(text, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    extra: tuple[Tensor, ...] = ()
    mm = None
    vis = outer.get("vision_config")
    if vis:
        vp = _llama4_vision_params(vis, hidden)
        extra = (Tensor("vision_model", "vision", (vp[0],), "column"),
                 Tensor("multi_modal_projector", "projector", (vp[1],), "column"))
        mm = MultimodalSpec(sum(vp), 144, hidden)
    spec = _spec(name, text, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=mi,
                 tie=tie, embedding=emb, head=head, rope=_rope(text, hd), extra=extra, multimodal=mm)
    # Llama4MoE keeps its shared expert whole under sequence-parallel MoE (disable_tp=is_sequence_parallel).
    return replace(spec, sequence_parallel=(SequenceParallelRule(("shared_experts",), "0.11"),))


def _llama4_vision_params(vis: dict, text_hidden: int) -> tuple[int, int]:
    h = _int(vis, "hidden_size", default=1408)
    n = _int(vis, "num_hidden_layers", default=34)
    inter = _int(vis, "intermediate_size", default=5632)
    patch = _int(vis, "patch_size", default=14)
    img = _int(vis, "image_size", default=336)
    out = _int(vis, "vision_output_dim", default=4096)
    proj_in = _int(vis, "projector_input_dim", default=4096)
    proj_out = _int(vis, "projector_output_dim", default=4096)
    ratio = float(vis.get("pixel_shuffle_ratio") or 0.5)
    per_layer = _vit_layer(h, inter)
    patches = (img // patch) ** 2 + 1
    adapter_in = int(h / (ratio * ratio))
    vision = (n * per_layer + 3 * patch * patch * h + h + patches * h + 4 * h
              + adapter_in * proj_in + proj_in * proj_out)
    del out
    return vision, proj_out * text_hidden


# ----------------------------------------------------------------------------- MLA (DeepSeek)


@register("deepseek_v2", "deepseek_v3", "kimi_k2", "deepseek_v32", "glm_moe_dsa")
def _deepseek(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """DeepSeek-V2/V3/V3.2, Kimi-K2 and GLM-5 (glm_moe_dsa): vLLM serves all of them with deepseek_v2.py (V3.2 and
    GLM-5 from vllm/models/deepseek_v32 since 0.25, on deepseek_v2.py's MoE block)."""
    if cfg.get("model_type") in ("deepseek_v2", "deepseek_v3") and not any(
            cfg.get(k) for k in ("qk_nope_head_dim", "qk_rope_head_dim")):
        # deepseek_v2.py's use_mha (0.14+): both qk head dims 0 build plain multi-head attention (DeepSeek-VL2-Tiny's
        # and DeepSeek-OCR's language models)
        from .adapters_deepseek_vl2 import deepseek_v2_mha
        return deepseek_v2_mha(cfg, outer, name)
    spec = mla_moe_decoder(cfg, outer, name)
    # deepseek_v2.py's DeepseekV2MoE replicates its shared experts under sequence-parallel MoE; the deepseek_v32
    # package also replicates the dense first layers' MLP there from 0.29, without pipeline parallelism.
    rules = (SequenceParallelRule(("shared_experts",), "0.11"),)
    if spec.model_type in ("deepseek_v32", "glm_moe_dsa"):
        rules += (SequenceParallelRule(("mlp",), "0.29", pp1=True),)
    return replace(spec, sequence_parallel=rules)


def _indexer_layers(cfg: dict, n: int) -> list[bool]:
    """Which layers build a DSA indexer (vLLM deepseek_v2.py, "IndexCache"): all, unless index_topk_freq or
    index_topk_pattern ("S" = skip) lets a layer reuse the top-k indices of an earlier one."""
    pattern = cfg.get("index_topk_pattern")  # a string or a list of per-layer letters
    if isinstance(pattern, (str, list)) and pattern:
        return [i >= len(pattern) or pattern[i] != "S" for i in range(n)]
    freq = _int(cfg, "index_topk_freq", default=1) or 1
    offset = _int(cfg, "index_skip_topk_offset", default=2)
    return [max(i - offset + 1, 0) % freq == 0 for i in range(n)]


def _indexer_tensors(cfg: dict, hidden: int, q_lora_rank: int, index_dim: int) -> tuple[Tensor, ...]:
    """The DSA lightning indexer, replicated on every rank (vLLM's Indexer): wq_b follows the checkpoint's
    quantization, the fused wk + weights_proj stays in the model dtype, k_norm is an fp32 LayerNorm."""
    p = b.P + "self_attn.indexer."
    heads = _int(cfg, "index_n_heads", default=64)
    return (b.linear(p + "wq_b", "attention", heads * index_dim, q_lora_rank, "replicated")
            + b.linear(p + "wk_weights_proj", "attention", index_dim + heads, hidden, "replicated",
                       quantizable=False)
            + (Tensor(p + "k_norm.weight", "norm", (index_dim,), dtype="float32"),
               Tensor(p + "k_norm.bias", "norm", (index_dim,), dtype="float32")))


def sparse_layers(cfg: dict, n: int, experts: int, first_dense: int, freq: int) -> Callable[[int], bool]:
    """Which layers carry the MoE block in a DeepSeek-style decoder: transformers 5's per-layer mlp_layer_types
    ("dense" / "sparse") when present, else every freq-th layer from first_k_dense_replace on."""
    mlp_types = cfg.get("mlp_layer_types")
    if isinstance(mlp_types, list) and len(mlp_types) >= n:
        return lambda i: experts > 0 and mlp_types[i] == "sparse"
    return lambda i: experts > 0 and i >= first_dense and i % freq == 0


def deepseek_moe_block(cfg: dict, hidden: int, n: int, *, correction_bias: bool, fp32_router: bool = False
                       ) -> tuple[Callable[[int], bool], Mlp, tuple[Tensor, ...], tuple[Tensor, ...]]:
    """deepseek_v2.py's DeepseekV2MoE (router, routed experts, shared experts) from the config's MoE sizes, which
    layers carry it (every moe_layer_freq-th from first_k_dense_replace on) and a layer's two norms."""
    e, k = _int(cfg, "n_routed_experts", default=0), _int(cfg, "num_experts_per_tok", default=0)
    mi, shared = _int(cfg, "moe_intermediate_size", default=0), _int(cfg, "n_shared_experts", default=0)
    first_dense, freq = _int(cfg, "first_k_dense_replace", default=0), _int(cfg, "moe_layer_freq", default=1) or 1
    moe = Mlp("moe", 0, e, k, mi, shared * mi)
    moe_t = b.router(hidden, e, correction_bias=correction_bias, fp32=fp32_router) + b.experts(hidden, mi, e)
    if shared:
        moe_t += b.gated_mlp(hidden, shared * mi, prefix=b.P + "mlp.shared_experts.", kind="shared_experts")
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    return sparse_layers(cfg, n, e, first_dense, freq), moe, moe_t, norms


def mtp_module(layers: list[Layer], hidden: int, vocab: int, n: int, style: str) -> MtpModule | None:
    """The `n` MTP modules vLLM builds to draft (see MtpModule). Each drafts through one decoder layer like the
    target's last full-attention one (its attention kind decides the draft's KV cache).
    "deepseek" (deepseek_mtp.py, glm4_moe_mtp.py): per module enorm, hnorm, a plain nn.Linear eh_proj [H, 2H]
    (whole on every GPU, never quantized) and shared_head.norm; before 0.16 also shared_head.head, a vocab-parallel
    LM head of its own (0.16's load_model points it at the target's).
    "qwen_next" (qwen3_next_mtp.py, qwen3_5_mtp.py): once for all modules a column-parallel fc [H, 2H] built with
    the checkpoint's quantization, pre_fc_norm_hidden, pre_fc_norm_embedding and a final norm."""
    if n <= 0:
        return None
    layer = next((x for x in reversed(layers) if x.attention.kind in ("full", "mla")), None)
    if layer is None:
        return None
    t: list[Tensor] = []
    mods: tuple[Layer, ...] = (layer,) * n  # deepseek: model.layers.{N + j}, as the checkpoint names them
    if style == "qwen_next":
        # vLLM's prefix mtp.layers.{j}, which checkpoints' ignore lists match ("re:.*mtp.*")
        mods = tuple(replace(layer, tensors=tuple(replace(x, name=x.name.replace(b.P, f"mtp.layers.{j}."))
                                                  for x in layer.tensors)) for j in range(n))
    if style == "deepseek":
        for i in range(n):
            p = f"model.layers.mtp{i}."
            t += b.mtp_input(p, hidden, p + "shared_head.norm")
            t.append(Tensor(p + "shared_head.head", "mtp", (vocab, hidden), "vocab", until="0.16"))
    else:
        t += b.linear("mtp.fc", "mtp", hidden, 2 * hidden, "column")
        for name in ("mtp.pre_fc_norm_hidden", "mtp.pre_fc_norm_embedding", "mtp.norm"):
            t += b.norm(name, hidden, kind="mtp")
    return MtpModule(layers=mods, tensors=tuple(t), style=style)


def deepseek_mtp_not_loaded(cfg: dict, layers: list[Layer], hidden: int, vocab: int) -> tuple[Tensor, ...]:
    """MTP layers ship in the checkpoint; vLLM loads them only for speculative decoding."""
    mtp = _int(cfg, "num_nextn_predict_layers", default=0)
    if not mtp:
        return ()
    layer_params = sum(t.numel for t in layers[-1].tensors)
    return (Tensor("model.layers.mtp", "mtp", (mtp * (layer_params + 2 * hidden * hidden + 3 * hidden
                                                      + vocab * hidden),), "replicated"),)


def mla_moe_decoder(cfg: dict, outer: dict, name: str, *, fp32_router: bool = False) -> ModelSpec:
    """DeepSeek-V2/V3-style decoder: MLA attention, routed + shared experts after the first dense layers.
    `fp32_router`: the gate is an fp32 Linear with an fp32 correction bias (GLM-4 MoE's router)."""
    hidden, n, heads = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "num_attention_heads")
    qlr = cfg.get("q_lora_rank")
    kvr = _int(cfg, "kv_lora_rank")
    rope_d, nope_d, v_d = _int(cfg, "qk_rope_head_dim"), _int(cfg, "qk_nope_head_dim"), _int(cfg, "v_head_dim")
    inter = _int(cfg, "intermediate_size")
    vocab = _int(cfg, "vocab_size")
    p = b.P + "self_attn."
    att_t = b.mla_attention(hidden, heads, int(qlr or 0), kvr, rope_d, nope_d, v_d, prefix=p)
    # vLLM switches to sparse MLA when the config has index_topk (hasattr(config, "index_topk")).
    sparse = "index_topk" in cfg or outer.get("model_type") == "deepseek_v32"
    index_dim = _int(cfg, "index_head_dim", default=128) if sparse else 0
    att = Attention("mla", heads, 1, kvr + rope_d, kv_lora_rank=kvr, qk_rope_head_dim=rope_d,
                    qk_nope_head_dim=nope_d, v_head_dim=v_d, indexer_head_dim=index_dim, sparse=sparse)
    with_indexer = _indexer_layers(cfg, n) if sparse else [False] * n
    reuse = _replace_dc(att, indexer_head_dim=0)  # a layer that borrows its top-k indices has no indexer cache
    idx_t = _indexer_tensors(cfg, hidden, int(qlr or hidden), index_dim) if sparse else ()
    sparse, moe, moe_t, norms = deepseek_moe_block(cfg, hidden, n, correction_bias=fp32_router or cfg.get(
        "topk_method") == "noaux_tc", fp32_router=fp32_router)
    layers = _moe_layers(cfg, n, sparse,
                         lambda i: att if with_indexer[i] else reuse,
                         lambda a: att_t + (idx_t if a.indexer_head_dim else ()), inter, hidden, moe, moe_t, norms)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    not_loaded = deepseek_mtp_not_loaded(cfg, layers, hidden, vocab)
    rope = _rope(cfg, rope_d, "float32" if cfg.get("rope_scaling") else None)
    # deepseek_v2.py allocates the sparse path's [max_num_batched_tokens, index_topk] int32 top-k buffer at load.
    buffers = (TokenBuffer("topk_indices_buffer", _int(cfg, "index_topk", default=2048), "int32"),) if att.sparse else ()
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=kvr + rope_d,
                 inter=inter, tie=tie, embedding=emb, head=head, rope=rope, not_loaded=not_loaded,
                 token_buffers=buffers,
                 mtp=mtp_module(layers, hidden, vocab, _int(cfg, "num_nextn_predict_layers", default=0), "deepseek"))


@register("deepseek_v4")
def _deepseek_v4(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """DeepSeek-V4 (vLLM's models/deepseek_v4): compressed sparse MLA with a sliding window, hash-routed first
    layers, hc_mult residual streams ("hyper-connections"), FP8 block linears and (expert_dtype fp4) MXFP4 experts."""
    hidden, n, heads = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "num_attention_heads")
    hd, rope_d = _int(cfg, "head_dim"), _int(cfg, "qk_rope_head_dim")
    qlr, olr, groups = _int(cfg, "q_lora_rank"), _int(cfg, "o_lora_rank"), _int(cfg, "o_groups")
    window = _int(cfg, "sliding_window")
    e, k, mi = _int(cfg, "n_routed_experts"), _int(cfg, "num_experts_per_tok"), _int(cfg, "moe_intermediate_size")
    shared = _int(cfg, "n_shared_experts", default=0)
    vocab = _int(cfg, "vocab_size")
    ihd, iheads = _int(cfg, "index_head_dim", default=128), _int(cfg, "index_n_heads", default=64)
    hash_layers = _int(cfg, "num_hash_layers", default=0)
    hc = _int(cfg, "hc_mult", default=1)
    ratios = cfg.get("compress_ratios")
    if not isinstance(ratios, list) or len(ratios) < n:
        raise ConfigError("compress_ratios", f"deepseek_v4 needs compress_ratios with one entry per layer ({n})")
    if heads % groups:
        raise ConfigError("o_groups", f"{heads} heads do not split into {groups} output groups")
    mix, hc_dim = (2 + hc) * hc, hc * hidden
    A, F = b.P + "attn.", b.P + "ffn."

    def f32(name: str, *shape: int, parallel: str = "replicated") -> Tensor:
        return Tensor(name, "other", tuple(shape), parallel, dtype="float32")

    def compressor(prefix: str, ratio: int, dim: int) -> tuple[Tensor, ...]:
        coff = 2 if ratio == 4 else 1  # ratio-4 compressors overlap windows: twice the state
        return ((f32(prefix + "ape", ratio, coff * dim),)
                + b.linear(prefix + "fused_wkv_wgate", "attention", 2 * coff * dim, hidden, "replicated",
                           quantizable=False)
                + b.norm(prefix + "norm", dim))

    def tensors(ratio: int, hashed: bool) -> tuple[Tensor, ...]:
        t = (Tensor(A + "attn_sink", "attention", (heads,), "head", dtype="float32"),)
        t += b.linear(A + "fused_wqa_wkv", "attention", qlr + hd, hidden, "replicated")
        t += b.norm(A + "q_norm", qlr) + b.norm(A + "kv_norm", hd)
        t += b.linear(A + "wq_b", "attention", heads * hd, qlr, "column")
        t += b.linear(A + "wo_a", "attention", groups * olr, heads * hd // groups, "column")
        t += b.linear(A + "wo_b", "attention", hidden, groups * olr, "row")
        if ratio > 1:
            t += compressor(A + "compressor.", ratio, hd)
        if ratio == 4:
            t += b.linear(A + "indexer.wq_b", "attention", iheads * ihd, qlr, "replicated")
            t += b.linear(A + "indexer.weights_proj", "attention", iheads, hidden, "replicated", quantizable=False)
            t += compressor(A + "indexer.compressor.", ratio, ihd)
        t += b.router(hidden, e, name=F + "gate", correction_bias=not hashed and cfg.get("topk_method") == "noaux_tc")
        if hashed:
            # Hash-routed layers look experts up by token id: a [vocab, top_k] int32 table.
            t += (Tensor(F + "gate.tid2eid", "router", (vocab, k), "replicated", dtype="int32"),)
        t += b.experts(hidden, mi, e, prefix=F + "experts")
        if shared:
            t += b.gated_mlp(hidden, shared * mi, prefix=F + "shared_experts.", kind="shared_experts")
        t += b.norm(b.P + "attn_norm", hidden) + b.norm(b.P + "ffn_norm", hidden)
        for part in ("attn", "ffn"):
            t += (f32(b.P + f"hc_{part}_fn", mix, hc_dim), f32(b.P + f"hc_{part}_base", mix),
                  f32(b.P + f"hc_{part}_scale", 3))
        return t

    moe = Mlp("moe", 0, e, k, mi, shared * mi)
    cache: dict[tuple[int, bool], Layer] = {}
    layers = []
    for i in range(n):
        ratio = max(1, int(ratios[i] or 0))
        if ratio not in (1, 4, 128):
            raise ConfigError("compress_ratios", f"layer {i}: compress ratio {ratio}; vLLM supports 4 and 128")
        key = (ratio, i < hash_layers)
        if key not in cache:
            att = Attention("dsv4", heads, 1, hd, window=window, kv_lora_rank=hd, qk_rope_head_dim=rope_d,
                            qk_nope_head_dim=hd - rope_d, indexer_head_dim=ihd if ratio == 4 else 0,
                            compress_ratio=ratio)
            cache[key] = Layer(att, moe, tensors(*key))
        layers.append(cache[key])
    tie = _tie(cfg, outer)
    hc_head = (f32("model.hc_head_fn", hc, hc_dim), f32("model.hc_head_base", hc), f32("model.hc_head_scale", 1))
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden) + hc_head)
    mtp_n = _int(cfg, "num_nextn_predict_layers", default=0)
    not_loaded: tuple[Tensor, ...] = ()
    mtp = None
    if mtp_n:
        # DeepSeekV4MTP (deepseek_v4_mtp.py 0.20-0.21, models/deepseek_v4/*/mtp.py from 0.22; unchanged to 0.33):
        # each module drafts through a decoder layer that attends by the window alone (attention.py gives layers
        # past num_hidden_layers compress ratio 1) and is never hash-routed, beside enorm / hnorm, e_proj and h_proj
        # [H, H] (replicated, built with the checkpoint's quantization), an hc_head of its own (fp32) and
        # shared_head.norm; the proposer points its embedding and shared_head.head at the target's.
        own: list[Tensor] = []
        for j in range(mtp_n):
            p = f"model.layers.{n + j}."
            own += b.norm(p + "enorm", hidden) + b.norm(p + "hnorm", hidden)
            own += b.linear(p + "e_proj", "mtp", hidden, hidden, "replicated")
            own += b.linear(p + "h_proj", "mtp", hidden, hidden, "replicated")
            own += (f32(p + "hc_head_fn", hc, hc_dim), f32(p + "hc_head_base", hc), f32(p + "hc_head_scale", 1))
            own += b.norm(p + "shared_head.norm", hidden, kind="mtp")
        att = Attention("dsv4", heads, 1, hd, window=window, kv_lora_rank=hd, qk_rope_head_dim=rope_d,
                        qk_nope_head_dim=hd - rope_d, compress_ratio=1)
        draft = cache.get((1, False)) or Layer(att, moe, tensors(1, False))
        mtp = MtpModule(layers=(draft,) * mtp_n, tensors=tuple(own), style="deepseek_v4")
        # Shipped in the checkpoint; vLLM loads them only for speculative decoding.
        mtp_params = mtp_n * sum(t.numel for t in draft.tensors) + sum(t.numel for t in own)
        not_loaded = (Tensor("model.layers.mtp", "mtp", (mtp_params,), "replicated"),)
    # Two rotary caches (fp32, YaRN-extended): rope_theta for window-only layers, compress_rope_theta for the rest.
    base = _rope(cfg, rope_d, "float32")[0]
    thetas = {float(cfg.get("rope_theta") or 10000) if max(1, int(r or 0)) == 1 else
              float(cfg.get("compress_rope_theta") or cfg.get("rope_theta") or 10000) for r in ratios[:n]}
    rope = tuple(replace(base, theta=t) for t in sorted(thetas))
    buffers = (TokenBuffer("topk_indices_buffer", _int(cfg, "index_topk", default=512), "int32"),
               TokenBuffer("mtp_hidden_buffer", hc_dim, None, last_stage_only=True))
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=mi,
                 tie=tie, embedding=emb, head=head, rope=rope, not_loaded=not_loaded, token_buffers=buffers,
                 residual_streams=hc, mtp=mtp, notes=(
                     "DeepSeek-V4: weights and the KV layout are computed exactly, and the profile run's padded-head "
                     "attention buffers are read from vLLM's source, but no log calibrates the rest of its activation "
                     "or its CUDA graphs; the one public start-up (vllm#44376, 2x GH200) left ~0.4 GiB less for the "
                     "KV cache than estimated, so keep that much headroom",))


# ----------------------------------------------------------------------------- hybrids (Mamba / linear attention)


def _gated_deltanet(cfg: dict, hidden: int, n: int, *, split_in_proj: bool) -> tuple[Attention, tuple, list[str]]:
    """Qwen3-Next / Qwen3.5 Gated-DeltaNet linear attention: its per-request state
    (MambaStateShapeCalculator.gated_delta_net_state_shape: conv (kernel-1, conv_dim/tp), ssm (nv/tp, dk, dv)),
    its tensors (vLLM fuses the in_proj; Qwen3.5 checkpoints split it into qkv/z/b/a), and the layer types."""
    nk, nv = _int(cfg, "linear_num_key_heads"), _int(cfg, "linear_num_value_heads")
    dk, dv = _int(cfg, "linear_key_head_dim"), _int(cfg, "linear_value_head_dim")
    ck = _int(cfg, "linear_conv_kernel_dim", default=4)
    interval = _int(cfg, "full_attention_interval", default=4)
    types = _layer_types(cfg, n) or [
        "full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(n)]
    conv_dim = 2 * nk * dk + nv * dv
    state = (StateTensor("conv", (ck - 1, conv_dim), 1, "conv"), StateTensor("ssm", (nv, dk, dv), 0, "ssm", "value heads"))
    p = b.P + "linear_attn."
    if split_in_proj:
        in_proj = (b.linear(p + "in_proj_qkv", "attention", conv_dim, hidden, "column")
                   + b.linear(p + "in_proj_z", "attention", nv * dv, hidden, "column")
                   + b.linear(p + "in_proj_b", "attention", nv, hidden, "column")
                   + b.linear(p + "in_proj_a", "attention", nv, hidden, "column"))
    else:
        in_proj = (b.linear(p + "in_proj_qkvz", "attention", 2 * nk * dk + 2 * nv * dv, hidden, "column")
                   + b.linear(p + "in_proj_ba", "attention", 2 * nv, hidden, "column"))
    tensors = (in_proj
               + (Tensor(p + "conv1d.weight", "attention", (conv_dim, ck), "column"),
                  Tensor(p + "dt_bias", "attention", (nv,), "head"),
                  Tensor(p + "A_log", "attention", (nv,), "head", dtype="float32"))
               + b.norm(p + "norm", dv) + b.linear(p + "out_proj", "attention", hidden, nv * dv, "row"))
    return Attention("mamba", state=state, state_kind="gdn"), tensors, types


def _qwen_next_moe(cfg: dict, hidden: int) -> tuple[Mlp, tuple[Tensor, ...]]:
    """Qwen3NextSparseMoeBlock: replicated router, fused experts, a gated shared expert with its sigmoid gate."""
    e, k = _int(cfg, "num_experts"), _int(cfg, "num_experts_per_tok")
    mi, si = _int(cfg, "moe_intermediate_size"), _int(cfg, "shared_expert_intermediate_size", default=0)
    moe_t = b.router(hidden, e) + b.experts(hidden, mi, e)
    if si:
        moe_t += b.gated_mlp(hidden, si, prefix=b.P + "mlp.shared_expert.", kind="shared_experts")
        moe_t += (Tensor(b.P + "mlp.shared_expert_gate.weight", "router", (1, hidden), "replicated"),)
    return Mlp("moe", 0, e, k, mi, si), moe_t


@register("qwen3_next")
def _qwen3_next(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, heads, kv, hd = _core_dims(cfg)
    vocab = _int(cfg, "vocab_size")
    gdn, gdn_t, types = _gated_deltanet(cfg, hidden, n, split_in_proj=False)
    full = Attention("full", heads, kv, hd)
    moe, moe_t = _qwen_next_moe(cfg, hidden)
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    att_t = b.attention(hidden, heads, kv, hd, qk_norm=True, q_mult=2)
    mi = moe.moe_intermediate_size
    layers = _moe_layers(cfg, n, _sparse_step(cfg), lambda i: full if types[i] == "full_attention" else gdn,
                         lambda a: att_t if a.kind == "full" else gdn_t, mi, hidden, moe, moe_t, norms)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=mi,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd),
                 # qwen3_next_mtp.py builds num_nextn_predict_layers modules, 1 where the config (as Qwen's do)
                 # does not say; the checkpoints ship mtp.* weights for it
                 mtp=mtp_module(layers, hidden, vocab, _int(cfg, "num_nextn_predict_layers", default=1), "qwen_next"))


@register("jamba")
def _jamba(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, heads = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads)
    hd = hidden // heads
    inter = _int(cfg, "intermediate_size")
    vocab = _int(cfg, "vocab_size")
    e, k = _int(cfg, "num_experts", default=1), _int(cfg, "num_experts_per_tok", default=1)
    a_period, a_off = _int(cfg, "attn_layer_period", default=8), _int(cfg, "attn_layer_offset", default=4)
    e_period, e_off = _int(cfg, "expert_layer_period", default=2), _int(cfg, "expert_layer_offset", default=1)
    d_state = _int(cfg, "mamba_d_state", default=16)
    d_conv = _int(cfg, "mamba_d_conv", default=4)
    mi = int(_int(cfg, "mamba_expand", default=2) * hidden)
    dt_rank = cfg.get("mamba_dt_rank") or "auto"
    dt_rank = -(-hidden // 16) if dt_rank == "auto" else int(dt_rank)
    mbias = bool(cfg.get("mamba_proj_bias"))
    p = b.P + "mamba."
    mamba_t = (b.mamba1_mixer(p, hidden, mi, d_state, d_conv, dt_rank, conv_bias=True, bias=mbias)
               + b.norm(p + "dt_layernorm", dt_rank) + b.norm(p + "b_layernorm", d_state)
               + b.norm(p + "c_layernorm", d_state))
    state = (StateTensor("conv", (mi, d_conv - 1), 0, "conv"), StateTensor("ssm", (mi, d_state), 0, "ssm"))
    mamba = Attention("mamba", state=state, state_kind="mamba1")
    full = Attention("full", heads, kv, hd)
    moe = Mlp("moe", 0, e, k, inter)
    moe_t = b.router(hidden, e, name=b.P + "feed_forward.router") + b.experts(
        hidden, inter, e, prefix=b.P + "feed_forward.experts")
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "pre_ff_layernorm", hidden)
    att_t = b.attention(hidden, heads, kv, hd)
    layers = _moe_layers(cfg, n, lambda i: e > 1 and i % e_period == e_off,
                         lambda i: full if i % a_period == a_off else mamba,
                         lambda a: att_t if a.kind == "full" else mamba_t, inter, hidden, moe, moe_t, norms)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.final_layernorm", hidden))
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=())  # SSM state: cache_config's dtype (no Jamba hook)


# ----------------------------------------------------------------------------- multimodal wrappers


def _text_model(outer: dict, name: str, default_type: str) -> ModelSpec:
    """The language model of a vision wrapper whose text fields live in text_config."""
    text = dict(outer.get("text_config") or {})
    if not text:
        raise ConfigError("config", f"{outer.get('model_type')} config lacks text_config")
    text.setdefault("model_type", default_type)
    return build_spec({**text, "architectures": outer.get("architectures")}, name)


def _with_tower(inner: ModelSpec, outer: dict, extra: tuple[Tensor, ...], mm: MultimodalSpec | None) -> ModelSpec:
    """The text model plus its vision tower, under the wrapper's model_type, architecture and quantization."""
    return _with(inner, extra=inner.extra + extra, multimodal=mm, model_type=str(outer.get("model_type")),
                 architecture=(outer.get("architectures") or [inner.architecture])[0],
                 quant=inner.quant or (parse_quant_config(outer["quantization_config"])
                                       if outer.get("quantization_config") else None))


@register("mistral3", "llava", "llava_next", "pixtral", "llava_onevision", "llava_next_video")
def _llava_like(cfg: dict, outer: dict, name: str) -> ModelSpec:
    inner = _text_model(outer, name, "mistral")
    vis = outer.get("vision_config") or {}
    extra: tuple[Tensor, ...] = ()
    mm = None
    if vis and vis.get("model_type") in ("siglip_vision_model", "clip_vision_model"):
        extra, mm = _llava_clip_tower(vis, outer, inner.hidden_size)
    elif vis:
        vh = _int(vis, "hidden_size", default=1024)
        vn = _int(vis, "num_hidden_layers", default=24)
        vi = _int(vis, "intermediate_size", default=4 * vh)
        patch = _int(vis, "patch_size", default=14)
        ch = _int(vis, "num_channels", default=3)
        # Pixtral-style: attention q/k/v/o, gated MLP, two RMSNorms per layer, patch conv + ln_pre.
        vparams = vn * (4 * vh * vh + 3 * vh * vi + 2 * vh) + ch * patch * patch * vh + vh
        merge = int(outer.get("spatial_merge_size") or 2)
        th = inner.hidden_size
        proj = (vh * merge * merge) * vh + vh + vh * th + th * th + (th if outer.get("multimodal_projector_bias") else 0)
        extra = (Tensor("vision_tower", "vision", (vparams,), "column"),
                 Tensor("multi_modal_projector", "projector", (proj,), "column"))
        if outer.get("model_type") == "mistral3" and not outer.get("multimodal_projector_bias"):
            extra = _mistral3_tower(vh, vn, vi, patch, ch, merge, th)  # same count, vLLM's Linears
        mm = MultimodalSpec(vparams + proj, 1024, th)
    return _with_tower(inner, outer, extra, mm)


def _mistral3_tower(vh: int, vn: int, vi: int, patch: int, ch: int, merge: int, th: int) -> tuple[Tensor, ...]:
    """Mistral3ForConditionalGeneration (vLLM 0.33 mistral3.py): PixtralHFVisionModel under "vision_tower" and
    Mistral3MultiModalProjector, both built with the model's quant_config. Per layer, bias-free q/k/v (one
    QKVParallelLinear), o_proj, gate/up (one MergedColumnParallelLinear) and down_proj, RMSNorms attention_norm /
    ffn_norm; a bias-free patch conv and ln_pre. The projector: RMSNorm, the patch merger's plain nn.Linear
    (never quantized, whole on every rank), linear_1 column- and linear_2 row-parallel (bias-free unless
    multimodal_projector_bias, which the published Mistral3 configs leave false)."""
    t = Tower("vision_tower")
    t.whole += ch * patch * patch * vh + vh  # patch conv, ln_pre
    for j in range(vn):
        pre = f"vision_tower.transformer.layers.{j}."
        for name in ("q_proj", "k_proj", "v_proj"):
            t.add(pre + "attention." + name, vh, vh)
        t.add(pre + "attention.o_proj", vh, vh, "row")
        t.add(pre + "feed_forward.gate_proj", vi, vh)
        t.add(pre + "feed_forward.up_proj", vi, vh)
        t.add(pre + "feed_forward.down_proj", vh, vi, "row")
        t.whole += 2 * vh  # attention_norm, ffn_norm
    proj = Tower("multi_modal_projector", "projector")
    proj.whole += vh  # RMSNorm
    proj.add("multi_modal_projector.patch_merger.merging_layer", vh, vh * merge * merge, "replicated", quant=())
    proj.add("multi_modal_projector.linear_1", th, vh)
    proj.add("multi_modal_projector.linear_2", th, th, "row")
    return t.tensors() + proj.tensors()


def _llava_clip_tower(vis: dict, outer: dict, th: int) -> tuple[tuple[Tensor, ...], MultimodalSpec]:
    """LLaVA / LLaVA-NeXT over a CLIP or SigLIP encoder (vllm/model_executor/models/llava.py): vLLM builds the
    encoder only up to the deepest feature layer it reads, and a two-layer MLP projector from the concatenated
    feature layers to the text width (plus LLaVA-NeXT's image_newline vector)."""
    n = _int(vis, "num_hidden_layers", default=24)
    feat = outer.get("vision_feature_layer", -2)
    feats = feat if isinstance(feat, list) else [feat]
    used = max(int(f) + n + 1 if int(f) < 0 else int(f) for f in feats)
    vh = _int(vis, "hidden_size", default=1024)
    if vis.get("model_type") == "clip_vision_model":
        patch, img = _int(vis, "patch_size", default=14), _int(vis, "image_size", default=336)
        inter = _int(vis, "intermediate_size", default=4 * vh)
        per_layer = _vit_layer(vh, inter)
        # patch conv without bias, class embedding, positions incl. the class token, pre-LayerNorm
        vparams = used * per_layer + 3 * patch * patch * vh + vh + ((img // patch) ** 2 + 1) * vh + 2 * vh
    else:
        # every LLaVA wrapper passes require_post_norm=False: SigLIP's post LayerNorm (2 x hidden) is not built
        vparams = _siglip_params({**vis, "num_hidden_layers": used}) - 2 * vh
    mt = outer.get("model_type")
    if mt in ("llava_onevision", "llava_next_video"):
        # llava_onevision.py / llava_next_video.py: the projector reads one feature layer's width, biases per
        # multimodal_projector_bias; OneVision keeps an image_newline vector, the video-only NeXT-Video does not.
        bias = 2 * th if outer.get("multimodal_projector_bias", True) else 0
        proj = vh * th + th * th + bias + (th if mt == "llava_onevision" else 0)
    else:
        proj = len(feats) * vh * th + th + th * th + th + (th if mt == "llava_next" else 0)
    return _llava_linears(vis, outer, used, len(feats), th), MultimodalSpec(vparams + proj, 1024, th)


def _llava_linears(vis: dict, outer: dict, used: int, feats: int, th: int) -> tuple[Tensor, ...]:
    """The CLIP / SigLIP encoder of a LLaVA wrapper under vLLM's prefixes ("vision_tower.vision_model.encoder.
    layers.{j}...", built with the model's quant_config by init_vision_tower_for_llava, no post LayerNorm) and its
    projector: LLaVA / LLaVA-NeXT's LlavaMultiModalProjector (linear_1 column- and linear_2 row-parallel, biased,
    built with the quant_config; NeXT's image_newline whole on every rank); OneVision's and NeXT-Video's projectors
    are plain nn.Linear, never quantized and whole on every rank (OneVision keeps an image_newline too)."""
    vh, mt = _int(vis, "hidden_size", default=1024), outer.get("model_type")
    if vis.get("model_type") == "clip_vision_model":
        tower = clip_tower(vis, "vision_tower", used)
    else:
        tower = siglip_tower(vis, "vision_tower", used, post_norm=False)
    proj = Tower("multi_modal_projector", "projector")
    if mt in ("llava_onevision", "llava_next_video"):
        for name, out_f, in_f in (("linear_1", th, vh), ("linear_2", th, th)):
            proj.add("multi_modal_projector." + name, out_f, in_f, "replicated", quant=())
        bias = 2 * th if outer.get("multimodal_projector_bias", True) else 0
        proj.whole += bias + (th if mt == "llava_onevision" else 0)  # biases (whole like their Linears), newline
    else:
        proj.add("multi_modal_projector.linear_1", th, feats * vh, bias=True)
        proj.add("multi_modal_projector.linear_2", th, th, "row", bias=True)
        proj.whole += th if mt == "llava_next" else 0
    return tower.tensors() + proj.tensors()


@register("qwen2_vl", "qwen2_5_vl")
def _qwen_vl(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = dict(outer.get("text_config") or {k: v for k, v in outer.items() if k != "vision_config"})
    text["model_type"] = "qwen2"
    if "tie_word_embeddings" not in text and "tie_word_embeddings" in outer:
        text["tie_word_embeddings"] = outer["tie_word_embeddings"]
    inner = _qwen2(text, {**outer, "text_config": None, "model_type": outer.get("model_type")}, name)
    vis = outer.get("vision_config") or {}
    if not vis:
        return inner
    v25 = outer.get("model_type") == "qwen2_5_vl"
    vparams = _qwen_vl_vision_params(vis, inner.hidden_size, v25)
    extra = _qwen_vl_tower_tensors(vis, inner.hidden_size, v25) or (Tensor("visual", "vision", (vparams,), "column"),)
    mm = MultimodalSpec(vparams, 1024, inner.hidden_size, encoder=_qwen_vl_encoder(vis, v25, outer))
    return _with(inner, extra=extra, multimodal=mm, model_type=str(outer.get("model_type")))


def _processor_pixels(outer: dict, name: str, default_max: int, default_min: int = 0) -> tuple[int, int]:
    """(max, min) pixels of a processor config the loaders fold into the config under its file name
    (preprocessor_config, video_preprocessor_config). As in transformers' Qwen2-VL image processor, max_pixels /
    min_pixels override size["longest_edge"] / size["shortest_edge"]; without the file, the model family's default."""
    pc = outer.get(name)
    if not isinstance(pc, dict):
        return default_max, default_min
    size = pc.get("size") if isinstance(pc.get("size"), dict) else {}
    hi = pc.get("max_pixels") or size.get("longest_edge") or default_max
    lo = pc.get("min_pixels") or size.get("shortest_edge") or default_min
    return int(hi), int(lo)


def _qwen_vl_encoder(vis: dict, v25: bool, outer: dict) -> EncoderShape:
    """The tower's live tensors at its MLP peak, read in vLLM's qwen2_vl.py / qwen2_5_vl.py (0.10 - 0.33). Qwen2.5-VL's
    block keeps its input, the attention output, the fused-norm residual and the normed input (4 x hidden) while
    gate_up and its SiLU-and-mul product (3 x intermediate) exist; Qwen2-VL's keeps its input and norm2's output
    beside fc1's output and its activation."""
    h = _int(vis, "hidden_size" if v25 else "embed_dim", default=1280)
    i = _int(vis, "intermediate_size", default=3420) if v25 else int(h * float(vis.get("mlp_ratio") or 4))
    p, t = _int(vis, "patch_size", default=14), _int(vis, "temporal_patch_size", default=2)
    head_dim = h // max(1, _int(vis, "num_heads", default=16))
    return EncoderShape(patch_input=_int(vis, "in_channels", "in_chans", default=3) * t * p * p, patch_size=p,
                        merge=_int(vis, "spatial_merge_size", default=2), temporal_patch=t, hidden=h, intermediate=i,
                        mlp_live=3 if v25 else 2, hidden_live=4 if v25 else 2, rotary_bytes=2 * (head_dim // 2) * 4,
                        max_pixels=_processor_pixels(outer, "preprocessor_config", 12845056)[0],
                        block="qwen2_5_vl" if v25 else "qwen2_vl")


def _qwen_vl_vision_params(vis: dict, text_hidden: int, v25: bool) -> int:
    """Qwen2-VL / Qwen2.5-VL vision tower incl. patch embedding and merger (equals transformers' count)."""
    depth = _int(vis, "depth", default=32)
    chans, p, tp = _int(vis, "in_channels", default=3), _int(vis, "patch_size", default=14), _int(
        vis, "temporal_patch_size", default=2)
    m2 = _int(vis, "spatial_merge_size", default=2) ** 2
    if v25:  # RMSNorms, gated MLP with biases; grouped K/V heads in EXAONE 4.5's variant of the tower
        h, i = _int(vis, "hidden_size", default=1280), _int(vis, "intermediate_size", default=3420)
        out = _int(vis, "out_hidden_size", default=text_hidden)
        heads = _int(vis, "num_heads", default=16)
        kvd = h * _int(vis, "num_key_value_heads", default=heads) // heads
        block = 2 * h * h + 2 * kvd * h + 2 * kvd + 3 * h * i + 2 * i + 5 * h
        merger = (h * m2) ** 2 + h * m2 + h * m2 * out + out + h
    else:  # LayerNorms with biases, fc1/fc2 MLP
        h = _int(vis, "embed_dim", default=1280)
        i = int(h * float(vis.get("mlp_ratio") or 4))
        out = _int(vis, "hidden_size", default=text_hidden)
        block = 4 * h * h + 2 * h * i + 9 * h + i
        merger = (h * m2) ** 2 + h * m2 + h * m2 * out + out + 2 * h
    return depth * block + chans * tp * p * p * h + merger


def _qwen_vl_tower_tensors(vis: dict, text_hidden: int, v25: bool) -> tuple[Tensor, ...]:
    """Qwen2-VL / Qwen2.5-VL's tower as vLLM 0.33 builds it (tower_linears.Tower): qwen2_vl.py / qwen2_5_vl.py pass
    the model's quant_config straight into the vision transformer, so every block's and the merger's Linears take
    it, under vLLM's prefixes ("visual.blocks.{j}.attn.qkv", ...; gate / up named as the checkpoint stores them, so
    ignore lists match them). qkv, gate/up (fc1) and merger mlp.0 are column-parallel with their biases; proj, down
    (fc2) and mlp.2 row-parallel, their biases whole on every rank; norms and the bias-free Conv3d patch embedding
    whole. Same count as _qwen_vl_vision_params. () for EXAONE 4.5's grouped-K/V variant, which stays one lump."""
    depth = _int(vis, "depth", default=32)
    chans, p, tp = _int(vis, "in_channels", default=3), _int(vis, "patch_size", default=14), _int(
        vis, "temporal_patch_size", default=2)
    m = _int(vis, "spatial_merge_size", default=2) ** 2
    if v25:
        h, i = _int(vis, "hidden_size", default=1280), _int(vis, "intermediate_size", default=3420)
        out = _int(vis, "out_hidden_size", default=text_hidden)
        heads = _int(vis, "num_heads", default=16)
        if _int(vis, "num_key_value_heads", default=heads) != heads:
            return ()
        mlp = (("gate_proj", "column", i, h), ("up_proj", "column", i, h), ("down_proj", "row", h, i))
        norm = h  # RMSNorm weight
    else:
        h = _int(vis, "embed_dim", default=1280)
        i = int(h * float(vis.get("mlp_ratio") or 4))
        out = _int(vis, "hidden_size", default=text_hidden)
        mlp = (("fc1", "column", i, h), ("fc2", "row", h, i))
        norm = 2 * h  # LayerNorm weight and bias
    t = Tower("visual")
    t.whole += h * chans * tp * p * p  # patch embedding
    for j in range(depth):
        pre = f"visual.blocks.{j}."
        t.add(pre + "attn.qkv", 3 * h, h, bias=True)
        t.add(pre + "attn.proj", h, h, "row", bias=True)
        for name, parallel, out_f, in_f in mlp:
            t.add(pre + "mlp." + name, out_f, in_f, parallel, bias=True)
        t.whole += 2 * norm  # norm1, norm2
    t.whole += norm  # merger.ln_q
    t.add("visual.merger.mlp.0", h * m, h * m, bias=True)
    t.add("visual.merger.mlp.2", out, h * m, "row", bias=True)
    return t.tensors()


@register("kimi_vl")
def _kimi_vl(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Kimi-VL: a DeepSeek-V3-style MoE text model behind MoonViT and a two-layer projector
    (vllm/model_executor/models/kimi_vl.py, moonvit.py)."""
    inner = _text_model(outer, name, "deepseek_v3")
    vis = outer.get("vision_config") or {}
    if not vis:
        return inner
    return _with_tower(inner, outer, *_moonvit(vis, inner.hidden_size))


def moonvit_dims(vis: dict) -> tuple[int, int, int, int, int, bool, bool, int, int]:
    """MoonViT's sizes (vt_-prefixed keys first): hidden, layers, intermediate, heads, qkv width, attention and
    linear biases, one norm's parameters (LayerNorm weight and bias, or RMSNorm weight) and the patch size."""
    h = _int(vis, "vt_hidden_size", "hidden_size", default=1152)
    norm = 2 * h if vis.get("norm_type", "layernorm") == "layernorm" else h
    return (h, _int(vis, "vt_num_hidden_layers", "num_hidden_layers", default=27),
            _int(vis, "vt_intermediate_size", "intermediate_size", default=4304),
            _int(vis, "vt_num_attention_heads", "num_attention_heads", default=16),
            _int(vis, "qkv_hidden_size", default=h), bool(vis.get("attn_bias", True)),
            bool(vis.get("linear_bias", True)), norm, _int(vis, "patch_size", default=14))


def _moonvit(vis: dict, th: int, projector: str = "multi_modal_projector", whole_unless_tp_divides_heads: bool = False
             ) -> tuple[tuple[Tensor, ...], MultimodalSpec]:
    """MoonViT (Kimi-VL: moonvit.py) and MoonViT3d (Kimi-K2.5 / K3: kimi_k25_vit.py; vt_-prefixed keys) with their
    projector. Per block: fused wqkv over qkv_hidden_size and fc0 column-parallel, wo and fc1 row-parallel under TP
    (biases, when attn_bias / linear_bias keep them, stay whole on the row side), two norms (LayerNorm with bias, or
    RMSNorm); a patch conv, a learned [height, width, hidden] position table and a final norm, replicated. The
    patchmerger projector is a LayerNorm and two biased linears; patchmergerv2 two bias-free linears and an RMSNorm
    on the text side. `whole_unless_tp_divides_heads`: MoonViT3d asks is_vit_use_data_parallel with its head count,
    so at a TP size that does not divide the heads its blocks stay whole on every rank (Kimi-VL's MoonViT does not)."""
    h, n, inter, heads, qkv, attn_bias, lin_bias, norm, patch = moonvit_dims(vis)
    mh, mw = (vis.get("merge_kernel_size") or [2, 2])[:2]
    column = n * (3 * qkv * h + inter * h + (3 * qkv if attn_bias else 0) + (inter if lin_bias else 0))
    row = n * (h * qkv + h * inter)
    whole = (n * (2 * norm + (h if attn_bias else 0) + (h if lin_bias else 0))  # norms; wo/fc1 biases
             + 3 * patch * patch * h + (h if vis.get("patch_embed_proj_bias", True) else 0)  # patch conv
             + _int(vis, "init_pos_emb_height", default=64) * _int(vis, "init_pos_emb_width", default=64) * h
             + norm)  # final_layernorm
    m = h * int(mh) * int(mw)
    if vis.get("mm_projector_type") == "patchmergerv2":
        proj = m * m + m * th + th  # linear_1, linear_2, post_norm
    else:
        proj = 2 * h + m * m + m + m * th + th  # pre_norm, linear_1, linear_2
    # Rope2DPosEmb caches cis(freqs) for a 512x512 grid as complex64 on first use.
    rope_table = 512 * 512 * (qkv // heads // 2) * 8
    split = heads if whole_unless_tp_divides_heads else 0
    tensors = (Tensor("vision_tower.encoder.column", "vision", (column,), "column", split_if_tp_divides=split),
               Tensor("vision_tower.encoder.row", "vision", (row,), "row", split_if_tp_divides=split),
               Tensor("vision_tower.replicated", "vision", (whole,)),
               Tensor(projector, "projector", (proj,)))
    params = column + row + whole + proj
    return tensors, MultimodalSpec(params, 1024, th, profile_buffer_bytes=rope_table)


@register("gemma4", "gemma4_text")
def _gemma4(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = outer.get("text_config") or cfg
    hidden, n, heads = _int(text, "hidden_size"), _int(text, "num_hidden_layers"), _int(text, "num_attention_heads")
    kv, gkv = _int(text, "num_key_value_heads", default=heads), _int(text, "num_global_key_value_heads", default=0)
    hd, ghd = _int(text, "head_dim"), _int(text, "global_head_dim", default=0) or _int(text, "head_dim")
    # vLLM (and transformers) use num_global_key_value_heads on full layers only when K doubles as V.
    gkv = (gkv if text.get("attention_k_eq_v") else 0) or kv
    plc = {int(str(k)): v for k, v in (text.get("per_layer_config") or {}).items() if isinstance(v, dict)}
    for v in plc.values():  # transformers 5.23 writes the full-attention overrides per layer
        ghd, gkv = _int(v, "head_dim", default=ghd), _int(v, "num_key_value_heads", default=gkv)
    inter = _int(text, "intermediate_size")
    vocab = _int(text, "vocab_size")
    window = _int(text, "sliding_window", default=1024)
    types = _layer_types(text, n) or ["sliding_attention"] * n
    e, k = _int(text, "num_experts", default=0), _int(text, "top_k_experts", "num_experts_per_tok", default=0)
    mi = _int(text, "moe_intermediate_size", default=0)
    k_eq_v = bool(text.get("attention_k_eq_v"))
    local = Attention("sliding_window", heads, kv, hd, window=window)
    glob = Attention("full", heads, gkv, ghd)
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden) + b.norm(
        b.P + "pre_feedforward_layernorm", hidden) + b.norm(b.P + "post_feedforward_layernorm", hidden)
    moe = Mlp("moe", inter, e, k, mi) if e else Mlp("dense", inter)
    mlp_t = b.gated_mlp(hidden, inter)
    if e:
        # The MoE block runs beside the dense MLP with three norms of its own; the router has a scale over
        # the hidden size and one per expert (counts equal transformers', see tests/fixtures/oracle).
        norms += (b.norm(b.P + "pre_feedforward_layernorm_2", hidden)
                  + b.norm(b.P + "post_feedforward_layernorm_1", hidden)
                  + b.norm(b.P + "post_feedforward_layernorm_2", hidden))
        mlp_t += (b.router(hidden, e, name=b.P + "router")
                  + (Tensor(b.P + "router.scale", "router", (hidden,), "replicated"),
                     Tensor(b.P + "router.per_expert_scale", "router", (e,), "replicated"))
                  # vLLM's FusedMoE prefix is layers.N.experts (beside, not under, the dense mlp), which is what a
                  # checkpoint's ignore list is matched against ("layers.N.mlp*" leaves the experts quantized)
                  + b.experts(hidden, mi, e, prefix=b.P + "experts"))

    def att_t(a: Attention) -> tuple[Tensor, ...]:
        t = b.attention(hidden, heads, a.num_kv_heads, a.head_dim, qk_norm=True, k_eq_v=k_eq_v and a.kind == "full")
        if k_eq_v and a.kind == "full":
            # vLLM's fused qkv_proj still allocates the V slot and copies K into it.
            t += (Tensor(b.P + "self_attn.v_proj", "attention", (a.num_kv_heads * a.head_dim, hidden), "kv",
                         linear=True, heads=a.num_kv_heads, in_checkpoint=False),)
        return t

    from . import adapters_gemma_ple as ple

    # The last num_kv_shared_layers layers reuse an earlier layer's KV (Gemma-3n style) and store none; with
    # use_double_wide_mlp their MLP is twice as wide (vllm/model_executor/models/gemma4.py: Gemma4DecoderLayer).
    shared_from = n - _int(text, "num_kv_shared_layers", default=0)
    wide = Mlp("dense", 2 * inter) if text.get("use_double_wide_mlp") and not e else moe
    ple_t = ple.ple_layer(text, hidden)
    cache: dict[tuple[str, bool], Layer] = {}
    layers = []
    for i in range(n):
        a = local if types[i] == "sliding_attention" else glob
        key = (a.kind, i >= shared_from)
        if key not in cache:
            att = replace(a, kv_shared=True) if key[1] else a
            mlp, t_mlp = (wide, b.gated_mlp(hidden, 2 * inter)) if key[1] and wide is not moe else (moe, mlp_t)
            # vLLM keeps K/V projections on shared layers; transformers builds none (adapters_gemma_ple).
            t_att = ple.shared_kv_tensors(att_t(a)) if key[1] else att_t(a)
            cache[key] = Layer(att, mlp, t_att + t_mlp + norms + ple_t)
        layers.append(cache[key])
    emb, head = _embed_head(vocab, hidden, True, final_norm=b.norm("model.norm", hidden),
                            embed_extra=ple.ple_embedding(text, hidden, n))
    vis = outer.get("vision_config") or {}
    aud = outer.get("audio_config") or {}
    extra: tuple[Tensor, ...] = ()
    # vllm/model_executor/models/gemma4_mm.py builds both towers with transformers' AutoModel and the embedders
    # as ReplicatedLinear: every TP rank holds them whole.
    if vis:
        extra = (Tensor("vision_tower", "vision", (_gemma4_vision_params(vis),)),
                 Tensor("embed_vision", "projector", (_int(vis, "hidden_size") * hidden,)))
    if aud:
        # Loaded whenever audio_config is set; embed_audio projects output_proj_dims to the text width.
        extra += (Tensor("audio_tower", "vision", (ple.gemma4_audio_params(aud),)),
                  Tensor("embed_audio", "projector", (_int(aud, "output_proj_dims", default=1536) * hidden,)))
    # The towers make it a multimodal start-up: V1's profile run holds the encoder cache and input embeddings beside
    # the language model's pass, and --language-model-only (or every modality at 0) leaves the marked towers unbuilt.
    # The tower's own pass is not sized: 0.19 - 0.21 run it one image or video frame at a time (gemma4_mm.py), from
    # 0.22 in chunks of frames sized from free memory (_encoder_chunk), whose transient depends on the transformers
    # release's patch embedder; rp-003 (0.26, three 32-frame videos) shows no peak above the sampler's.
    mm = None
    if extra:
        per_item = _int(vis, "default_output_length", default=_int(outer, "vision_soft_tokens_per_image", default=280))
        mm = MultimodalSpec(sum(t.numel for t in extra), per_item, hidden)
    buffers = ple.ple_buffer(text, n) if outer.get("text_config") else ()
    # The full layers' "proportional" RoPE is vLLM's Gemma4RotaryEmbedding (rotary_embedding/gemma4_rope.py, 0.19+),
    # which zero-pads the unrotated frequencies and caches cos/sin over the whole head, not head x partial factor.
    full_rope = (text.get("rope_parameters") or {}).get("full_attention") or {}
    full_rot = ghd if full_rope.get("rope_type", "proportional") == "proportional" else int(
        ghd * float(full_rope.get("partial_rotary_factor") or 0.25))
    return _spec(name, text, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=True, embedding=emb, head=head, rope=_rope(text, hd) + (RopeCache(
                     _int(text, "max_position_embeddings", default=131072), full_rot),), extra=extra,
                 token_buffers=buffers, multimodal=mm,
                 notes=("Gemma-4 layout reconstructed from its config; weights and KV are estimates until "
                        "checked against a vLLM log.",))


def _gemma4_vision_params(vis: dict) -> int:
    """Gemma-4's vision encoder: gated MLP, four norms and q/k norms per layer, a linear patch embedding and a
    2-D position table (equals transformers' count for gemma-4-26B-A4B)."""
    h = _int(vis, "hidden_size", default=1152)
    n = _int(vis, "num_hidden_layers", default=27)
    inter = _int(vis, "intermediate_size", default=4304)
    hd = _int(vis, "head_dim", default=72)
    patch = _int(vis, "patch_size", default=16)
    pos = _int(vis, "position_embedding_size", default=10240)
    per_layer = 4 * h * h + 3 * h * inter + 4 * h + 2 * hd
    return n * per_layer + 3 * patch * patch * h + 2 * pos * h


# ----------------------------------------------------------------------------- entry points


def _with(spec: ModelSpec, **changes: Any) -> ModelSpec:
    from dataclasses import replace

    return replace(spec, **changes)


def text_config(cfg: dict) -> dict:
    """The language-model part of a config (nested text_config / llm_config), else the config itself."""
    for key in ("text_config", "llm_config", "language_config"):
        inner = cfg.get(key)
        if isinstance(inner, dict) and inner.get("hidden_size"):
            return inner
    return cfg


@cache
def _defaults() -> dict:
    return data_json("config_defaults.json")


def with_defaults(cfg: dict) -> dict:
    """Fill fields a config omits with transformers' class defaults for its model_type (nested too)."""
    d = _defaults().get(str(cfg.get("model_type")), {})
    out = {**d, **cfg}  # an explicit null in the config stays null (e.g. DeepSeek-V2-Lite's q_lora_rank)
    for key in ("text_config", "vision_config"):
        if isinstance(out.get(key), dict):
            out[key] = with_defaults(out[key])
    return out


# Remote-code checkpoints whose config.json copies sometimes lack model_type; vLLM picks its class by
# architecture, so gpuplan may too.
_ARCH_MODEL_TYPES = {"ChatGLMModel": "chatglm", "ChatGLMForConditionalGeneration": "chatglm",
                     "QWenLMHeadModel": "qwen", "BaichuanForCausalLM": "baichuan", "BaiChuanForCausalLM": "baichuan"}


# vLLM picks the model class by architectures[0]; these classes build something other than what their configs'
# model_type is sometimes relabelled to (IQuest's Loop checkpoints re-saved as "llama" still loop in vLLM).
_ARCH_DECIDES = {"IQuestLoopCoderForCausalLM": "iquestloopcoder", "HrmTextForCausalLM": "hrm_text",
                 "LongcatFlashForCausalLM": "longcat_flash", "LongcatFlashNgramForCausalLM": "longcat_flash",
                 "DeciLMForCausalLM": "nemotron-nas", "HunYuanMoEV1ForCausalLM": "hunyuan_v1_moe",
                 "HunYuanDenseV1ForCausalLM": "hunyuan_v1_dense",
                 # published LightOnOCR configs say model_type mistral3 (adapters_ocr_vlm.py)
                 "LightOnOCRForConditionalGeneration": "lighton_ocr"}


def build_spec(config: dict, name: str | None = None) -> ModelSpec:
    """Build a ModelSpec from an HF config.json dict (never executes remote code)."""
    if not isinstance(config, dict):
        raise ConfigError("config", "config.json must be a JSON object")
    archs = config.get("architectures")
    first = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else ""
    if not config.get("model_type") and first in _ARCH_MODEL_TYPES:
        config = {**config, "model_type": _ARCH_MODEL_TYPES[first]}
    if first in _ARCH_DECIDES and config.get("model_type") != _ARCH_DECIDES[first]:
        config = {**config, "model_type": _ARCH_DECIDES[first]}
    config = with_defaults(config)
    name = name or str(config.get("_name_or_path") or config.get("model_id") or config.get("model_type") or "model")
    mt = config.get("model_type")
    if mt in ADAPTERS:
        return ADAPTERS[mt](config if mt not in MULTIMODAL_WRAPPERS else text_config(config), config, name)
    text = text_config(config)
    inner_mt = text.get("model_type")
    if text is not config and inner_mt in ADAPTERS:
        spec = ADAPTERS[inner_mt](text, config, name)
        return _with(spec, notes=spec.notes + (f"model_type {mt!r}: using its text model ({inner_mt}); "
                                               "any vision tower is not counted",))
    _refuse_non_decoder(config, mt)
    _refuse_unmodelled(mt, inner_mt)
    if text.get("block_configs"):
        # Per-layer blocks (NAS / Puzzle checkpoints) can drop attention or resize the MLP layer by layer; the
        # top-level fields are often null there, so a uniform generic decoder would be confidently wrong.
        raise ConfigError("config", f"model_type {mt!r} describes each layer in block_configs, which only a "
                          "family adapter can read; gpuplan has none for it", accepted=sorted(ADAPTERS))
    missing = [k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
               if text.get(k) is None]
    if missing:
        raise ConfigError("config", f"unsupported model_type {mt!r} and the config lacks {', '.join(missing)}",
                          accepted=sorted(ADAPTERS))
    # Some configs keep MoE sizes next to an explicit off switch (Doge: is_moe false, num_experts 16384).
    experts = 0 if text.get("is_moe") is False else next((int(text[k]) for k in _EXPERT_KEYS if text.get(k)), 0)
    if text.get("kv_lora_rank") and text.get("qk_rope_head_dim"):
        # Latent attention declared by the standard DeepSeek keys: sized as MLA, not as full-head attention
        # (which would overstate its KV cache tens of times).
        spec = mla_moe_decoder({**text, "n_routed_experts": experts if experts > 1 else 0}, config, name)
        what = "a generic DeepSeek-style MLA decoder" + (f" ({experts} experts)" if experts > 1 else "")
    elif experts > 1:
        spec = _generic_moe(text, config, name, experts)
        what = f"a generic Llama-style MoE decoder ({experts} experts)"
    else:
        spec = _llama_like(text, config, name, generic=True)
        what = "a generic Llama-style decoder (full attention, gated MLP)"
    notes = (f"model_type {mt!r} is not known to gpuplan: treated as {what}; weights and KV follow from the "
             "standard fields and are estimates.",)
    unknown_kinds = sorted({str(k) for k in (text.get("layer_types") or ())} - _ATTENTION_LAYER_TYPES)
    if unknown_kinds:
        # Linear-attention / SSM layers keep a fixed per-request state, not a per-token KV cache.
        notes += (f"its layer_types include {', '.join(unknown_kinds)}: those layers are sized as attention, so "
                  "the KV cache per token is overstated and the token capacity understated.",)
    return _with(spec, generic=True, notes=spec.notes + notes)


_ATTENTION_LAYER_TYPES = frozenset({"full_attention", "sliding_attention", "attention", "indexed_attention"})


@cache
def _non_decoder_types() -> dict[str, frozenset[str]]:
    data = data_json("non_decoder_model_types.json")
    return {kind: frozenset(data[kind]) for kind in ("encoder", "encoder_decoder")}


def _refuse_non_decoder(config: dict, mt: object) -> None:
    """BERT-style encoders and T5/Whisper-style encoder-decoders carry the standard fields too; sizing them as
    a generic decoder would be a confident wrong answer, so they are refused by name."""
    kinds = _non_decoder_types()
    if mt in kinds["encoder_decoder"] or config.get("is_encoder_decoder") is True:
        what = "an encoder-decoder model (T5, BART and Whisper style)"
    elif mt in kinds["encoder"]:
        what = "an encoder (BERT style: masked-LM or embedding model, no KV cache)"
    else:
        return
    raise ConfigError("config", f"model_type {mt!r} is {what}; gpuplan sizes decoder-only LLMs "
                      "(and multimodal models whose text model is one)", accepted=sorted(ADAPTERS))


@cache
def _unmodelled_types() -> dict[str, str]:
    return dict(data_json("unmodelled_model_types.json")["types"])


def _refuse_unmodelled(*types: object) -> None:
    """Families vLLM serves with KV layouts gpuplan does not plan yet: the generic fallback would size them as plain
    attention, a confident wrong answer, so they are refused by name with what is missing."""
    known = _unmodelled_types()
    for mt in types:
        if isinstance(mt, str) and mt in known:
            raise ConfigError("model_type", f"{mt!r} is not modelled yet: {known[mt]}",
                              accepted=sorted(ADAPTERS))


_EXPERT_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")


def _generic_moe(cfg: dict, outer: dict, name: str, experts: int) -> ModelSpec:
    """An unknown MoE: routed experts (+ shared experts) on every layer after the first dense ones."""
    topk = _int(cfg, "num_experts_per_tok", "moe_topk", "top_k", "moe_k", default=2)
    mi = _int(cfg, "moe_intermediate_size", "expert_intermediate_size", "intermediate_size")
    shared = _int(cfg, "shared_expert_intermediate_size", default=0) or (
        _int(cfg, "n_shared_experts", "num_shared_experts", "moe_num_shared_experts", default=0) * mi)
    first_dense = _int(cfg, "first_k_dense_replace", "moe_layer_start_index", default=0)
    step = _int(cfg, "decoder_sparse_step", "moe_layer_interval", "moe_layer_freq", default=1) or 1
    cfg = {**cfg, "moe_intermediate_size": mi, "shared_expert_intermediate_size": shared,
           "num_experts_per_tok": topk, "_experts": experts}
    return _moe_decoder(cfg, outer, name, experts_key="_experts", prefix=b.P + "mlp.",
                        qkv_bias=bool(cfg.get("attention_bias")), qk_norm=False, layer_types=True,
                        is_moe=lambda i: i >= first_dense and (i + 1 - first_dense) % step == 0)


# Families kept in their own modules register themselves on import (after everything above is defined).
from . import adapters_gemma_ple, adapters_glm, adapters_legacy, adapters_mamba2_hybrids  # noqa: E402,F401,I001
from . import adapters_minicpm, adapters_nongated, adapters_qwen_next_gen, adapters_remote_code  # noqa: E402,F401,I001
from . import adapters_olmo_hybrid, adapters_ssm, adapters_zamba2  # noqa: E402,F401,I001
from . import adapters_afmoe, adapters_exaone, adapters_kimi_linear, adapters_mimo, adapters_minimax  # noqa: E402,F401,I001
from . import adapters_longcat  # noqa: E402,F401,I001
from . import adapters_loop  # noqa: E402,F401,I001
from . import adapters_step  # noqa: E402,F401,I001
from . import adapters_hy_v3, adapters_laguna, adapters_muse_glimmer  # noqa: E402,F401,I001
from . import adapters_bailing  # noqa: E402,F401,I001
from . import adapters_mla  # noqa: E402,F401,I001
from . import adapters_beam, adapters_dots3_note, adapters_flint, adapters_hy_v4, adapters_inkling  # noqa: E402,F401,I001
from . import adapters_muse_spark, adapters_qwen4_exp  # noqa: E402,F401,I001
from . import adapters_glm5_next, adapters_minimax_m3, adapters_step5, adapters_unified_vlms  # noqa: E402,F401,I001
from . import adapters_ernie45, adapters_hyperclovax  # noqa: E402,F401,I001
from . import adapters_audio_wrappers, adapters_internvl, adapters_nemotron_nas, adapters_nemotron_vl  # noqa: E402,F401,I001
from . import adapters_deepseek_vl2, adapters_hunyuan, adapters_qwen_omni, adapters_vision_wrappers  # noqa: E402,F401,I001
from . import adapters_asr, adapters_minicpmv_phi4mm  # noqa: E402,F401,I001
from . import adapters_dbrx  # noqa: E402,F401,I001
from . import adapters_deepseek_v41  # noqa: E402,F401,I001
from . import adapters_ocr_vlm  # noqa: E402,F401,I001
from . import adapters_lfm3, adapters_nemotron_omni, adapters_phi4_multimodal  # noqa: E402,F401,I001
from . import adapters_aria  # noqa: E402,F401,I001
from . import adapters_minicpm_ocr  # noqa: E402,F401,I001
