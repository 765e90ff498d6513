"""Recurrent decoders: pure Mamba (mamba, falcon_mamba), pure Mamba-2 (mamba2), and Liquid's LFM2 / LFM2-MoE
(short-convolution layers with a few attention layers).

As vLLM 0.32 builds them (vllm/model_executor/models/mamba.py, mamba2.py, lfm2.py, lfm2_moe.py). Their per-request
state is sized by MambaStateShapeCalculator (vllm/model_executor/layers/mamba/mamba_utils.py): Mamba-1 keeps a
conv state (d_conv - 1, inner / tp) and an SSM state (inner / tp, d_state); LFM2's short convolution keeps only
(L_cache - 1, conv_dim / tp), in the model dtype.
"""

from __future__ import annotations

from . import builders as b
from .adapters import _embed_head, _int, _rope, _spec, _tie, register
from .adapters_mamba2_hybrids import _mamba2, _mamba2_attention
from .spec import Attention, Layer, Mlp, ModelSpec, StateTensor, Tensor

_BACKBONE = "backbone.layers.{i}."


def _backbone(vocab: int, hidden: int, tie: bool) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    return _embed_head(vocab, hidden, tie, final_norm=b.norm("backbone.norm_f", hidden),
                       embed_name="backbone.embeddings")


@register("mamba", "falcon_mamba")
def _mamba(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Mamba-1 / Falcon-Mamba: every layer an RMSNorm and a MambaMixer, no attention and no MLP.
    Falcon-Mamba's extra dt/B/C RMSNorms have no weights in vLLM."""
    hidden, n, vocab = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "vocab_size")
    inner = _int(cfg, "intermediate_size", default=int(float(cfg.get("expand") or 2) * hidden))
    d_state, d_conv = _int(cfg, "state_size", default=16), _int(cfg, "conv_kernel", default=4)
    dt_rank = cfg.get("time_step_rank") or "auto"
    dt_rank = -(-hidden // 16) if dt_rank == "auto" else int(dt_rank)
    t = (b.mamba1_mixer(_BACKBONE + "mixer.", hidden, inner, d_state, d_conv, dt_rank,
                        conv_bias=bool(cfg.get("use_conv_bias", True)), bias=bool(cfg.get("use_bias")))
         + b.norm(_BACKBONE + "norm", hidden))
    state = (StateTensor("conv", (d_conv - 1, inner), 1, "conv"), StateTensor("ssm", (inner, d_state), 0, "ssm"))
    layer = Layer(Attention("mamba", state=state, state_kind="mamba1"), Mlp("none"), t)
    tie = _tie(cfg, outer, True)
    emb, head = _backbone(vocab, hidden, tie)
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=0, head_dim=0, inter=inner,
                 tie=tie, embedding=emb, head=head)


