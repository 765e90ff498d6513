"""Three vision-language families vLLM 0.33 serves natively that gpuplan used to size as a generic decoder or as
their text model alone: GLM-4.6V under transformers' own model_types (glm46v, glmga), PaddleOCR-VL (paddleocr_vl)
and LightOnOCR (lighton_ocr, and the published checkpoints' mistral3 configs whose architecture is
LightOnOCRForConditionalGeneration).

- glm46v / glmga: transformers 5.x gives GLM-4.6V its own config classes (Glm46VConfig, and GlmgaConfig which
  reuses it) with a glm4v_text or glm4v_moe_text text_config and a glm4v_vision tower. vLLM 0.33 has no class of
  that name; it serves GLM-4.6V through Glm4vForConditionalGeneration / Glm4vMoeForConditionalGeneration
  (models/glm4_1v.py), which tells GLM-4.6V and GLMGA apart only by their processors (video frame sampling), so the
  weights are the glm4v / glm4v_moe ones: the text model picked by text_config.model_type, behind the same
  Glm4vVisionTransformer. The published GLM-4.6V / GLM-4.6V-Flash configs say glm4v_moe / glm4v already and never
  reach this adapter. A config whose architectures[0] is transformers' Glm46VForConditionalGeneration is not a
  class vLLM 0.33 registers: vLLM would try its Transformers backend; the numbers here follow the native class.
  vLLM copies the wrapper's tie_word_embeddings (Glm46VConfig default False) onto the text config.
- paddleocr_vl (PaddleOCRVLForConditionalGeneration, models/paddleocr_vl.py): vLLM folds text_config into the top
  level (all keys but model_type, architectures and tie_word_embeddings, which stay the wrapper's) and builds
  Ernie4_5ForCausalLM (a Llama with no o_proj bias) over it. The tower is the file's own SigLIP: a biased patch
  Conv2d, a (image_size / patch)^2 position table and an int64 position_ids buffer of that length, every encoder
  layer (two LayerNorms, a biased fused qkv and fc1 split over TP by output, out_proj and fc2 split by input with
  their biases whole), a post LayerNorm, no pooling head, and a float32 inv_freq buffer of head_dim / 4 entries
  for the tower's 2-D RoPE. The checkpoint's SigLIP pooling head and packing_position_embedding are dropped by the
  loader. The projector (mlp_AR) merges a fixed 2 x 2 patch block: a LayerNorm over the vision width and two biased
  plain nn.Linear (4h -> 4h, 4h -> text width), whole on every rank. Published PaddleOCR-VL configs say
  tie_word_embeddings false and their checkpoint holds an lm_head; transformers 5.23 reads the flat config as tied
  (its BC rule turns the wrapper's flag on from the text config's default), and vLLM 0.33, where the config says
  tied, unties again when the checkpoint has an lm_head (ModelConfig.maybe_untie_word_embeddings): either way vLLM
  builds the separate lm_head the config file asks for, which transformers' count leaves out.
- lighton_ocr (LightOnOCRForConditionalGeneration, models/lightonocr.py, a Mistral3ForConditionalGeneration): the
  text model from text_config (Qwen3 for every release), the wrapper's tie_word_embeddings copied onto it (default
  true in both Mistral3Config and LightOnOcrConfig). The tower is vLLM's PixtralHFVisionModel built up to
  vision_feature_layer (-1: every layer) with no post norm: a bias-free patch Conv2d and an RMSNorm (ln_pre) whole;
  per layer two RMSNorms whole, a bias-free fused qkv and gate_up split over TP by output, o_proj and down_proj by
  input; the attention splits its heads over TP (the MLP too: mm_encoder_tp_mode "weights"). With transformers
  >= 5.17 (vLLM 0.33 allows 5.16.1 to 5.20) the rotary embedding is transformers' axial PixtralVisionRotaryEmbedding
  holding two float32 buffers of head_dim / 2 (inv_freq and original_inv_freq); transformers 5.16's older class
  held a (image_size / patch)^2 x head_dim float32 table instead (3,097,600 bytes for LightOnOCR), which is not
  modelled. The projector: an RMSNorm and the patch merger's bias-free nn.Linear (h x merge^2 -> h) whole,
  linear_1 a ColumnParallelLinear and linear_2 a RowParallelLinear, biased when multimodal_projector_bias.
  Published checkpoints ship model_type mistral3 with this architecture (build_spec routes them here by
  architecture); transformers' own lighton_ocr config lacks vision_feature_layer, projector_hidden_act and
  multimodal_projector_bias, which vLLM's class reads, so those fall back to what transformers' LightOnOcr model
  itself builds (every layer, no projector bias).

Every tower and projector here is built inside _mark_tower_model (data/vllm_towers.json), so a text-only start
builds none of them; none takes the checkpoint's quantization (sized in the model dtype).
"""

