"""Nemotron Omni's audio tower: the Parakeet (FastConformer) sound encoder and its projection, as vLLM 0.33 builds
them for NemotronH_Nano_VL_V2 (model_executor/models/nano_nemotron_vl.py over parakeet.py and
transformers_utils/configs/parakeet.py). adapters_nemotron_vl.py registers the Omni model_types and adds these
tensors when a config has a sound_config; this module also refuses transformers' native nemotron_h_omni format.

The Omni checkpoints (nvidia/Nemotron-3-Nano-Omni-30B-A3B-Reasoning and its FP8 / NVFP4 exports) are remote-code
configs: model_type and architecture NemotronH_Nano_Omni_Reasoning_V3 (vLLM's registry also maps
NemotronH_Omni_Reasoning_V3 and NemotronH_Super_Omni_Reasoning_V3 to the same class), the Nano VL v2 wrapper's fields
(llm_config, a RADIO vision_config, mlp1 sizes) plus a sound_config. vLLM builds the whole Nano VL v2 model
(adapters_nemotron_vl.py) and, when sound_config is present, inside the same image/video/audio tower mark:
- sound_encoder.encoder: transformers' own ParakeetEncoder (vLLM imports the class; it is not a vLLM layer, so
  nothing in it is split over TP: every rank holds all of it), on a ParakeetEncoderConfig made from sound_config
  with scale_input and attention_bias forced off and max_position_embeddings set to max_model_len + 1 (no parameter
  depends on it: positions are a sin/cos of an inv_freq buffer). For hidden h, feed-forward f, kernel k, n blocks:
  * subsampling: log2(subsampling_factor) strided convs over the mel spectrogram: a biased k x k conv from one
    channel to c = subsampling_conv_channels, then per further halving a biased depth-wise k x k conv and a biased
    point-wise 1 x 1 conv; then a biased Linear from c x (num_mel_bins // stride^halvings) to h;
  * each block: two macaron feed-forwards (h -> f -> h, no biases since attention_bias is off), relative-position
    attention (q, k, v, o and relative_k_proj, h x h each, no biases, plus the two per-head bias vectors bias_u /
    bias_v of h each), a conv module (point-wise conv h -> 2h, depth-wise conv of width k, BatchNorm1d, point-wise
    conv h -> h; their biases only when convolution_bias, which the published sound_config turns off) and five
    LayerNorms (weight and bias);
  * buffers held on the GPU beside the parameters: each BatchNorm's running_mean / running_var (loaded from the
    checkpoint; transformers counts them as buffers, not parameters) and num_batches_tracked (one int64), and the
    positional encoding's inv_freq (h / 2, not persistent).
- sound_encoder.projection (ParakeetProjection): an RMSNorm of h, Linear h -> projection_hidden_size,
  ReLU^2, Linear -> the text width, biased only with projection_bias; plain torch modules, whole on every rank.
Both are cast to the language model's dtype. The checkpoint's sound_encoder.encoder.feature_extractor.* entries (the
mel filter bank and window) are skipped by the loader: vLLM computes features with its own ParakeetExtractor.

KV cache: the audio tower adds none; the text model's Mamba / attention planning is unchanged.

transformers 5.23's own nemotron_h_omni format (NemotronH_Omni_Reasoning_V3_Config: text_config, a native RadioConfig
vision_config without `args`, audio_config) is refused: vLLM 0.33's class reads the remote-code fields (patch_size,
template, ps_version, norm_mean, vision_config.args['model'], sound_config, vit_hidden_size) that this format does
not carry, so it cannot start from such a config.
"""

from __future__ import annotations

from ..errors import ConfigError
from .adapters import _int, register
from .spec import ModelSpec, Tensor

# Every sound_config field that sizes vLLM's ProjectedParakeet (the published config sets all of them).
SOUND_KEYS = ("hidden_size", "num_hidden_layers", "intermediate_size", "conv_kernel_size", "subsampling_conv_channels",
              "subsampling_conv_kernel_size", "subsampling_conv_stride", "subsampling_factor", "num_mel_bins",
              "projection_hidden_size", "convolution_bias", "projection_bias")


