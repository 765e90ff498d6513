"""Qwen2.5-Omni and Qwen3-Omni as vLLM 0.33 serves them: the thinker only.

vLLM maps Qwen2_5OmniModel / Qwen2_5OmniForConditionalGeneration to Qwen2_5OmniThinkerForConditionalGeneration
(model_executor/models/qwen2_5_omni_thinker.py) and Qwen3OmniMoeForConditionalGeneration to
Qwen3OmniMoeThinkerForConditionalGeneration (qwen3_omni_moe_thinker.py). Both read config.json's thinker_config; the
talker and the speech decoder (token2wav / code2wav) are never built: their weight mapper sends "talker." and
"token2wav." / "code2wav." to None, so the loader drops those checkpoint tensors.

Qwen2.5-Omni thinker:
- language model: vLLM's Qwen2ForCausalLM over thinker_config.text_config (a Qwen2.5 decoder: biased q/k/v, full
  attention everywhere, untied head unless the text config ties it). Its rotary embedding is multimodal (the text
  config's mrope_section), so vLLM's MRotaryEmbedding caches 4 x max_position_embeddings positions;
- audio_tower: transformers' own Qwen2_5OmniAudioEncoder, imported and built as is (plain torch Linear / Conv1d /
  LayerNorm, no vLLM parallel layers): whole on every TP rank. Two Conv1d, the audio_bos_eos_token embedding,
  Whisper-style layers (k_proj without bias), ln_post and proj to the text width; a float32 sinusoid table of
  max_source_positions x d_model is a non-persistent buffer that lands on the GPU with the module;
- visual: vLLM's Qwen2_5_VisionTransformer (the Qwen2.5-VL tower): qkv, gate_up and the merger's first linear are
  column-parallel, proj / down_proj / the merger's second linear row-parallel, so every weight matrix is split and
  only the patch Conv3d, the RMSNorms and the row-parallel biases are whole; every Linear takes the model's
  quant_config (the audio tower, plain torch, never does). Its attention divides the vision heads over TP with no
  fallback. A rotary cache of 8192 positions over half of each vision head is built with it.

Qwen3-Omni thinker:
- language model: Qwen3MoeLLMForCausalLM (a Qwen3MoeModel: q/k norms, 128 experts, no shared expert), with the
  default mrope_positions_factor of 4 (the Omni class does not pass the Qwen3-VL factor);
- audio_tower: vLLM's own Qwen3OmniMoeAudioEncoder: three Conv2d downsamplers and conv_out / proj1 / proj2 kept whole
  (Conv2d, ReplicatedLinear), and per layer a fused biased qkv and fc1 (column) and out_proj / fc2 (row) split over
  TP only when TP divides the encoder's attention heads (20): at any other TP size (8) vLLM builds them whole;
  the float32 sinusoid table as above;
- visual: Qwen3Omni_VisionTransformer, laid out like Qwen3-VL's tower (biased Conv3d, a learned position table of
  (image_size / patch_size)^2 rows, LayerNorm blocks, the merger and one post-shuffle-norm merger per deepstack
  index; every block and merger Linear built with the model's quant_config, the audio encoder's Linears without
  it), with its own 8192-position rotary cache over half a head; one [max_num_batched_tokens, text hidden]
  buffer per deepstack level is allocated beside it.

Under --language-model-only, or every modality's prompt limit at 0, both classes build neither tower
(_mark_tower_model, data/vllm_towers.json), nor, from vLLM 0.28 (use_deepstack checks for the missing tower),
Qwen3-Omni's deepstack buffers.
"""

from __future__ import annotations

from ..errors import ConfigError
from .adapters import (
    _int,
    _qwen2,
    _qwen3_moe,
    _qwen_vl_encoder,
    _qwen_vl_tower_tensors,
    _qwen_vl_vision_params,
    _with,
    register,
)
from .adapters_qwen_next_gen import _qwen3_vision, _qwen3_vision_linears
from .spec import ModelSpec, MultimodalSpec, RopeCache, Tensor, TokenBuffer

VISION_ROPE_POSITIONS = 8192  # both towers: get_rope(max_position=8192, partial_rotary_factor=0.5)


def _thinker(outer: dict) -> dict:
    """The thinker config: config.json's thinker_config, or the config itself when it is a thinker config."""
    th = outer.get("thinker_config")
    if isinstance(th, dict):
        return th
    if str(outer.get("model_type") or "").endswith("_thinker"):
        return outer
    raise ConfigError("config", f"{outer.get('model_type')} config lacks thinker_config")


def _outer(outer: dict, text_type: str) -> dict:
    """What the text adapter reads of the wrapper: architectures and a checkpoint's quantization_config."""
    return {"architectures": outer.get("architectures"), "model_type": text_type,
            "quantization_config": outer.get("quantization_config")}