from __future__ import annotations

from ..errors import ConfigError
from .adapters import _int, _with, _with_tower, build_spec, register, text_config
from .adapters_glm import _glm4, _glm4_moe, _glm4v_vision
from .adapters_vision_wrappers import _int64_buffer, _tower, _vision, _vit_parts
from .spec import ModelSpec, MultimodalSpec, Tensor

_GLM4V_ARCHS = ("Glm4vForConditionalGeneration", "Glm4vMoeForConditionalGeneration")


# ----------------------------------------------------------------------------- GLM-4.6V / GLMGA (transformers types)


@register("glm46v", "glmga")
def _glm46v(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = dict(text_config(outer))
    if text is outer or not text:
        raise ConfigError("config", f"{outer.get('model_type')} config lacks text_config")
    moe = text.get("model_type") == "glm4v_moe_text" or bool(text.get("n_routed_experts"))
    native = _GLM4V_ARCHS[1] if moe else _GLM4V_ARCHS[0]
    archs = list(outer.get("architectures") or [native])
    # vLLM's with_hf_config puts the wrapper's tie_word_embeddings on the text config (Glm46VConfig: False).
    text["tie_word_embeddings"] = bool(outer.get("tie_word_embeddings", False))
    routed = {**outer, "architectures": archs}
    inner = (_glm4_moe if moe else _glm4)(text, routed, name)
    notes = inner.notes
    if archs[0] not in _GLM4V_ARCHS:
        notes += (f"vLLM 0.33 registers no {archs[0]}; it serves GLM-4.6V as {native} (models/glm4_1v.py), whose "
                  "weights these are; with this architecture it would try its Transformers backend instead",)
    vis = outer.get("vision_config")
    if not isinstance(vis, dict) or not vis:
        return _with(inner, model_type=str(outer.get("model_type")), notes=notes)
    extra, mm, rope = _glm4v_vision(vis)
    return _with(inner, extra=inner.extra + extra, multimodal=mm, rope_caches=inner.rope_caches + rope,
                 model_type=str(outer.get("model_type")), notes=notes)


# ----------------------------------------------------------------------------- PaddleOCR-VL


def _paddle_text(outer: dict) -> dict:
    """The text fields as vLLM's PaddleOCRVLForConditionalGeneration sees them: text_config folded onto the top
    level, except model_type, architectures and tie_word_embeddings, which stay the wrapper's."""
    text = {k: v for k, v in outer.items() if k not in ("text_config", "vision_config", "architectures")}
    nested = outer.get("text_config")
    if isinstance(nested, dict):
        text.update({k: v for k, v in nested.items() if k not in ("model_type", "architectures",
                                                                  "tie_word_embeddings")})
    # PaddleOCRVLConfig's own default is True; the published configs say false (and ship an lm_head).
    tie = outer.get("tie_word_embeddings")
    text["tie_word_embeddings"] = True if tie is None else bool(tie)
    text["model_type"] = "ernie4_5"
    text["architectures"] = ["Ernie4_5ForCausalLM"]
    return text


@register("paddleocr_vl")
def _paddleocr_vl(cfg: dict, outer: dict, name: str) -> ModelSpec:
    inner = build_spec(_paddle_text(outer), name)
    vis = _vision(outer)
    h, inter = _int(vis, "hidden_size", default=1152), _int(vis, "intermediate_size", default=4304)
    n, heads = _int(vis, "num_hidden_layers", default=27), _int(vis, "num_attention_heads", default=16)
    patch, ch = _int(vis, "patch_size", default=14), _int(vis, "num_channels", default=3)
    positions = (_int(vis, "image_size", default=384) // patch) ** 2
    column, row, whole = _vit_parts(h, inter, n)
    whole += ch * patch * patch * h + h + positions * h + 2 * h  # patch Conv2d + bias, position table, post LN
    p = "visual.vision_model"
    rot = (h // heads) // 2  # SigLIPRotaryEmbedding(head_dim // 2): arange(0, dim, 2) float32 entries
    tower = _tower(p, column, row, whole) + (
        _int64_buffer(p + ".embeddings.position_ids", positions),
        Tensor(p + ".encoder.rotary_pos_emb.inv_freq", "vision", ((rot + 1) // 2,), dtype="float32",
               in_checkpoint=False))
    th, merged = inner.hidden_size, 4 * h  # Projector.merge_kernel_size is a fixed (2, 2)
    proj_n = 2 * h + merged * merged + merged + merged * th + th  # pre_norm, linear_1, linear_2 (all biased)
    proj = (Tensor("mlp_AR", "projector", (proj_n,)),)
    # tokens_per_item: the processor's max_pixels 1003520 over 28 x 28 pixels per merged token.
    mm = MultimodalSpec(column + row + whole + proj_n, 1280, th, tp_heads=heads)
    return _with_tower(inner, {**outer, "architectures": outer.get("architectures")
                               or ["PaddleOCRVLForConditionalGeneration"]}, tower + proj, mm)


# ----------------------------------------------------------------------------- LightOnOCR


def _feature_layers(outer: dict, n: int) -> int:
    """vLLM's Mistral3 builds the Pixtral encoder only up to the deepest vision_feature_layer it reads."""
    feat = outer.get("vision_feature_layer", -1)
    feats = feat if isinstance(feat, list) else [feat]
    used = max(int(f) + n + 1 if int(f) < 0 else int(f) for f in feats)
    if not 0 < used <= n:
        raise ConfigError("vision_feature_layer", f"layer {feat} is outside the encoder's {n} layers")
    return used


@register("lighton_ocr")
def _lighton_ocr(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = dict(outer.get("text_config") or {})
    if not text:
        raise ConfigError("config", "LightOnOCR config lacks text_config")
    text.setdefault("model_type", "qwen3")
    tie = outer.get("tie_word_embeddings")
    text["tie_word_embeddings"] = True if tie is None else bool(tie)
    # The text config's own architectures (never the wrapper's, which would route back here).
    text["architectures"] = text.get("architectures") or None
    inner = build_spec(text, name)
    vis = _vision(outer)
    if (vis.get("model_type") or "pixtral") != "pixtral":
        raise ConfigError("vision_config.model_type", "vLLM 0.33's LightOnOCR builds only a Pixtral encoder",
                          accepted=["pixtral"])
    h, heads = _int(vis, "hidden_size", default=1024), _int(vis, "num_attention_heads", default=16)
    inter = _int(vis, "intermediate_size", default=4096)
    patch, ch = _int(vis, "patch_size", default=14), _int(vis, "num_channels", default=3)
    n = _feature_layers(outer, _int(vis, "num_hidden_layers", default=24))
    column = n * (3 * h * h + 2 * inter * h)  # qkv, gate_up (no biases)
    row = n * (h * h + inter * h)  # o_proj, down_proj
    whole = n * 2 * h + ch * patch * patch * h + h  # attention_norm + ffn_norm, patch Conv2d, ln_pre
    hd = _int(vis, "head_dim", default=h // heads)
    tower = _tower("vision_tower", column, row, whole) + (
        # transformers >= 5.17's axial rotary: inv_freq and original_inv_freq, head_dim / 2 float32 each.
        Tensor("vision_tower.patch_positional_embedding.inv_freq", "vision", (2 * (hd // 2),), dtype="float32",
               in_checkpoint=False),)
    th = inner.hidden_size
    merge = _int(outer, "spatial_merge_size", default=2)
    bias = bool(outer.get("multimodal_projector_bias", False))
    p = "multi_modal_projector"
    proj = (Tensor(p + ".replicated", "projector", (h + h * merge * merge * h + (th if bias else 0),)),
            Tensor(p + ".linear_1", "projector", (th * h + (th if bias else 0),), "column"),
            Tensor(p + ".linear_2.weight", "projector", (th, th), "row"))
    params = column + row + whole + sum(t.numel for t in proj)
    side = _int(vis, "image_size", default=1540) // (patch * merge)
    mm = MultimodalSpec(params, side * side, th, tp_heads=heads)
    return _with_tower(inner, {**outer, "model_type": "lighton_ocr", "architectures": outer.get("architectures")
                               or ["LightOnOCRForConditionalGeneration"]}, tower + proj, mm)
