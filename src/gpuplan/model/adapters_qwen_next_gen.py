"""Qwen3-VL, Qwen3-VL-MoE and Qwen3.5 (dense and MoE), text towers and vision towers.

vLLM 0.19: models/qwen3_vl.py (Qwen3_VisionTransformer, deepstack buffers), qwen3_vl_moe.py, qwen3_5.py
(Qwen3.5 = Qwen3-Next's gated attention and Gated-DeltaNet layers, dense or sparse MLP, MTP skipped).
"""

from __future__ import annotations

from dataclasses import replace

from . import builders as b
from .adapters import (
    _embed_head,
    _gated_deltanet,
    _int,
    _moe_layers,
    _processor_pixels,
    _qwen3,
    _qwen3_moe,
    _qwen_next_moe,
    _rope,
    _spec,
    _tie,
    _with,
    mtp_module,
    register,
)
from .spec import Attention, EncoderShape, Mlp, ModelSpec, MultimodalSpec, RopeCache, Tensor, TokenBuffer
from .tower_linears import Tower


def _qwen3_vision(vis: dict, th: int, outer: dict, linears: bool = False) -> tuple[tuple[Tensor, ...], MultimodalSpec]:
    """Qwen3_VisionTransformer as vLLM builds it (models/qwen3_vl.py): Conv3d patch embedding with bias, a learned
    position table, `depth` LayerNorm blocks (fused qkv and fc1 column-parallel with their biases, proj and fc2
    row-parallel with whole biases), the merger and one post-shuffle-norm merger per deepstack index. Patch
    embedding, positions and norms are replicated."""
    h, n = _int(vis, "hidden_size", default=1152), _int(vis, "depth", default=27)
    inter = _int(vis, "intermediate_size", default=4304)
    p, tp, ch = _int(vis, "patch_size", default=16), _int(vis, "temporal_patch_size", default=2), _int(
        vis, "in_channels", default=3)
    pos = _int(vis, "num_position_embeddings", default=2304)
    out = _int(vis, "out_hidden_size", default=th)
    m = h * _int(vis, "spatial_merge_size", default=2) ** 2
    deep = len(vis.get("deepstack_visual_indexes") or [])
    mergers = 1 + deep
    column = n * (3 * h * h + 3 * h + inter * h + inter) + mergers * (m * m + m)
    row = n * (h * h + h * inter) + mergers * out * m
    whole = (ch * tp * p * p * h + h + pos * h  # patch conv + bias, position table
             + n * (4 * h + 2 * h)  # norm1/norm2 (weight, bias), proj/fc2 biases
             + 2 * h + deep * 2 * m  # merger norm over h; deepstack norms over the merged width
             + mergers * out)  # merger fc2 biases
    tensors = (Tensor("visual.column", "vision", (column,), "column"),
               Tensor("visual.row", "vision", (row,), "row"),
               Tensor("visual.replicated", "vision", (whole,)))
    if linears:  # Qwen3-VL / Qwen3.5: every Linear named, quantized as vLLM quantizes it (same count)
        tensors = _qwen3_vision_linears(vis, th)
    return tensors, MultimodalSpec(column + row + whole, 1024, th, encoder=_qwen3_encoder(vis, deep, outer))


def _qwen3_vision_linears(vis: dict, th: int, deepstack: str = "deepstack_merger_list",
                          merger_fc: tuple[str, str] = ("linear_fc1", "linear_fc2")) -> tuple[Tensor, ...]:
    """Qwen3_VisionTransformer under vLLM 0.33's prefixes: qwen3_vl.py, qwen3_vl_moe.py and qwen3_5.py pass the
    model's quant_config to every block's attn.qkv (QKVParallelLinear, fused in the checkpoint too) / attn.proj /
    mlp.linear_fc1 / mlp.linear_fc2 and to the linear_fc1 / linear_fc2 of the merger and of each
    deepstack_merger_list entry, all biased. The Conv3d patch embedding, position table and LayerNorms are not
    Linears and stay in the model dtype. `deepstack` / `merger_fc`: the names another family gives the deepstack
    merger list and the mergers' two Linears (Qwen3-Omni: merger_list, mlp.0 / mlp.2)."""
    h, n = _int(vis, "hidden_size", default=1152), _int(vis, "depth", default=27)
    inter = _int(vis, "intermediate_size", default=4304)
    p, tp, ch = _int(vis, "patch_size", default=16), _int(vis, "temporal_patch_size", default=2), _int(
        vis, "in_channels", default=3)
    out = _int(vis, "out_hidden_size", default=th)
    m = h * _int(vis, "spatial_merge_size", default=2) ** 2
    deep = len(vis.get("deepstack_visual_indexes") or [])
    t = Tower("visual")
    t.whole += ch * tp * p * p * h + h + _int(vis, "num_position_embeddings", default=2304) * h
    for j in range(n):
        pre = f"visual.blocks.{j}."
        t.add(pre + "attn.qkv", 3 * h, h, bias=True)
        t.add(pre + "attn.proj", h, h, "row", bias=True)
        t.add(pre + "mlp.linear_fc1", inter, h, bias=True)
        t.add(pre + "mlp.linear_fc2", h, inter, "row", bias=True)
        t.whole += 4 * h  # norm1, norm2: LayerNorm weight and bias
    for pre, norm in [("visual.merger.", 2 * h)] + [(f"visual.{deepstack}.{k}.", 2 * m) for k in range(deep)]:
        t.add(pre + merger_fc[0], m, m, bias=True)
        t.add(pre + merger_fc[1], out, m, "row", bias=True)
        t.whole += norm  # the merger's LayerNorm over the hidden width; the deepstack ones after the shuffle
    return t.tensors()


