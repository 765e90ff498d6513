"""MiniCPM-V 4.6 (model_type minicpmv4_6), MiniCPM-OCR (minicpm_ocr) and MiniCPM-V 4.7 (minicpmv4_7) as vLLM 0.33
builds them (model_executor/models/minicpmv4_6.py, minicpm_ocr.py, minicpmv4_7.py).

All three are one vLLM class, MiniCPMV4_6ForConditionalGeneration; MiniCPMOcrForConditionalGeneration and
MiniCPMV4_7ForConditionalGeneration subclass it and change only the image geometry, the M-RoPE positions (4.7's
canvas) and whether the last vision layer is dropped. The config is transformers-native and nested
(text_config, vision_config). What the class holds:

- `language_model`: vLLM's Qwen3_5ForCausalLM (the dense Qwen3.5 text model: Gated-DeltaNet linear-attention
  layers between gated full-attention layers, gated MLP), built over the config's text_config (hf_text_config),
  so gpuplan's Qwen3.5 builder sizes it. The checkpoint's `mtp.` prefix is mapped to nothing; the published
  MiniCPM-V 4.6 checkpoint carries no mtp tensors at all (its safetensors total equals transformers' count), so
  none are listed as skipped here.
  * The LM head is tied when the *text* config says tie_word_embeddings. This class does not go through
    VllmConfig.with_hf_config (the one place vLLM 0.33 copies a multimodal config's top-level
    tie_word_embeddings into its text config, config/vllm.py:1011-1015): Qwen3_5ForCausalLM reads
    model_config.hf_text_config, and transformers' Qwen3_5TextConfig defaults the flag to False. The published
    4.6 config sets it true in both places. A config whose top level ties but whose text_config does not (as
    transformers' default MiniCPMOcrConfig) gets an untied vocab x hidden head in vLLM, where transformers ties.
  * The Gated-DeltaNet state dtype: Qwen3.5's own architectures have a vLLM config hook
    (Qwen3_5ForConditionalGenerationConfig, models/config.py) that sets mamba_ssm_cache_dtype from the text
    config's mamba_ssm_dtype; MODELS_CONFIG_MAP has no entry for these three architectures, so the cache dtype
    stays "auto" and both the conv and the temporal state take the model dtype (MambaStateDtypeCalculator
    ._mamba_state_dtype). The published 4.6 config's mamba_ssm_dtype "float32" is therefore not applied.
- under the image tower mark (a text-only start builds none of it):
  * `vpm`: vLLM's Idefics2 vision transformer over vision_config (a SigLIP2-400M in the published config): patch
    conv with bias and a (image_size / patch_size)^2 position table, whole on every rank; per layer fused q/k/v
    and fc1 split over TP by output with their biases, out_proj and fc2 split by input with whole biases, two
    LayerNorms; post_layernorm. MiniCPM-V 4.6 drops the last encoder layer when the top-level
    drop_vision_last_layer is set (the checkpoint lacks it then); MiniCPM-OCR and 4.7 always keep every layer.
  * `vit_merger`: one window-attention block run after encoder layer insert_layer_id in "16x" mode: a fused
    biased q/k/v (QKVParallelLinear over the tower's heads, split by output) and a biased out_proj (row split,
    bias whole), then layer_norm1 and a 2x2 merge MLP of plain torch modules, whole on every rank: pre_norm over
    4 x hidden, linear_1 4 x hidden -> 4 x intermediate, linear_2 back to hidden, both biased.
  * `merger`: one 2x2 downsample MLP of plain torch modules, whole on every rank: pre_norm over 4 x hidden,
    linear_1 4 x hidden -> 4 x hidden, linear_2 -> text hidden, both biased. vLLM hard-codes the 2x2 kernels
    and one merge round; a config asking for others (merge_kernel_size, merger_times, window_kernel_size) has
    checkpoint tensors vLLM cannot load, and is refused.
  vLLM asserts TP divides the tower's heads (Idefics2 attention and the merger's window attention). The class
  supports --mm-encoder-tp-mode data (supports_encoder_tp_data): then both are whole on every rank.
"""

from __future__ import annotations

import math
from dataclasses import replace

from ..errors import ConfigError
from .adapters import _int, _with_tower, register
from .adapters_minicpmv_phi4mm import _vpm_tower
from .adapters_qwen_next_gen import _qwen3_5
from .spec import ModelSpec, MultimodalSpec, Tensor
from .tower_linears import Tower

