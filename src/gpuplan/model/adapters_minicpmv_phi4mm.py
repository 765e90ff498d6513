"""MiniCPM-V (model_type minicpmv, architecture MiniCPMV) and Phi-4-multimodal (phi4mm, Phi4MMForCausalLM) as
vLLM 0.33 builds them (model_executor/models/minicpmv.py; phi4mm.py, phi4mm_audio.py, phi4mm_utils.py). Both are
remote-code checkpoints with a flat config: the text model's fields sit at the top level.

MiniCPM-V. `MiniCPMV.__new__` picks a class by the config's `version` (a float such as 2.6 or 4.5, split on the
dot; without one, hidden 2304 with 64 queries means 2.0, anything else 2.5) and refuses versions outside 2.0, 2.5,
2.6, 4.0 and 4.5. The language model is built from the whole flat config as
- 2.5 and 4.0: LlamaForCausalLM; 2.6: Qwen2ForCausalLM; 4.5: Qwen3ForCausalLM
  (gpuplan sizes it through its llama / qwen2 / qwen3 adapter);
- 2.0: MiniCPMForCausalLM beside a timm SigLIP-384 ViT: not modelled here (refused).
Inside the image/video tower mark vLLM builds, for 2.5 - 4.5:
- `vpm`: its Idefics2 vision transformer (SigLIP-400M in the published configs) from vision_config: patch conv
  with bias and a learned position table of (image_size / patch)^2 rows, kept whole on every rank; per layer
  a fused q/k/v with biases and fc1 with bias split over TP by output, out_proj and fc2 split by input with their
  biases whole, two LayerNorms whole; a final post_layernorm. vLLM asserts TP divides the tower's heads.
  With drop_vision_last_layer the last layer is built then cut off (the checkpoint lacks it too), so it is not
  held. Built with the model's quant_config: each layer's Linears are their own tensors (tower_linears.py);
- `resampler`: one perceiver cross-attention of query_num learned queries at the text width D with D / 128 heads
  (torch MultiheadAttention: in_proj 3D x D + 3D, out_proj D x D + D), a bias-free kv_proj from the vision width
  when it differs from D (the only part built with the quant_config), ln_q / ln_kv / ln_post LayerNorms and a
  D x D output matrix. Built under float16, then
  cast to the model dtype; nothing in it is split over TP. It also holds sin-cos tables that the checkpoint lacks:
  a 70 x 70 x D 2-D position table, and for 4.5 a 36000 x D temporal table; they are made on the CPU, cast with
  the module and moved to the GPU at the end of weight loading, so they count in "Model loading took".
The class supports --mm-encoder-tp-mode data (towers whole on each rank). Every text layer is full attention.

Phi-4-multimodal. vLLM builds the language model as a plain LlamaModel from the flat config (Phi-4-mini: fused
qkv and gate_up, RMSNorms, longrope partial rotary, tied LM head), the same parameters as its Phi-3 class, so
gpuplan's phi3 adapter sizes it. Beside it, under the tower marks:
- `vision_encoder`: vLLM ignores any vision config and makes its own SiglipVisionConfig (hidden 1152, 4304 MLP,
  16 heads, patch 14, image 448: 1024 positions, 27 layers), builds the Idefics2 transformer only up to the
  feature layer (img_processor.layer_idx, -2 when unset: 26 layers) and without post_layernorm; the checkpoint's
  27th layer and post_layernorm are skipped by the loader. Then the two separator vectors glb_GN / sub_GN
  (1152 each) and img_projection, two biased torch Linears 1152 -> hidden -> hidden, whole on every rank;
- `embed_tokens_extend` (audio): the conformer encoder of audio_processor.config (NeMo dw-striding conv
  subsampling, T5 relative-position bias table, a mean/variance input normaliser held as parameters, and
  num_blocks conformer blocks: two GLU feed-forwards, biased q/k/v/out, a GLU point-wise / depth-wise conv module,
  LayerNorms), then two MLP projections (speech, and vision-speech) of two biased Linears each. All plain torch
  modules: whole on every rank.
The checkpoint's vision and speech LoRA adapters (base_layer / lora_A / lora_B weights) are mapped to nothing by
the loader ("lora" -> None): vLLM 0.33 neither merges nor loads them; a user serves them as separate adapters
with --enable-lora. They are listed as checkpoint tensors vLLM does not load. vLLM asserts pipeline parallelism
is off; the class has no --mm-encoder-tp-mode data support.
"""

