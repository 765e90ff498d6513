"""Thinking Machines Inkling (model_type inkling_mm_model, text model inkling_model) as vLLM 0.33 builds it
(vllm/models/inkling/{configs.py,nvidia/*}; architectures InklingForConditionalGeneration / InklingForCausalLM).

vLLM reads the text config in the checkpoint's own ("OG") spelling: `local_layer_ids` picks the sliding-window
layers (every other layer is full attention; `layer_types` is not read), `dense_mlp_idx` the leading dense layers,
`intermediate_size` is the routed experts' width and `dense_intermediate_size` the dense MLP's (a config that gives
`moe_intermediate_size` and no `dense_intermediate_size` is the transformers spelling and is swapped back).

Every decoder layer: attention with its own head shape per layer type (swa_* on local layers), whose q, k, v and a
per-head relative branch r (d_rel wide) are one merged column-parallel projection; per-head q/k RMSNorms; a relative
position table `rel_logits_proj` of d_rel x extent (the window on local layers, rel_extent on full ones); four
depthwise short convolutions of kernel_size taps, on K and V (split with the KV heads) and on the attention- and
MLP-output streams (split by hidden / TP). The MLP is a gated dense MLP on layers below dense_mlp_idx (one
interleaved gate_up projection, a model-dtype global_scale when use_global_scale), else a MoE: a model-dtype router
of routed + shared experts padded up to a multiple of 8 rows, an fp32 global scale and an fp32 selection bias (when
configured), fused routed experts, and the shared "sink" experts as two plain bf16 tensors split over TP.
The token embedding is replicated whole on every GPU (InklingReplicatedEmbedding); the LM head is vocab-parallel
over padded_vocab_size (vocab_size when not given). There is no RoPE.

KV cache: each decoder layer registers two cache layers. The attention's is a FullAttentionSpec or a
SlidingWindowSpec (window sliding_window_size) of its KV heads at head_dim. The layer's short-conv state is a
second SlidingWindowSpec with block_size = window = kernel_size, K-only (head_size_v 0), num_kv_heads / TP heads
of width D = next power of two of 2 x head_dim + 2 x hidden / num_kv_heads, always in the model dtype; vLLM asserts
TP <= the layer's KV heads. Page sizes are unified by growing the smaller attention blocks (the conv page is
usually the largest), and the layers are grouped per spec in the usual hybrid way.

The checkpoint's MTP depths (mtp_config) are not loaded by the main model and are not counted here; nor is the
multimodal wrapper's hMLP vision tower (its layer widths come from a planner not reproduced here). The dMel audio
tower (an embedding of n_mel_bins x mel_vocab_size rows and a norm) is counted when audio_config enables it.
"""

from __future__ import annotations

from . import builders as b
from .adapters import _int, _spec, _with, register
from .spec import Attention, Layer, Mlp, ModelSpec, Tensor

ATT = b.P + "attn."


def _pow2(x: int) -> int:
    return 1 << (x - 1).bit_length()


def _attention(
    hidden: int,
    heads: int,
    kv: int,
    hd: int,
    d_rel: int,
    extent: int,
    kernel: int,
    bias_q: bool,
    bias_o: bool,
) -> tuple[Tensor, ...]:
    t = b.linear(ATT + "qkvr.q", "attention", heads * hd, hidden, "column", bias_q)
    t += b.linear(ATT + "qkvr.k", "attention", kv * hd, hidden, "kv", bias_q, heads=kv)
    t += b.linear(ATT + "qkvr.v", "attention", kv * hd, hidden, "kv", bias_q, heads=kv)
    t += b.linear(ATT + "qkvr.r", "attention", heads * d_rel, hidden, "column", bias_q)
    t += b.linear(ATT + "wo_ud", "attention", hidden, heads * hd, "row", bias_o)
    t += b.norm(ATT + "q_norm", hd) + b.norm(ATT + "k_norm", hd)
    # bank of bias-vs-distance profiles, a plain parameter on every rank
    t += (Tensor(ATT + "rel_logits_proj.proj", "attention", (d_rel, extent)),)
    # depthwise K/V convolutions: one filter per KV channel, split with the KV heads
    t += tuple(
        Tensor(ATT + f"{x}_sconv.weight", "attention", (kv * hd, kernel), "kv", heads=kv) for x in "kv"
    )
    return t