# transformers' MiniCPMV4_6VisionConfig / MiniCPMOcrVisionConfig / MiniCPMV4_7VisionConfig defaults (identical),
# which the native config class fills in for keys a config.json leaves out.
_VISION_DEFAULTS = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                    "num_attention_heads": 12, "image_size": 224, "patch_size": 16}

# The vLLM class each model_type's checkpoints name, and the image processor defaults vLLM's profile reads
# (transformers' MiniCPMV4_6ImageProcessor / MiniCPMOcrImageProcessor: scale_resolution 448, patch 14, 9 slices;
# downsample_mode "16x" for 4.6 / 4.7 and "4x" for OCR).
_ARCH = {"minicpmv4_6": "MiniCPMV4_6ForConditionalGeneration", "minicpm_ocr": "MiniCPMOcrForConditionalGeneration",
         "minicpmv4_7": "MiniCPMV4_7ForConditionalGeneration"}
_DOWNSAMPLE = {"minicpmv4_6": "16x", "minicpm_ocr": "4x", "minicpmv4_7": "16x"}
_SCALE_RESOLUTION, _PROCESSOR_PATCH, _MAX_SLICES = 448, 14, 9


def _ensure_divide(length: float, divisor: int) -> int:
    return max(round(length / divisor) * divisor, divisor)


def _best_resize(h: float, w: float, scale: int, patch: int, merge: int, upscale: bool) -> tuple[int, int]:
    if h * w > scale * scale or upscale:
        ratio = w / h
        h = int(scale / math.sqrt(ratio))
        w = int(h * ratio)
    return _ensure_divide(h, patch * merge), _ensure_divide(w, patch * merge)


