"""Aria (model_type aria, AriaForConditionalGeneration) as vLLM 0.33 builds it (model_executor/models/aria.py, with
idefics2_vision_model.py and llama.py; the three files are identical in 0.32, whose meta-device build was run as an
oracle, see tests/fixtures/oracle/families/aria.json). vLLM reads the config with transformers' AriaConfig: the text
model from text_config (AriaTextConfig), the vision tower from vision_config (an Idefics3 vision config).

Language model. vLLM's LlamaModel with every decoder layer's MLP swapped for Aria's own MoE block:
- attention as Llama's: fused q/k/v and o_proj, biased only with attention_bias; RMSNorms before attention and MLP;
  every layer full attention with num_key_value_heads heads of head_dim, so the KV cache is one uniform group;
- the MoE block holds `router_weight`, a bare [moe_num_experts, hidden] parameter in the model dtype, whole on
  every rank (transformers calls it router.weight); fused routed experts whose width is `intermediate_size` (Aria
  has no separate moe_intermediate_size), split over TP or EP as any FusedMoE; and one shared MLP of width
  intermediate_size x moe_num_shared_experts (gate/up column-parallel, down row-parallel, biased with mlp_bias).
  There is no shared-expert gate;
- its own ParallelLMHead whatever tie_word_embeddings says, one RoPE cache of max_position_embeddings x head_dim.
The Llama MLP each decoder layer first builds is replaced before any weight loads and freed, so it is not held.

Under the image tower mark (skipped by a text-only start):
- `vision_tower`: the Idefics2/3 vision transformer over vision_config with every layer: a biased patch Conv2d,
  a learned table of (image_size / patch_size)^2 positions (ids computed per call, no buffer), per layer a fused
  biased q/k/v and fc1 split by output, out_proj and fc2 split by input with whole biases, two LayerNorms. vLLM
  asserts TP divides the vision heads. Aria replaces the post LayerNorm with an identity: the checkpoint's
  post_layernorm is dropped by the loader (listed as not loaded);
- `multi_modal_projector`: a learned query table of max(projector_patch_to_query_dict) rows at the vision width;
  transformers' AriaCrossAttention used as is (bias-free q/k/v, torch MultiheadAttention with its fused biased
  in-projection and biased out-projection, a biased output linear, two LayerNorms) and one more LayerNorm, all plain
  torch modules whole on every rank; then a two-layer MLP, vision width -> text width column-parallel and text
  width -> text width row-parallel, both bias-free.
Each image becomes max(projector_patch_to_query_dict) tokens (256 in the published config). The class has no
--mm-encoder-tp-mode data support.
"""

from __future__ import annotations

from ..errors import ConfigError
from . import builders as b
from .adapters import _embed_head, _int, _rope, _spec, register
from .adapters_vision_wrappers import _tower, _vision, _vit_parts
from .spec import Attention, Layer, Mlp, ModelSpec, MultimodalSpec, Tensor

# transformers' AriaTextConfig defaults, for fields a config leaves out.
_TEXT = {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 4096, "num_hidden_layers": 32,
         "num_attention_heads": 32, "max_position_embeddings": 2048, "moe_num_experts": 8, "moe_topk": 2,
         "moe_num_shared_experts": 2}
# transformers' Idefics3VisionConfig defaults (AriaConfig builds its vision config as idefics3_vision).
_VISION = {"hidden_size": 1152, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 16,
           "num_channels": 3, "image_size": 224, "patch_size": 32}
# AriaConfig's projector_patch_to_query_dict default: patches of a 490 / 980 image -> learned queries.
_PATCH_TO_QUERY = {1225: 128, 4900: 256}


def _text_dims(text: dict) -> tuple[int, int, int, int, int]:
    hidden = _int(text, "hidden_size", default=_TEXT["hidden_size"])
    heads = _int(text, "num_attention_heads", default=_TEXT["num_attention_heads"])
    kv = _int(text, "num_key_value_heads", default=heads)
    hd = _int(text, "head_dim", default=0) or hidden // heads  # AriaTextConfig: hidden_size // heads when unset
    return hidden, _int(text, "num_hidden_layers", default=_TEXT["num_hidden_layers"]), heads, kv, hd


