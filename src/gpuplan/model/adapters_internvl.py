"""InternVL 2.5 / 3 / 3.5 and Intern-S1 as vLLM 0.33 builds them: the language model of the nested text config plus
an InternViT vision encoder and a pixel-shuffle MLP projector.

Three config types reach two vLLM classes (model_executor/models/registry.py):
- `internvl_chat` (OpenGVLab's remote-code InternVLChatModel; language model in `llm_config`) -> internvl.py
  InternVLChatModel, whose encoder is intern_vit.py's InternVisionModel under `vision_model`, projector `mlp1`;
- `internvl` (transformers' InternVLForConditionalGeneration, the "-hf" exports) and `interns1`
  (InternS1ForConditionalGeneration) -> interns1.py InternS1ForConditionalGeneration, encoder interns1_vit.py's
  InternS1VisionModel under `vision_tower`, projector `multi_modal_projector`.
Both build the language model from the text config with vLLM's own class for it, so gpuplan sizes it with the
adapter of that model_type (qwen2, qwen3, qwen3_moe, internlm2, llama, gpt_oss ...). Both build the encoder and the
projector inside _mark_tower_model for image and video (dropped under --language-model-only).

InternVisionModel (internvl_chat). Patch embedding: a 3-channel conv of patch_size with bias, a class token and
(image_size / patch)^2 + 1 position embeddings. Each layer: fused qkv (bias with qkv_bias), RMSNorms on q and k of
the full width with qk_normalization, an output projection with bias, a two-linear MLP with biases, two norms
(rms_norm: weight; layer_norm: weight and bias) and two layer-scale vectors. No final norm. vLLM builds only the
layers up to select_layer (num_hidden_layers + select_layer + 1 when negative, select_layer + 1 otherwise); the
published checkpoints say -1, i.e. all of them. Tensor parallelism: the MLP's fc1 is column-parallel and fc2
row-parallel (its bias whole on every rank) at every TP size; the attention (qkv column, proj row) is split only
when TP divides the heads, otherwise vLLM turns the attention's TP off and every rank holds it whole (InternViT-6B's
25 heads at TP 2/4/8). Data-parallel encoder (--mm-encoder-tp-mode data) is supported: the whole tower on each rank.
The projector `mlp1`: LayerNorm over vit_hidden x (1/downsample_ratio)^2, Linear to the text width and Linear
text->text, both biased, plain torch modules: whole on every rank.

InternS1VisionModel (internvl / interns1). Same layer arithmetic with separate q/k/v linears (bias with
attention_bias), q/k RMSNorms with use_qk_norm, an output projection always biased, layer scales lambda_1/2, a
class token, a mask token only with use_mask_token, position embeddings only with
use_absolute_position_embeddings, a final LayerNorm only without use_mean_pooling. All num_hidden_layers are built
(no vision_feature_layer cut). Its attention linears are plain torch Linear, so they are whole on every rank at any
TP; the MLP is column/row parallel like InternViT's. The encoder is built without the quantization config, so the
tower stays in the model dtype under any quantization. The class does not declare --mm-encoder-tp-mode data support
(vllm_towers.json), so vLLM falls back to the weight split above. The projector matches mlp1.

InternS1Pro (interns1_pro) is a Qwen3-VL tower with its own MoE decoder and is not covered here.
"""

from __future__ import annotations

from ..errors import ConfigError
from .adapters import _int, _with_tower, build_spec, register
from .spec import ModelSpec, MultimodalSpec, Tensor
from .tower_linears import TOWER_QUANT, Tower


def _pair(v: object, default: int) -> tuple[int, int]:
    """An image / patch size given as one int or as [height, width]."""
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return int(v[0]), int(v[1])
    return (int(v), int(v)) if isinstance(v, int) and v > 0 else (default, default)


def _text(outer: dict, key: str, name: str) -> ModelSpec:
    """The language model of llm_config / text_config, through the adapter of its own model_type. vLLM 0.33 copies
    the wrapper's top-level tie_word_embeddings onto the text config, so an explicit top-level value wins."""
    text = outer.get(key)
    if not isinstance(text, dict) or not text:
        raise ConfigError("config", f"{outer.get('model_type')} config lacks {key}")
    text = dict(text)
    if "tie_word_embeddings" in outer:
        text["tie_word_embeddings"] = outer["tie_word_embeddings"]
    return build_spec(text, name)


def _common_layer(n: int, h: int, inter: int, norm: str, qk_norm: bool, ls: int, prefix: str) -> tuple[Tensor, ...]:
    """What every rank keeps whole in n encoder layers (norms, layer scales, q/k norms, row-parallel biases) and the
    MLP: fc1 column-parallel with its bias, fc2 row-parallel."""
    norm_numel = (1 if norm == "rms_norm" else 2) * h
    whole = n * (2 * norm_numel + ls * h + (2 * h if qk_norm else 0) + h)  # + fc2's bias
    return (Tensor(f"{prefix}.mlp.fc1.weight", "vision", (n * inter, h), "column"),
            Tensor(f"{prefix}.mlp.fc1.bias", "vision", (n * inter,), "column"),
            Tensor(f"{prefix}.mlp.fc2.weight", "vision", (n * h, inter), "row"),
            Tensor(f"{prefix}.norms_scales_biases", "vision", (whole,)))


