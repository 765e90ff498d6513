"""GPT-2-era decoders vLLM still serves (OPT, GPT-2, GPT-BigCode, BLOOM, GPT-J).

Their configs name the dimensions the GPT-2 way (n_embd / n_layer / n_head / n_positions / n_inner), every one
has a plain two-matrix MLP (not gated) and LayerNorms with biases, and all but GPT-J add learned absolute
position embeddings (OPT, GPT-2, BigCode) or ALiBi (BLOOM) instead of a rotary cache. Layouts and TP sharding
follow vLLM 0.19's vllm/model_executor/models/{opt,gpt2,gpt_bigcode,bloom,gpt_j}.py; parameter totals equal
transformers' (tests/fixtures/oracle/families).
"""

from __future__ import annotations

from dataclasses import replace

from . import builders as b
from .adapters import _embed_head, _int, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, RopeCache, Tensor


def _positions(name: str, rows: int, hidden: int) -> Tensor:
    # A plain nn.Embedding in vLLM: replicated on every TP rank, never quantized.
    return Tensor(name + ".weight", "embedding", (rows, hidden))


def _ln(name: str, size: int, affine: bool = True) -> tuple[Tensor, ...]:
    # nn.LayerNorm: weight and bias, or nothing when elementwise_affine is off.
    return b.norm(name, size, True) if affine else ()


def _aliased_len_key(spec: ModelSpec) -> ModelSpec:
    """GPT-2-style configs map max_position_embeddings onto n_positions (attribute_map): vLLM's
    derive_max_model_len_and_key tries max_position_embeddings first, so its messages name that key."""
    lim = spec.max_len_limit
    if lim is None or lim.key != "n_positions":
        return spec
    return replace(spec, max_len_limit=replace(lim, key="max_position_embeddings"))


def _gpt2_dims(cfg: dict) -> tuple[int, int, int, int, int]:
    """hidden, layers, heads, head dim, MLP width from GPT-2-style keys (the HF attribute_map aliases too)."""
    hidden = _int(cfg, "n_embd", "hidden_size")
    n = _int(cfg, "n_layer", "num_hidden_layers")
    heads = _int(cfg, "n_head", "num_attention_heads")
    inter = _int(cfg, "n_inner", default=4 * hidden)  # n_inner null: 4 x hidden (GPT2Block / GPTJBlock)
    return hidden, n, heads, hidden // heads, inter


@register("opt")
def _opt(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """OPT (vllm/model_executor/models/opt.py): fused qkv and fc1/fc2, all with enable_bias; the learned positions
    hold max_position_embeddings + 2 rows (OPTLearnedPositionalEmbedding's offset); word_embed_proj_dim !=
    hidden_size (opt-350m) adds bias-free project_in / project_out (ReplicatedLinear); the final LayerNorm exists
    only when do_layer_norm_before and not _remove_final_layer_norm; the head is tied to embed_tokens."""
    hidden, n, heads = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "num_attention_heads")
    hd = hidden // heads
    ffn = _int(cfg, "ffn_dim", default=3072)
    vocab = _int(cfg, "vocab_size")
    proj = _int(cfg, "word_embed_proj_dim", default=hidden)
    pos = _int(cfg, "max_position_embeddings", default=2048)
    bias = bool(cfg.get("enable_bias", True))
    affine = bool(cfg.get("layer_norm_elementwise_affine", True))
    p = "model.decoder.layers.{i}."
    t = (b.attention(hidden, heads, heads, hd, qkv_bias=bias, o_bias=bias, o_name="out_proj", prefix=p + "self_attn.")
         + b.plain_mlp(hidden, ffn, bias=bias, up=p + "fc1", down=p + "fc2")
         + _ln(p + "self_attn_layer_norm", hidden, affine) + _ln(p + "final_layer_norm", hidden, affine))
    layer = Layer(Attention("full", heads, heads, hd), Mlp("dense", ffn), t)
    d = "model.decoder."
    embed_extra: tuple[Tensor, ...] = (_positions(d + "embed_positions", pos + 2, hidden),)
    final: tuple[Tensor, ...] = ()
    if cfg.get("do_layer_norm_before", True) and not cfg.get("_remove_final_layer_norm", False):
        final += _ln(d + "final_layer_norm", hidden, affine)
    if proj != hidden:
        embed_extra += b.linear(d + "project_in", "other", hidden, proj, "replicated")
        final += b.linear(d + "project_out", "other", proj, hidden, "replicated")
    tie = _tie(cfg, outer, True)
    emb, head = _embed_head(vocab, proj, tie, final_norm=final, embed_name=d + "embed_tokens",
                            embed_extra=embed_extra)
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=ffn,
                 tie=tie, embedding=emb, head=head, rope=())


