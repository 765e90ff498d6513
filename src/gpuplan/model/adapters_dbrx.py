"""DBRX (model_type dbrx, DbrxForCausalLM; vllm/model_executor/models/dbrx.py, native since before 0.4).

The config keeps its geometry one level down: d_model / n_heads / n_layers / max_seq_len at the top, the KV heads
and RoPE base in attn_config, the expert width, count and top-k in ffn_config. vLLM builds every block as a fused
Wqkv (no bias), a row-parallel out_proj, two LayerNorms whose biases it strips, a bf16 GateLinear router (no quant
config) and fused GLU experts (w1 and v1 stacked into w13); a final LayerNorm, also without bias, and an untied LM
head (vLLM raises on tie_word_embeddings). The rotary table covers max_seq_len positions.
"""

from __future__ import annotations

from ..errors import ConfigError
from . import builders as b
from .adapters import _int, _rope, _spec, register
from .spec import Attention, Layer, Mlp, ModelSpec

_BLOCK = "transformer.blocks.{i}."


@register("dbrx")
def _dbrx(cfg: dict, outer: dict, name: str) -> ModelSpec:
    attn, ffn = cfg.get("attn_config") or {}, cfg.get("ffn_config") or {}
    hidden, n = _int(cfg, "d_model"), _int(cfg, "n_layers")
    heads, vocab = _int(cfg, "n_heads"), _int(cfg, "vocab_size")
    if hidden % heads:
        raise ConfigError("d_model", f"{hidden} is not divisible by n_heads {heads}")
    hd = hidden // heads
    kv = int(attn.get("kv_n_heads") or heads)
    e, k, inter = _int(ffn, "moe_num_experts"), _int(ffn, "moe_top_k"), _int(ffn, "ffn_hidden_size")
    if cfg.get("tie_word_embeddings"):
        raise ConfigError("tie_word_embeddings", "vLLM's DBRX refuses tied embeddings", accepted=["false"])
    att = Attention("full", heads, kv, hd)
    p = _BLOCK + "norm_attn_norm."
    tensors = (b.attention(hidden, heads, kv, hd, prefix=p + "attn.", o_name="out_proj")
               + b.norm(p + "norm_1", hidden) + b.norm(p + "norm_2", hidden)
               + b.router(hidden, e, name=_BLOCK + "ffn.router.layer")
               + b.experts(hidden, inter, e, prefix=_BLOCK + "ffn.experts"))
    layer = Layer(att, Mlp("moe", 0, e, k, inter, 0), tensors)
    emb = (b.embedding(vocab, hidden, "transformer.wte"),)
    head = b.norm("transformer.norm_f", hidden) + b.lm_head(vocab, hidden)
    rope_cfg = {"max_seq_len": _int(cfg, "max_seq_len", default=2048), "rope_theta": attn.get("rope_theta")}
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=False, embedding=emb, head=head, rope=_rope(rope_cfg, hd))
