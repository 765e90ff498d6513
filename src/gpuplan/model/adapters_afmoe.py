"""AFMoE (Arcee Trinity) as vLLM builds it (vllm/model_executor/models/afmoe.py).

Per layer: gated attention (q/k/v/o plus a sigmoid output gate projection as wide as q, per-head q/k RMSNorms,
no biases), sliding-window or full by `layer_types`, with RoPE only on the sliding layers; four RMSNorms; the first
`num_dense_layers` layers a gated MLP, the rest a routed MoE with an fp32 router, an fp32 `expert_bias` and
`num_shared_experts` x moe_intermediate_size of shared expert.
"""

from __future__ import annotations

from . import builders as b
from .adapters import _core_dims, _embed_head, _int, _layer_types, _moe_layers, _rope, _spec, _tie, register
from .spec import Attention, Mlp, ModelSpec, Tensor


@register("afmoe")
def _afmoe(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, heads, kv, hd = _core_dims(cfg)
    e, k = _int(cfg, "num_experts"), _int(cfg, "num_experts_per_tok", default=6)
    mi, inter, vocab = _int(cfg, "moe_intermediate_size"), _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    shared = mi * _int(cfg, "num_shared_experts", default=0)
    dense = _int(cfg, "num_dense_layers", default=0)
    window = _int(cfg, "sliding_window", default=0)
    types = _layer_types(cfg, n) or ["full_attention"] * n
    local = [t == "sliding_attention" and window > 0 for t in types]
    moe = Mlp("moe", 0, e, k, mi, shared)
    moe_t = (b.router(hidden, e, fp32=True)
             + (Tensor(b.P + "mlp.expert_bias", "router", (e,), "replicated", dtype="float32"),)
             + b.experts(hidden, mi, e))
    if shared:
        moe_t += b.gated_mlp(hidden, shared, prefix=b.P + "mlp.shared_experts.", kind="shared_experts")
    full, swa = Attention("full", heads, kv, hd), Attention("sliding_window", heads, kv, hd, window=window or None)
    # The output gate is its own column-parallel [heads x head_dim, hidden] projection: the size of a second q.
    att_t = b.attention(hidden, heads, kv, hd, qk_norm=True, q_mult=2)
    norms = sum((b.norm(b.P + x, hidden) for x in ("input_layernorm", "post_attention_layernorm",
                                                    "pre_mlp_layernorm", "post_mlp_layernorm")), ())
    layers = _moe_layers(cfg, n, lambda i: i >= dense, lambda i: swa if local[i] else full, lambda a: att_t,
                         inter, hidden, moe, moe_t, norms)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    # Full-attention layers carry no position encoding, so a model without sliding layers has no rotary cache.
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd) if any(local) else ())
