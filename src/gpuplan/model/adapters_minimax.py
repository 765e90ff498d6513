"""MiniMax-M2 (model_type minimax_m2; M2, M2.1, M2.5, M2.7 share it): full attention on every layer with a
TP-sharded RMSNorm over the whole q and k projections, partial rotary embedding, and a 256-expert MoE block whose
router runs in float32.

vLLM: models/minimax_m2.py (MiniMaxM2Attention, MiniMaxM2MoE; norms from layers/minimax_rms_norm.py).
"""

from __future__ import annotations

from . import builders as b
from .adapters import _core_dims, _embed_head, _int, _moe_layers, _spec, _tie, register
from .spec import Attention, Mlp, ModelSpec, RopeCache, Tensor


@register("minimax_m2")
def _minimax_m2(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, heads, kv, hd = _core_dims(cfg)
    vocab = _int(cfg, "vocab_size")
    e, k = _int(cfg, "num_local_experts"), _int(cfg, "num_experts_per_tok")
    mi = _int(cfg, "intermediate_size")  # the experts' width: M2 has no dense MLP
    p = b.P + "self_attn."
    att_t = b.attention(hidden, heads, kv, hd, qkv_bias=bool(cfg.get("attention_bias")))
    if cfg.get("use_qk_norm", True):
        # MiniMaxText01RMSNormTP: one weight over all heads, sharded like the heads it normalises (k_norm follows
        # the KV heads, one copy per rank when TP exceeds them).
        att_t += (Tensor(p + "q_norm.weight", "norm", (heads * hd,), "column"),
                  Tensor(p + "k_norm.weight", "norm", (kv * hd,), "kv", heads=kv))
    f = b.P + "block_sparse_moe."
    # GateLinear(params_dtype=float32) and a float32 correction bias (use_routing_bias), both replicated.
    moe_t = (b.router(hidden, e, name=f + "gate", correction_bias=bool(cfg.get("use_routing_bias")), fp32=True)
             + b.experts(hidden, mi, e, prefix=f + "experts"))
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    full = Attention("full", heads, kv, hd)
    moe = Mlp("moe", 0, e, k, mi)
    layers = _moe_layers(cfg, n, lambda i: True, lambda i: full, lambda a: att_t, mi, hidden, moe, moe_t, norms)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    # The checkpoint's num_mtp_modules MTP layers (after the decoder) are mapped to nothing by MiniMaxM2Model and
    # left out here; their shape is not in the config.
    rot = _int(cfg, "rotary_dim", default=hd)
    pos = _int(cfg, "max_position_embeddings", default=8192)
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=mi, tie=tie,
                 embedding=emb, head=head, rope=(RopeCache(pos, rot),))
