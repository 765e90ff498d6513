"""Checkpoints whose config.json belongs to Hub remote code, but which vLLM builds with its own model classes:
Qwen (1.0, `qwen`), ChatGLM2/3 and GLM-4-9B (`chatglm`), Baichuan and Baichuan2 (`baichuan`).

gpuplan only reads their config keys; nothing of the remote code is run. Layouts and TP sharding follow vLLM
0.19's vllm/model_executor/models/{qwen,chatglm,baichuan}.py and vllm/transformers_utils/configs/chatglm.py.
"""

from __future__ import annotations

from ..errors import ConfigError
from . import builders as b
from .adapters import _embed_head, _int, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, RopeCache


@register("qwen")
def _qwen(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Qwen 1.0 (QWenLMHeadModel, vllm/model_executor/models/qwen.py). Its intermediate_size counts both MLP
    halves: QWenBlock builds QWenMLP(hidden, intermediate_size // 2), so w1/w2 are each half of it wide. c_attn is
    one biased QKV over all heads (no GQA); RMSNorms; untied lm_head. The first Qwen-7B release spells the
    dimensions GPT-2-style (n_embd, n_head, n_layer, n_positions, ffn_hidden_size); both spellings are read."""
    hidden = _int(cfg, "hidden_size", "n_embd")
    n = _int(cfg, "num_hidden_layers", "n_layer")
    heads = _int(cfg, "num_attention_heads", "n_head")
    hd = hidden // heads
    inter = _int(cfg, "intermediate_size", "ffn_hidden_size") // 2
    vocab = _int(cfg, "vocab_size", "padded_vocab_size")
    p = "transformer.h.{i}."
    t = (b.attention(hidden, heads, heads, hd, qkv_bias=True, prefix=p + "attn.", o_name="c_proj")
         + b.gated_mlp(hidden, inter, prefix=p + "mlp.", names=("w1", "w2", "c_proj"))
         + b.norm(p + "ln_1", hidden) + b.norm(p + "ln_2", hidden))
    layer = Layer(Attention("full", heads, heads, hd), Mlp("dense", inter), t)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("transformer.ln_f", hidden),
                            embed_name="transformer.wte")
    pos = _int(cfg, "max_position_embeddings", "n_positions", "seq_length", default=8192)
    rotary = int(hd * float(cfg.get("rotary_pct") or 1.0))
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=(RopeCache(pos, rotary),))


@register("chatglm")
def _chatglm(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """ChatGLM2/3 and GLM-4-9B (ChatGLMModel, vllm/model_executor/models/chatglm.py). The vocabulary is
    padded_vocab_size; KV heads are multi_query_group_num when multi_query_attention is on; head_dim is
    hidden / heads; the fused query_key_value has a bias when add_bias_linear or add_qkv_bias; RoPE covers half of
    each head over seq_length positions; RMSNorm, or LayerNorm with biases when rmsnorm is off; a final norm only
    with post_layer_norm; output_layer is untied unless tie_word_embeddings."""
    if "vision_config" in cfg or "vision_config" in outer:
        raise ConfigError("config", "GLM-4V's vision tower is not modelled; only text ChatGLM checkpoints are")
    if "ffn_hidden_size" not in cfg and "inner_hidden_size" in cfg:
        raise ConfigError("config", "the first ChatGLM-6B (2D positions, inner_hidden_size) is not served by vLLM")
    hidden = _int(cfg, "hidden_size", default=4096)
    n = _int(cfg, "num_layers", "num_hidden_layers", default=28)
    heads = _int(cfg, "num_attention_heads", default=32)
    kv = _int(cfg, "multi_query_group_num", default=1) if cfg.get("multi_query_attention") else heads
    hd = hidden // heads
    inter = _int(cfg, "ffn_hidden_size", default=13696)
    vocab = _int(cfg, "padded_vocab_size", "vocab_size", default=65024)
    lin_bias = bool(cfg.get("add_bias_linear", False))
    qkv_bias = lin_bias or bool(cfg.get("add_qkv_bias", False))
    ln_bias = not cfg.get("rmsnorm", True)
    p = "transformer.encoder.layers.{i}."
    attn = b.attention(hidden, heads, kv, hd, qkv_bias=qkv_bias, o_bias=lin_bias, o_name="dense",
                       prefix=p + "self_attention.")
    t = (attn + b.gated_mlp(hidden, inter, bias=lin_bias, prefix=p + "mlp.",
                                names=("dense_h_to_4h.gate", "dense_h_to_4h.up", "dense_4h_to_h"))
         + b.norm(p + "input_layernorm", hidden, ln_bias) + b.norm(p + "post_attention_layernorm", hidden, ln_bias))
    layer = Layer(Attention("full", heads, kv, hd), Mlp("dense", inter), t)
    tie = _tie(cfg, outer)
    final = b.norm("transformer.encoder.final_layernorm", hidden, ln_bias) if cfg.get("post_layer_norm", True) else ()
    emb, head = _embed_head(vocab, hidden, tie, final_norm=final, embed_name="transformer.embedding.word_embeddings",
                            head_name="transformer.output_layer")
    rope = (RopeCache(_int(cfg, "seq_length", default=2048), hd // 2),)
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=rope)


@register("baichuan")
def _baichuan(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Baichuan-7B/13B and Baichuan2-7B/13B (vllm/model_executor/models/baichuan.py): a bias-free fused W_pack
    (full multi-head attention), a gated MLP, RMSNorms, untied lm_head. BaichuanForCausalLM (lower-case c) uses
    RoPE only at hidden_size 4096 (Baichuan2-7B) and ALiBi otherwise (the 13B models: no rotary cache);
    BaiChuanForCausalLM (Baichuan-7B) uses RoPE."""
    hidden = _int(cfg, "hidden_size")
    n = _int(cfg, "num_hidden_layers")
    heads = _int(cfg, "num_attention_heads")
    hd = hidden // heads
    inter = _int(cfg, "intermediate_size")
    vocab = _int(cfg, "vocab_size")
    p = "model.layers.{i}."
    t = (b.attention(hidden, heads, heads, hd, prefix=p + "self_attn.")
         + b.gated_mlp(hidden, inter, prefix=p + "mlp.")
         + b.norm(p + "input_layernorm", hidden) + b.norm(p + "post_attention_layernorm", hidden))
    layer = Layer(Attention("full", heads, heads, hd), Mlp("dense", inter), t)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    arch = (outer.get("architectures") or cfg.get("architectures") or [""])[0]
    rope: tuple[RopeCache, ...] = ()
    if arch == "BaiChuanForCausalLM" or hidden == 4096:
        rope = (RopeCache(_int(cfg, "max_position_embeddings", default=8192), hd),)
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=rope)
