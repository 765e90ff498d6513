"""Meta Muse Glimmer (model_type muse_glimmer with a text_config, or a flat muse_glimmer_text) as vLLM 0.33 builds
it (models/muse_glimmer.py).

Text: q/k/v/o without biases, a sigmoid output gate (`self_attn.gate_proj`, vLLM's output_gate_proj) as wide as q,
weightless q/k norms, four RMSNorms per layer (before and after attention and the MLP), a gated SiLU MLP, a
weightless norm on the embeddings and an LM head that vLLM never ties to them. `layer_types` picks sliding-window
or full attention (3 sliding : 1 full in the release); RoPE runs on the layers whose `layer_rope_theta` is non-zero,
all from one rotary cache built from `rope_parameters`.

Vision: vLLM builds the tower whenever the config has a vision_config, and for model_type muse_glimmer
transformers always gives it one (its defaults when the file has none); MuseGlimmerForCausalLM and
MuseGlimmerForConditionalGeneration are the same vLLM class, so the architecture name plays no part. Only a flat
muse_glimmer_text config is served without it. The tower: a patch Linear, a learned position table, ViT blocks of
LayerNorm + biased attention + biased GELU MLP, a two-layer adapter and a projection to the text width. Its q/k/v/o
split over TP (QKVParallelLinear / RowParallelLinear); its MLPs, norms, adapter and projection are plain
nn.Linear / LayerNorm, whole on every GPU.
"""

from __future__ import annotations

from . import builders as b
from .adapters import _core_dims, _embed_head, _int, _layer_types, _moe_layers, _spec, register
from .spec import Attention, Mlp, ModelSpec, MultimodalSpec, RopeCache, Tensor

# transformers' MuseGlimmerVisionConfig / MuseGlimmerConfig defaults (the released tower), for fields a file omits.
_VISION = {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 50, "num_attention_heads": 16,
           "patch_size": 14, "patch_temporal": 2, "pos_emb_height": 32, "pos_emb_width": 32}
# The image processor's max_image_tokens default (preprocessor config, not config.json): tokens per profiled image.
_MAX_IMAGE_TOKENS = 4096


def _vision(outer: dict, text_hidden: int) -> tuple[tuple[Tensor, ...], MultimodalSpec]:
    vis = {**_VISION, **(outer.get("vision_config") or {})}
    h, inter, n = _int(vis, "hidden_size"), _int(vis, "intermediate_size"), _int(vis, "num_hidden_layers")
    patch_in = _int(vis, "patch_temporal") * 3 * _int(vis, "patch_size") ** 2
    positions = _int(vis, "pos_emb_height") * _int(vis, "pos_emb_width")
    out_hidden = _int(outer, "out_hidden_size", default=6144)
    proj = _int(outer, "projector_hidden_size", default=4096)
    # per block: q/k/v with biases and o_proj's weight split over TP; o_proj's bias (row-parallel), two LayerNorms
    # and the biased fc1/fc2 whole
    split = n * (3 * h * h + 3 * h + h * h)
    whole = n * (h + 4 * h + inter * h + inter + h * inter + h)
    whole += patch_in * h + positions * h + 2 * 2 * h  # patch Linear (no bias), position table, ln_pre and ln_post
    adapter = out_hidden * proj + proj * proj + proj * text_hidden  # fc1, fc2, projection: no biases
    tensors = (Tensor("vision_encoder.attention", "vision", (split,), "column"),
               Tensor("vision_encoder", "vision", (whole,), "replicated"),
               Tensor("vision_adapter", "projector", (adapter,), "replicated"))
    return tensors, MultimodalSpec(split + whole + adapter, _MAX_IMAGE_TOKENS, text_hidden)


@register("muse_glimmer", "muse_glimmer_text")
def _muse_glimmer(cfg: dict, outer: dict, name: str) -> ModelSpec:
    nested = isinstance(outer.get("text_config"), dict)
    text = outer["text_config"] if nested else cfg
    hidden, n, heads, kv, hd = _core_dims(text)
    inter, vocab = _int(text, "intermediate_size"), _int(text, "vocab_size")
    # transformers' defaults when the file omits them: the last layer and every fourth before it full and NoPE
    types = _layer_types(text, n) or ["full_attention" if (n - 1 - i) % 4 == 0 else "sliding_attention"
                                      for i in range(n)]
    thetas = text.get("layer_rope_theta")
    if not (isinstance(thetas, list) and len(thetas) >= n):
        thetas = [0 if t == "full_attention" else 1 for t in types]
    window = _int(text, "sliding_window", default=0)
    full, swa = Attention("full", heads, kv, hd), Attention("sliding_window", heads, kv, hd, window=window or None)
    att_t = (b.attention(hidden, heads, kv, hd)
             + b.linear(b.P + "self_attn.gate_proj", "attention", heads * hd, hidden, "column"))
    norms = sum((b.norm(b.P + x, hidden) for x in ("input_layernorm", "post_attention_layernorm",
                                                    "pre_feedforward_layernorm", "post_feedforward_layernorm")), ())
    layers = _moe_layers(text, n, lambda i: False,
                         lambda i: swa if types[i] == "sliding_attention" and window else full, lambda a: att_t,
                         inter, hidden, Mlp("dense", inter), (), norms)
    # vLLM always allocates a separate ParallelLMHead here, whatever tie_word_embeddings says.
    emb, head = _embed_head(vocab, hidden, False, final_norm=b.norm("model.norm", hidden))
    rope: tuple[RopeCache, ...] = ()
    if any(thetas[:n]):
        params = text.get("rope_parameters") if isinstance(text.get("rope_parameters"), dict) else {}
        rot = int(hd * float(params.get("partial_rotary_factor", 1.0)))
        rope = (RopeCache(_int(text, "max_position_embeddings", default=131072), rot),)
    extra: tuple[Tensor, ...] = ()
    mm = None
    if nested or outer.get("model_type") == "muse_glimmer":
        extra, mm = _vision(outer, hidden)
    return _spec(name, text, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=False, embedding=emb, head=head, rope=rope, extra=extra, multimodal=mm)
