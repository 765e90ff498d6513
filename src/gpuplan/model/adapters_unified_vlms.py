"""Multimodal families whose vLLM 0.33 classes are not a tower bolted onto a registered decoder: Gemma 4 Unified
(encoder-free) and Molmo2.

Gemma 4 Unified (vllm/model_executor/models/gemma4_unified.py, Gemma4UnifiedForConditionalGeneration). The
language model is vLLM's Gemma4ForCausalLM built from text_config, the same code as Gemma 4's: sliding and full
layers with their own head sizes (transformers 5.23 folds global_head_dim / num_global_key_value_heads into
per_layer_config, which vLLM reads per layer), the K-equals-V full layers whose fused qkv_proj still holds a V slot
filled from K, q/k norms, tied embeddings. The published 12B has no per-layer embeddings (hidden_size_per_layer_input
0, so no per_layer_embeddings buffer either), no MoE block (num_experts null) and no KV-shared layers. There is no
SigLIP or audio encoder: images go through a patch embedder (LayerNorm over the raw 48x48x3 patch, a biased
ColumnParallelLinear with gather_output to mm_embed_dim, so its weight and bias split over TP, a LayerNorm, a learned
factorised 2-D position table [mm_posemb_size, 2, mm_embed_dim] and a last LayerNorm), then the shared multimodal
embedder (a bias-free ReplicatedLinear from output_proj_dims to the text width behind a weightless RMSNorm); audio
frames go straight into a second such embedder (audio_embed_dim wide), built whenever audio_config is set. Both
embedders get no quant_config. None of it sits under _mark_tower_model, so vLLM 0.33 builds it even for a
text-only start-up.

Molmo2 (vllm/model_executor/models/molmo2.py, Molmo2ForConditionalGeneration). vLLM copies its fields from the
remote-code config allenai ships (vit_config, adapter_config, text_config or llm_config); transformers 5.23's native
Molmo2Config renames vit_config to vision_config, which vLLM's class does not read, so such a config is refused. The
text model is a Qwen3- (or OLMo-) style decoder: fused qkv (bias per qkv_bias), q/k RMSNorms when use_qk_norm (per
head for qk_norm_type "qwen3"; over all heads, whole on every rank, for "olmo"), a fused up/gate and down MLP, two
RMSNorms a layer, and an embedding of vocab_size + additional_vocab_size rows beside an untied LM head of vocab_size
rows. The vision backbone is a ViT cut to the deepest layer the adapter reads (max of vit_layers + 1; the 27-layer
SigLIP of the published checkpoints keeps 25), every block with a biased fused qkv and wo, a biased two-layer GELU
MLP and two LayerNorms, under a learned position table and a biased patch Linear (both whole on every rank); then an
attention-pooling layer whose queries, keys and values read the concatenated feature layers (biased q, fused kv and
o), and a bias-free gated projector to the text width. The checkpoint holds only the 25 kept blocks.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from . import builders as b
from .adapters import _dtype, _embed_head, _gemma4, _int, _max_len_limit, _rope, register
from .spec import Attention, Layer, Mlp, ModelSpec, MultimodalSpec, RopeCache, Tensor


def _ln(name: str, width: int, kind: str = "vision") -> tuple[Tensor, ...]:
    """A torch LayerNorm: weight and bias, whole on every rank."""
    return (Tensor(name + ".weight", kind, (width,)), Tensor(name + ".bias", kind, (width,)))


def _gemma4_unified_towers(vis: dict, aud: dict, th: int) -> tuple[Tensor, ...]:
    """The encoder-free vision embedder and the two multimodal embedders, as Gemma4UnifiedForConditionalGeneration
    allocates them (gemma4_unified.py: Gemma4UnifiedVisionEmbedder; gemma4_mm.py: Gemma4MultimodalEmbedder)."""
    out: tuple[Tensor, ...] = ()
    if vis:
        patch = _int(vis, "patch_size", default=16) * _int(vis, "pooling_kernel_size", default=3)
        patch = _int(vis, "model_patch_size", default=patch)
        pdim = patch * patch * 3
        mm = _int(vis, "mm_embed_dim", default=3840)
        pos = _int(vis, "mm_posemb_size", default=1120)
        p = "vision_embedder."
        out += (_ln(p + "patch_ln1", pdim)
                # ColumnParallelLinear(gather_output=True): the output rows (and the bias) split over TP.
                + (Tensor(p + "patch_dense.weight", "vision", (mm, pdim), "column", linear=True),
                   Tensor(p + "patch_dense.bias", "vision", (mm,), "column"))
                + _ln(p + "patch_ln2", mm)
                + (Tensor(p + "pos_embedding", "vision", (pos, 2, mm)),)
                + _ln(p + "pos_norm", mm))
        # The embedder projects output_proj_dims (else hidden_size) to the text width; ReplicatedLinear, unquantized.
        vdim = _int(vis, "output_proj_dims", "hidden_size", default=mm)
        out += (Tensor("embed_vision.embedding_projection.weight", "projector", (th, vdim)),)
    if aud:
        adim = _int(aud, "output_proj_dims", "audio_embed_dim", "hidden_size", default=640)
        out += (Tensor("embed_audio.embedding_projection.weight", "projector", (th, adim)),)
    return out


@register("gemma4_unified", "gemma4_unified_text")
def _gemma4_unified(cfg: dict, outer: dict, name: str) -> ModelSpec:
    # The text model is Gemma 4's; the wrapper's vision/audio configs name no SigLIP or conformer tower, so they
    # are kept away from the Gemma 4 adapter and sized here.
    vis = outer.get("vision_config") or {}
    aud = outer.get("audio_config") or {}
    if outer.get("model_type") == "gemma4_unified" and not vis:
        # Gemma4UnifiedForConditionalGeneration.__init__ raises on a wrapper config without vision_config (as
        # transformers' default Gemma4UnifiedConfig is).
        raise ConfigError("vision_config", "vLLM 0.33's Gemma4UnifiedForConditionalGeneration requires a vision "
                          "configuration; serve the text_config alone as gemma4_unified_text instead")
    text_outer = {k: v for k, v in outer.items() if k not in ("vision_config", "audio_config")}
    inner = _gemma4(cfg, text_outer, name)
    towers = _gemma4_unified_towers(vis, aud, inner.hidden_size)
    mm = None
    if towers:
        tokens = _int(vis, "num_soft_tokens", default=280) if vis else 0
        mm = MultimodalSpec(sum(t.numel for t in towers), tokens, inner.hidden_size)
    return replace(inner, extra=inner.extra + towers, multimodal=mm,
                   notes=("Gemma 4 Unified as vLLM 0.33 builds it: Gemma 4's text model and an encoder-free patch "
                          "embedder; weights and KV are read from vLLM's model code, not yet checked against a "
                          "vLLM log.",))


def _molmo2_vision(vit: dict, ad: dict, th: int) -> tuple[tuple[Tensor, ...], int, int]:
    """Molmo2VisionBackbone as vLLM allocates it: (tensors, blocks kept, attention heads vLLM splits over TP)."""
    h = _int(vit, "hidden_size", default=1152)
    n = _int(vit, "num_hidden_layers", default=27)
    inter = _int(vit, "intermediate_size", default=4304)
    heads = _int(vit, "num_attention_heads", default=16)
    kv = _int(vit, "num_key_value_heads", default=heads)
    hd = _int(vit, "head_dim", default=h // heads)
    patch = _int(vit, "image_patch_size", default=14)
    pos = _int(vit, "image_num_pos", default=577)
    layers = [int(x) for x in (ad.get("vit_layers") or (-3, -9))]
    kept = min(n, max(x if x >= 0 else x + n for x in layers) + 1)  # Molmo2VisionBackbone.__init__ truncates
    p = "vision_backbone.image_vit."
    blk = p + "transformer.resblocks.{j}."
    per_block = (b.linear(blk + "attention.merged_qkv", "vision", (heads + 2 * kv) * hd, h, "column", True)
                 + b.linear(blk + "attention.wo", "vision", h, heads * hd, "row", True)
                 + b.linear(blk + "feed_forward.w1", "vision", inter, h, "column", True)
                 + b.linear(blk + "feed_forward.w2", "vision", h, inter, "row", True)
                 + _ln(blk + "attention_norm", h) + _ln(blk + "ffn_norm", h))
    # One lump per tensor over the kept blocks (same sharding for each block).
    blocks = tuple(Tensor(t.name, t.kind, (kept * t.shape[0],) + t.shape[1:], t.parallel, t.linear, t.heads)
                   for t in per_block)
    stem = (Tensor(p + "positional_embedding", "vision", (pos, h)),
            # a plain nn.Linear: whole on every rank, never quantized
            Tensor(p + "patch_embedding.weight", "vision", (h, patch * patch * 3)),
            Tensor(p + "patch_embedding.bias", "vision", (h,)))
    ah = _int(ad, "hidden_size", default=1152)
    aheads = _int(ad, "num_attention_heads", default=16)
    akv = _int(ad, "num_key_value_heads", default=aheads)
    ahd = _int(ad, "head_dim", default=ah // aheads)
    pool_in = h * len(layers)
    q = "vision_backbone.image_pooling_2d."
    pool = (b.linear(q + "q_proj", "projector", aheads * ahd, pool_in, "column", True)
            + b.linear(q + "merged_kv", "projector", 2 * akv * ahd, pool_in, "column", True)
            + b.linear(q + "o_proj", "projector", ah, aheads * ahd, "row", True))
    ai = _int(ad, "intermediate_size", default=18944)
    r = "vision_backbone.image_projector."
    proj = (b.linear(r + "merged_linear", "projector", 2 * ai, ah, "column")
            + b.linear(r + "down_proj", "projector", _int(ad, "text_hidden_size", default=th), ai, "row"))
    return blocks + stem + pool + proj, kept, min(heads, aheads)


@register("molmo2")
def _molmo2(cfg: dict, outer: dict, name: str) -> ModelSpec:
    text = outer.get("text_config") or outer.get("llm_config") or {}
    vit, ad = outer.get("vit_config"), outer.get("adapter_config")
    if not text or not isinstance(vit, dict) or not isinstance(ad, dict):
        raise ConfigError("config", "vLLM 0.33's Molmo2ForConditionalGeneration reads vit_config, adapter_config and "
                          "text_config (the remote-code config allenai ships, served with --trust-remote-code); "
                          "this config lacks them (transformers' native Molmo2Config names the tower vision_config)")
    hidden, n = _int(text, "hidden_size"), _int(text, "num_hidden_layers")
    heads = _int(text, "num_attention_heads")
    kv = _int(text, "num_key_value_heads", default=heads)
    hd = _int(text, "head_dim", default=hidden // heads)
    inter, vocab = _int(text, "intermediate_size"), _int(text, "vocab_size")
    extra_vocab = _int(text, "additional_vocab_size", default=0)
    att = b.attention(hidden, heads, kv, hd, qkv_bias=bool(text.get("qkv_bias")))
    if text.get("use_qk_norm"):
        if text.get("qk_norm_type", "olmo") == "qwen3":
            att += b.norm(b.P + "self_attn.q_norm", hd) + b.norm(b.P + "self_attn.k_norm", hd)
        else:  # "olmo": over all heads, all-gathered under TP, so whole on every rank
            att += b.norm(b.P + "self_attn.q_norm", heads * hd) + b.norm(b.P + "self_attn.k_norm", kv * hd)
    tensors = (att + b.gated_mlp(hidden, inter) + b.norm(b.P + "input_layernorm", hidden)
               + b.norm(b.P + "post_attention_layernorm", hidden))
    layer = Layer(Attention("full", heads, kv, hd), Mlp("dense", inter), tensors)
    # The embedding also holds the additional (image/frame special) tokens; the LM head only vocab_size rows.
    emb, head = _embed_head(vocab + extra_vocab, hidden, False, final_norm=b.norm("model.norm", hidden))
    head = head[:-1] + (b.lm_head(vocab, hidden)[0],)
    # Layers outside rope_scaling_layers get an unscaled RoPE of the same theta: a second cos/sin cache.
    rope = _rope(text, hd)
    scaled = text.get("rope_scaling_layers")
    if scaled is not None and text.get("rope_scaling") and set(range(n)) - {int(x) for x in scaled}:
        rope += (RopeCache(_int(text, "max_position_embeddings", default=4096), hd,
                           theta=float(text.get("rope_theta") or 10000.0)),)
    towers, kept, vheads = _molmo2_vision(vit, ad, hidden)
    params = sum(t.numel for t in towers)
    return ModelSpec(
        name=name, model_type="molmo2", architecture=(outer.get("architectures") or ["Molmo2ForConditionalGeneration"])[0],
        hidden_size=hidden, vocab_size=vocab, num_attention_heads=heads, head_dim=hd, intermediate_size=inter,
        max_position_embeddings=_int(text, "max_position_embeddings", default=4096),
        max_len_limit=_max_len_limit(text, outer), torch_dtype=_dtype(text, outer), tie_word_embeddings=False,
        layers=(layer,) * n, embedding=emb, head=head, extra=towers, rope_caches=rope,
        # tokens_per_item: one 27x27-patch crop pooled 2x2 (informational; the profile term is calibrated)
        multimodal=MultimodalSpec(params, 14 * 14, hidden, tp_heads=vheads),
        notes=(f"Molmo2 as vLLM 0.33 builds it: the ViT keeps {kept} blocks; weights and KV are read from vLLM's "
               "model code, not yet checked against a vLLM log.",))
