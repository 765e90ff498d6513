"""AI2's OLMo Hybrid as vLLM 0.32 builds it (vllm/model_executor/models/olmo_hybrid.py and
layers/mamba/gdn/olmo_gdn_linear_attn.py): Gated-DeltaNet layers with full-attention layers between them
(layer_types), a dense SwiGLU MLP on every layer.

It differs from Qwen3-Next's Gated DeltaNet in ways that move the weights: q, k, v and the output gate come
from one fused projection and b, a from two small ones; A_log and dt_bias are held in the model dtype; the
gated output norm is per value head. The attention layers normalise the whole q (hidden_size) and k
(kv heads x head_dim) rather than per head, and put their norms after attention and after the MLP (OLMo-2
style). The recurrent state is the same shape as Qwen3-Next's.
"""

from __future__ import annotations

from dataclasses import replace

from . import builders as b
from .adapters import _embed_head, _gated_deltanet, _int, _rope, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, Tensor


@register("olmo_hybrid")
def _olmo_hybrid(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, heads = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads)
    hd = hidden // heads  # vLLM's OlmoHybridAttention ignores any head_dim key
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    nk, nv = _int(cfg, "linear_num_key_heads"), _int(cfg, "linear_num_value_heads")
    dk, dv = _int(cfg, "linear_key_head_dim"), _int(cfg, "linear_value_head_dim")
    ck = _int(cfg, "linear_conv_kernel_dim", default=4)
    qwen_gdn, _, types = _gated_deltanet(cfg, hidden, n, split_in_proj=False)  # the same state, layer types
    # vLLM's OlmoHybridGatedDeltaNetAttention runs its own kernels: no FlashInfer prefill checkpoints in 0.33.
    gdn = replace(qwen_gdn, state_kind="olmo_gdn")
    p = b.P + "linear_attn."
    gdn_t = (b.linear(p + "in_proj_qkvg", "attention", 2 * nk * dk + 2 * nv * dv, hidden, "column")
             + b.linear(p + "b_proj", "attention", nv, hidden, "column")
             + b.linear(p + "a_proj", "attention", nv, hidden, "column")
             + (Tensor(p + "conv1d.weight", "attention", (2 * nk * dk + nv * dv, ck), "column"),
                Tensor(p + "dt_bias", "attention", (nv,), "head"),
                Tensor(p + "A_log", "attention", (nv,), "head"))
             + b.norm(p + "o_norm", dv) + b.linear(p + "o_proj", "attention", hidden, nv * dv, "row"))
    s = b.P + "self_attn."
    att_t = (b.attention(hidden, heads, kv, hd, prefix=s)
             + b.norm(s + "q_norm", hidden) + b.norm(s + "k_norm", kv * hd))
    mlp_t = b.gated_mlp(hidden, inter)
    gdn_layer = Layer(gdn, Mlp("dense", inter), gdn_t + mlp_t + b.norm(b.P + "input_layernorm", hidden)
                      + b.norm(b.P + "post_attention_layernorm", hidden))
    att_layer = Layer(Attention("full", heads, kv, hd), Mlp("dense", inter),
                      att_t + mlp_t + b.norm(b.P + "post_attention_layernorm", hidden)
                      + b.norm(b.P + "post_feedforward_layernorm", hidden))
    layers = [att_layer if t == "full_attention" else gdn_layer for t in types]
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd))
