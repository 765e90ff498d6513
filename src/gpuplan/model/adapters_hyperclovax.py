"""NAVER HyperCLOVA X SEED as vLLM 0.33 builds it: the text model (hyperclovax, HyperCLOVAXForCausalLM,
vllm/model_executor/models/hyperclovax.py) and the vision-language wrapper (HCXVisionV2ForCausalLM,
hyperclovax_vision_v2.py; published configs say model_type "vlm", transformers 5.x calls it hyperclovax_vision_v2).

Text model. A Llama-shaped decoder: fused qkv and o projections (biases only with attention_bias), a gated SiLU MLP
(biases only with mlp_bias), RMSNorms before attention and before the MLP, a final RMSNorm, an LM head that is the
embedding when tie_word_embeddings is set. What it adds over Llama:
- Peri-layer normalisation: with use_post_norm (transformers' default true) each layer holds two more RMSNorms of
  hidden width, applied to the attention output and to the MLP output before the residual add;
- muP scalars (embedding_multiplier, residual_multiplier, attention_multiplier as the softmax scale,
  logits_scaling): plain floats on the config, no parameters and no buffers;
- head_dim from the config (transformers fills hidden / heads when absent).
Every layer is full attention with num_key_value_heads K/V heads of head_dim, so vLLM plans one FullAttentionSpec
group; the one rotary cache spans max_position_embeddings x head_dim.

Vision wrapper. The language model is whatever text_config names (HyperCLOVAX, or Llama in older exports), built
under language_model. Beside it vLLM builds, inside _mark_tower_model for image and video:
- `visual`: vLLM's Qwen2.5-VL vision transformer from vision_config (patch Conv3d without bias, blocks of RMSNorms,
  biased fused qkv, biased output projection, biased gated MLP; the patch merger), sized here by the shared
  Qwen2.5-VL builder. Under tensor parallelism its qkv, gate_up, the merger's first linear and the weights of
  the row-parallel proj / down_proj / merger output are split; the patch embedding, norms and the row-parallel
  biases stay whole on every rank. The class does not support --mm-encoder-tp-mode data (no
  supports_encoder_tp_data), so the tower is always split that way;
- `mm_projector`: a plain torch Linear from out_hidden_size to the text width with a bias, whole on every rank.
The checkpoint's discrete_vision_model weights (Omni exports) are dropped by the loader, not built.
"""

from __future__ import annotations

from ..errors import ConfigError
from .adapters import (
    _int,
    _llama_like,
    _qwen_vl_vision_params,
    _with,
    build_spec,
    register,
)
from .spec import ModelSpec, MultimodalSpec, Tensor

# The only class vLLM 0.33 registers for the vision-language checkpoints (registry.py).
VLM_ARCH = "HCXVisionV2ForCausalLM"


@register("hyperclovax")
def _hyperclovax(cfg: dict, outer: dict, name: str) -> ModelSpec:
    if str(cfg.get("hidden_act") or "silu") != "silu":
        # HyperCLOVAXMLP raises for anything but SiLU.
        raise ConfigError("config", f"vLLM's HyperCLOVAX MLP only supports hidden_act silu, got "
                                    f"{cfg.get('hidden_act')!r}", accepted=["silu"])
    post_norm = cfg.get("use_post_norm")
    post_norm = True if post_norm is None else bool(post_norm)  # transformers' HyperCLOVAXConfig default
    # Llama's layer (q/k/v and o biases with attention_bias, MLP biases with mlp_bias) plus, with use_post_norm,
    # the two peri-layer norms on the attention and MLP outputs.
    return _llama_like(cfg, outer, name, qkv_bias=bool(cfg.get("attention_bias")), extra_norms=2 if post_norm else 0)


def _tower_tensors(vis: dict, text_hidden: int) -> tuple[Tensor, ...]:
    """vLLM's Qwen2.5-VL tower split into what TP divides and what every rank keeps whole; the total is the shared
    builder's count (equal to transformers')."""
    total = _qwen_vl_vision_params(vis, text_hidden, True)
    h = _int(vis, "hidden_size", default=1280)
    depth = _int(vis, "depth", default=32)
    out = _int(vis, "out_hidden_size", default=text_hidden)
    patch = (_int(vis, "in_channels", default=3) * _int(vis, "temporal_patch_size", default=2)
             * _int(vis, "patch_size", default=14) ** 2 * h)
    # per block: norm1, norm2 and the row-parallel proj / down_proj biases; the merger's ln_q and its output bias
    whole = patch + depth * 4 * h + h + out
    return (Tensor("visual", "vision", (total - whole,), "column"),
            Tensor("visual.replicated", "vision", (whole,), "replicated"))


def _hcx_vision_v2(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = dict(outer.get("text_config") or {})
    if not text:
        raise ConfigError("config", f"{outer.get('model_type')} config lacks text_config")
    text.setdefault("model_type", "hyperclovax")
    inner = build_spec(text, name)
    vis = outer.get("vision_config") or {}
    if not isinstance(vis, dict) or not vis:
        raise ConfigError("config", f"{outer.get('model_type')} config lacks vision_config")
    th = inner.hidden_size
    tower = _tower_tensors(vis, th)
    out = _int(vis, "out_hidden_size", default=_int(vis, "hidden_size", default=1280))
    # nn.Linear(out_hidden_size, text hidden) with its bias, not a vLLM parallel layer: whole on every rank.
    proj = (Tensor("mm_projector.weight", "projector", (th, out)), Tensor("mm_projector.bias", "projector", (th,)))
    params = sum(t.numel for t in tower + proj)
    # The dummy image is vision_config.image_size square (448 when absent): (448 / 14)^2 / 2^2 = 256 tokens.
    side = _int(vis, "image_size", default=448) // _int(vis, "patch_size", default=14)
    mm = MultimodalSpec(params, side * side // _int(vis, "spatial_merge_size", default=2) ** 2, th,
                        tp_heads=_int(vis, "num_heads", default=16))
    return _with(inner, extra=inner.extra + tower + proj, multimodal=mm, model_type=str(outer.get("model_type")),
                 architecture=VLM_ARCH)


@register("hyperclovax_vision_v2")
def _hyperclovax_vision_v2(cfg: dict, outer: dict, name: str) -> ModelSpec:
    return _hcx_vision_v2(cfg, outer, name)


@register("vlm")
def _vlm(cfg: dict, outer: dict, name: str) -> ModelSpec:
    # "vlm" is a generic name: only HyperCLOVAX's remote-code checkpoints are known to use it.
    arch = (outer.get("architectures") or [""])[0]
    if arch != VLM_ARCH:
        raise ConfigError("config", f"model_type 'vlm' is only known as HyperCLOVAX-Vision-V2 ({VLM_ARCH}); "
                                    f"architectures[0] is {arch!r}", accepted=[VLM_ARCH])
    return _hcx_vision_v2(cfg, outer, name)
