"""Meta Muse Spark (model_type muse_spark with a muse_spark_text text_config, or a flat muse_spark_text) as vLLM 0.33
builds it (models/muse_spark/nvidia/{model,multimodal}.py, common/{layers,omni,vision,audio}.py).

vLLM registers one architecture for it, MuseSparkForConditionalGeneration: the text stack MuseSpark1xForCausalLM
with the omni towers on top. (MuseSpark1xForCausalLM itself is not in 0.33's registry; musespark1x_text and
muse_spark_dspark are the config types of the DSpark draft head, not servable decoders.)

Text decoder, per layer:
- attention: one fused column-parallel projection holding q, k, v and a sigmoid output gate as wide as q (the
  checkpoint's q/k/v/gate_proj), a row-parallel o_proj, weightless q/k and output norms, no biases. The fused
  projection cannot replicate KV heads, so TP must divide num_key_value_heads. `layer_types` picks sliding-window
  (window `sliding_window`) or full attention: a plain vLLM Attention, so FullAttentionSpec / SlidingWindowSpec,
  no sinks, no chunking, no KV sharing. RoPE runs where `layer_rope_theta` is non-zero; each such layer builds its
  own RotaryEmbedding (not get_rope, so nothing is shared) with a float32 cos/sin table of
  max(max_position_embeddings, max_model_len) x head_dim: 46 tables of 1M x 64 on the release, 11.5 GiB on
  every GPU.
- the residual stream is float32 and each sub-layer joins it through a channel-wise gated connection whose gate
  (a [hidden] parameter) is turned into two float32 [hidden] coefficient buffers (alpha, beta) during
  load_weights, so they count in "Model loading took".
- three [hidden] RMSNorm weights (before attention, before the FFN, after the FFN); the post-attention norm has
  no weight.
- the FFN is a gated SiLU MLP where `mlp_layer_types` says dense, otherwise the MoE: a float32 router
  [experts, hidden] and a float32 selection bias (a buffer, loaded from e_score_correction_bias), a `pooler`
  [moe_hidden, hidden] and `unpooler` [hidden, moe_hidden] built as ReplicatedLinear with no quantization (whole
  on every rank, bf16 even in an NVFP4 checkpoint), RMSNorm weights before and after the experts
  [moe_hidden], and fused experts that run entirely at moe_hidden_size (w13 [E, 2 moe_intermediate, moe_hidden],
  w2 [E, moe_hidden, moe_intermediate]). No shared experts (the config class refuses them).
Model: a vocab-parallel embedding, a weightless embedding norm, the final norm and an LM head (tied only if the
text config says so; the release does not).

Towers (MuseSpark1xOmniMixin, always built: the config class requires vision_config and audio_config):
- NaViT vision: a column-parallel patch Linear (no bias), a learned position table, ln_pre/ln_post LayerNorms,
  blocks of LayerNorm + column QKV (biased) + row out_proj (bias whole) + column c_fc / row c_proj (biased), a
  two-layer column/row adapter, and a float32 2-D RoPE table [g, g, rope_dim/2, 2] with g = max(sqrt(4096 x
  merge^2) + 1, pos grid). vision_projection is a RowParallelLinear.
- the audio AutoEncoder is built with TP disabled: every tensor whole on every rank.
"""

from __future__ import annotations

import math
from dataclasses import replace

from . import builders as b
from .adapters import _core_dims, _embed_head, _int, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, MultimodalSpec, Tensor

# transformers 5.23 MuseSparkTextConfig defaults (the released checkpoint's values), for fields a file omits.
# vLLM's own MuseSparkTextConfig fills nothing (has_no_defaults_at_init): a real config.json carries them all.
_TEXT = {
    "vocab_size": 202048,
    "hidden_size": 8192,
    "intermediate_size": 16384,
    "num_hidden_layers": 62,
    "num_attention_heads": 128,
    "num_key_value_heads": 16,
    "head_dim": 64,
    "max_position_embeddings": 1048576,
    "sliding_window": 2048,
    "moe_intermediate_size": 4096,
    "num_local_experts": 256,
    "num_experts_per_tok": 8,
    "moe_hidden_size": 4096,
    "tie_word_embeddings": False,
    "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
}
_VISION = {
    "hidden_size": 1536,
    "intermediate_size": 8960,
    "num_hidden_layers": 50,
    "num_attention_heads": 16,
    "patch_size": 14,
    "patch_temporal": 2,
    "merge_size": 2,
    "pos_emb_height": 32,
    "pos_emb_width": 32,
}
_AUDIO = {
    "patch_sizes": [16, 6, 5, 4],
    "hidden_sizes": [256, 512, 1024, 2048],
    "depths": [2, 2, 2, 2],
    "mlp_ratio": 4.0,
    "conv_kernel_size": 7,
    "out_hidden_size": 8192,
}
# NaViT's and the processor's max_num_image_tokens: LLM tokens per profiled image.
_MAX_IMAGE_TOKENS = 4096

