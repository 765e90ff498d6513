"""Zyphra's Zamba2 as vLLM 0.32 builds it (vllm/model_executor/models/zamba2.py).

Every layer is a Mamba-2 mixer. At the `hybrid_layer_ids` a shared transformer block also runs first: attention
over the concatenation of the current and the original embeddings (2 x hidden wide, heads x attention_head_dim),
then a GELU-gated MLP, then a per-layer hidden x hidden projection added to the Mamba input. There are only
num_mem_blocks such blocks (used in turn), so their weights are counted once; but each use has its own LoRA
adapters (on the MLP's gate/up, and on q/k/v when use_shared_attention_adapter) and its own KV cache. vLLM ties
the LM head to the embedding whatever the config says.

Here a hybrid layer is a full-attention layer that also carries a Mamba-2 state (like Falcon-H1), and the
first use of each shared block carries that block's weights, so tensor-parallel sharding applies to them.
"""

from __future__ import annotations

from . import builders as b
from .adapters import _embed_head, _int, _rope, _spec, register
from .adapters_mamba2_hybrids import _mamba2, _mamba2_attention
from .spec import Attention, Layer, Mlp, ModelSpec, Tensor


def _lora(prefix: str, d_in: int, rank: int, d_out: int) -> tuple[Tensor, ...]:
    # Zamba2LoRA: A is column-parallel over the rank (gathered), B column-parallel over the output.
    return b.linear(prefix + ".A", "attention", rank, d_in, "column") + b.linear(prefix + ".B", "attention", d_out,
                                                                                   rank, "column")


@register("zamba2")
def _zamba2(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, vocab = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "vocab_size")
    heads, inter = _int(cfg, "num_attention_heads"), _int(cfg, "intermediate_size")
    att_width = _int(cfg, "attention_hidden_size", default=2 * hidden)
    hd = _int(cfg, "attention_head_dim", default=att_width // heads)
    blocks, rank = _int(cfg, "num_mem_blocks", default=1), _int(cfg, "adapter_rank", default=128)
    bias = bool(cfg.get("add_bias_linear"))
    types = [str(t) for t in (cfg.get("layers_block_type") or [])][:n]
    hybrid_ids = [i for i, t in enumerate(types) if t == "hybrid"]
    inner = int(float(cfg.get("mamba_expand") or 2) * hidden)
    mheads = _int(cfg, "n_mamba_heads", default=8)
    mamba_t, state = _mamba2(b.P + "mamba.", hidden, inner, mheads, inner // mheads,
                             _int(cfg, "mamba_ngroups", default=1), _int(cfg, "mamba_d_state", default=64),
                             _int(cfg, "mamba_d_conv", default=4), conv_bias=bool(cfg.get("use_conv_bias", True)),
                             in_bias=bias, out_bias=bias)
    chunk = _int(cfg, "chunk_size", default=256)
    mamba_t += b.norm(b.P + "input_layernorm", hidden)
    mamba_layer = Layer(_mamba2_attention(state, chunk), Mlp("none"), mamba_t)

    def shared(j: int) -> tuple[Tensor, ...]:
        s = f"model.blocks.{j}."
        return (b.linear(s + "self_attn.qkv_proj", "attention", 3 * heads * hd, att_width, "column")
                + b.linear(s + "self_attn.o_proj", "attention", hidden, heads * hd, "row")
                + b.gated_mlp(hidden, inter, bias=bias, prefix=s + "feed_forward.")
                + b.norm(s + "input_layernorm", 2 * hidden) + b.norm(s + "pre_ff_layernorm", hidden))

    use = (_lora(b.P + "feed_forward.gate_up_proj_adapter", hidden, rank, 2 * inter)
           + b.linear(b.P + "linear", "attention", hidden, hidden, "replicated"))
    if cfg.get("use_shared_attention_adapter"):
        for x in "qkv":
            use += _lora(b.P + f"self_attn.linear_{x}_adapter", att_width, rank, att_width)
    attention = Attention("full", heads, heads, hd, state=state, state_kind="mamba2", chunk=chunk)
    hybrid = Layer(attention, Mlp("dense", inter), mamba_t + use)
    first_uses = {i: Layer(attention, Mlp("dense", inter), mamba_t + use + shared(j))
                  for j, i in enumerate(hybrid_ids[:blocks])}
    layers = [first_uses.get(i) or (hybrid if i in hybrid_ids else mamba_layer) for i in range(n)]
    emb, head = _embed_head(vocab, hidden, True, final_norm=b.norm("model.final_layernorm", hidden))
    rope = _rope(cfg, hd) if cfg.get("use_mem_rope") else ()
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=True, embedding=emb, head=head, rope=rope)
