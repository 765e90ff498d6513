"""Vision-language wrappers whose text model gpuplan already sizes, with their towers as vLLM 0.33 builds them.

Before this module these model_types fell through to their text model ("any vision tower is not counted") or, for
Phi-3-Vision's flat config, to a generic decoder. Each wrapper below builds its tower and projector inside
_mark_tower_model, so a text-only start (--language-model-only, or --limit-mm-per-prompt 0 for every modality it
serves) builds neither (data/vllm_towers.json: "marked" from 0.15 / 0.16). Towers whose Linears vLLM builds with the
model's quant config (Kimi-K2.5's encoder blocks, Idefics3's tower and connector) list each Linear as its own
tensor (tower_linears.py); the other towers and projectors are sized in the model dtype.

- kimi_k25 (KimiK25ForConditionalGeneration, kimi_k25.py + kimi_k25_vit.py): the DeepSeek-V3 text model
  (DeepseekV2ForCausalLM over text_config) behind MoonViT3d and its patch-merger projector (the shared `_moonvit`,
  whose vt_-prefixed keys are the published config's; transformers' Kimi_K25VisionConfig, which vLLM 0.33 loads
  it with, ignores them and takes its defaults, which are the same numbers). A compressed-tensors quant config
  (the INT4 checkpoints) is dropped for the tower and projector, which are then cast to the model dtype; any other
  (FP8, ModelOpt) quantizes the encoder blocks' wqkv / wo / fc0 / fc1 not in its ignore list, while the projector,
  cast to the model dtype after it is built, stays a model-dtype lump. Besides
  the parameters the patch embedding keeps a [pos_emb_time, 1, hidden] sin-cos buffer (time_weight), made in
  float32 and cast with the tower to the model dtype when the tower is cast (no quantization or
  compressed-tensors); other quantization methods leave the tower's dtype alone. The vision encoder splits its
  heads over TP when TP divides them and falls back to whole weights per rank otherwise (is_vit_use_data_parallel
  with the head count), as sized here.
- paligemma (PaliGemmaForConditionalGeneration, paligemma.py): vLLM's SigLIP vision model over vision_config
  with every encoder layer and its post LayerNorm, no pooling head; fused biased qkv and fc1 split over TP
  (column), out_proj / fc2 weights split by input (row) with their biases whole; the patch Conv2d, the position
  table and the LayerNorms whole; a non-persistent int64 position_ids buffer. The projector is a plain biased
  nn.Linear from the vision width to projection_dim, whole on every rank. The text model is Gemma or Gemma-2 by
  text_config.model_type.
- cohere2_vision (Cohere2VisionForConditionalGeneration, cohere2_vision.py): the same SigLIP vision model (vLLM
  0.33 builds SiglipVisionModel for it, no pooling head even where transformers' config asks for one) and a
  pixel-shuffle SwiGLU projector: linear_1 a MergedColumnParallelLinear from hidden x downsample_factor^2 to
  alignment_intermediate_size (two halves), linear_2 a RowParallelLinear from half of it to the text width, both
  biased; text model cohere2.
- phi3_v (Phi3VForCausalLM, phi3v.py): a flat config. The text model is vLLM's LlamaForCausalLM over the top-level
  fields (Phi-3's layout). The tower is a fixed CLIP ViT-L/14-336 (hidden 1024, 24 layers, 16 heads, MLP 4096,
  577 positions) that vLLM builds only up to img_processor.layer_idx (-2 by default: 23 layers, and then no post
  LayerNorm): class embedding, bias-free patch Conv2d, position table, pre-LayerNorm, per layer the SigLIP layout;
  plus the HD-transform separators glb_GN / sub_GN (4 x image_dim_out each) and img_projection, two biased
  nn.Linear (4 x image_dim_out -> hidden -> hidden), all whole on every rank. The wrapper also builds a second
  vocab x hidden embedding (inside the tower mark); the published checkpoints hold only the language model's, so
  after loading vLLM points the wrapper at that one and the spare is freed before "Model loading took" is taken
  (not counted).
- lfm2_vl / lfm2-vl (Lfm2VlForConditionalGeneration, lfm2_vl.py + lfm2_siglip2.py): a SigLIP2-NaFlex tower
  (patch embedding a biased ReplicatedLinear over channels x patch^2, a num_patches position table, every encoder
  layer in the SigLIP layout and the post LayerNorm) and a projector of an optional LayerNorm
  (projector_use_layernorm, default true) and two ReplicatedLinears with projector_bias, whole on every rank;
  text model lfm2 (its short-conv / attention hybrid).
"""