def _intern_vit_linears(n: int, h: int, inter: int, heads: int, patch: int, image: int, norm: str, qk_norm: bool,
                        qkv_bias: bool, quant: tuple[str, ...]) -> tuple[Tensor, ...]:
    """InternVisionModel's n layers under vLLM's prefixes ("vision_model.encoder.layers.{j}.attn.qkv", ...). vLLM 0.33
    (internvl.py _init_vision_model, intern_vit.py) builds every layer's attn.qkv, attn.proj, mlp.fc1 and mlp.fc2 with
    the model's quant_config. qkv / proj are split only at TP sizes that divide the heads (else vLLM turns the
    attention's TP off); proj's and fc2's biases are whole on every rank (added after the reduce)."""
    t = Tower("vision_model")
    # embeddings: conv weight + bias (vLLM hard-codes 3 input channels), class token, positions
    t.whole += 3 * patch * patch * h + h + h + ((image // patch) ** 2 + 1) * h
    for j in range(n):
        pre = f"vision_model.encoder.layers.{j}."
        t.add(pre + "attn.qkv", 3 * h, h, bias=qkv_bias, split_if=heads, quant=quant)
        t.add(pre + "attn.proj", h, h, "row", bias=True, split_if=heads, quant=quant)
        t.add(pre + "mlp.fc1", inter, h, bias=True, quant=quant)
        t.add(pre + "mlp.fc2", h, inter, "row", bias=True, quant=quant)
        # two norms (RMSNorm: weight; LayerNorm: weight and bias), two layer scales, q/k norms over the full width
        t.whole += 2 * (1 if norm == "rms_norm" else 2) * h + 2 * h + (2 * h if qk_norm else 0)
    return t.tensors()


def _norm_type(vis: dict) -> str:
    norm = str(vis.get("norm_type") or "rms_norm")
    if norm not in ("rms_norm", "layer_norm"):
        raise ConfigError("vision_config", f"norm_type {norm!r}: vLLM's InternViT knows rms_norm and layer_norm",
                          accepted=["rms_norm", "layer_norm"])
    return norm


def _projector(vit_h: int, text_h: int, ratio: float, prefix: str) -> tuple[Tensor, ...]:
    wide = vit_h * int(1 / ratio) ** 2  # pixel shuffle folds (1/ratio)^2 patches into one vector
    return (Tensor(f"{prefix}.layer_norm", "projector", (2 * wide,)),
            Tensor(f"{prefix}.linear_1.weight", "projector", (text_h, wide)),
            Tensor(f"{prefix}.linear_2.weight", "projector", (text_h, text_h)),
            Tensor(f"{prefix}.biases", "projector", (2 * text_h,)))


def _mm(tensors: tuple[Tensor, ...], image: int, patch: int, ratio: float, text_h: int) -> MultimodalSpec:
    return MultimodalSpec(sum(t.numel for t in tensors), int((image // patch) ** 2 * ratio ** 2), text_h)


@register("internvl_chat")
def _internvl_chat(cfg: dict, outer: dict, name: str) -> ModelSpec:
    inner = _text(outer, "llm_config", name)
    vis = outer.get("vision_config")
    if not isinstance(vis, dict) or not vis:
        raise ConfigError("config", "internvl_chat config lacks vision_config")
    h = _int(vis, "hidden_size", default=3200)
    heads = _int(vis, "num_attention_heads", default=25)
    inter = _int(vis, "intermediate_size", default=12800)
    layers = _int(vis, "num_hidden_layers", default=48)
    select = int(outer.get("select_layer", -1))
    n = layers + select + 1 if select < 0 else select + 1  # InternVLChatModel._init_vision_model
    if not 0 < n <= layers:
        raise ConfigError("select_layer", f"select_layer {select} leaves {n} of {layers} vision layers")
    image, patch = _int(vis, "image_size", default=224), _int(vis, "patch_size", default=14)
    norm, qk_norm = _norm_type(vis), bool(vis.get("qk_normalization"))
    # Qianfan-OCR's _patch_quant_config adds every ViT Linear (and mlp1) to the ignored layers of an Fp8Config or an
    # online FP8 config (qianfan_ocr.py): its tower is quantized only by compressed-tensors and NVFP4 checkpoints.
    quant = ("compressed-tensors", "nvfp4") if outer.get("model_type") == "qianfan_ocr" else TOWER_QUANT
    tower = _intern_vit_linears(n, h, inter, heads, patch, image, norm, qk_norm, bool(vis.get("qkv_bias")), quant)
    th = inner.hidden_size
    ratio = float(outer.get("downsample_ratio") or 0.5)
    proj = _projector(h, th, ratio, "mlp1")
    # the dummy image is force_image_size square when set (InternVLChatModel.num_image_token)
    mm = _mm(tower + proj, int(outer.get("force_image_size") or image), patch, ratio, th)
    return _with_tower(inner, outer, tower + proj, mm)


def _interns1_wrapper(outer: dict, name: str) -> ModelSpec:
    inner = _text(outer, "text_config", name)
    vis = outer.get("vision_config")
    if not isinstance(vis, dict) or not vis:
        raise ConfigError("config", f"{outer.get('model_type')} config lacks vision_config")
    # transformers' InternVLVisionConfig defaults (InternViT-300M), which the remote InternS1VisionConfig shares
    h = _int(vis, "hidden_size", default=1024)
    inter = _int(vis, "intermediate_size", default=4096)
    n = _int(vis, "num_hidden_layers", default=24)  # InternS1ForConditionalGeneration builds every layer
    ch = _int(vis, "num_channels", default=3)
    image = _pair(vis.get("image_size"), 448)
    patch = _pair(vis.get("patch_size"), 14)
    norm = _norm_type({"norm_type": vis.get("norm_type") or "layer_norm"})
    qk_norm = bool(vis.get("use_qk_norm"))
    bias = bool(vis.get("attention_bias"))
    num_patches = (image[0] // patch[0]) * (image[1] // patch[1])
    emb = (ch * patch[0] * patch[1] * h + h + h  # patch conv weight + bias, cls token
           + (h if vis.get("use_mask_token") else 0)
           + ((num_patches + 1) * h if vis.get("use_absolute_position_embeddings", True) else 0)
           + (0 if vis.get("use_mean_pooling", True) else 2 * h))  # final LayerNorm only without mean pooling
    p = "vision_tower.encoder.layer"
    common = _common_layer(n, h, inter, norm, qk_norm, 2, p)
    # q/k/v and the output projection (always biased) are plain nn.Linear: whole on every rank at any TP
    attention = n * (4 * h * h + (3 * h if bias else 0) + h)
    tower = (Tensor("vision_tower.embeddings", "vision", (emb,)),
             Tensor(f"{p}.attention", "vision", (attention,))) + common
    th = inner.hidden_size
    ratio = float(outer.get("downsample_ratio") or 0.5)
    proj = _projector(h, th, ratio, "multi_modal_projector")
    return _with_tower(inner, outer, tower + proj, _mm(tower + proj, image[0], patch[0], ratio, th))


@register("internvl")
def _internvl_hf(cfg: dict, outer: dict, name: str) -> ModelSpec:
    return _interns1_wrapper(outer, name)


@register("interns1")
def _interns1(cfg: dict, outer: dict, name: str) -> ModelSpec:
    return _interns1_wrapper(outer, name)


# InternVLChatModel attributes that transformers' QianfanOCRConfig does not define: vLLM 0.33 reads them straight
# off the config (internvl.py __init__ / _init_vision_model), so a config without them stops vLLM with an
# AttributeError; Qianfan-OCR's published config.json carries them from its InternVL-chat lineage.
_QIANFAN_CHAT_KEYS = ("select_layer", "force_image_size", "ps_version")


@register("qianfan_ocr")
def _qianfan_ocr(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Qianfan-OCR (QianfanOCRForConditionalGeneration, vLLM 0.33 qianfan_ocr.py): vLLM's InternVLChatModel (InternViT
    under vision_model, mlp1, the Qwen3 text model) over transformers' QianfanOCRConfig, whose vision_config uses the
    -hf field names; _add_intern_vit_fields maps them onto InternViT's before the tower is built: image_size and
    patch_size lists to their first entry, qkv_bias from attention_bias, qk_normalization from use_qk_norm
    (initializer_factor only seeds the layer scales). The text model comes from text_config, not llm_config."""
    missing = [k for k in _QIANFAN_CHAT_KEYS if k not in outer]
    if missing:
        raise ConfigError("config", f"qianfan_ocr config lacks {', '.join(missing)}: vLLM 0.33 builds it as "
                          "InternVLChatModel, which reads them from the config and fails without them",
                          accepted=[f"a config with {', '.join(_QIANFAN_CHAT_KEYS)}"])
    vis = dict(outer.get("vision_config") or {})
    for key, default in (("image_size", 448), ("patch_size", 14)):
        vis[key] = _pair(vis.get(key), default)[0]
    vis.setdefault("qkv_bias", bool(vis.get("attention_bias", True)))
    vis.setdefault("qk_normalization", bool(vis.get("use_qk_norm")))
    vis.setdefault("norm_type", "layer_norm")  # QianfanOCRVisionConfig's default; InternViT's own is rms_norm
    for key, default in (("hidden_size", 1024), ("num_attention_heads", 16), ("intermediate_size", 4096),
                         ("num_hidden_layers", 24)):
        vis.setdefault(key, default)  # QianfanOCRVisionConfig's defaults (InternViT-300M), not InternViT-6B's
    # QianfanOCRConfig's class default is tie_word_embeddings False, and vLLM copies the wrapper's value onto the
    # text config (config/vllm.py with_hf_config) even when config.json names none.
    chat = {**outer, "llm_config": outer.get("text_config"), "vision_config": vis,
            "tie_word_embeddings": bool(outer.get("tie_word_embeddings", False))}
    return _internvl_chat(cfg, chat, name)
