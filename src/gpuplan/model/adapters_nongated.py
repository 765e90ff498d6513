"""Llama-shaped decoders whose MLP is not gated: an up and a down projection around a pointwise activation.

Nemotron (Nemotron-4 / Minitron: squared ReLU, LayerNorm1P with bias, partial rotary) and Apertus (xIELU with two
learned scalars per layer, per-head q/k RMSNorms), as vLLM 0.32 builds them (vllm/model_executor/models/
nemotron.py, apertus.py); Arcee (AFM: squared ReLU, RMSNorms) and Jais-2 (LayerNorms with bias), native in vLLM
until 0.31 (arcee.py, jais2.py) and on its Transformers backend from 0.32, with the same tensors. A generic
gated-MLP fallback would count 1.5x their feed-forward weights.
"""

from __future__ import annotations

from . import builders as b
from .adapters import _core_dims, _embed_head, _int, _rope, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, Tensor


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