from __future__ import annotations

from ..errors import ConfigError
from .adapters import _int, _with_tower, build_spec, register
from .adapters_vision_wrappers import _idefics2_tower
from .spec import ModelSpec, MultimodalSpec, Tensor
from .tower_linears import Tower, linear, vit_layers

# MiniCPMV.__new__'s version table (vLLM 0.33 minicpmv.py _SUPPORT_VERSION) and the text class each one builds.
_MINICPMV_TEXT = {(2, 5): "llama", (2, 6): "qwen2", (4, 0): "llama", (4, 5): "qwen3"}
_MINICPMV_VERSIONS = ((2, 0), (2, 5), (2, 6), (4, 0), (4, 5))
# Resampler2_5's 2-D sin-cos table (max_size=(70, 70)) and Resampler4_5's temporal table (max_temporal_size).
_RESAMPLER_GRID = 70 * 70
_RESAMPLER_TEMPORAL = 36000


def _minicpmv_version(cfg: dict) -> tuple[int, ...]:
    """vLLM's get_version_by_config / MiniCPMV.__new__: the version float split on its dot."""
    v = cfg.get("version")
    if v is None:
        return (2, 0) if _int(cfg, "hidden_size") == 2304 and _int(cfg, "query_num", default=0) == 64 else (2, 5)
    try:
        return tuple(int(x) for x in str(v).split("."))
    except ValueError as e:
        raise ConfigError("version", f"MiniCPM-V version {v!r} is not a number vLLM can read") from e


def _vit_layer_params(h: int, inter: int) -> int:
    return 4 * (h * h + h) + h * inter + inter + inter * h + h + 4 * h


