"""Llama-shaped decoders whose MLP is not gated: an up and a down projection around a pointwise activation.

Nemotron (Nemotron-4 / Minitron: squared ReLU, LayerNorm1P with bias, partial rotary) and Apertus (xIELU with two
learned scalars per layer, per-head q/k RMSNorms), as vLLM 0.32 builds them (vllm/model_executor/models/
nemotron.py, apertus.py); Arcee (AFM: squared ReLU, RMSNorms) and Jais-2 (LayerNorms with bias), native in vLLM
until 0.31 (arcee.py, jais2.py) and on its Transformers backend from 0.32, with the same tensors. A generic
gated-MLP fallback would count 1.5x their feed-forward weights.

Persimmon (PersimmonForCausalLM) and Fuyu (FuyuForCausalLM, Persimmon behind one patch projection), native in vLLM
until 0.25 (persimmon.py, fuyu.py; the registry lists both as previously supported from then on): see _persimmon.
"""

from __future__ import annotations

from . import builders as b
from .adapters import _core_dims, _embed_head, _int, _rope, _spec, _tie, _with_tower, register
from .spec import Attention, Layer, Mlp, ModelSpec, MultimodalSpec, Tensor


def _plain_mlp_decoder(cfg: dict, outer: dict, name: str, *, norm_bias: bool, qk_norm: bool = False,
                       norm_names: tuple[str, str] = ("input_layernorm", "post_attention_layernorm"),
                       act_params: int = 0) -> ModelSpec:
    hidden, n, heads, kv, hd = _core_dims(cfg)
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    # Some Llama-derived configs say `bias` for biased attention (vLLM's arcee.py and jais2.py read both).
    att_bias, mlp_bias = bool(cfg.get("attention_bias") or cfg.get("bias")), bool(cfg.get("mlp_bias"))
    p = b.P + "mlp."
    tensors = (b.attention(hidden, heads, kv, hd, qkv_bias=att_bias, o_bias=att_bias, qk_norm=qk_norm)
               + b.linear(p + "up_proj", "mlp", inter, hidden, "column", mlp_bias)
               + b.linear(p + "down_proj", "mlp", hidden, inter, "row", mlp_bias)
               + tuple(Tensor(p + f"act_fn.param_{k}", "mlp", (1,)) for k in range(act_params))
               + b.norm(b.P + norm_names[0], hidden, norm_bias) + b.norm(b.P + norm_names[1], hidden, norm_bias))
    layer = Layer(Attention("full", heads, kv, hd), Mlp("dense", inter), tensors)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden, norm_bias))
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd))


@register("nemotron", "jais2")
def _biased_norms(cfg: dict, outer: dict, name: str) -> ModelSpec:
    # Nemotron's LayerNorm1P and Jais-2's LayerNorm both carry a bias.
    return _plain_mlp_decoder(cfg, outer, name, norm_bias=True)


@register("apertus")
def _apertus(cfg: dict, outer: dict, name: str) -> ModelSpec:
    # xIELU learns alpha_p and alpha_n (one value each); its beta and eps are buffers.
    return _plain_mlp_decoder(cfg, outer, name, qk_norm=True, norm_bias=False,
                              norm_names=("attention_layernorm", "feedforward_layernorm"), act_params=2)


@register("arcee")
def _arcee(cfg: dict, outer: dict, name: str) -> ModelSpec:
    return _plain_mlp_decoder(cfg, outer, name, norm_bias=False)


def _persimmon_text(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Persimmon as vLLM (0.25 and earlier) builds it: a fused biased QKV of num_attention_heads heads of
    hidden / heads (no grouped K/V: the class ignores num_key_value_heads), a biased row-parallel dense, and with
    qk_layernorm a LayerNorm (weight and bias) over head_dim on q and on k, whole on every rank; a biased
    column / row MLP around relu2; LayerNorms with bias (two per layer, one final); an untied ParallelLMHead (the
    class never ties). Partial rotary: transformers' PersimmonConfig defaults partial_rotary_factor to 0.5, which
    get_rope reads from rope_parameters."""
    hidden, n, vocab = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "vocab_size")
    heads, inter = _int(cfg, "num_attention_heads"), _int(cfg, "intermediate_size")
    hd = hidden // heads
    att = b.attention(hidden, heads, heads, hd, qkv_bias=True, o_bias=True)
    if cfg.get("qk_layernorm", True):
        att += b.norm(b.P + "self_attn.q_layernorm", hd, True) + b.norm(b.P + "self_attn.k_layernorm", hd, True)
    p = b.P + "mlp."
    tensors = (att + b.linear(p + "dense_h_to_4h", "mlp", inter, hidden, "column", True)
               + b.linear(p + "dense_4h_to_h", "mlp", hidden, inter, "row", True)
               + b.norm(b.P + "input_layernorm", hidden, True) + b.norm(b.P + "post_attention_layernorm", hidden, True))
    layer = Layer(Attention("full", heads, heads, hd), Mlp("dense", inter), tensors)
    emb, head = _embed_head(vocab, hidden, False, final_norm=b.norm("model.final_layernorm", hidden, True))
    rope_cfg = cfg if (cfg.get("partial_rotary_factor") is not None or (
        isinstance(cfg.get("rope_parameters"), dict) and "partial_rotary_factor" in cfg["rope_parameters"])) \
        else {**cfg, "partial_rotary_factor": 0.5}
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=False, embedding=emb, head=head, rope=_rope(rope_cfg, hd))


@register("persimmon")
def _persimmon(cfg: dict, outer: dict, name: str) -> ModelSpec:
    return _persimmon_text(cfg, outer, name)


@register("fuyu")
def _fuyu(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Fuyu: the Persimmon language model of text_config plus vision_embed_tokens, a biased ColumnParallelLinear
    (gather_output) from one flattened patch (patch_size^2 x num_channels) to the text width, built inside
    _mark_tower_model("image"); no vision encoder. A profile image is the processor's 1920 x 1080 target in
    30-pixel patches: 64 x 36 = 2,304 embeddings (the row-break tokens are text)."""
    text = outer.get("text_config") if isinstance(outer.get("text_config"), dict) else cfg
    inner = _persimmon_text({**text, "architectures": outer.get("architectures")}, outer, name)
    patch, ch = _int(outer, "patch_size", default=30), _int(outer, "num_channels", default=3)
    h = inner.hidden_size
    proj = b.linear("vision_embed_tokens", "vision", h, patch * patch * ch, "column", True)
    mm = MultimodalSpec(sum(t.numel for t in proj), (1920 // patch) * (1080 // patch), h)
    return _with_tower(inner, outer, proj, mm)