def _sub(th: dict, key: str, outer: dict) -> dict:
    v = th.get(key)
    if not isinstance(v, dict) or not v:
        raise ConfigError("config", f"{outer.get('model_type')} thinker_config lacks {key}")
    return v


def _arch(outer: dict, default: str) -> str:
    return (outer.get("architectures") or [default])[0] or default


def _sinusoids(aud: dict) -> Tensor:
    # SinusoidsPositionEmbedding: a float32 [max_source_positions, d_model] non-persistent buffer (not a parameter).
    return Tensor("audio_tower.positional_embedding", "vision",
                  (_int(aud, "max_source_positions", default=1500), _int(aud, "d_model", default=1280)),
                  dtype="float32", in_checkpoint=False)


# ----------------------------------------------------------------------------- Qwen2.5-Omni


def qwen2_5_omni_audio_params(aud: dict) -> int:
    """transformers' Qwen2_5OmniAudioEncoder, which vLLM builds unchanged."""
    d, n = _int(aud, "d_model", default=1280), _int(aud, "encoder_layers", default=32)
    ffn, mel = _int(aud, "encoder_ffn_dim", default=5120), _int(aud, "num_mel_bins", default=128)
    out = _int(aud, "output_dim", default=3584)
    convs = (mel * d * 3 + d) + (d * d * 3 + d)  # conv1 (kernel 3), conv2 (kernel 3, stride 2), both biased
    # q/v/out_proj with biases, k_proj without; two LayerNorms; fc1 / fc2 with biases
    layer = 4 * d * d + 3 * d + 4 * d + 2 * d * ffn + ffn + d
    return convs + 2 * out + n * layer + 2 * d + d * out + out  # + audio_bos_eos_token, ln_post, proj


def _qwen25_vision(vis: dict, th: int) -> tuple[Tensor, ...]:
    """Qwen2_5_VisionTransformer split as vLLM splits it: every weight matrix over TP; the patch Conv3d (no bias),
    norm1 / norm2 per block, the row-parallel proj and down_proj biases, the merger's ln_q and output bias whole.
    qwen2_5_omni_thinker.py builds it with the model's quant_config under the prefix "visual" (the checkpoint's
    "thinker.visual." renamed by hf_to_vllm_mapper), exactly as Qwen2.5-VL does, so it is Qwen2.5-VL's per-Linear
    tower (tower_linears.Tower): same parameters, each Linear quantized where vLLM quantizes it."""
    linears = _qwen_vl_tower_tensors(vis, th, True)
    if linears:
        return linears
    total = _qwen_vl_vision_params(vis, th, True)
    h, depth = _int(vis, "hidden_size", "embed_dim", default=1280), _int(vis, "depth", default=32)
    out = _int(vis, "out_hidden_size", default=th)
    patch = (_int(vis, "in_channels", default=3) * _int(vis, "temporal_patch_size", default=2)
             * _int(vis, "patch_size", default=14) ** 2 * h)
    whole = patch + depth * 4 * h + h + out
    return (Tensor("visual", "vision", (total - whole,), "column"),
            Tensor("visual.replicated", "vision", (whole,)))