def _vpm_tower(vis: dict, layers: int, defaults: dict) -> tuple[tuple[Tensor, ...], int]:
    """MiniCPM-V's `vpm`, the Idefics2 vision transformer with its post LayerNorm, as minicpmv.py (2.5 - 4.5) and
    minicpmv4_6.py build it: with the model's quant_config, so every layer's q/k/v (one QKVParallelLinear, stored
    as q_proj / k_proj / v_proj), out_proj, fc1 and fc2 under "vpm.encoder.layers.{j}" is its own tensor; the
    biased patch Conv2d, the (image_size / patch)^2 position table, biases and LayerNorms stay in the model dtype.
    The same parameters as _idefics2_tower's lumps. Returns (tensors, params)."""
    _, params = _idefics2_tower(vis, layers, "vpm", post_norm=True, defaults=defaults)
    h = _int(vis, "hidden_size", default=defaults["hidden_size"])
    patch, image = _int(vis, "patch_size", default=defaults["patch_size"]), _int(vis, "image_size",
                                                                                 default=defaults["image_size"])
    t = Tower("vpm")
    t.whole += _int(vis, "num_channels", default=3) * patch * patch * h + h + (image // patch) ** 2 * h + 2 * h
    vit_layers(t, "vpm.encoder.layers", layers, h, _int(vis, "intermediate_size",
                                                        default=defaults["intermediate_size"]))
    tensors = t.tensors()
    return tensors, params


# MiniCPMVConfig's vision_config default (the SigLIP-400M of 2.5 - 4.5) where the config leaves fields out.
_MINICPMV_VISION = {"hidden_size": 1152, "intermediate_size": 4304, "patch_size": 14, "image_size": 980,
                    "num_hidden_layers": 27, "num_attention_heads": 16}


@register("minicpmv")
def _minicpmv(cfg: dict, outer: dict, name: str) -> ModelSpec:
    version = _minicpmv_version(outer)
    if len(version) != 2 or version not in _MINICPMV_VERSIONS:
        raise ConfigError("version", f"vLLM's MiniCPMV only supports versions 2.0, 2.5, 2.6, 4.0 and 4.5; got "
                                     f"{outer.get('version')!r}", accepted=["2.5", "2.6", "4.0", "4.5"])
    if version == (2, 0):
        raise ConfigError("version", "MiniCPM-V 2.0 (MiniCPM text model with a timm SigLIP ViT) is not modelled by "
                                     "gpuplan", accepted=["2.5", "2.6", "4.0", "4.5"])
    text = {k: v for k, v in outer.items() if k not in ("vision_config", "slice_config")}
    text["model_type"] = _MINICPMV_TEXT[version]
    inner = build_spec(text, name)
    d = inner.hidden_size
    vis = outer.get("vision_config") or {}
    if not isinstance(vis, dict):
        raise ConfigError("vision_config", "MiniCPM-V's vision_config must be an object")
    layers = _int(vis, "num_hidden_layers", default=_MINICPMV_VISION["num_hidden_layers"])
    if outer.get("drop_vision_last_layer"):
        layers -= 1  # vLLM builds the layer, then cuts encoder.layers[:-1]; the checkpoint lacks it as well
    tower, tower_params = _vpm_tower(vis, layers, _MINICPMV_VISION)
    kv_dim = _int(vis, "hidden_size", default=_MINICPMV_VISION["hidden_size"])
    q = _int(outer, "query_num", default=64)
    if d % 128:
        raise ConfigError("hidden_size", f"MiniCPM-V's resampler runs hidden_size / 128 heads; {d} does not divide")
    # query, MultiheadAttention (4D^2 + 4D), ln_q / ln_kv / ln_post (2D each), proj (D^2): plain torch modules and
    # parameters, never quantized
    resampler = q * d + 4 * d * d + 4 * d + 6 * d + d * d
    extra = tower + (Tensor("resampler", "projector", (resampler,)),
                     Tensor("resampler.pos_embed", "projector", (_RESAMPLER_GRID, d), in_checkpoint=False))
    if kv_dim != d:
        # BaseResampler's kv_proj, a bias-free ReplicatedLinear built with the quant_config. The resampler is made
        # under float16 and then cast with .to(model dtype): online --quantization fp8 still quantizes it (its
        # weight waits on the meta device until loading), but a checkpoint's FP8 / NVFP4 parameters would be cast to
        # bf16 by that .to. tower_quant names methods, not sources, so "fp8" also covers an FP8 checkpoint, whose
        # kv_proj vLLM would hold in bf16 (D x kv_dim x 1 byte too few here); compressed-tensors / NVFP4 stay bf16.
        extra += (linear("resampler.kv_proj", d, kv_dim, "replicated", kind="projector", quant=("fp8",)),)
    if version == (4, 5):
        extra += (Tensor("resampler.temporal_pos_embed", "projector", (_RESAMPLER_TEMPORAL, d), in_checkpoint=False),)
    # The largest image vLLM profiles is image_size x (image_size x max_slice_num): max_slice_num (9) slices plus
    # the overview, query_num tokens each.
    slices = int(outer.get("max_slice_num") or 9) + 1
    mm = MultimodalSpec(tower_params + resampler + (kv_dim * d if kv_dim != d else 0), slices * q, d,
                        tp_heads=_int(vis, "num_attention_heads", default=_MINICPMV_VISION["num_attention_heads"]))
    return _with_tower(inner, outer, extra, mm)


# get_navit_vision_model's fixed SigLIP config (phi4mm.py): vLLM reads none of these from the checkpoint.
_PHI4MM_VISION = {"hidden_size": 1152, "intermediate_size": 4304, "patch_size": 14, "image_size": 448,
                  "num_hidden_layers": 27, "num_attention_heads": 16}


def _conformer_params(enc: dict) -> int:
    """phi4mm_audio.ConformerEncoder for the branch the published checkpoints use (refused otherwise)."""
    if enc.get("input_layer", "nemo_conv") != "nemo_conv":
        raise ConfigError("audio_processor", "vLLM's conformer only builds input_layer nemo_conv",
                          accepted=["nemo_conv"])
    d = _int(enc, "attention_dim")
    u = _int(enc, "linear_units")
    heads = _int(enc, "attention_heads")
    n_mels = _int(enc, "input_size")
    k = _int(enc, "kernel_size", default=3)
    ext = _int(enc, "ext_pw_out_channel", default=0)
    ek = _int(enc, "ext_pw_kernel_size", default=1)
    dsw = _int(enc, "depthwise_seperable_out_channel", default=256)
    nemo = dict(enc.get("nemo_conv_settings") or {})
    conv_ch = int(nemo.pop("conv_channels", 256))
    bias = enc.get("relative_attention_bias_args") or {}
    unread = {
        "nemo_conv_settings beyond conv_channels": bool(nemo),
        "ext_pw_out_channel 0": ext == 0,
        "depthwise_seperable_out_channel != attention_dim": dsw != d,
        "depthwise_multiplier != 1": _int(enc, "depthwise_multiplier", default=1) != 1,
        "batch_norm": bool(enc.get("batch_norm")),
        "bias_in_glu false": enc.get("bias_in_glu", True) is False,
        "linear_glu_in_convm": bool(enc.get("linear_glu_in_convm")),
        "a relative bias other than asymmetric t5": bias.get("type") != "t5" or bool(bias.get("t5_bias_symmetric")),
    }
    if any(unread.values()):
        raise ConfigError("audio_processor", "gpuplan has only read vLLM's conformer for Phi-4-multimodal's settings; "
                          "this config asks for " + ", ".join(k for k, v in unread.items() if v))
    # NemoConvSubsampling (dw_striding): a 3x3 conv from one channel, then per further halving a depth-wise 3x3
    # and a point-wise 1x1 conv, then a Linear from conv_channels x the halved mel bins to attention_dim.
    factor = _int(enc, "time_reduction", default=4)
    halvings = factor.bit_length() - 1
    freq = n_mels
    for _ in range(halvings):
        freq = (freq - 1) // 2 + 1
    embed = (9 * conv_ch + conv_ch) + (halvings - 1) * (9 * conv_ch + conv_ch + conv_ch * conv_ch + conv_ch)
    embed += conv_ch * freq * d + d
    rel_bias = 2 * int(bias.get("t5_bias_max_distance", 1000)) * heads
    norm_in = 2 * n_mels  # MeanVarianceNormLayer's global_mean / global_invstd, nn.Parameters in vLLM
    ff = 2 * d + 2 * u * d + 2 * u + u * d + d  # LayerNorm, GLU linear d -> 2u, linear u -> d
    conv = (2 * d + (ext * d + d if ext != d else 0)  # LayerNorm; ln1 back to d when ext differs
            + 2 * ext + 2 * ext * d * ek + 2 * ext  # GLU b1 / b2 and its point-wise conv to 2 x ext
            + ext * d * ek + ext  # ext_pw_conv_1d
            + d * k + d + dsw * d + dsw)  # depth-wise and point-wise convs
    block = 2 * ff + 4 * (d * d + d) + conv + 4 * d  # + layer_norm_att and layer_norm
    return embed + rel_bias + norm_in + _int(enc, "num_blocks") * block


@register("phi4mm")
def _phi4mm(cfg: dict, outer: dict, name: str) -> ModelSpec:
    drop = ("embd_layer", "audio_processor", "vision_lora", "speech_lora", "img_processor", "auto_map")
    text = {k: v for k, v in outer.items() if k not in drop}
    text["model_type"] = "phi3"  # vLLM's LlamaModel on this config holds exactly its Phi-3 class's parameters
    inner = build_spec(text, name)
    h = inner.hidden_size
    img = outer.get("img_processor")
    layer_idx = int(img.get("layer_idx", -2)) if isinstance(img, dict) else -2
    full = _PHI4MM_VISION["num_hidden_layers"]
    layers = full + layer_idx + 1 if layer_idx < 0 else layer_idx + 1
    tower, tower_params = _idefics2_tower({}, layers, "vision_encoder.img_processor", post_norm=False,
                                          defaults=_PHI4MM_VISION)
    vd = _PHI4MM_VISION["hidden_size"]
    # glb_GN + sub_GN, then img_projection Linear(1152, h) + GELU + Linear(h, h), both biased
    image_proj = 2 * vd + vd * h + h + h * h + h
    emb = outer.get("embd_layer") or {}
    audio_emb = emb.get("audio_embd_layer") if isinstance(emb, dict) else None
    proc = outer.get("audio_processor")
    if not isinstance(audio_emb, dict) or not isinstance(proc, dict) or proc.get("name") != "cascades":
        raise ConfigError("audio_processor", "vLLM's Phi4MM builds a cascades conformer from audio_processor and "
                          "embd_layer.audio_embd_layer; this config lacks them")
    if (audio_emb.get("projection_cls", "linear") != "mlp" or audio_emb.get("use_qformer")
            or audio_emb.get("use_conv_downsample")):
        raise ConfigError("embd_layer", "gpuplan has only read vLLM's audio embedding with projection_cls mlp and "
                          "neither qformer nor conv downsampling")
    enc = proc.get("config") or {}
    conformer = _conformer_params(enc)
    a_in = _int(enc, "attention_dim") * int(audio_emb.get("downsample_rate", 1))
    audio_proj = 2 * (a_in * h + h + h * h + h)  # audio_projection and audio_projection_for_vision
    extra = tower + (Tensor("vision_encoder.img_projection", "projector", (image_proj,)),
                     Tensor("embed_tokens_extend.encoder", "vision", (conformer,)),
                     # ConformerEncoder's dev_type: a scalar buffer in the model dtype, not in the checkpoint
                     Tensor("embed_tokens_extend.encoder.dev_type", "vision", (1,), in_checkpoint=False),
                     Tensor("embed_tokens_extend.audio_projection", "projector", (audio_proj,)))
    params = tower_params + image_proj + conformer + audio_proj
    # One 448 crop: (448 / 14 / 2)^2 = 256 tokens after the 2x2 average pool.
    mm = MultimodalSpec(params, (_PHI4MM_VISION["image_size"] // _PHI4MM_VISION["patch_size"] // 2) ** 2, h,
                        tp_heads=_PHI4MM_VISION["num_attention_heads"])
    spec = _with_tower(inner, outer, extra, mm)
    return _phi4mm_not_loaded(spec, outer, layers)


def _phi4mm_not_loaded(spec: ModelSpec, outer: dict, layers: int) -> ModelSpec:
    """What Phi-4-multimodal's checkpoint holds that vLLM's loader drops: the SigLIP layers past the feature layer
    and post_layernorm, and the vision / speech LoRA pairs on every decoder layer's qkv, o, gate_up and down."""
    from dataclasses import replace

    vd, vi = _PHI4MM_VISION["hidden_size"], _PHI4MM_VISION["intermediate_size"]
    cut = _PHI4MM_VISION["num_hidden_layers"] - layers
    dropped = [Tensor("vision_encoder.img_processor.encoder.layers.cut", "vision", (cut * _vit_layer_params(vd, vi)
                                                                                    + 2 * vd,))]
    h, n = spec.hidden_size, spec.num_layers
    a = spec.layers[0].attention
    qkv = (a.num_heads + 2 * a.num_kv_heads) * a.head_dim
    inter = spec.intermediate_size
    # LoRA A (r x in) + B (out x r) per adapted linear: qkv h -> qkv, o heads*hd -> h, gate_up h -> 2I, down I -> h
    per_rank = (h + qkv) + (a.num_heads * a.head_dim + h) + (h + 2 * inter) + (inter + h)
    for key in ("vision_lora", "speech_lora"):
        lora = outer.get(key)
        if isinstance(lora, dict) and lora.get("r"):
            dropped.append(Tensor(f"model.layers.{key}", "other", (n * int(lora["r"]) * per_rank,)))
    return replace(spec, extra_not_loaded=spec.extra_not_loaded + tuple(dropped))