from __future__ import annotations

import math

from ..errors import ConfigError
from .adapters import _int, _moonvit, _phi3, _text_model, _with_tower, moonvit_dims, register
from .quant_config import parse_quant_config
from .spec import ModelSpec, MultimodalSpec, Tensor
from .tower_linears import TOWER_QUANT, Tower, linear, vit_layers


def _vit_parts(h: int, inter: int, layers: int) -> tuple[int, int, int]:
    """(column, row, whole) parameters of `layers` ViT encoder layers as vLLM's SigLIP / SigLIP2 / CLIP build them:
    fused biased qkv and fc1 split by output, out_proj and fc2 weights split by input, their biases and the two
    LayerNorms (weight + bias) whole."""
    column = layers * (3 * h * h + 3 * h + inter * h + inter)
    row = layers * (h * h + h * inter)
    whole = layers * (2 * h + 4 * h)
    return column, row, whole


def _idefics2_tower(vis: dict, layers: int, prefix: str, *, post_norm: bool,
                    defaults: dict) -> tuple[tuple[Tensor, ...], int]:
    """vLLM's Idefics2VisionTransformer (idefics2_vision_model.py) over `layers` encoder layers, split as TP splits
    it (the _vit_parts layers), then whole: the biased patch conv, the (image_size / patch_size)^2 position table
    and, when built, post_layernorm. Returns (tensors, params)."""
    h = _int(vis, "hidden_size", default=defaults["hidden_size"])
    patch = _int(vis, "patch_size", default=defaults["patch_size"])
    image = _int(vis, "image_size", default=defaults["image_size"])
    ch = _int(vis, "num_channels", default=3)
    column, row, whole = _vit_parts(h, _int(vis, "intermediate_size", default=defaults["intermediate_size"]), layers)
    whole += ch * patch * patch * h + h + (image // patch) ** 2 * h + (2 * h if post_norm else 0)
    tensors = (Tensor(f"{prefix}.encoder.column", "vision", (column,), "column"),
               Tensor(f"{prefix}.encoder.row", "vision", (row,), "row"),
               Tensor(f"{prefix}.replicated", "vision", (whole,)))
    return tensors, column + row + whole


def _int64_buffer(name: str, n: int) -> Tensor:
    """A non-persistent int64 buffer of n elements (position_ids): counted in the weights, not a parameter. Sized as
    2n int32, the same bytes (gpuplan's dtype table has no int64)."""
    return Tensor(name, "vision", (2 * n,), dtype="int32", in_checkpoint=False)


def _tower(prefix: str, column: int, row: int, whole: int) -> tuple[Tensor, ...]:
    return (Tensor(prefix + ".column", "vision", (column,), "column"),
            Tensor(prefix + ".row", "vision", (row,), "row"),
            Tensor(prefix + ".replicated", "vision", (whole,)))


def _siglip_side(vis: dict) -> int:
    """Patches along one side of the image. vLLM sizes the position table from image_size (transformers' default 224
    when the config omits it, as PaliGemma's do); gpuplan's config defaults for siglip_vision_model fill Gemma-3's
    896 instead, so a config that states num_image_tokens (every PaliGemma one) is read by that, which the published
    configs keep equal to (image_size / patch_size)^2."""
    tokens = vis.get("num_image_tokens")
    if tokens:
        return math.isqrt(int(tokens))
    return _int(vis, "image_size", default=224) // _int(vis, "patch_size", default=16)


def _siglip(vis: dict, prefix: str) -> tuple[tuple[Tensor, ...], int]:
    """vLLM's SiglipVisionModel as PaliGemma and Cohere2-Vision build it: every layer, the post LayerNorm, no head.
    Returns the tensors and the parameter count."""
    h = _int(vis, "hidden_size", default=768)
    inter = _int(vis, "intermediate_size", default=3072)
    n = _int(vis, "num_hidden_layers", default=12)
    patch, ch = _int(vis, "patch_size", default=16), _int(vis, "num_channels", default=3)
    positions = _siglip_side(vis) ** 2
    column, row, whole = _vit_parts(h, inter, n)
    whole += ch * patch * patch * h + h + positions * h + 2 * h  # patch Conv2d + bias, positions, post_layernorm
    tensors = _tower(prefix, column, row, whole) + (_int64_buffer(prefix + ".embeddings.position_ids", positions),)
    return tensors, column + row + whole


def _check_siglip_type(vis: dict, accepted: tuple[str, ...], what: str) -> None:
    mt = vis.get("model_type") or accepted[0]
    if mt not in accepted:
        raise ConfigError("vision_config.model_type", f"vLLM 0.33's {what} builds only {', '.join(accepted)} towers, "
                                                      f"got {mt!r}", accepted=list(accepted))


def _vision(outer: dict) -> dict:
    vis = outer.get("vision_config")
    if not isinstance(vis, dict) or not vis:
        raise ConfigError("config", f"{outer.get('model_type')} config lacks vision_config")
    return vis


# ----------------------------------------------------------------------------- Kimi K2.5 / K2.6


# kimi_k25.py's _maybe_ignore_quant_config hands the tower every quant config but compressed-tensors'.
_K25_TOWER_QUANT = tuple(m for m in TOWER_QUANT if m != "compressed-tensors")


def _moonvit3d_tower(vis: dict) -> tuple[Tensor, ...]:
    """MoonViT3d's parameters (kimi_k25_vit.py) as _moonvit counts them, each block Linear its own tensor under
    vLLM's prefix "vision_tower.encoder.blocks.{j}": wqkv (QKVParallelLinear, qkv_hidden_size x 3) and mlp.fc0
    column-parallel, wo and mlp.fc1 row-parallel, all built with the quant config _maybe_ignore_quant_config lets
    through and split only when TP divides the heads (is_vit_use_data_parallel). Biases (attn_bias / linear_bias),
    norms, the patch conv, the position table and final_layernorm stay in the model dtype."""
    h, n, inter, heads, qkv, attn_bias, lin_bias, norm, patch = moonvit_dims(vis)
    t = Tower("vision_tower", whole_name="vision_tower.replicated")
    for j in range(n):
        pre = f"vision_tower.encoder.blocks.{j}."
        t.add(pre + "wqkv", 3 * qkv, h, bias=attn_bias, quant=_K25_TOWER_QUANT, split_if=heads)
        t.add(pre + "wo", h, qkv, "row", bias=attn_bias, quant=_K25_TOWER_QUANT, split_if=heads)
        t.add(pre + "mlp.fc0", inter, h, bias=lin_bias, quant=_K25_TOWER_QUANT, split_if=heads)
        t.add(pre + "mlp.fc1", h, inter, "row", bias=lin_bias, quant=_K25_TOWER_QUANT, split_if=heads)
        t.whole += 2 * norm  # norm0, norm1
    t.whole += (3 * patch * patch * h + (h if vis.get("patch_embed_proj_bias", True) else 0)  # patch conv
                + _int(vis, "init_pos_emb_height", default=64) * _int(vis, "init_pos_emb_width", default=64) * h
                + norm)  # final_layernorm
    return t.tensors()


@register("kimi_k25")
def _kimi_k25(cfg: dict, outer: dict, name: str) -> ModelSpec:
    inner = _text_model(outer, name, "deepseek_v3")
    vis = _vision(outer)
    tensors, mm = _moonvit(vis, inner.hidden_size, projector="mm_projector", whole_unless_tp_divides_heads=True)
    # the tower per Linear (the same parameters as _moonvit's lumps); the projector stays one model-dtype lump: it is
    # built with the same quant config but then cast with .to(dtype=model dtype), which turns a checkpoint's
    # floating-point (FP8) weights into bf16 ones of the same shape
    tower = _moonvit3d_tower(vis)
    tensors = tower + tuple(t for t in tensors if t.kind != "vision")
    quant = inner.quant or (parse_quant_config(outer["quantization_config"])
                            if outer.get("quantization_config") else None)
    # time_weight: [pos_emb_time, 1, hidden], created in float32; cast to the model dtype with the tower unless a
    # quantization method other than compressed-tensors keeps the tower where it was built.
    cast = quant is None or quant.method == "compressed-tensors"
    frames = _int(vis, "init_pos_emb_time", "pos_emb_time", default=4)
    h = _int(vis, "vt_hidden_size", "hidden_size", default=1152)
    buf = Tensor("vision_tower.patch_embed.pos_emb.time_weight", "vision", (frames, h),
                 dtype=None if cast else "float32", in_checkpoint=False)
    return _with_tower(inner, outer, tensors + (buf,), mm)


# ----------------------------------------------------------------------------- PaliGemma (1 and 2)


@register("paligemma")
def _paligemma(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = dict(outer.get("text_config") or {})
    mt = text.get("model_type") or "gemma"
    if mt not in ("gemma", "gemma2"):
        # PaliGemmaForConditionalGeneration picks GemmaForCausalLM for "gemma" and Gemma2ForCausalLM otherwise.
        raise ConfigError("text_config.model_type", f"PaliGemma's text model is gemma or gemma2, got {mt!r}",
                          accepted=["gemma", "gemma2"])
    # transformers' GemmaConfig / Gemma2Config default max_position_embeddings to 8192 and PaliGemma's text_config
    # omits it; vLLM reads it through them (rotary cache and length limit), gpuplan's config defaults lack it.
    text.setdefault("max_position_embeddings", 8192)
    inner = _text_model({**outer, "text_config": text}, name, "gemma")
    vis = _vision(outer)
    _check_siglip_type(vis, ("siglip_vision_model",), "PaliGemma")
    tower, params = _siglip(vis, "vision_tower.vision_model")
    vh = _int(vis, "hidden_size", default=1152)
    proj_dim = _int(vis, "projection_dim", default=_int(outer, "projection_dim", default=inner.hidden_size))
    proj = (Tensor("multi_modal_projector.linear.weight", "projector", (proj_dim, vh)),
            Tensor("multi_modal_projector.linear.bias", "projector", (proj_dim,)))
    side = _siglip_side(vis)
    mm = MultimodalSpec(params + proj_dim * vh + proj_dim, side * side, inner.hidden_size,
                        tp_heads=_int(vis, "num_attention_heads", default=12))
    return _with_tower(inner, outer, tower + proj, mm)


# ----------------------------------------------------------------------------- Cohere2-Vision (Command A Vision)


@register("cohere2_vision")
def _cohere2_vision(cfg: dict, outer: dict, name: str) -> ModelSpec:
    inner = _text_model(outer, name, "cohere2")
    vis = _vision(outer)
    _check_siglip_type(vis, ("siglip_vision_model",), "Cohere2-Vision")
    tower, params = _siglip(vis, "vision_tower.vision_model")
    vh, th = _int(vis, "hidden_size", default=1152), inner.hidden_size
    f = _int(outer, "downsample_factor", default=2)
    half = _int(outer, "alignment_intermediate_size", default=36864) // 2
    fin = vh * f * f
    # linear_1 (both SwiGLU halves, biased) column-parallel; linear_2 row-parallel, its bias whole.
    proj = (Tensor("multi_modal_projector.linear_1", "projector", (2 * half * fin + 2 * half,), "column"),
            Tensor("multi_modal_projector.linear_2.weight", "projector", (th, half), "row"),
            Tensor("multi_modal_projector.linear_2.bias", "projector", (th,)))
    side = _int(vis, "image_size", default=512) // (_int(vis, "patch_size", default=16) * f)
    mm = MultimodalSpec(params + sum(t.numel for t in proj), side * side, th,
                        tp_heads=_int(vis, "num_attention_heads", default=12))
    return _with_tower(inner, outer, tower + proj, mm)


# ----------------------------------------------------------------------------- Phi-3 / Phi-3.5 Vision

# vLLM's phi3v.py builds this CLIP whatever img_processor.model_name says (CLIP_VIT_LARGE_PATCH14_336_CONFIG).
_CLIP_L336 = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
              "patch_size": 14, "image_size": 336, "num_channels": 3}


@register("phi3_v")
def _phi3_v(cfg: dict, outer: dict, name: str) -> ModelSpec:
    inner = _phi3(cfg, outer, name)
    proc = outer.get("img_processor") or {}
    embd = outer.get("embd_layer") or {}
    if not isinstance(proc, dict) or not isinstance(embd, dict):
        raise ConfigError("config", "phi3_v config needs img_processor and embd_layer objects")
    if not (embd.get("use_hd_transform") and embd.get("with_learnable_separator")):
        # Phi3HDImageEmbedding asserts both.
        raise ConfigError("embd_layer", "vLLM's Phi3VForCausalLM asserts use_hd_transform and "
                                        "with_learnable_separator", accepted=["both true"])
    c = _CLIP_L336
    h, n = c["hidden_size"], c["num_hidden_layers"]
    layer_idx = int(proc.get("layer_idx", -2))
    used = n + layer_idx + 1 if layer_idx < 0 else layer_idx + 1
    if not 0 < used <= n:
        raise ConfigError("img_processor.layer_idx", f"layer {layer_idx} is outside the CLIP's {n} layers")
    positions = (c["image_size"] // c["patch_size"]) ** 2 + 1  # patches + the class token
    column, row, whole = _vit_parts(h, c["intermediate_size"], used)
    # class embedding, bias-free patch Conv2d, position table, pre_layrnorm; post_layernorm only with every layer
    whole += h + 3 * c["patch_size"] ** 2 * h + positions * h + 2 * h + (2 * h if used == n else 0)
    p = "model.vision_embed_tokens.img_processor.vision_model"
    tower = _tower(p, column, row, whole) + (_int64_buffer(p + ".embeddings.position_ids", positions),)
    dim_out = int(proc.get("image_dim_out") or h)
    th = inner.hidden_size
    e = "model.vision_embed_tokens."
    proj = (Tensor(e + "glb_GN", "projector", (4 * dim_out,)), Tensor(e + "sub_GN", "projector", (4 * dim_out,)),
            Tensor(e + "img_projection.0.weight", "projector", (th, 4 * dim_out)),
            Tensor(e + "img_projection.0.bias", "projector", (th,)),
            Tensor(e + "img_projection.2.weight", "projector", (th, th)),
            Tensor(e + "img_projection.2.bias", "projector", (th,)))
    params = column + row + whole + sum(t.numel for t in proj)
    mm = MultimodalSpec(params, int(proc.get("num_img_tokens") or 144), th, tp_heads=c["num_attention_heads"])
    return _with_tower(inner, {**outer, "architectures": outer.get("architectures") or ["Phi3VForCausalLM"]},
                       tower + proj, mm)


# ----------------------------------------------------------------------------- LFM2-VL


@register("lfm2_vl", "lfm2-vl")
def _lfm2_vl(cfg: dict, outer: dict, name: str) -> ModelSpec:
    inner = _text_model(outer, name, "lfm2")
    vis = _vision(outer)
    _check_siglip_type(vis, ("siglip2_vision_model",), "LFM2-VL")
    h = _int(vis, "hidden_size", default=768)
    n = _int(vis, "num_hidden_layers", default=12)
    patch, ch = _int(vis, "patch_size", default=16), _int(vis, "num_channels", default=3)
    num_patches = _int(vis, "num_patches", default=256)
    column, row, whole = _vit_parts(h, _int(vis, "intermediate_size", default=3072), n)
    whole += ch * patch * patch * h + h + num_patches * h + 2 * h  # patch Linear + bias, positions, post_layernorm
    tower = _tower("vision_tower.vision_model", column, row, whole)
    th = inner.hidden_size
    f = _int(outer, "downsample_factor", default=2)
    fin, ph = h * f * f, _int(outer, "projector_hidden_size", default=2560)
    bias = outer.get("projector_bias", True) is not False
    ln = outer.get("projector_use_layernorm", True) is not False
    proj_n = (2 * fin if ln else 0) + fin * ph + ph * th + ((ph + th) if bias else 0)
    proj = (Tensor("multi_modal_projector", "projector", (proj_n,)),)
    mm = MultimodalSpec(column + row + whole + proj_n, _int(outer, "max_image_tokens", default=256), th,
                        tp_heads=_int(vis, "num_attention_heads", default=12))
    return _with_tower(inner, outer, tower + proj, mm)


# ----------------------------------------------------------------------------- Idefics3 / SmolVLM


# transformers' Idefics3VisionConfig defaults, where a config leaves vision fields out
_IDEFICS3_VISION = {"hidden_size": 1152, "intermediate_size": 3072, "patch_size": 32, "image_size": 224}


@register("idefics3", "smolvlm")
def _idefics3(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Idefics3ForConditionalGeneration / SmolVLMForConditionalGeneration (idefics3.py, smolvlm.py; vLLM 0.33).

    The vision model is vLLM's Idefics2VisionTransformer over vision_config with every encoder layer and its post
    LayerNorm (require_post_norm defaults to True there): a biased patch Conv2d and an (image_size / patch_size)^2
    position table (position ids are computed per call, no buffer), per layer a fused biased qkv and fc1 split by
    output, out_proj and fc2 split by input with whole biases, two LayerNorms; it asserts TP divides its heads.
    The connector pixel-shuffles by scale_factor and projects hidden x scale_factor^2 to the text width with one
    bias-free ReplicatedLinear (whole on every rank). The text model is LlamaModel over text_config and the LM
    head is tied by text_config.tie_word_embeddings. Unlike the other towers here, vLLM hands the checkpoint's
    quant config to this tower and connector: each Linear is its own tensor, quantized as tower_linears.py says."""
    text = dict(outer.get("text_config") or {})
    if text.get("architectures"):
        # with_hf_config deep-copies the text config only when it names no architecture; otherwise it writes the
        # top-level tie_word_embeddings (Idefics3Config / SmolVLMConfig default False) into the very text config
        # the LM head then reads.
        text["tie_word_embeddings"] = bool(outer.get("tie_word_embeddings", False))
    inner = _text_model({**outer, "text_config": text}, name, "llama")
    vis = _vision(outer)
    h = _int(vis, "hidden_size", default=1152)
    side = _int(vis, "image_size", default=224) // _int(vis, "patch_size", default=32)
    tower, tower_params = _idefics2_tower(vis, _int(vis, "num_hidden_layers", default=12), "model.vision_model",
                                          post_norm=True, defaults=_IDEFICS3_VISION)
    scale = _int(outer, "scale_factor", default=2)
    th = inner.hidden_size
    proj = (Tensor("model.connector.modality_projection.proj.weight", "projector", (th, h * scale * scale)),)
    # idefics3.py / idefics2_vision_model.py build every encoder Linear (q/k/v, out_proj, fc1, fc2) and the
    # connector's ReplicatedLinear with the model's quant_config: the same parameters, one tensor per Linear
    t = Tower("model.vision_model")
    patch = _int(vis, "patch_size", default=_IDEFICS3_VISION["patch_size"])
    # biased patch Conv2d, position table, post_layernorm
    t.whole += _int(vis, "num_channels", default=3) * patch * patch * h + h + side * side * h + 2 * h
    vit_layers(t, "model.vision_model.encoder.layers", _int(vis, "num_hidden_layers", default=12), h,
               _int(vis, "intermediate_size", default=_IDEFICS3_VISION["intermediate_size"]))
    assert sum(x.numel for x in t.tensors()) == tower_params
    tower = t.tensors()
    proj = (linear("model.connector.modality_projection.proj", th, h * scale * scale, "replicated",
                   kind="projector"),)
    # tokens one image tile becomes (Idefics3Model.image_seq_len)
    mm = MultimodalSpec(tower_params + th * h * scale * scale, side * side // (scale * scale), th,
                        tp_heads=_int(vis, "num_attention_heads", default=16))
    return _with_tower(inner, outer, tower + proj, mm)