def _inkling_text(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers")
    heads, kv = _int(cfg, "num_attention_heads"), _int(cfg, "num_key_value_heads")
    hd = _int(cfg, "head_dim", default=hidden // heads)
    s_heads = _int(cfg, "swa_num_attention_heads", default=heads)
    s_kv = _int(cfg, "swa_num_key_value_heads", default=kv)
    s_hd = _int(cfg, "swa_head_dim", default=hd)
    window = _int(cfg, "sliding_window_size", default=512)
    kernel = _int(cfg, "sconv_kernel_size", "conv_kernel_size", default=4)
    d_rel, rel_extent = _int(cfg, "d_rel", default=16), _int(cfg, "rel_extent", default=1024)
    inter, moe_i = cfg.get("intermediate_size"), cfg.get("moe_intermediate_size")
    dense_i = cfg.get("dense_intermediate_size")
    if moe_i is not None and inter is not None and dense_i is None:
        dense_i, inter = inter, moe_i  # transformers' spelling: intermediate_size is the dense width
    inter = int(inter if inter is not None else 768)
    dense_i = int(dense_i if dense_i is not None else inter)
    e, s = _int(cfg, "n_routed_experts", default=0), _int(cfg, "n_shared_experts", default=0)
    k = _int(cfg, "num_experts_per_tok", default=1)
    dense_idx = _int(cfg, "dense_mlp_idx", default=0)
    local = {int(i) for i in cfg.get("local_layer_ids") or ()}
    gscale, gbias = bool(cfg.get("use_global_scale")), bool(cfg.get("use_gate_bias"))
    vocab = _int(cfg, "padded_vocab_size", default=0) or _int(cfg, "vocab_size", default=201024)

    norms = b.norm(b.P + "attn_norm", hidden) + b.norm(b.P + "mlp_norm", hidden)
    # attention- and MLP-output stream convolutions: hidden-sharded (each rank convolves its hidden / TP slice)
    streams = tuple(
        Tensor(b.P + f"{x}_sconv.weight", "other", (hidden, kernel), "column") for x in ("attn", "mlp")
    )
    dense_t = b.linear(b.P + "mlp.gate_up_proj", "mlp", 2 * dense_i, hidden, "column") + b.linear(
        b.P + "mlp.down_proj", "mlp", hidden, dense_i, "row"
    )
    if gscale:
        dense_t += (Tensor(b.P + "mlp.global_scale", "mlp", (1,)),)
    gate = b.P + "mlp.gate."
    g_rows = e + s
    moe_t = (Tensor(gate + "weight", "router", (g_rows, hidden)),)
    if -g_rows % 8:  # vLLM pads the router to a multiple of 8 rows; the checkpoint holds e + s
        moe_t += (Tensor(gate + "weight_pad", "router", (-g_rows % 8, hidden), in_checkpoint=False),)
    if gscale:
        moe_t += (Tensor(gate + "global_scale", "router", (1,), dtype="float32"),)
    if gbias:
        moe_t += (Tensor(gate + "bias", "router", (e,), dtype="float32"),)
    moe_t += b.experts(hidden, inter, e)
    # sink experts: plain bf16 parameters (never quantized), their intermediate dimension split over TP
    moe_t += (
        Tensor(b.P + "mlp.sink_experts.w13_weight", "shared_experts", (s * 2 * inter, hidden), "column"),
        Tensor(b.P + "mlp.sink_experts.w2_weight", "shared_experts", (hidden, s * inter), "row"),
    )
    dense_mlp, moe_mlp = Mlp("dense", dense_i), Mlp("moe", 0, e, k, inter, s * inter)

    cache: dict[tuple, Layer] = {}
    layers: list[Layer] = []
    for i in range(n):
        loc, is_moe = i in local, i >= dense_idx
        key = (loc, is_moe)
        if key not in cache:
            h, kvh, d = (s_heads, s_kv, s_hd) if loc else (heads, kv, hd)
            att = (
                Attention("sliding_window", h, kvh, d, window=window) if loc else Attention("full", h, kvh, d)
            )
            t = (
                _attention(
                    hidden,
                    h,
                    kvh,
                    d,
                    d_rel,
                    window if loc else rel_extent,
                    kernel,
                    bool(cfg.get("q_bias")),
                    bool(cfg.get("o_bias")),
                )
                + norms
                + streams
                + (moe_t if is_moe else dense_t)
            )
            conv = Attention(
                "sliding_window", 0, kvh, _pow2(2 * d + 2 * (hidden // kvh)), window=kernel, own_block=kernel
            )
            cache[key] = Layer(att, moe_mlp if is_moe else dense_mlp, t)
            cache[key + ("conv",)] = Layer(conv, Mlp("none"), (), continues=True)
        layers += [cache[key], cache[key + ("conv",)]]

    emb = (Tensor("model.embed_tokens.weight", "embedding", (vocab, hidden)),)  # replicated whole
    if cfg.get("use_embed_norm"):
        emb += b.norm("model.embed_norm", hidden)
    head = b.norm("model.norm", hidden) + b.lm_head(vocab, hidden)
    mml = cfg.get("model_max_length") or cfg.get("max_position_embeddings")
    c = {**cfg, "max_position_embeddings": mml} if mml else cfg
    notes = ["Inkling as vLLM 0.33 builds it; the checkpoint's MTP depths are not loaded (not counted)"]
    if not local and isinstance(cfg.get("layer_types"), list) and "hybrid_sliding" in cfg["layer_types"]:
        notes.append(
            "vLLM reads local_layer_ids, not layer_types: with none given every layer is full attention"
        )
    extra: tuple[Tensor, ...] = ()
    aud = outer.get("audio_config") if outer is not cfg else None
    if isinstance(aud, dict) and aud.get("decoder_dmodel"):
        dm = int(aud["decoder_dmodel"])
        extra += (
            Tensor(
                "audio.encoder.weight", "projector", (int(aud["n_mel_bins"]) * int(aud["mel_vocab_size"]), dm)
            ),
        )
        if aud.get("use_audio_norm"):
            extra += (Tensor("audio.final_norm.weight", "projector", (dm,)),)
    vis = outer.get("vision_config") if outer is not cfg else None
    if isinstance(vis, dict) and vis.get("decoder_dmodel"):
        notes.append("the hMLP vision tower vLLM builds (vision_config) is not counted")
    spec = _spec(
        name,
        c,
        outer,
        layers,
        hidden=hidden,
        vocab=vocab,
        heads=heads,
        head_dim=hd,
        inter=dense_i,
        tie=False,
        embedding=emb,
        head=head,
        extra=extra,
        notes=tuple(notes),
    )
    # The short-conv state asserts TP <= KV heads, the attention that KV heads split evenly: TP divides both.
    divides = ((kv, "KV heads of the full-attention layers"),) if len(local & set(range(n))) < n else ()
    if local:
        divides += ((s_kv, "KV heads of the sliding-window layers"),)
    return _with(spec, tp_divides=spec.tp_divides + divides)


@register("inkling_mm_model", "inkling_model")
def _inkling(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    return _inkling_text(text, outer, name)