_FULL, _SWA = "full_attention", "sliding_attention"


def _per_layer(cfg: dict, key: str, n: int) -> list | None:
    v = cfg.get(key)
    return list(v[:n]) if isinstance(v, list) and len(v) >= n else None


def _vision(outer: dict, text_hidden: int) -> tuple[tuple[Tensor, ...], int, int]:
    """The NaViT tower, its adapter and vision_projection as vLLM shards them; (tensors, params, heads)."""
    vis = {**_VISION, **(outer.get("vision_config") or {})}
    h, inter, n = _int(vis, "hidden_size"), _int(vis, "intermediate_size"), _int(vis, "num_hidden_layers")
    heads, merge = _int(vis, "num_attention_heads"), _int(vis, "merge_size")
    patch_in = 3 * _int(vis, "patch_size") ** 2 * _int(vis, "patch_temporal")
    ph, pw = _int(vis, "pos_emb_height"), _int(vis, "pos_emb_width")
    out_hidden = _int(outer, "out_hidden_size", default=h * merge**2)
    proj = _int(outer, "projector_hidden_size", default=4096)
    # column-parallel: the patch Linear, per block QKV (+ bias) and c_fc (+ bias), the adapter's c_fc
    column = patch_in * h + n * (3 * h * h + 3 * h + inter * h + inter) + proj * out_hidden
    # row-parallel weights: per block out_proj and c_proj, the adapter's c_proj, vision_projection
    row = n * (h * h + h * inter) + proj * proj + text_hidden * proj
    # whole: position table, ln_pre/ln_post, per block two LayerNorms and the row layers' biases
    whole = ph * pw * h + 2 * 2 * h + n * (2 * 2 * h + h + h)
    # precomputed_freqs_cis, allocated at init on the GPU: float32 [g, g, rope_dim / 2, 2]
    g = max(math.isqrt(_MAX_IMAGE_TOKENS * merge**2) + 1, ph, pw)
    rope = g * g * (h // heads // 2) * 2
    tensors = (
        Tensor("model.vision_tower.column", "vision", (column,), "column"),
        Tensor("model.vision_tower.row", "vision", (row,), "row"),
        Tensor("model.vision_tower.whole", "vision", (whole,), "replicated"),
        Tensor(
            "model.vision_tower.precomputed_freqs_cis",
            "vision",
            (rope,),
            "replicated",
            dtype="float32",
            in_checkpoint=False,
        ),
    )
    return tensors, column + row + whole, heads


def _audio(outer: dict) -> tuple[tuple[Tensor, ...], int]:
    """The audio AutoEncoder (built with disable_tp: whole on every rank); (tensors, params)."""
    aud = {**_AUDIO, **(outer.get("audio_config") or {})}
    k, ratio = _int(aud, "conv_kernel_size"), float(aud.get("mlp_ratio") or 4.0)
    total, d_in = 0, 1
    for p, d, depth in zip(aud["patch_sizes"], aud["hidden_sizes"], aud["depths"], strict=True):
        hid = int(ratio * d)
        total += d_in * p * d + d + d  # patchifier Linear (biased) and its RMSNorm
        # per block: depthwise causal conv (weight d x k, bias), RMSNorm, linear1 and linear2 (biased)
        total += depth * (d * k + d + d + hid * d + hid + d * hid + d)
        d_in = d
    latent = _int(aud, "out_hidden_size")
    total += d_in + latent * d_in + latent + latent  # final norm, o_proj (biased), dual_norm
    return (Tensor("model.audio_tower", "vision", (total,), "replicated"),), total


def _decoder(text: dict, outer: dict, name: str, towers: bool) -> ModelSpec:
    text = {**_TEXT, **text}
    hidden, n, heads, kv, hd = _core_dims(text)
    vocab, inter = _int(text, "vocab_size"), _int(text, "intermediate_size")
    e, k = _int(text, "num_local_experts"), _int(text, "num_experts_per_tok")
    mh, mi = _int(text, "moe_hidden_size"), _int(text, "moe_intermediate_size")
    theta = float((text.get("rope_parameters") or {}).get("rope_theta") or 500000.0)
    # transformers' defaults when the file omits them: the last layer and every fourth before it full and NoPE
    types = _per_layer(text, "layer_types", n) or [_FULL if (n - 1 - i) % 4 == 0 else _SWA for i in range(n)]
    thetas = _per_layer(text, "layer_rope_theta", n) or [0 if t == _FULL else theta for t in types]
    mlp_types = _per_layer(text, "mlp_layer_types", n) or ["sparse"] * n
    window = _int(text, "sliding_window", default=0)
    positions = _int(text, "max_position_embeddings")
    p = b.P + "self_attn."

    # q/k/v/o plus the output gate: vLLM fuses q, k, v and gate into one column-parallel weight whose per-rank
    # rows are [q, k, v, gate]; k and v split by head like QKVParallelLinear (no replication: TP divides kv).
    att_t = b.attention(hidden, heads, kv, hd) + b.linear(
        p + "gate_proj", "attention", heads * hd, hidden, "column"
    )
    # each RoPE layer's own float32 cos/sin table (vLLM allocates it at init; not in the checkpoint)
    rope_t = (
        Tensor(
            p + "rotary_emb.cos_sin_cache",
            "rope_cache",
            (positions, hd),
            "replicated",
            dtype="float32",
            in_checkpoint=False,
        ),
    )
    norms = sum(
        (
            b.norm(b.P + x, hidden)
            for x in ("input_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm")
        ),
        (),
    )
    norms += (
        Tensor(b.P + "post_attention_residual_gate.gate", "norm", (hidden,)),
        Tensor(b.P + "post_feedforward_residual_gate.gate", "norm", (hidden,)),
        # alpha and beta of both gated connections, float32 buffers made in load_weights
        Tensor(
            b.P + "residual_gates.alpha_beta", "buffers", (4 * hidden,), dtype="float32", in_checkpoint=False
        ),
    )
    moe = Mlp("moe", 0, e, k, mi)
    moe_t = (
        b.router(hidden, e, correction_bias=True, fp32=True)
        # pooler / unpooler: ReplicatedLinear with quant_config=None, so never quantized
        + b.linear(b.P + "mlp.pre_expert_proj", "mlp", mh, hidden, "replicated", quantizable=False)
        + b.norm(b.P + "mlp.pre_expert_norm", mh)
        + b.experts(mh, mi, e)
        + b.norm(b.P + "mlp.experts.post_expert_norm", mh)
        + b.linear(b.P + "mlp.post_expert_proj", "mlp", hidden, mh, "replicated", quantizable=False)
    )

    full, swa = (
        Attention("full", heads, kv, hd),
        Attention("sliding_window", heads, kv, hd, window=window or None),
    )
    cache: dict[tuple, Layer] = {}
    layers = []
    for i in range(n):
        a = swa if types[i] == _SWA and window else full
        sparse, roped = mlp_types[i] == "sparse", float(thetas[i] or 0) > 0
        key = (a, sparse, roped)
        if key not in cache:
            mlp_t = moe_t if sparse else b.gated_mlp(hidden, inter)  # LlamaMLP on dense layers
            cache[key] = Layer(
                a, moe if sparse else Mlp("dense", inter), att_t + (rope_t if roped else ()) + mlp_t + norms
            )
        layers.append(cache[key])
    tie = _tie(text, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    extra: tuple[Tensor, ...] = ()
    mm = None
    notes = (
        "each RoPE layer holds its own float32 cos/sin table of max_position_embeddings x head_dim; vLLM "
        "sizes it by max(max_position_embeddings, max_model_len), so a max_model_len above "
        f"{positions:,} (allowed only with VLLM_ALLOW_LONG_MAX_MODEL_LEN) grows it, which is not modelled",
    )
    if towers:
        vis_t, vis_params, vis_heads = _vision(outer, hidden)
        aud_t, aud_params = _audio(outer)
        extra = vis_t + aud_t
        mm = MultimodalSpec(vis_params + aud_params, _MAX_IMAGE_TOKENS, hidden, tp_heads=vis_heads)
    else:
        notes += (
            "a flat muse_spark_text config: vLLM 0.33 serves Muse Spark only as "
            "MuseSparkForConditionalGeneration (model_type muse_spark), which always builds the vision and "
            "audio towers; they are not counted here",
        )
    spec = _spec(
        name,
        text,
        outer,
        layers,
        hidden=hidden,
        vocab=vocab,
        heads=heads,
        head_dim=hd,
        inter=inter,
        tie=tie,
        embedding=emb,
        head=head,
        extra=extra,
        multimodal=mm,
        notes=notes,
    )
    # MuseSpark1xQKVOGateParallelLinear asserts total_num_kv_heads % tp_size == 0
    return replace(
        spec,
        tp_divides=spec.tp_divides
        + ((kv, "num_key_value_heads (the fused q/k/v/output-gate projection cannot replicate KV heads)"),),
    )


@register("muse_spark", "muse_spark_text")
def _muse_spark(cfg: dict, outer: dict, name: str) -> ModelSpec:
    nested = isinstance(outer.get("text_config"), dict)
    text = outer["text_config"] if nested else cfg
    return _decoder(text, outer, name, towers=outer.get("model_type") == "muse_spark")
