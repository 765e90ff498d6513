"""NVIDIA Nemotron Nano VL v2 (NemotronH_Nano_VL_V2) as vLLM 0.33 builds it
(vllm/model_executor/models/nano_nemotron_vl.py over radio.py and intern_vit.py).

Published configs (nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-BF16 and its FP8 / NVFP4 exports) carry model_type
"NemotronH_Nano_VL_V2": a wrapper whose llm_config is a Nemotron-H hybrid (Mamba-2 / attention / ReLU^2 MLP
blocks, transformers' nemotron_h) and whose vision_config is NVIDIA's remote RADIO config, the ViT named in
vision_config.args["model"].

What the wrapper class builds, beside the language model (language_model, the NemotronHForCausalLM of llm_config,
sized here by gpuplan's nemotron_h adapter), all inside _mark_tower_model for image, video and audio (so a
text-only start-up builds none of it):
- vision_model: vLLM's own RADIO encoder (RadioModel, not the checkpoint's remote code). Its ViT dimensions come
  from a fixed table keyed by the timm name (vit_huge_patch16_224: width 1280, 32 blocks, 16 heads, MLP 5120;
  transformers_utils/configs/radio.py). It holds:
  * a bias-free linear patch embedder, 3 * patch^2 -> width, and with video_temporal_patch_size T > 1 a second,
    video one, 3 * T * patch^2 -> width;
  * absolute positions for the largest grid, (round(cpe_max_size / patch))^2 x width (cpe_max_size 2048 by
    default: a 128 x 128 table for patch 16);
  * the class / register tokens: one class token per distinct teacher when cls_token_per_teacher (else one),
    padded with registers up to a multiple of register_multiple, all one (tokens x width) parameter;
  * the blocks: LayerNorms (weight and bias) before attention and MLP, a fused biased qkv, a biased output
    projection, a biased fc1 / GELU / biased fc2, and the two layer-scale vectors ls1 / ls2 (built as parameters;
    the loader skips their checkpoint entries, so they stay at initializer_factor).
  No final norm, no summary / feature adaptor heads: vLLM builds only the patch generator and the blocks, reads
  the patch features, and keeps the teacher summary indices as a small int64 buffer (not a parameter).
  Under tensor parallelism the qkv and fc1 weights and biases, and the proj / fc2 weights, are split (16 heads
  over TP; a TP that does not divide them keeps attention whole but still splits the MLP); norms, the row-parallel
  biases, layer scales, the embedders, positions and class tokens stay whole on every rank. The class does not
  support --mm-encoder-tp-mode data, so that is the only layout.
- vision_final_layernorm: a LayerNorm of the ViT width, only when the text config has MTP layers
  (num_nextn_predict_layers > 0).
- mlp1: the projector after the 2x pixel shuffle (downsample_ratio 0.5 stacks 4 patches): an RMSNorm of
  4 * vit_hidden_size, a bias-free Linear to projector_hidden_size, ReLU^2, and a bias-free Linear to the text
  width; plain torch modules, whole on every rank.
- sound_encoder (Parakeet encoder + projection) when the config has a sound_config (the Omni checkpoints,
  model_type NemotronH_*_Omni_Reasoning_V3): transformers' ParakeetEncoder and a ReLU^2 projection, whole on every
  rank; sized in adapters_nemotron_omni.py.
Everything in the tower is cast to the language model's dtype.

KV cache: only the language model's; vLLM plans it from text_config exactly as for NemotronHForCausalLM
(attention layers in one FullAttentionSpec group, Mamba layers as MambaSpec states). The SSM state dtype is what
NemotronHForCausalLMConfig's hook picks, which NemotronHNanoVLV2Config applies to the text config from 0.18: the
text config's mamba_ssm_cache_dtype, else float16 until 0.19 and float32 from 0.20. Before 0.18, and for the omni
architecture names (which no release maps to a hook), the model dtype.

Llama_Nemotron_Nano_VL (nemotron_vl.py) is not modelled here: its vision tower is the checkpoint's own remote
code (AutoModel.from_config with trust_remote_code), which casts itself to args["dtype"] (float32 when absent) and
may add adaptor heads, none of which gpuplan can read without that code.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from .adapters import _int, _with, _with_tower, build_spec, register
from .spec import ModelSpec, MultimodalSpec, Tensor

# transformers_utils/configs/radio.py VIT_TIMM_DIM_BY_NAME: (width, blocks, heads, MLP width)
VIT_DIMS = {
    "vit_small_patch16_224": (384, 12, 6, 1536),
    "vit_base_patch16_224": (768, 12, 12, 3072),
    "vit_large_patch16_224": (1024, 24, 16, 4096),
    "vit_huge_patch16_224": (1280, 32, 16, 5120),
    "vit_so400m_patch16_224": (1152, 27, 16, 4304),
}
ARCH = "NemotronH_Nano_VL_V2"
# The Omni checkpoints' model_types (vLLM's registry maps their architectures to the same NemotronH_Nano_VL_V2 class).
OMNI_MODEL_TYPES = ("NemotronH_Nano_Omni_Reasoning_V3", "NemotronH_Omni_Reasoning_V3",
                    "NemotronH_Super_Omni_Reasoning_V3")


def radio_cls_tokens(args: dict) -> int:
    """Class plus register tokens of vLLM's ClsToken: one class token per distinct teacher name when
    cls_token_per_teacher, else one, then register_multiple - (tokens % register_multiple) registers."""
    teachers = args.get("teachers") or []
    names = {t.get("name") for t in teachers if isinstance(t, dict)}
    cls = len(names) if args.get("cls_token_per_teacher") else 1
    multiple = args.get("register_multiple")
    regs = int(multiple) - cls % int(multiple) if multiple else 0
    return cls + regs


def radio_tensors(vis: dict) -> tuple[tuple[Tensor, ...], int]:
    """vLLM's RadioModel as (what TP splits, what every rank keeps whole), and its ViT head count."""
    args = vis.get("args")
    if not isinstance(args, dict) or not args.get("model"):
        raise ConfigError("vision_config.args", "vLLM 0.33 builds the RADIO tower from vision_config.args['model'], "
                                                "which this config lacks")
    model = str(args["model"])
    if model not in VIT_DIMS:
        raise ConfigError("vision_config.args.model", f"vLLM 0.33's RADIO knows no ViT {model!r}",
                          accepted=sorted(VIT_DIMS))
    width, blocks, heads, mlp = VIT_DIMS[model]
    patch = _int(vis, "patch_size", default=16)
    temporal = _int(vis, "video_temporal_patch_size", default=1)
    cpe = int(args.get("cpe_max_size") or 2048)
    grid = round(cpe / patch)  # max_img_size = round(cpe_max_size / patch) * patch, then per patch
    embed = 3 * patch * patch * width + (3 * temporal * patch * patch * width if temporal > 1 else 0)
    whole_once = embed + grid * grid * width + radio_cls_tokens(args) * width
    attention = (3 * width * width + 3 * width) + width * width  # qkv with its bias, proj
    mlp_split = (mlp * width + mlp) + width * mlp  # fc1 with its bias, fc2
    whole_block = 2 * 2 * width + width + width + 2 * width  # norm1/norm2 w+b, proj/fc2 biases, ls1/ls2
    # InternViT's attention (which RADIO reuses) turns its TP off when TP does not divide the heads; the MLP splits
    return ((Tensor("vision_model.radio_model.model.encoder.layers.attn", "vision", (blocks * attention,), "column",
                    split_if_tp_divides=heads),
             Tensor("vision_model.radio_model.model.encoder.layers.mlp", "vision", (blocks * mlp_split,), "column"),
             Tensor("vision_model.radio_model.model.encoder.layers.replicated", "vision",
                    (blocks * whole_block,)),
             Tensor("vision_model.radio_model.model.patch_generator", "vision", (whole_once,))), heads)