@register("mamba2")
def _mamba2_lm(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Mamba-2 (e.g. Mamba-Codestral): every layer an RMSNorm and a MambaMixer2 with its gated norm."""
    hidden, n, vocab = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "vocab_size")
    inner = int(float(cfg.get("expand") or 2) * hidden)
    heads, head_dim = _int(cfg, "num_heads"), _int(cfg, "head_dim", default=64)
    bias = bool(cfg.get("use_bias"))
    t, state = _mamba2(_BACKBONE + "mixer.", hidden, inner, heads, head_dim, _int(cfg, "n_groups", default=1),
                       _int(cfg, "state_size", default=128), _int(cfg, "conv_kernel", default=4),
                       conv_bias=bool(cfg.get("use_conv_bias", True)), in_bias=bias, out_bias=bias)
    layer = Layer(_mamba2_attention(state, _int(cfg, "chunk_size", default=256)), Mlp("none"),
                  t + b.norm(_BACKBONE + "norm", hidden))
    tie = _tie(cfg, outer)
    emb, head = _backbone(vocab, hidden, tie)
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=0, head_dim=0, inter=inner,
                 tie=tie, embedding=emb, head=head)


def _lfm2_ff_dim(cfg: dict) -> int:
    """LFM2's MLP width: with block_auto_adjust_ff_dim, 2/3 of intermediate_size times the multiplier, rounded up
    to block_multiple_of (Lfm2MLP)."""
    ff = _int(cfg, "block_ff_dim", "intermediate_size")
    if cfg.get("block_auto_adjust_ff_dim", True):
        ff = int(2 * ff / 3)
        if cfg.get("block_ffn_dim_multiplier") is not None:
            ff = int(float(cfg["block_ffn_dim_multiplier"]) * ff)
        m = _int(cfg, "block_multiple_of", default=256)
        ff = m * -(-ff // m)
    return ff


@register("lfm2", "lfm2_moe")
def _lfm2(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """LFM2: layer_types picks a short convolution ("conv") or GQA attention with q/k RMSNorms per layer; each
    layer then has a gated MLP (lfm2) or, after num_dense_layers, a sigmoid-routed MoE (lfm2_moe)."""
    moe_model = str(cfg.get("model_type")) == "lfm2_moe"
    hidden, n = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers")
    heads, vocab = _int(cfg, "num_attention_heads"), _int(cfg, "vocab_size")
    kv = _int(cfg, "num_key_value_heads", default=heads)
    hd = hidden // heads  # vLLM's Lfm2Attention: hidden_size / num_heads
    types = cfg.get("layer_types")
    if not isinstance(types, list) or len(types) < n:
        idx = set(cfg.get("full_attn_idxs") or ())
        types = ["full_attention" if i in idx else "conv" for i in range(n)]
    conv_dim, L = _int(cfg, "conv_dim", default=hidden), _int(cfg, "conv_L_cache", default=3)
    cb = bool(cfg.get("conv_bias"))
    p = b.P + "conv."
    conv_t = (b.linear(p + "in_proj", "attention", 3 * conv_dim, hidden, "column", cb)
              + b.linear(p + "conv", "attention", conv_dim, L, "column", cb, quantizable=False)
              + b.linear(p + "out_proj", "attention", hidden, conv_dim, "row", cb))
    conv = Attention("mamba", state=(StateTensor("conv", (L - 1, conv_dim), 1, "conv"),), state_kind="short_conv")
    a = b.P + "self_attn."
    att_t = (b.linear(a + "q_proj", "attention", heads * hd, hidden, "column")
             + b.linear(a + "k_proj", "attention", kv * hd, hidden, "kv", heads=kv)
             + b.linear(a + "v_proj", "attention", kv * hd, hidden, "kv", heads=kv)
             + b.linear(a + "out_proj", "attention", hidden, heads * hd, "row")
             + b.norm(a + "q_layernorm", hd) + b.norm(a + "k_layernorm", hd))
    full = Attention("full", heads, kv, hd)
    ff_names = ("w1", "w3", "w2")
    f = b.P + "feed_forward."
    if moe_model:
        dense_ff = _int(cfg, "intermediate_size")
        e, k, mi = _int(cfg, "num_experts"), _int(cfg, "num_experts_per_tok"), _int(cfg, "moe_intermediate_size")
        moe_t = (b.router(hidden, e, name=f + "gate")
                 + ((Tensor(f + "gate.e_score_correction_bias", "router", (e,), "replicated", dtype="float32"),)
                    if cfg.get("use_expert_bias") else ())
                 + b.experts(hidden, mi, e, prefix=f + "experts"))
        first_moe = _int(cfg, "num_dense_layers", default=0)
    else:
        dense_ff, e, k, mi, moe_t, first_moe = _lfm2_ff_dim(cfg), 0, 0, 0, (), n
    dense_t = b.gated_mlp(hidden, dense_ff, prefix=f, names=ff_names)
    norms = b.norm(b.P + "operator_norm", hidden) + b.norm(b.P + "ffn_norm", hidden)
    cache: dict[tuple[bool, bool], Layer] = {}
    layers = []
    for i in range(n):
        key = (types[i] == "full_attention", i >= first_moe)
        if key not in cache:
            attn, moe = key
            mlp = Mlp("moe", 0, e, k, mi) if moe else Mlp("dense", dense_ff)
            cache[key] = Layer(full if attn else conv, mlp, (att_t if attn else conv_t) + (moe_t if moe else dense_t)
                               + norms)
        layers.append(cache[key])
    tie = _tie(cfg, outer, True)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.embedding_norm", hidden))
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=dense_ff,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd))