@register("qwen2_5_omni", "qwen2_5_omni_thinker")
def _qwen2_5_omni(cfg: dict, outer: dict, name: str) -> ModelSpec:
    th = _thinker(outer)
    text = dict(_sub(th, "text_config", outer))
    # transformers' Qwen2_5OmniTextConfig ties by default; vLLM's Qwen2ForCausalLM follows the text config.
    text.setdefault("tie_word_embeddings", True)
    text["model_type"] = "qwen2"
    text.setdefault("torch_dtype", th.get("torch_dtype") or th.get("dtype") or outer.get("torch_dtype")
                    or outer.get("dtype"))
    inner = _qwen2(text, _outer(outer, "qwen2"), name)
    aud, vis = _sub(th, "audio_config", outer), _sub(th, "vision_config", outer)
    # Qwen2.5-Omni configs name the vision width embed_dim and hidden_size alike; the tower reads hidden_size.
    vis = {**vis, "hidden_size": _int(vis, "hidden_size", "embed_dim", default=1280)}
    audio = (Tensor("audio_tower", "vision", (qwen2_5_omni_audio_params(aud),)), _sinusoids(aud))
    visual = _qwen25_vision(vis, inner.hidden_size)
    extra = audio + visual
    params = sum(t.numel for t in extra if t.in_checkpoint)
    heads = _int(vis, "num_heads", default=16)
    mm = MultimodalSpec(params, 1024, inner.hidden_size, tp_heads=heads,
                        encoder=_qwen_vl_encoder(vis, True, outer))
    tower_rope = RopeCache(VISION_ROPE_POSITIONS, (vis["hidden_size"] // heads) // 2, tower=True)
    return _with(inner, extra=inner.extra + extra, multimodal=mm, model_type=str(outer.get("model_type")),
                 architecture=_arch(outer, "Qwen2_5OmniForConditionalGeneration"),
                 rope_caches=inner.rope_caches + (tower_rope,))


# ----------------------------------------------------------------------------- Qwen3-Omni


def _qwen3_omni_audio(aud: dict) -> tuple[Tensor, ...]:
    """vLLM's Qwen3OmniMoeAudioEncoder: (column, row, whole) parameter groups; the first two are split only when TP
    divides encoder_attention_heads, else whole on every rank."""
    d, n = _int(aud, "d_model", default=1280), _int(aud, "encoder_layers", default=32)
    ffn, mel = _int(aud, "encoder_ffn_dim", default=5120), _int(aud, "num_mel_bins", default=128)
    ds, out = _int(aud, "downsample_hidden_size", default=480), _int(aud, "output_dim", default=2048)
    freq = (((mel + 1) // 2 + 1) // 2 + 1) // 2  # mel bins after the three stride-2 convolutions
    column = n * (3 * d * d + 3 * d + d * ffn + ffn)  # qkv_proj and fc1 with their biases
    row = n * (d * d + ffn * d)  # out_proj and fc2 weights
    whole = ((9 * ds + ds) + 2 * (9 * ds * ds + ds)  # conv2d1..3 (3x3, biased)
             + ds * freq * d  # conv_out, no bias
             + n * (4 * d + 2 * d)  # two LayerNorms, out_proj / fc2 biases
             + 2 * d + (d * d + d) + (d * out + out))  # ln_post, proj1, proj2
    heads = _int(aud, "encoder_attention_heads", default=20)
    return (Tensor("audio_tower.column", "vision", (column,), "column", split_if_tp_divides=heads),
            Tensor("audio_tower.row", "vision", (row,), "row", split_if_tp_divides=heads),
            Tensor("audio_tower.replicated", "vision", (whole,)))


def _qwen3_omni_vision(vis: dict, th: int) -> tuple[Tensor, ...]:
    """Qwen3Omni_VisionTransformer (qwen3_omni_moe_thinker.py) under vLLM's prefixes: Qwen3-VL's tower, whose Linears
    all take the model's quant_config, with its deepstack mergers named merger_list and every merger's two Linears
    mlp.0 / mlp.2 (Qwen3-VL: deepstack_merger_list, linear_fc1 / linear_fc2). The same parameters as
    _qwen3_vision's three lumps."""
    return _qwen3_vision_linears(vis, th, deepstack="merger_list", merger_fc=("mlp.0", "mlp.2"))


@register("qwen3_omni_moe", "qwen3_omni_moe_thinker")
def _qwen3_omni_moe(cfg: dict, outer: dict, name: str) -> ModelSpec:
    th = _thinker(outer)
    text = dict(_sub(th, "text_config", outer))
    text["model_type"] = "qwen3_moe"
    text.setdefault("torch_dtype", th.get("torch_dtype") or th.get("dtype") or outer.get("torch_dtype")
                    or outer.get("dtype"))
    inner = _qwen3_moe(text, _outer(outer, "qwen3_moe"), name)
    aud, vis = _sub(th, "audio_config", outer), dict(_sub(th, "vision_config", outer))
    # vLLM sizes the position table from image_size / patch_size, not num_position_embeddings.
    grid = _int(vis, "image_size", default=768) // _int(vis, "patch_size", default=16)
    vis["num_position_embeddings"] = grid * grid
    _, vmm = _qwen3_vision(vis, inner.hidden_size, th)
    visual = _qwen3_omni_vision(vis, inner.hidden_size)
    audio = _qwen3_omni_audio(aud) + (_sinusoids(aud),)
    extra = audio + visual
    heads = _int(vis, "num_heads", default=16)
    mm = MultimodalSpec(sum(t.numel for t in extra if t.in_checkpoint), 1024, inner.hidden_size, tp_heads=heads,
                        encoder=vmm.encoder)
    deep = len(vis.get("deepstack_visual_indexes") or [])
    buffers = (TokenBuffer("deepstack_input_embeds", deep * inner.hidden_size, with_tower_from="0.28"),) if deep else ()
    tower_rope = RopeCache(VISION_ROPE_POSITIONS, (_int(vis, "hidden_size", default=1152) // heads) // 2, tower=True)
    return _with(inner, extra=inner.extra + extra, multimodal=mm, model_type=str(outer.get("model_type")),
                 architecture=_arch(outer, "Qwen3OmniMoeForConditionalGeneration"),
                 token_buffers=inner.token_buffers + buffers, rope_caches=inner.rope_caches + (tower_rope,),
                 notes=inner.notes)