def _gpt2_like(cfg: dict, outer: dict, name: str, kv: int) -> ModelSpec:
    """GPT-2 and GPT-BigCode: learned positions (n_positions rows), fused c_attn and c_fc/c_proj with biases,
    ln_1/ln_2/ln_f, head tied to wte unless tie_word_embeddings is false."""
    hidden, n, heads, hd, inter = _gpt2_dims(cfg)
    vocab = _int(cfg, "vocab_size")
    pos = _int(cfg, "n_positions", "max_position_embeddings", default=1024)
    p = "transformer.h.{i}."
    t = (b.attention(hidden, heads, kv, hd, qkv_bias=True, o_bias=True, o_name="c_proj", prefix=p + "attn.")
         + b.plain_mlp(hidden, inter, bias=True, up=p + "mlp.c_fc", down=p + "mlp.c_proj")
         + b.norm(p + "ln_1", hidden, True) + b.norm(p + "ln_2", hidden, True))
    layer = Layer(Attention("full", heads, kv, hd), Mlp("dense", inter), t)
    tie = _tie(cfg, outer, True)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("transformer.ln_f", hidden, True),
                            embed_name="transformer.wte",
                            embed_extra=(_positions("transformer.wpe", pos, hidden),))
    return _aliased_len_key(_spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd,
                                  inter=inter, tie=tie, embedding=emb, head=head, rope=()))


@register("gpt2")
def _gpt2(cfg: dict, outer: dict, name: str) -> ModelSpec:
    # vllm/model_executor/models/gpt2.py: GPT2Attention's c_attn is QKVParallelLinear over all heads.
    return _gpt2_like(cfg, outer, name, _int(cfg, "n_head", "num_attention_heads"))


@register("gpt_bigcode")
def _gpt_bigcode(cfg: dict, outer: dict, name: str) -> ModelSpec:
    # vllm/model_executor/models/gpt_bigcode.py: multi_query (the default) -> total_num_kv_heads = 1, replicated
    # on every TP rank; otherwise one KV head per query head.
    kv = 1 if cfg.get("multi_query", True) else _int(cfg, "n_head", "num_attention_heads")
    return _gpt2_like(cfg, outer, name, kv)


@register("bloom")
def _bloom(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """BLOOM (vllm/model_executor/models/bloom.py): ALiBi (no positions, no rotary cache), a LayerNorm right after
    word_embeddings, fused query_key_value and a 4 x hidden MLP, all with biases; tied head."""
    hidden = _int(cfg, "hidden_size", "n_embed", "n_embd")
    n = _int(cfg, "n_layer", "num_hidden_layers")
    heads = _int(cfg, "n_head", "num_attention_heads")
    hd, inter = hidden // heads, 4 * hidden  # BloomMLP ignores n_inner
    vocab = _int(cfg, "vocab_size")
    p = "transformer.h.{i}."
    t = (b.attention(hidden, heads, heads, hd, qkv_bias=True, o_bias=True, o_name="dense",
                     prefix=p + "self_attention.")
         + b.plain_mlp(hidden, inter, bias=True, up=p + "mlp.dense_h_to_4h", down=p + "mlp.dense_4h_to_h")
         + b.norm(p + "input_layernorm", hidden, True) + b.norm(p + "post_attention_layernorm", hidden, True))
    layer = Layer(Attention("full", heads, heads, hd), Mlp("dense", inter), t)
    tie = _tie(cfg, outer, True)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("transformer.ln_f", hidden, True),
                            embed_name="transformer.word_embeddings",
                            embed_extra=b.norm("transformer.word_embeddings_layernorm", hidden, True))
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=())


@register("gptj")
def _gptj(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """GPT-J (vllm/model_executor/models/gpt_j.py): bias-free q/k/v/out_proj beside fc_in/fc_out with biases under
    one ln_1 (parallel residual); rotary on the first rotary_dim dims of each head over n_positions; untied
    lm_head with a bias (vLLM asserts not tie_word_embeddings)."""
    hidden, n, heads, hd, inter = _gpt2_dims(cfg)
    vocab = _int(cfg, "vocab_size")
    rotary = cfg["rotary_dim"] if "rotary_dim" in cfg else 64  # GPTJConfig's default; null: the whole head
    p = "transformer.h.{i}."
    t = (b.attention(hidden, heads, heads, hd, o_name="out_proj", prefix=p + "attn.")
         + b.plain_mlp(hidden, inter, bias=True, up=p + "mlp.fc_in", down=p + "mlp.fc_out")
         + b.norm(p + "ln_1", hidden, True))
    layer = Layer(Attention("full", heads, heads, hd), Mlp("dense", inter), t)
    emb, head = _embed_head(vocab, hidden, False, final_norm=b.norm("transformer.ln_f", hidden, True),
                            embed_name="transformer.wte", head_bias=True)
    rope = (RopeCache(_int(cfg, "n_positions", "max_position_embeddings", default=2048), int(rotary or hd)),)
    return _aliased_len_key(_spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd,
                                  inter=inter, tie=False, embedding=emb, head=head, rope=rope))