def _image_tokens(height: int, width: int, mode: str) -> int:
    """LLM tokens of one image as the MiniCPM-V 4.6 processing info counts them (get_num_image_tokens): the
    overview resized into scale_resolution^2 plus rows x cols slices, patch^2 x (4 or 16) pixels per token. The
    processor's default geometry; informational (the profile's multimodal term is calibrated)."""
    scale, patch = _SCALE_RESOLUTION, _PROCESSOR_PATCH
    divisor, merge = (4, 2) if mode == "4x" else (16, 4)
    per_token = patch * patch * divisor
    ratio = width * height / (scale * scale)
    multiple = min(math.ceil(ratio), _MAX_SLICES)
    if multiple <= 1:
        bh, bw = _best_resize(height, width, scale, patch, merge, True)
        return bh * bw // per_token
    log_ratio = math.log(width / height)
    grid, best = (1, 1), math.inf
    for n in (multiple - 1, multiple, multiple + 1):
        if n == 1 or n > _MAX_SLICES:
            continue
        for rows in range(1, n + 1):
            if n % rows == 0:
                err = abs(log_ratio - math.log((n // rows) / rows))
                if err < best or (err == best and rows > grid[0]):
                    grid, best = (rows, n // rows), err
    bh, bw = _best_resize(height, width, scale, patch, merge, False)
    rows, cols = grid
    sh, sw = _best_resize(_ensure_divide(height, rows) / rows, _ensure_divide(width, cols) / cols, scale, patch,
                          merge, True)
    return bh * bw // per_token + rows * cols * (sh * sw // per_token)


def _merger_tensors(vis: dict, text_hidden: int) -> tuple[tuple[Tensor, ...], int]:
    h = _int(vis, "hidden_size", default=_VISION_DEFAULTS["hidden_size"])
    inter = _int(vis, "intermediate_size", default=_VISION_DEFAULTS["intermediate_size"])
    # vit_merger: window attention (fused biased qkv over the tower's heads, biased out_proj), layer_norm1, then
    # pre_norm / linear_1 / linear_2 over the 2x2-concatenated width
    qkv = 3 * h * h + 3 * h
    out_w, out_b = h * h, h
    vit_whole = 2 * h + 2 * 4 * h + (4 * h * 4 * inter + 4 * inter) + (4 * inter * h + h)
    # merger: one DownsampleMLP: pre_norm over 4h, linear_1 4h -> 4h, linear_2 4h -> text hidden
    merger = 2 * 4 * h + (4 * h * 4 * h + 4 * h) + (4 * h * text_hidden + text_hidden)
    # minicpmv4_6.py builds the window attention's qkv_proj (QKVParallelLinear, stored as q_proj / k_proj / v_proj)
    # and out_proj with the model's quant_config; linear_1 / linear_2 and the merger are plain nn.Linear
    t = Tower("vit_merger", whole_name="vit_merger.replicated")
    for proj in ("q_proj", "k_proj", "v_proj"):
        t.add("vit_merger.self_attn." + proj, h, h, bias=True)
    t.add("vit_merger.self_attn.out_proj", h, h, "row", bias=True)
    t.whole += vit_whole
    tensors = t.tensors() + (Tensor("merger", "projector", (merger,)),)
    return tensors, qkv + out_w + out_b + vit_whole + merger


@register("minicpmv4_6", "minicpm_ocr", "minicpmv4_7")
def _minicpm_v46(cfg: dict, outer: dict, name: str) -> ModelSpec:
    mt = str(outer.get("model_type"))
    text = outer.get("text_config")
    if not isinstance(text, dict):
        raise ConfigError("text_config", f"{mt}'s config must nest its Qwen3.5 language model in text_config")
    if (text.get("model_type") or "qwen3_5_text") != "qwen3_5_text":
        # MiniCPMV4_6ForConditionalGeneration always builds the dense Qwen3_5ForCausalLM
        raise ConfigError("text_config.model_type", f"vLLM 0.33's {_ARCH.get(mt, mt)} builds a dense Qwen3.5 text "
                          f"model; got {text.get('model_type')!r}", accepted=["qwen3_5_text"])
    vis = outer.get("vision_config") or {}
    if not isinstance(vis, dict):
        raise ConfigError("vision_config", f"{mt}'s vision_config must be an object")
    for key, where in (("merge_kernel_size", outer), ("window_kernel_size", vis)):
        if list(where.get(key) or (2, 2)) != [2, 2]:
            raise ConfigError(key, f"vLLM 0.33 builds MiniCPM-V's mergers with fixed 2x2 kernels; {key} "
                              f"{where.get(key)!r} has checkpoint tensors it cannot load", accepted=["[2, 2]"])
    if int(outer.get("merger_times") or 1) != 1:
        raise ConfigError("merger_times", "vLLM 0.33 builds MiniCPM-V's merger with one merge round",
                          accepted=["1"])
    # The language model: the text config alone (no vision_config, so the Qwen3.5 builder adds no Qwen3-VL tower),
    # tied only by the text config's own flag (Qwen3_5TextConfig's default False)
    tie = bool(text.get("tie_word_embeddings", False))
    lm_outer = {k: v for k, v in outer.items() if k != "vision_config"}
    lm_outer["text_config"] = {**text, "tie_word_embeddings": tie}
    inner = _qwen3_5(lm_outer["text_config"], lm_outer, name)
    # no mtp tensors in the published checkpoint; no config hook, so the GDN state is in the model dtype
    inner = replace(inner, extra_not_loaded=(), mamba_ssm_dtype=None)

    arch = (outer.get("architectures") or [_ARCH.get(mt, "")])[0]
    layers = _int(vis, "num_hidden_layers", default=_VISION_DEFAULTS["num_hidden_layers"])
    if arch == "MiniCPMV4_6ForConditionalGeneration" and outer.get("drop_vision_last_layer"):
        layers -= 1  # built, then cut off (encoder.layers[:-1]); the checkpoint lacks it as well
    tower, tower_params = _vpm_tower(vis, layers, _VISION_DEFAULTS)  # per Linear: vLLM quantizes them
    mergers, merger_params = _merger_tensors(vis, inner.hidden_size)
    # The largest image vLLM profiles: image_size x (image_size x 9) for 4.6 / 4.7 (the config's image_size,
    # MiniCPMV4_6Config default 448), scale_resolution x (scale_resolution x 9) for OCR.
    side = _SCALE_RESOLUTION if mt == "minicpm_ocr" else _int(outer, "image_size", default=448)
    mode = _DOWNSAMPLE.get(mt, "16x")  # the image processor's attribute, which vLLM reads (not the config's)
    mm = MultimodalSpec(tower_params + merger_params, _image_tokens(side * _MAX_SLICES, side, mode),
                        inner.hidden_size,
                        tp_heads=_int(vis, "num_attention_heads", default=_VISION_DEFAULTS["num_attention_heads"]))
    spec = _with_tower(inner, outer, tower + mergers, mm)
    return spec if spec.architecture else replace(spec, architecture=arch)  # transformers' defaults name none