@register("NemotronH_Nano_VL_V2", *OMNI_MODEL_TYPES)
def _nano_nemotron_vl(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = dict(outer.get("llm_config") or outer.get("text_config") or {})
    if not text:
        raise ConfigError("config", "NemotronH_Nano_VL_V2 config lacks llm_config")
    text["model_type"] = "nemotron_h"
    inner = build_spec({**text, "architectures": ["NemotronHForCausalLM"]}, name)
    arch = (outer.get("architectures") or [ARCH])[0]
    if arch == ARCH:
        # NemotronHNanoVLV2Config (vLLM 0.18+) applies Nemotron-H's SSM dtype hook to the text config: its
        # mamba_ssm_cache_dtype, else float16 until 0.19 and float32 from 0.20; before 0.18 no hook (model dtype).
        inner = replace(inner, mamba_ssm_dtype_defaults=(("0.18", "float16"), ("0.20", "float32")),
                        mamba_ssm_dtype_from="0.18")
    else:
        # MODELS_CONFIG_MAP is keyed by the architecture name, and no release lists the omni names: no hook runs,
        # so cache_config's "auto" (the model dtype) stands whatever the text config says.
        inner = replace(inner, mamba_ssm_dtype=None, mamba_ssm_dtype_defaults=(), mamba_ssm_dtype_from=None)
    vis = outer.get("vision_config") or {}
    if not isinstance(vis, dict) or not vis:
        raise ConfigError("vision_config", "NemotronH_Nano_VL_V2 config lacks vision_config")
    tower, heads = radio_tensors(vis)
    vit = _int(outer, "vit_hidden_size", default=1280)
    th = inner.hidden_size
    shuffle = round(1 / float(outer.get("downsample_ratio") or 0.5)) ** 2
    ph = _int(outer, "projector_hidden_size", default=th)
    proj = (Tensor("mlp1.0.weight", "projector", (vit * shuffle,)),
            Tensor("mlp1.1.weight", "projector", (ph, vit * shuffle)),
            Tensor("mlp1.3.weight", "projector", (th, ph)))
    if int(text.get("num_nextn_predict_layers") or 0) > 0:
        proj += (Tensor("vision_final_layernorm", "projector", (2 * vit,)),)
    params = sum(t.numel for t in tower + proj)
    sound = outer.get("sound_config")
    if sound:
        if not isinstance(sound, dict):
            raise ConfigError("sound_config", "sound_config must be a JSON object")
        from .adapters_nemotron_omni import parakeet_tensors  # imported here: that module imports .adapters

        audio, audio_params = parakeet_tensors(sound, inner.hidden_size)
        proj, params = proj + audio, params + audio_params
    # One 512 x 512 tile: (512 / 16)^2 patches, pixel-shuffled 4 to 1 -> 256 tokens (num_image_token).
    side = _int(outer, "force_image_size", default=512) // _int(outer, "patch_size", default=16)
    mm = MultimodalSpec(params, side * side // shuffle, th)
    spec = _with_tower(inner, outer, tower + proj, mm)
    # The text config's MTP module drafts only where SpeculativeConfig promotes the wrapper's text_config to
    # nemotron_h_mtp (config/speculative.py): NemotronH_Super_Omni_Reasoning_V3 from 0.20, NemotronH_Omni_Reasoning_V3
    # from 0.29; never NemotronH_Nano_Omni_Reasoning_V3 or NemotronH_Nano_VL_V2.
    since = _MTP_SINCE.get(arch)
    mtp = replace(inner.mtp, since=since) if inner.mtp and since else None
    return _with(spec, architecture=arch, mtp=mtp)


_MTP_SINCE = {"NemotronH_Super_Omni_Reasoning_V3": "0.20", "NemotronH_Omni_Reasoning_V3": "0.29"}
