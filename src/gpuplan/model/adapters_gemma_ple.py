"""Gemma-4 E-series / Gemma-3n: per-layer embeddings and cross-layer KV sharing.

Both families feed every decoder layer a slice of a second, per-layer embedding table (PLE), and let their
last `num_kv_shared_layers` layers reuse the KV of an earlier layer of the same attention type (vLLM gives
those layers a kv_sharing_target_layer_name and allocates no KV cache for them). Counts equal transformers
5.23's; where vLLM holds more than transformers counts it is said beside the tensor.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from . import builders as b
from .adapters import _embed_head, _int, _layer_types, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, MultimodalSpec, RopeCache, Tensor, TokenBuffer

# timm's MobileNet-V5 encoders as Gemma-3n's vision_config names them (`architecture`): parameters counted by
# transformers 5.23 + timm 1.0.31 on the meta device (TimmWrapperModel of the default Gemma3nVisionConfig).
_TIMM_VISION_PARAMS = {"mobilenetv5_300m_enc": 294_126_912}


def ple_embedding(text: dict, hidden: int, n: int) -> tuple[Tensor, ...]:
    """The per-layer embedding table and its input projection (vLLM's Gemma4Model / Gemma3nSelfDecoder):
    embed_tokens_per_layer [vocab_per_layer, layers x ple] (VocabParallelEmbedding), per_layer_model_projection
    [layers x ple, hidden] (ColumnParallelLinear) and its RMSNorm over one layer's slice."""
    ple = _int(text, "hidden_size_per_layer_input", default=0)
    if not ple:
        return ()
    vocab_ple = _int(text, "vocab_size_per_layer_input", "vocab_size")
    return ((b.embedding(vocab_ple, n * ple, "model.embed_tokens_per_layer"),)
            + b.linear("model.per_layer_model_projection", "other", n * ple, hidden, "column")
            + b.norm("model.per_layer_projection_norm", ple))


def ple_layer(text: dict, hidden: int) -> tuple[Tensor, ...]:
    """Each layer's gate into, and projection out of, its per-layer input (ReplicatedLinear in vLLM: the
    per-layer input is not sharded), and the norm after it."""
    ple = _int(text, "hidden_size_per_layer_input", default=0)
    if not ple:
        return ()
    return (b.linear(b.P + "per_layer_input_gate", "mlp", ple, hidden, "replicated")
            + b.linear(b.P + "per_layer_projection", "mlp", hidden, ple, "replicated")
            + b.norm(b.P + "post_per_layer_input_norm", hidden))


def ple_buffer(text: dict, n: int) -> tuple[TokenBuffer, ...]:
    """The multimodal wrappers pre-allocate per_layer_embeddings [max_num_batched_tokens, layers, ple] in the
    model dtype for CUDA graphs (vllm/model_executor/models/gemma4_mm.py, gemma3n_mm.py: __init__)."""
    ple = _int(text, "hidden_size_per_layer_input", default=0)
    return (TokenBuffer("per_layer_embeddings", n * ple),) if ple else ()


def shared_kv_tensors(t: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """A KV-shared layer as vLLM holds it. Before 0.30 its qkv_proj still has K and V slots (and k_norm), loaded
    from the checkpoint; from 0.30 (models/gemma4.py) the layer builds only q_proj and o_proj, as transformers 5.23
    does (it drops them on load). So they count in weights before 0.30 and never in the parameter count."""
    kv_names = ("self_attn.k_proj", "self_attn.v_proj", "self_attn.k_norm")
    return tuple(replace(x, in_checkpoint=False, until="0.30") if any(k in x.name for k in kv_names) else x
                 for x in t)


def gemma4_audio_params(aud: dict) -> int:
    """Gemma-4's audio encoder (transformers Gemma4AudioModel): a conv subsampler, conformer layers (two
    feed-forwards, chunked attention with a relative-position projection, a light conv) and an output
    projection with bias."""
    h = _int(aud, "hidden_size", default=1024)
    n = _int(aud, "num_hidden_layers", default=12)
    hd = h // _int(aud, "num_attention_heads", default=8)
    k = _int(aud, "conv_kernel_size", default=5)
    c0, c1 = (int(c) for c in (aud.get("subsampling_conv_channels") or (128, 32)))
    out = _int(aud, "output_proj_dims", default=1536)
    per_layer = 24 * h * h + 9 * h + h * k + hd
    subsample = 9 * c0 + c0 + 9 * c0 * c1 + c1 + (c0 // 4) * c1 * h
    return n * per_layer + subsample + h * out + out


def gemma3n_audio_params(aud: dict) -> int:
    """Gemma-3n's USM audio encoder (transformers Gemma3nAudioEncoder): SSCP conv blocks with group norms, then
    conformer blocks (two feed-forwards, attention with a relative-position projection, a light conv)."""
    h = _int(aud, "hidden_size", default=1536)
    n = _int(aud, "conf_num_hidden_layers", default=12)
    hd = h // _int(aud, "conf_num_attention_heads", default=8)
    k = _int(aud, "conf_conv_kernel_size", default=5)
    channels = [int(c) for c in (aud.get("sscp_conv_channel_size") or (128, 32))]
    kernels = aud.get("sscp_conv_kernel_size") or [[3, 3]] * len(channels)
    strides = aud.get("sscp_conv_stride_size") or [[2, 2]] * len(channels)
    freq = _int(aud, "input_feat_size", default=128)
    sscp, cin = 0, 1
    for c, kk, s in zip(channels, kernels, strides, strict=False):
        sscp += cin * c * int(kk[0]) * int(kk[1]) + c  # conv (no bias) + cumulative group norm
        cin, freq = c, freq // int(s[1])
    sscp += freq * cin * h  # input_proj_linear
    per_layer = 24 * h * h + 9 * h + h * k + hd  # the same conformer block as Gemma-4's
    return sscp + n * per_layer


def _mm_embedder(mm_hidden: int, text_hidden: int, vocab: int) -> int:
    """Gemma-3n's MultimodalEmbedder: a small embedding table, two norms and a projection to the text width."""
    return vocab * mm_hidden + 2 * mm_hidden + mm_hidden * text_hidden


@register("gemma3n", "gemma3n_text")
def _gemma3n(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = outer.get("text_config") or cfg
    hidden, n, heads = _int(text, "hidden_size"), _int(text, "num_hidden_layers"), _int(text, "num_attention_heads")
    kv, hd = _int(text, "num_key_value_heads", default=heads), _int(text, "head_dim", default=256)
    vocab = _int(text, "vocab_size")
    inters = text.get("intermediate_size")
    inters = [int(x) for x in inters] if isinstance(inters, list) else [_int(text, "intermediate_size")] * n
    window = _int(text, "sliding_window", default=512)
    types = _layer_types(text, n) or ["full_attention" if (i + 1) % 5 == 0 else "sliding_attention"
                                      for i in range(n)]
    alt, rank = _int(text, "altup_num_inputs", default=4), _int(text, "laurel_rank", default=64)
    shared_from = n - _int(text, "num_kv_shared_layers", default=0)
    norms = (b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
             + b.norm(b.P + "pre_feedforward_layernorm", hidden) + b.norm(b.P + "post_feedforward_layernorm", hidden))
    # AltUp (vLLM Gemma3nAltUp: ReplicatedLinear coefficients; correct_output_scale is an fp32 parameter) and
    # the Laurel low-rank residual (column / row parallel).
    altup = (b.linear(b.P + "altup.correction_coefs", "other", alt, alt, "replicated")
             + b.linear(b.P + "altup.prediction_coefs", "other", alt * alt, alt, "replicated")
             + b.linear(b.P + "altup.modality_router", "other", alt, hidden, "replicated")
             + b.norm(b.P + "altup.router_norm", hidden)
             + (Tensor(b.P + "altup.correct_output_scale", "other", (hidden,), dtype="float32"),))
    laurel = (b.linear(b.P + "laurel.linear_left", "other", rank, hidden, "column")
              + b.linear(b.P + "laurel.linear_right", "other", hidden, rank, "row")
              + b.norm(b.P + "laurel.post_laurel_norm", hidden))
    cache: dict[tuple, Layer] = {}
    layers = []
    for i in range(n):
        kind = "sliding_window" if types[i] == "sliding_attention" else "full"
        key = (kind, i >= shared_from, inters[i])
        if key not in cache:
            att = Attention(kind, heads, kv, hd, window=window if kind == "sliding_window" else None,
                            kv_shared=key[1])
            t = b.attention(hidden, heads, kv, hd, qk_norm=True)
            if key[1]:
                t = shared_kv_tensors(t)
            t += b.gated_mlp(hidden, inters[i]) + norms + ple_layer(text, hidden) + altup + laurel
            cache[key] = Layer(att, Mlp("dense", inters[i]), t)
        layers.append(cache[key])
    # AltUp's extra residual streams are projected in after the embedding and out before the final norm.
    streams = tuple(t for j in range(alt - 1) for t in (
        b.linear(f"model.altup_projections.{j}", "other", hidden, hidden, "column")
        + b.linear(f"model.altup_unembed_projections.{j}", "other", hidden, hidden, "column")))
    tie = _tie(text, outer, True)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden),
                            embed_extra=ple_embedding(text, hidden, n) + streams)
    extra: tuple[Tensor, ...] = ()
    mm = None
    buffers: tuple[TokenBuffer, ...] = ()
    if outer.get("text_config"):
        # Gemma3nForConditionalGeneration (vllm/model_executor/models/gemma3n_mm.py) always builds both towers
        # and loads every checkpoint tensor; the towers are HF modules, replicated on every rank.
        vis, aud = outer.get("vision_config") or {}, outer.get("audio_config") or {}
        arch = str(vis.get("architecture") or "mobilenetv5_300m_enc")
        if arch not in _TIMM_VISION_PARAMS:
            raise ConfigError("config", f"Gemma-3n vision encoder {arch!r} is not known to gpuplan")
        vparams = _TIMM_VISION_PARAMS[arch]
        aparams = gemma3n_audio_params(aud)
        proj = (_mm_embedder(_int(vis, "hidden_size", default=2048), hidden, _int(vis, "vocab_size", default=128))
                + _mm_embedder(_int(aud, "hidden_size", default=1536), hidden, _int(aud, "vocab_size", default=128)))
        extra = (Tensor("vision_tower", "vision", (vparams,), "replicated"),
                 Tensor("audio_tower", "vision", (aparams,), "replicated"),
                 Tensor("embed_vision+embed_audio", "projector", (proj,), "replicated"))
        mm = MultimodalSpec(vparams + aparams + proj, int(outer.get("vision_soft_tokens_per_image") or 256), hidden)
        buffers = ple_buffer(text, n)
    pos = _int(text, "max_position_embeddings", default=32768)
    rope = text.get("rope_parameters") or {}
    thetas = [float((rope.get(k) or {}).get("rope_theta") or d) for k, d in
              (("full_attention", text.get("rope_theta") or 1e6),
               ("sliding_attention", text.get("rope_local_base_freq") or 1e4))]
    return _spec(name, text, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=max(inters),
                 tie=tie, embedding=emb, head=head, rope=tuple(RopeCache(pos, hd, theta=t) for t in thetas),
                 extra=extra, multimodal=mm, token_buffers=buffers,
                 notes=("Gemma-3n layout reconstructed from its config (AltUp, Laurel, per-layer embeddings, "
                        "KV-shared layers); not yet checked against a vLLM log.",))
