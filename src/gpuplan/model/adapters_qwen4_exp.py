"""Qwen4Exp (model_type qwen4_exp_text; the text model of Qwen4ExpForConditionalGeneration), as vLLM 0.33 builds it.

vLLM 0.33 (models/qwen4_exp/nvidia/model.py, qsa.py, indexer_qsa.py, hyperconnection.py, ple_layer.py,
ngram_embedding.py; common/qsa_cache.py):

* The residual stream is hc_count hidden states wide. Every decoder layer wraps its mixer and its MoE block in a
  hyper-connection each (GatedResidual): a grouped norm over hc_count x hidden, a merged down + block-inject
  projection whose rows vLLM pads to a multiple of 16 (hc_lowrank + hc_count + padding rows the checkpoint does not
  hold) and an up projection, all replicated. There is no final norm: the last rank's mixer has the norm, the down
  and the up projection only.
* Linear-attention layers are Qwen3.5's Gated DeltaNet; every layer has Qwen3-Next's sparse MoE block with a gated
  shared expert.
* Full-attention layers are QSA: gated attention (q_proj doubled for the sigmoid gate, q/k norms) whose merged qkv
  projection also carries the indexer's (heads + kv heads) x head_dim rows, replicated on every rank, beside the
  indexer's q/k norms; each layer keeps a [max_num_batched_tokens, budget + ratio] int32 top-k buffer. Its caches (a
  K/V page, a 4:1 compressed key cache, a raw-key ring) are planned in engines/vllm/kv_packed.py.
* The decoder layer numbered in ple_layer_ids (1-based) also holds a per-layer-embedding block: an n-gram embedding
  table in pinned host memory by default (EngramConfig.cpu_offload), read over UVA, so not on the GPU; a replicated
  key/value projection, three grouped norms and a dilated depthwise conv, whose conv window is a MambaSpec that no
  TP rank divides.
* mtp.* is not loaded by the main model.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from . import builders as b
from .adapters import _embed_head, _gated_deltanet, _int, _qwen_next_moe, _rope, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, StateTensor, Tensor, TokenBuffer


def _hyper_connection(
    prefix: str, hidden: int, hc: int, rank: int, *, combine: bool = True
) -> tuple[Tensor, ...]:
    """GatedResidual's parameters (hyperconnection.py): the merged down + block-inject rows are padded to a multiple
    of 16 in vLLM (the padding rows are not in the checkpoint)."""
    wide = hidden * hc
    out = (
        Tensor(prefix + "hc_norm.weight", "norm", (wide,)),
        Tensor(prefix + "input_mix_weight_down.weight", "hyper_connection", (rank, wide)),
    )
    if combine:
        pad = -(rank + hc) % 16
        out += (Tensor(prefix + "block_inject_weight", "hyper_connection", (hc, wide)),)
        if pad:
            out += (
                Tensor(prefix + "_input_mix_padding", "hyper_connection", (pad, wide), in_checkpoint=False),
            )
    return out + (Tensor(prefix + "input_mix_weight_up.weight", "hyper_connection", (wide, rank)),)


def _is_prime(x: int) -> bool:
    if x < 2:
        return False
    i = 2
    while i * i <= x:
        if x % i == 0:
            return False
        i += 1
    return True


def _ngram_rows(cfg: dict, dense_id: int) -> tuple[int, int]:
    """Qwen4ExpNGramEmbedding for one PLE layer: (n-gram heads, table rows). Head g of PLE layer d (global head
    d x heads + g) has as many rows as the (global head + 1)-th prime above ngram_vocab_size_base - 1, i.e. the heads
    take consecutive primes from the base on; the total is rounded up to make_ngram_vocab_size_divisible_by."""
    heads = (_int(cfg, "ngram_size") - 1) * _int(cfg, "heads_per_ngram")
    x, total = _int(cfg, "ngram_vocab_size_base") - 1, 0
    for g in range(dense_id * heads + heads):
        x += 1
        while not _is_prime(x):
            x += 1
        if g >= dense_id * heads:
            total += x
    div = _int(cfg, "make_ngram_vocab_size_divisible_by", default=1)
    return heads, -(-total // div) * div


def _ple_layer(cfg: dict, hidden: int, hc: int, dense_id: int) -> Layer:
    """Qwen4ExpPLELayer (ple_layer.py), a part of its decoder layer: the n-gram table [rows, ple_embed_dim / heads]
    in pinned host memory; kv_proj [hc x hidden + hidden, ple_embed_dim], three grouped norms over hc x hidden and a
    depthwise conv of ple_conv_kernel_size taps, replicated. Its conv window, (kernel - 1) x ngram_size inputs of
    hc x hidden channels, is a MambaSpec every TP rank holds whole (short_conv_state_shape, tp_world_size=1)."""
    dim, k = _int(cfg, "ple_embed_dim"), _int(cfg, "ple_conv_kernel_size")
    heads, rows = _ngram_rows(cfg, dense_id)
    wide = hc * hidden
    p = b.P + "ple."
    tensors = (
        Tensor(
            p + "ple_embedding.ngram_embedding.weight",
            "ple_embedding",
            (rows, dim // heads),
            "vocab",
            host=True,
        ),
        Tensor(p + "kv_proj.weight", "ple", (wide + hidden, dim)),
        Tensor(p + "norm_key.weight", "norm", (wide,)),
        Tensor(p + "norm_query.weight", "norm", (wide,)),
        Tensor(p + "norm_conv.weight", "norm", (wide,)),
        Tensor(p + "conv1d.weight", "ple", (wide, k)),
        # int64 buffers: the n-gram hash multipliers and each head's vocabulary size and offset
        # (int64, written as twice as many int32: gpuplan's dtype table has no int64)
        Tensor(
            p + "ple_embedding.buffers",
            "buffers",
            (2 * (_int(cfg, "ngram_size") + 2 * heads),),
            dtype="int32",
            in_checkpoint=False,
        ),
    )
    window = (k - 1) * _int(cfg, "ngram_size")
    state = (StateTensor("conv", (window, wide), None, "conv"),)
    return Layer(
        Attention("mamba", state=state, state_kind="ple_conv", block_outermost=True),
        Mlp("none"),
        tensors,
        continues=True,
    )


@register("qwen4_exp_text", "qwen4_exp")
def _qwen4_exp(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = outer.get("text_config") if isinstance(outer.get("text_config"), dict) else cfg
    if outer.get("vision_config"):
        raise ConfigError(
            "config",
            "Qwen4Exp's vision tower (Qwen3_VisionTransformer) is not modelled; "
            "gpuplan sizes its text model (qwen4_exp_text) only",
        )
    hidden, n = _int(text, "hidden_size"), _int(text, "num_hidden_layers")
    heads, kv, hd = (
        _int(text, "num_attention_heads"),
        _int(text, "num_key_value_heads"),
        _int(text, "head_dim"),
    )
    vocab = _int(text, "vocab_size")
    hc, rank = _int(text, "hc_count"), _int(text, "hc_lowrank")
    ih, ikv, ihd = (
        _int(text, "indexer_n_heads"),
        _int(text, "indexer_kv_heads"),
        _int(text, "indexer_head_dim"),
    )
    budget, ratio = _int(text, "indexer_budget"), _int(text, "indexer_compress_ratio")
    gdn, gdn_t, types = _gated_deltanet(text, hidden, n, split_in_proj=True)
    gdn = replace(gdn, block_outermost=True)
    qsa = Attention(
        "full", heads, kv, hd, indexer_head_dim=ihd, compress_ratio=ratio, sparse=True, block_outermost=True
    )
    p = b.P + "self_attn."
    qsa_t = (
        b.attention(hidden, heads, kv, hd, qk_norm=True, q_mult=2)
        # indexer.index_qk_proj: a ReplicatedLinear merged into qkv_proj, so whole on every rank
        + b.linear(p + "indexer.index_qk_proj", "attention", (ih + ikv) * ihd, hidden, "replicated")
        + b.norm(p + "indexer.q_layernorm", ihd)
        + b.norm(p + "indexer.k_layernorm", ihd)
    )
    moe, moe_t = _qwen_next_moe(text, hidden)
    hcs = _hyper_connection(b.P + "attn_hc.", hidden, hc, rank) + _hyper_connection(
        b.P + "mlp_hc.", hidden, hc, rank
    )
    gdn_layer = Layer(gdn, moe, gdn_t + moe_t + hcs)
    qsa_layer = Layer(qsa, moe, qsa_t + moe_t + hcs)
    layers: list[Layer] = []
    ple_ids = {int(x) for x in text.get("ple_layer_ids") or []}
    for i in range(n):
        layers.append(qsa_layer if types[i] == "full_attention" else gdn_layer)
        if i + 1 in ple_ids:
            layers.append(_ple_layer(text, hidden, hc, sorted(ple_ids).index(i + 1)))
    tie = _tie(text, outer)
    mixer = _hyper_connection("model.hyper_connection_mixer.", hidden, hc, rank, combine=False)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=mixer)
    ropes = tuple(replace(r, mrope_single_from="0.32.0") if r.mrope else r for r in _rope(text, hd))
    n_qsa = sum(1 for t in types if t == "full_attention")
    buffers = (TokenBuffer("topk_indices_buffer", n_qsa * (budget + ratio), "int32"),)
    if ple_ids:
        # the pinned table's prefetch ids: [max_num_batched_tokens, n-gram heads] int64 per PLE layer
        heads_ng = (_int(text, "ngram_size") - 1) * _int(text, "heads_per_ngram")
        buffers += (
            TokenBuffer("ple_prefetch_ids", 2 * len(ple_ids) * heads_ng, "int32"),
        )  # int64 as 2 x int32
    ssm = text.get("mamba_ssm_dtype") if isinstance(text.get("mamba_ssm_dtype"), str) else None
    return _spec(
        name,
        text,
        outer,
        layers,
        hidden=hidden,
        vocab=vocab,
        heads=heads,
        head_dim=hd,
        inter=moe.moe_intermediate_size,
        tie=tie,
        embedding=emb,
        head=head,
        rope=ropes,
        mamba_ssm_dtype=ssm,
        token_buffers=buffers,
        residual_streams=hc,
    )