def _qwen3_encoder(vis: dict, deep: int, outer: dict) -> EncoderShape:
    """The tower's live tensors at its MLP peak, read in vLLM's qwen3_vl.py (0.11 - 0.33): the block input the caller
    still holds, the attention residual, norm2's output and the position embeddings the forward keeps (4 x hidden),
    fc1's output beside its GELU (2 x intermediate), and the deepstack features of earlier blocks. Item sizes follow
    the repo's preprocessor_config.json and video_preprocessor_config.json, else Qwen3-VL's as the checkpoints ship
    them (image longest_edge 16,777,216 pixels; video 25,165,824 over all frames, shortest_edge 4,096)."""
    h, p = _int(vis, "hidden_size", default=1152), _int(vis, "patch_size", default=16)
    t = _int(vis, "temporal_patch_size", default=2)
    head_dim = h // max(1, _int(vis, "num_heads", default=16))
    video = _processor_pixels(outer, "video_preprocessor_config", 25165824, 4096)
    return EncoderShape(patch_input=_int(vis, "in_channels", default=3) * t * p * p, patch_size=p,
                        merge=_int(vis, "spatial_merge_size", default=2), temporal_patch=t, hidden=h,
                        intermediate=_int(vis, "intermediate_size", default=4304), mlp_live=2, hidden_live=4,
                        rotary_bytes=(head_dim // 2) * 4, processor="qwen3_vl", outputs=1 + deep,
                        max_pixels=_processor_pixels(outer, "preprocessor_config", 16777216)[0],
                        video_max_pixels=video[0], video_min_pixels=video[1])


def _vision_config(outer: dict) -> dict:
    vis = outer.get("vision_config")
    return vis if isinstance(vis, dict) else {}


@register("qwen3_vl", "qwen3_vl_text")
def _qwen3_vl(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Qwen3-VL: a Qwen3 text model (qk-norm, no sliding window) behind Qwen3_VisionTransformer."""
    return _qwen3_vl_like(cfg, outer, name, _qwen3)


@register("qwen3_vl_moe", "qwen3_vl_moe_text")
def _qwen3_vl_moe(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Qwen3-VL-MoE: a Qwen3-MoE text model (models/qwen3_vl_moe.py: Qwen3MoeLLMModel) behind the same ViT."""
    return _qwen3_vl_like(cfg, outer, name, _qwen3_moe)


def _qwen3_vl_like(cfg: dict, outer: dict, name: str, text_adapter) -> ModelSpec:
    vis = _vision_config(outer)
    if vis and cfg is not outer:
        # The language model is built through VllmConfig.with_hf_config(text_config), which (config/vllm.py, 0.33)
        # overwrites the text config's tie_word_embeddings with the top-level one for a multimodal model; the
        # top-level classes (Qwen3VLConfig, Qwen3VLMoeConfig) default it to False. A transformers-5 dump of
        # Qwen3-VL-MoE writes text_config.tie_word_embeddings true (that class's default) beside a top-level false:
        # vLLM then builds an untied LM head.
        cfg = {**cfg, "tie_word_embeddings": bool(outer.get("tie_word_embeddings", False))}
    inner = text_adapter(cfg, outer, name)
    if not vis:
        return inner
    extra, mm = _qwen3_vision(vis, inner.hidden_size, outer, linears=True)
    # Qwen3VLForConditionalGeneration.__init__ allocates one [max_num_batched_tokens, text hidden] buffer per
    # deepstack level (deepstack_input_embeds) at load time, in the model dtype.
    deep = len(vis.get("deepstack_visual_indexes") or [])
    buffers = (TokenBuffer("deepstack_input_embeds", deep * inner.hidden_size, with_tower_from="0.28"),) if deep else ()
    return _with(inner, extra=inner.extra + extra, multimodal=mm, token_buffers=inner.token_buffers + buffers,
                 rope_caches=_mrope_single_from_032(inner.rope_caches))


def _mrope_single_from_032(ropes: tuple[RopeCache, ...]) -> tuple[RopeCache, ...]:
    """From 0.32 Qwen3-VL and Qwen3.5 build their MRotaryEmbedding with positions_factor 1 (4 only when video
    pruning is on: qwen3_vl.py mrope_positions_factor)."""
    return tuple(replace(r, mrope_single_from="0.32.0") if r.mrope else r for r in ropes)


# ----------------------------------------------------------------------------- Qwen3.5


@register("qwen3_5", "qwen3_5_text", "qwen3_5_moe", "qwen3_5_moe_text")
def _qwen3_5(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Qwen3.5 (models/qwen3_5.py): Gated-DeltaNet linear attention (the Qwen3-Next layer, split in_proj_qkv /
    in_proj_z / in_proj_b / in_proj_a in the checkpoint, fused in vLLM) interleaved with gated full attention
    (q_proj doubled for the output gate, q/k norms); a dense gated MLP (qwen3_5) or Qwen3-Next's sparse MoE block
    with a gated shared expert (qwen3_5_moe). The checkpoint's mtp.* layers are skipped by the main model."""
    text = outer.get("text_config") if isinstance(outer.get("text_config"), dict) else cfg
    vis = _vision_config(outer)
    hidden, n = _int(text, "hidden_size"), _int(text, "num_hidden_layers")
    heads = _int(text, "num_attention_heads")
    kv = _int(text, "num_key_value_heads", default=heads)
    hd = _int(text, "head_dim", default=hidden // heads if heads else 0)
    vocab = _int(text, "vocab_size")
    moe_type = str(text.get("model_type") or "").startswith("qwen3_5_moe") or str(
        outer.get("model_type") or "").startswith("qwen3_5_moe")
    gdn, gdn_t, types = _gated_deltanet(text, hidden, n, split_in_proj=True)
    full = Attention("full", heads, kv, hd)
    att_t = b.attention(hidden, heads, kv, hd, qkv_bias=bool(text.get("qkv_bias")), qk_norm=True,
                        q_mult=2 if text.get("attn_output_gate", True) else 1)
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    if text.get("layer_scale"):
        norms += (Tensor(b.P + "attn_layer_scale", "norm", (1, 1, hidden)),
                  Tensor(b.P + "ffn_layer_scale", "norm", (1, 1, hidden)))
    if moe_type:
        mlp, mlp_t = _qwen_next_moe(text, hidden)
        inter = mlp.moe_intermediate_size
    else:
        inter = _int(text, "intermediate_size")
        mlp, mlp_t = Mlp("dense", inter), b.gated_mlp(hidden, inter)
    layers = _moe_layers(text, n, lambda i: moe_type, lambda i: full if types[i] == "full_attention" else gdn,
                         lambda a: att_t if a.kind == "full" else gdn_t, inter, hidden, mlp, mlp_t, norms)
    tie = _tie(text, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    # mtp.*: fc [H, 2H], pre_fc_norm_embedding/hidden, final norm and mtp_num_hidden_layers full-attention
    # decoder layers. Qwen3_5ForConditionalGeneration.load_weights skips them (skip_prefixes=["mtp."]).
    n_mtp = _int(text, "mtp_num_hidden_layers", default=0)
    not_loaded: tuple[Tensor, ...] = ()
    if n_mtp:
        full_layer = next((x for x in layers if x.attention.kind == "full"), None)
        per = sum(t.numel for t in full_layer.tensors) if full_layer else sum(t.numel for t in att_t + mlp_t + norms)
        mtp = n_mtp * per + 2 * hidden * hidden + 3 * hidden
        if text.get("mtp_use_dedicated_embeddings"):
            mtp += vocab * hidden
        not_loaded = (Tensor("mtp", "mtp", (mtp,), "replicated"),)
    extra: tuple[Tensor, ...] = ()
    mm = None
    if vis:
        extra, mm = _qwen3_vision(vis, hidden, outer, linears=True)
    # Qwen3_5ForConditionalGenerationConfig (models/config.py) sets mamba_ssm_cache_dtype from the config's
    # mamba_ssm_dtype unless the user passes --mamba-ssm-cache-dtype.
    ssm_dtype = text.get("mamba_ssm_dtype") if isinstance(text.get("mamba_ssm_dtype"), str) else None
    return _spec(name, text, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_mrope_single_from_032(_rope(text, hd)), extra=extra,
                 not_loaded=not_loaded, mtp=None if text.get("mtp_use_dedicated_embeddings") else mtp_module(
                     layers, hidden, vocab, n_mtp, "qwen_next"),
                 multimodal=mm, mamba_ssm_dtype=ssm_dtype)
