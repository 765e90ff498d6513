"""Phi-4-multimodal in transformers' own format (model_type phi4_multimodal, Phi4MultimodalForCausalLM) as vLLM's
native class built it (model_executor/models/phi4_multimodal.py, present from 0.10.1.1 through 0.12.0).

vLLM 0.33 has no such class: registry.py lists Phi4MultimodalForCausalLM in _PREVIOUSLY_SUPPORTED_MODELS with 0.12.0
as the last release, so a 0.33 start-up refuses it (its Transformers backend aside, which gpuplan does not size).
gpuplan's estimate says so in a warning (profiles.removed_after) and follows the native 0.12.0 build sized here.
The remote-code format of the same checkpoint (phi4mm, Phi4MMForCausalLM) is still native in 0.33: see
adapters_minicpmv_phi4mm.py.

The config is flat for the text model (Phi-4-mini's fields at the top level) with nested vision_config and
audio_config. vLLM 0.12.0 builds, always (no --limit-mm-per-prompt guard in this class):
- language_model: Phi3ForCausalLM on the whole config (fused qkv / gate_up, RMSNorms, (long)rope), sized by
  gpuplan's phi3 adapter;
- image_embed:
  * img_processor: vLLM's Idefics2VisionTransformer on vision_config (unlike phi4mm, read from the config), built
    only up to the feature layer (feature_layer -2 of 27: 26 layers) and without post_layernorm; TP splits the
    fused q/k/v and fc1 (weights and biases) by output and out_proj / fc2 by input (their biases whole), and asserts
    that TP divides the vision heads; the patch conv and position table stay whole. The checkpoint's later layers,
    post_layernorm and the SigLIP pooling head are skipped by its loader;
  * global_img_feature_extensor / sub_img_feature_extensor: one vision-width vector each, whole;
  * img_projection (Phi4MMProjector): a biased ColumnParallelLinear vision width -> text width (weight and bias split)
    and a biased RowParallelLinear text width -> text width (weight split by input, bias whole);
- audio_embed:
  * encoder (Phi4MultimodalAudioModel): the mean/variance input normaliser as two nn.Parameters of input_size
    (transformers holds them as buffers, so they are not in its parameter count); transformers' NeMo conv
    subsampling (a 3x3 stride-2 conv from one channel, then per further halving of time_reduction a depth-wise 3x3
    and a point-wise 1x1 conv, all biased, then a biased Linear from channels x nemo_final_size) and its T5-style
    relative attention bias table (2 x bias_max_distance x heads unless symmetric), both plain torch, whole;
    num_blocks conformer blocks, each: two feed-forwards (a LayerNorm, a biased MergedColumnParallelLinear
    h -> 2 x intermediate for the SiLU GLU, a biased RowParallelLinear back), attention (a biased QKVParallelLinear
    with as many KV heads as heads, a biased RowParallelLinear output; vLLM divides the heads by TP, so TP must
    divide them), transformers' conv module (LayerNorm, GLU point-wise conv with b1 / b2, depth-wise and point-wise
    convs, a final point-wise conv; whole) and two LayerNorms;
  * speech_projection and vision_speech_projection: two Phi4MMProjector (hidden x downsample_rate -> text width ->
    text width), split like img_projection.
None of the tower layers receives the quantization config. The text model is the only KV cache (full attention;
Phi-4-mini has no sliding window).
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from .adapters import _int, _with_tower, build_spec, register
from .adapters_minicpmv_phi4mm import _vit_layer_params
from .adapters_vision_wrappers import _idefics2_tower
from .spec import ModelSpec, MultimodalSpec, Tensor

ARCH = "Phi4MultimodalForCausalLM"
# Phi4MultimodalVisionConfig / Phi4MultimodalAudioConfig defaults (transformers), used where the config omits a field.
_VISION = {"hidden_size": 1152, "intermediate_size": 4304, "patch_size": 14, "image_size": 448,
           "num_hidden_layers": 27, "num_attention_heads": 16}
_AUDIO = {"hidden_size": 1024, "intermediate_size": 1536, "num_blocks": 24, "num_attention_heads": 16,
          "ext_pw_out_channel": 1024, "depthwise_separable_out_channel": 1024, "depthwise_multiplier": 1,
          "kernel_size": 3, "input_size": 80, "time_reduction": 8, "bias_max_distance": 1000,
          "nemo_conv_channels": 1024, "downsample_rate": 1}


def _a(aud: dict, key: str) -> int:
    return _int(aud, key, default=_AUDIO[key])


def _projector(prefix: str, d_in: int, h: int) -> tuple[Tensor, ...]:
    """Phi4MMProjector: biased ColumnParallelLinear d_in -> h, GELU, biased RowParallelLinear h -> h."""
    return (Tensor(prefix + ".up", "projector", (h * d_in + h,), "column"),
            Tensor(prefix + ".down.weight", "projector", (h, h), "row"),
            Tensor(prefix + ".down.bias", "projector", (h,)))


def _audio_tensors(aud: dict, h_text: int) -> tuple[Tensor, ...]:
    d, f, n, heads = _a(aud, "hidden_size"), _a(aud, "intermediate_size"), _a(aud, "num_blocks"), \
        _a(aud, "num_attention_heads")
    ext, dsw, k = _a(aud, "ext_pw_out_channel"), _a(aud, "depthwise_separable_out_channel"), _a(aud, "kernel_size")
    mult, ch = _a(aud, "depthwise_multiplier"), _a(aud, "nemo_conv_channels")
    factor = _a(aud, "time_reduction")
    if factor < 2 or factor & (factor - 1):
        raise ConfigError("audio_config.time_reduction", "the NeMo subsampling stacks log2(time_reduction) "
                          f"stride-2 convs; {factor} is not a power of two", accepted=["2", "4", "8"])
    if ext != d or dsw != d:
        # the conv module's final point-wise conv maps `hidden_size` channels in, which only fits when the GLU and
        # depth-wise widths equal it (transformers' own module would not run otherwise)
        raise ConfigError("audio_config", "gpuplan has only read the conformer conv module with ext_pw_out_channel "
                          "and depthwise_separable_out_channel equal to hidden_size")
    halvings = factor.bit_length() - 1
    final = aud.get("nemo_final_size")
    freq = int(final) if final is not None else _a(aud, "input_size")
    if final is None:
        for _ in range(halvings):  # Phi4MultimodalAudioConfig: stride-2, padding-1, kernel-3 halvings of input_size
            freq = (freq - 1) // 2 + 1
    embed = (9 * ch + ch) + (halvings - 1) * ((9 * ch + ch) + (ch * ch + ch)) + (ch * freq * d + d)
    buckets = _a(aud, "bias_max_distance") * (1 if aud.get("bias_symmetric") else 2)
    whole_once = embed + buckets * heads
    # transformers' conv module: LayerNorm, GLU point-wise conv d -> 2 ext with b1 / b2, depth-wise and point-wise
    # convs, the final point-wise conv; all biased
    conv = (2 * d + (d * 2 * ext + 2 * ext) + 2 * ext + (d * mult * k + d * mult) + (d * mult * dsw + dsw)
            + (d * ext + ext))
    # per block, whole: four LayerNorms (two feed-forwards', layer_norm_att, layer_norm), the two down biases and the
    # o bias (row-parallel biases are added after the all-reduce), the conv module
    whole_block = 4 * (2 * d) + 3 * d + conv
    column_block = 2 * (2 * f * d + 2 * f) + (3 * d * d + 3 * d)  # gate_up x 2 and qkv, weights and biases
    row_block = 2 * (f * d) + d * d  # down x 2 and o weights
    d_proj = d * _a(aud, "downsample_rate")
    return ((Tensor("audio_embed.encoder.encoder_embedding", "vision", (2 * _a(aud, "input_size"),),
                    in_checkpoint=False),  # nn.Parameters in vLLM, buffers (not parameters) in transformers
             Tensor("audio_embed.encoder.embed+relative_attention_bias", "vision", (whole_once,)),
             Tensor("audio_embed.encoder.encoders.column", "vision", (n * column_block,), "column"),
             Tensor("audio_embed.encoder.encoders.row", "vision", (n * row_block,), "row"),
             Tensor("audio_embed.encoder.encoders.replicated", "vision", (n * whole_block,)))
            + _projector("audio_embed.speech_projection", d_proj, h_text)
            + _projector("audio_embed.vision_speech_projection", d_proj, h_text))


@register("phi4_multimodal")
def _phi4_multimodal(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = {k: v for k, v in outer.items() if k not in ("vision_config", "audio_config", "auto_map")}
    text["model_type"] = "phi3"  # vLLM builds Phi3ForCausalLM on the whole config (architectures overridden)
    text["architectures"] = ["Phi3ForCausalLM"]
    inner = build_spec(text, name)
    h = inner.hidden_size
    vis = outer.get("vision_config") or {}
    aud = outer.get("audio_config") or {}
    if not isinstance(vis, dict) or not isinstance(aud, dict):
        raise ConfigError("config", "Phi4MultimodalConfig's vision_config and audio_config must be objects")
    full = _int(vis, "num_hidden_layers", default=_VISION["num_hidden_layers"])
    feature = int(vis.get("feature_layer", -2))
    layers = full + feature + 1 if feature < 0 else feature + 1
    tower, tower_params = _idefics2_tower(vis, layers, "image_embed.img_processor", post_norm=False,
                                          defaults=_VISION)
    vd = _int(vis, "hidden_size", default=_VISION["hidden_size"])
    image = (Tensor("image_embed.img_feature_extensors", "projector", (2 * vd,)),) + _projector(
        "image_embed.img_projection", vd, h)
    audio = _audio_tensors(aud, h)
    extra = tower + image + audio
    params = sum(t.numel for t in extra)
    patch = _int(vis, "patch_size", default=_VISION["patch_size"])
    side = _int(vis, "image_size", default=_VISION["image_size"]) // patch
    side += side % 2  # an odd grid is reflection-padded by one before the 2x2 average pool
    mm = MultimodalSpec(params, (side // 2) ** 2, h,
                        tp_heads=_int(vis, "num_attention_heads", default=_VISION["num_attention_heads"]))
    spec = _with_tower(inner, {**outer, "architectures": outer.get("architectures") or [ARCH]}, extra, mm)
    # What the checkpoint holds and the Idefics2 loader skips: layers past the feature layer, post_layernorm and the
    # SigLIP attention-pooling head (probe, MultiheadAttention in/out projections, LayerNorm, MLP).
    vi = _int(vis, "intermediate_size", default=_VISION["intermediate_size"])
    cut = (full - layers) * _vit_layer_params(vd, vi) + 2 * vd
    head = vd + (3 * vd * vd + 3 * vd) + (vd * vd + vd) + 2 * vd + (vd * vi + vi) + (vi * vd + vd)
    dropped = (Tensor("image_embed.img_processor.skipped_layers_and_post_layernorm", "vision", (cut,)),
               Tensor("image_embed.img_processor.head", "vision", (head,)))
    return replace(spec, extra_not_loaded=spec.extra_not_loaded + dropped)