def parakeet_tensors(sound: dict, llm_hidden: int) -> tuple[tuple[Tensor, ...], int]:
    """vLLM's ProjectedParakeet (encoder + projection) as tensors, all whole on every rank, and its parameter
    count (buffers excluded)."""
    missing = [key for key in SOUND_KEYS if sound.get(key) is None]
    if missing:
        # vLLM reads them through the checkpoint's remote SoundConfig class, whose defaults differ from
        # ParakeetEncoderConfig's (conv_kernel_size 31, projection_hidden_size 20480, projection_bias true in the
        # published configuration.py) and which gpuplan does not run.
        raise ConfigError("sound_config", "the Parakeet sound_config lacks " + ", ".join(missing) + "; the "
                          "checkpoint's remote SoundConfig would fill them with defaults gpuplan cannot read",
                          accepted=list(SOUND_KEYS))
    h, n, f, k, c, sk, stride, factor, mels, ph = (_int(sound, key) for key in SOUND_KEYS[:10])
    if factor < 2 or factor & (factor - 1):
        raise ConfigError("sound_config.subsampling_factor", f"ParakeetEncoder stacks log2(factor) strided convs; "
                          f"{factor} is not a power of two", accepted=["2", "4", "8", "16"])
    halvings = factor.bit_length() - 1
    conv_bias, proj_bias = bool(sound["convolution_bias"]), bool(sound["projection_bias"])
    # subsampling: first conv (1 -> c), then per further halving a depth-wise and a point-wise conv, all biased
    sub = (sk * sk * c + c) + (halvings - 1) * ((sk * sk * c + c) + (c * c + c))
    sub += c * (mels // stride ** halvings) * h + h
    ff = 2 * (h * f + f * h)  # feed_forward1 / feed_forward2, bias-free (attention_bias forced off)
    attn = 5 * h * h + 2 * h  # q, k, v, o, relative_k_proj + bias_u / bias_v
    conv = 2 * h * h + h * k + 2 * h + h * h + (4 * h if conv_bias else 0)  # pw1, depth-wise, BatchNorm, pw2
    block = ff + attn + conv + 5 * 2 * h  # five LayerNorms
    encoder = sub + n * block
    projection = h + (h * ph + (ph if proj_bias else 0)) + (ph * llm_hidden + (llm_hidden if proj_bias else 0))
    tensors = (Tensor("sound_encoder.encoder", "vision", (encoder,)),
               # BatchNorm running_mean / running_var, model dtype, in the checkpoint but buffers to transformers
               Tensor("sound_encoder.encoder.layers.conv.norm.running_stats", "vision", (n * 2 * h,),
                      in_checkpoint=False),
               # num_batches_tracked: one int64 per block, written as two int32s
               Tensor("sound_encoder.encoder.layers.conv.norm.num_batches_tracked", "vision", (2 * n,),
                      dtype="int32", in_checkpoint=False),
               # ParakeetEncoderRelPositionalEncoding.inv_freq, cast with the encoder to the model dtype
               Tensor("sound_encoder.encoder.encode_positions.inv_freq", "vision", (h // 2,), in_checkpoint=False),
               Tensor("sound_encoder.projection", "projector", (projection,)))
    return tensors, encoder + projection


@register("nemotron_h_omni")
def _nemotron_h_omni(cfg: dict, outer: dict, name: str) -> ModelSpec:
    raise ConfigError("model_type", "transformers' own nemotron_h_omni format (text_config / audio_config / a "
                      "native RadioConfig) cannot start on vLLM 0.33: its NemotronH_Nano_VL_V2 class reads the "
                      "checkpoint's remote-code config (llm_config, sound_config, vision_config.args, patch_size, "
                      "template, norm_mean / norm_std), which this format lacks",
                      accepted=["a NemotronH_Nano_Omni_Reasoning_V3 / NemotronH_Nano_VL_V2 remote-code config.json"])
