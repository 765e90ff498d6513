"""Poolside Laguna (model_type laguna: Laguna-XS.2, XS-2.1, S-2.1, M.1) as vLLM builds it (models/laguna.py).

Per layer: q/k/v/o (biases when `attention_bias`), per-head q/k RMSNorms, and a softplus output gate `g_proj`:
one value per head (`gating` true / "per-head") or one per channel ("per-element"). Each layer may have its own
query-head count (`num_attention_heads_per_layer`) over a shared KV shape. `layer_types` picks full or
sliding-window attention; sliding layers can carry per-head attention sinks (`swa_attention_sink_enabled`). RoPE is
given per layer type (a nested `rope_parameters`), so full and sliding layers get separate rotary caches. The MLP
is a gated MLP where `mlp_layer_types` says "dense", otherwise a sigmoid-routed MoE: fused experts of
`moe_intermediate_size`, one shared expert of `shared_expert_intermediate_size`, a router in the model dtype and a
float32 `e_score_correction_bias`.
"""

from __future__ import annotations

from math import gcd

from . import builders as b
from .adapters import _core_dims, _embed_head, _int, _layer_types, _moe_layers, _spec, _tie, register
from .spec import Attention, Mlp, ModelSpec, RopeCache, Tensor

_FULL, _SWA = "full_attention", "sliding_attention"


def _per_layer(cfg: dict, key: str, n: int, default: list) -> list:
    v = cfg.get(key)
    return list(v[:n]) if isinstance(v, list) and len(v) >= n else default


def _rope_for(cfg: dict, layer_type: str) -> dict:
    """The RoPE parameters one layer type uses: the nested per-type dict (transformers v5 Laguna), an older flat
    dict (with `swa_rope_parameters` for sliding layers when given); a top-level partial_rotary_factor fills in."""
    top = cfg.get("rope_parameters") or {}
    if any(isinstance(v, dict) for v in top.values()):
        params = top.get(layer_type) or top.get(_FULL) or {}
    elif layer_type == _SWA and isinstance(cfg.get("swa_rope_parameters"), dict):
        params = cfg["swa_rope_parameters"]
    else:
        params = top
    if cfg.get("partial_rotary_factor") is not None and "partial_rotary_factor" not in params:
        params = {**params, "partial_rotary_factor": cfg["partial_rotary_factor"]}
    return params


def _rope_cache(cfg: dict, layer_type: str, head_dim: int) -> RopeCache:
    p = _rope_for(cfg, layer_type)
    rot = int(head_dim * float(p.get("partial_rotary_factor", 1.0)))
    pos = _int(cfg, "max_position_embeddings", default=131072)
    if (p.get("rope_type") or p.get("type")) == "yarn" and p.get("original_max_position_embeddings"):
        # vLLM's YaRN caches original_max_position_embeddings x factor positions
        pos = int(p["original_max_position_embeddings"] * float(p.get("factor", 1.0)))
    return RopeCache(pos, rot, theta=float(p.get("rope_theta") or 10000.0))


@register("laguna")
def _laguna(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, heads, kv, hd = _core_dims(cfg)
    vocab, inter = _int(cfg, "vocab_size"), _int(cfg, "intermediate_size")
    e, k = _int(cfg, "num_experts", default=0), _int(cfg, "num_experts_per_tok", default=8)
    mi, si = _int(cfg, "moe_intermediate_size", default=0), _int(cfg, "shared_expert_intermediate_size", default=0)
    # transformers' LagunaConfig fills these three when a config leaves them out, and vLLM reads the filled values.
    types = _layer_types(cfg, n) or [_FULL] * n
    mlp_types = _per_layer(cfg, "mlp_layer_types", n, ["dense"] + ["sparse"] * (n - 1))
    head_counts = [int(h) for h in _per_layer(cfg, "num_attention_heads_per_layer", n, [heads] * n)]
    window = _int(cfg, "sliding_window", default=0)
    sliding = [t == _SWA and window > 0 for t in types]
    gating = cfg.get("gating", True)
    sinks = bool(cfg.get("swa_attention_sink_enabled"))
    bias = bool(cfg.get("attention_bias"))
    p = b.P + "self_attn."

    tensors: dict[Attention, tuple[Tensor, ...]] = {}

    def att_for(i: int) -> Attention:
        h = head_counts[i]
        a = Attention("sliding_window", h, kv, hd, window=window) if sliding[i] else Attention("full", h, kv, hd)
        if a not in tensors:
            t = b.attention(hidden, h, kv, hd, qkv_bias=bias, o_bias=bias, qk_norm=True)
            if gating:
                # One softplus gate per head ("per-head", or True in transformers v5), else one per channel.
                width = h if gating is True or gating == "per-head" else h * hd
                t += b.linear(p + "g_proj", "attention", width, hidden, "column")
            if sliding[i] and sinks:
                t += (Tensor(p + "sink", "attention", (h,), "head"),)  # per-head logits in the model dtype
            tensors[a] = t
        return a

    moe = Mlp("moe", 0, e, k, mi, si)
    moe_t = b.router(hidden, e, correction_bias=True) + b.experts(hidden, mi, e)
    if si:
        moe_t += b.gated_mlp(hidden, si, prefix=b.P + "mlp.shared_expert.", kind="shared_experts")
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    layers = _moe_layers(cfg, n, lambda i: mlp_types[i] == "sparse" and e > 0, att_for, tensors.__getitem__,
                         inter, hidden, moe, moe_t, norms)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    # One rotary cache per layer type present (vLLM's get_rope shares equal ones).
    rope = tuple(_rope_cache(cfg, t, hd) for t in dict.fromkeys(_SWA if t == _SWA else _FULL for t in types))
    # Every layer's query heads must split over TP: the common divisor of the per-layer counts is what TP must
    # divide, so it stands in for the head count in the TP check.
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=gcd(*head_counts), head_dim=hd,
                 inter=inter, tie=tie, embedding=emb, head=head, rope=rope)