def _projector(outer: dict, vh: int, th: int) -> tuple[tuple[Tensor, ...], int, int]:
    """(tensors, parameters, tokens per image) of AriaProjector."""
    table = outer.get("projector_patch_to_query_dict") or _PATCH_TO_QUERY
    if not isinstance(table, dict) or not table:
        raise ConfigError("projector_patch_to_query_dict", "Aria's projector_patch_to_query_dict must map patch "
                                                           "counts to query counts")
    queries = max(int(v) for v in table.values())
    # query table; AriaCrossAttention: q/k/v (no bias) 3 vh^2, MultiheadAttention in_proj 3 vh^2 + 3 vh and
    # out_proj vh^2 + vh, output linear vh^2 + vh, layer_norm and layer_norm_kv 2 vh each; the projector's LayerNorm
    whole = queries * vh + 8 * vh * vh + 5 * vh + 4 * vh + 2 * vh
    tensors = (Tensor("multi_modal_projector.replicated", "projector", (whole,)),
               Tensor("multi_modal_projector.feed_forward.linear_in.weight", "projector", (th, vh), "column",
                      linear=True),
               Tensor("multi_modal_projector.feed_forward.linear_out.weight", "projector", (th, th), "row",
                      linear=True))
    return tensors, whole + th * vh + th * th, queries


@register("aria")
def _aria(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = outer.get("text_config")
    if not isinstance(text, dict) or not text:
        raise ConfigError("config", "aria config lacks text_config")
    text = {**text, "architectures": outer.get("architectures")}
    inter = _int(text, "intermediate_size", default=_TEXT["intermediate_size"])
    moe_inter = text.get("moe_intermediate_size")
    if moe_inter is not None and int(moe_inter) != inter:
        # Remote-code-era configs (text model_type aria_moe_lm) keep the expert width in moe_intermediate_size;
        # AriaTextConfig ignores that key, so vLLM would build intermediate_size-wide experts the checkpoint
        # cannot fill.
        raise ConfigError("text_config.moe_intermediate_size",
                          f"vLLM 0.33 sizes Aria's experts by intermediate_size ({inter}) and ignores "
                          f"moe_intermediate_size ({moe_inter}); this remote-code-era config would not load. Use "
                          "the transformers-format config (rhymes-ai/Aria), whose intermediate_size is the expert "
                          "width", accepted=[str(inter)])
    hidden, n, heads, kv, hd = _text_dims(text)
    vocab = _int(text, "vocab_size", default=_TEXT["vocab_size"])
    e = _int(text, "moe_num_experts", default=_TEXT["moe_num_experts"])
    k = _int(text, "moe_topk", default=_TEXT["moe_topk"])
    shared = inter * _int(text, "moe_num_shared_experts", default=_TEXT["moe_num_shared_experts"])
    text.setdefault("max_position_embeddings", _TEXT["max_position_embeddings"])

    moe_t = (
        # AriaTextMoELayer.router_weight: an nn.Parameter made in the model dtype, no TP split
        (Tensor(b.P + "mlp.router_weight", "router", (e, hidden)),)
        + b.experts(hidden, inter, e, prefix=b.P + "mlp.experts")
        + b.gated_mlp(hidden, shared, prefix=b.P + "mlp.shared_experts.", kind="shared_experts",
                      bias=bool(text.get("mlp_bias")))
    )
    attn_bias = bool(text.get("attention_bias"))
    tensors = (b.attention(hidden, heads, kv, hd, qkv_bias=attn_bias, o_bias=attn_bias) + moe_t
               + b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden))
    layer = Layer(Attention("full", heads, kv, hd), Mlp("moe", 0, e, k, inter, shared), tensors)
    # AriaForConditionalGeneration builds its own ParallelLMHead: never tied.
    emb, head = _embed_head(vocab, hidden, False, final_norm=b.norm("model.norm", hidden))

    vis = _vision(outer)
    vh = _int(vis, "hidden_size", default=_VISION["hidden_size"])
    vn = _int(vis, "num_hidden_layers", default=_VISION["num_hidden_layers"])
    vheads = _int(vis, "num_attention_heads", default=_VISION["num_attention_heads"])
    patch = _int(vis, "patch_size", default=_VISION["patch_size"])
    ch = _int(vis, "num_channels", default=_VISION["num_channels"])
    side = _int(vis, "image_size", default=_VISION["image_size"]) // patch
    column, row, whole = _vit_parts(vh, _int(vis, "intermediate_size", default=_VISION["intermediate_size"]), vn)
    whole += ch * patch * patch * vh + vh + side * side * vh  # patch Conv2d + bias, position table; no post norm
    proj, proj_params, tokens = _projector(outer, vh, hidden)
    extra = _tower("vision_tower", column, row, whole) + proj
    not_loaded = (Tensor("vision_tower.post_layernorm", "vision", (2 * vh,)),)
    mm = MultimodalSpec(column + row + whole + proj_params, tokens, hidden, tp_heads=vheads)
    return _spec(name, text, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd,
                 inter=inter, tie=False, embedding=emb, head=head, rope=_rope(text, hd), extra=extra,
                 not_loaded=not_loaded, multimodal=mm)
