"""Baidu ERNIE-4.5 (model_types ernie4_5, ernie4_5_moe, ernie4_5_moe_vl) as vLLM 0.33 builds it.

ernie4_5 (ERNIE-4.5-0.3B; models/ernie45.py): vLLM reuses its Llama class unchanged in size. The attention takes
q/k/v biases only from Llama's keys (attention_bias / bias), never from ERNIE's `use_bias`, and the o_proj bias is
dropped; the MLP bias follows `mlp_bias`. One shared RoPE cos/sin cache of max_position_embeddings x head_dim.

ernie4_5_moe (ERNIE-4.5-21B-A3B, ERNIE-4.5-300B-A47B; models/ernie45_moe.py): plain GQA attention (q/k/v biases when
`use_bias`, o_proj never), one shared RoPE cache. Layer i is a MoE layer when `use_moe` (default: experts > 0),
(i + 1) is a multiple of `moe_layer_interval` and moe_layer_start_index <= i <= moe_layer_end_index (transformers'
config turns a missing or -1 end index into the last layer). A MoE layer holds `moe_num_experts` fused experts of
`moe_intermediate_size`, a GateLinear router kept in float32 and a float32 `e_score_correction_bias` parameter that
vLLM allocates whether or not the checkpoint uses it, plus, when `moe_num_shared_experts` > 0, one gated MLP of
moe_num_shared_experts x moe_intermediate_size split over TP. Other layers have a gated MLP of intermediate_size
(biased when `use_bias`). The checkpoint's MTP layers (`num_nextn_predict_layers`, weights named "mtp...") are
dropped by the main model's loader; vLLM builds them (models/ernie_mtp.py, 0.10.2-0.33: two norms, a 2h -> h
projection and a Llama decoder layer) only as a speculative draft (_mtp).

ernie4_5_moe_vl (ERNIE-4.5-VL-28B-A3B, -424B-A47B; models/ernie45_vl.py + ernie45_vl_moe.py), read from Baidu's
remote-code config (list-valued `moe_num_experts`, `moe_intermediate_size`, `moe_layer_start_index`,
`moe_layer_end_index`: [text, vision]). A layer is a MoE layer when (i + 1) % interval == 0 and
min(start) <= i <= max(end). Such a layer has one float32 `e_score_correction_bias` [2, experts] (vLLM asserts both
groups have the same expert count), the shared experts (moe_num_shared_experts x moe_intermediate_size[0]) built once,
and per modality either a float32 ReplicatedLinear gate plus fused experts of that modality's width (when the layer
is inside that modality's start/end range) or a dense gated MLP of intermediate_size. Both expert groups are
ordinary FusedMoE layers: split over TP by intermediate width, or over EP by expert. Attention is GQA with ERNIE's
3-D RoPE, built per layer (Ernie4_5_VLRotaryEmbedding is constructed directly, not through get_rope's cache), so
every decoder layer holds its own cos/sin buffer of 4 x max_position_embeddings x head_dim in the model dtype
(MRotaryEmbedding's default positions_factor of 4): 128 MiB a layer at 131072 positions and head_dim 128.
The vision tower (Ernie4_5_VisionTransformer: a bias-free patch Linear kept whole, `depth` blocks of LayerNorms,
TP-split biased qkv / proj and fc1 / fc2 of embed_dim x mlp_ratio, a final LayerNorm, a float32 inv_freq buffer) and
the resampler (VariableResolutionResamplerModel: spatial and, with use_temporal_conv, temporal ColumnParallel
linears that gather their output, LayerNorms, a ColumnParallel projection to the text width and an RMSNorm) are
built inside _mark_tower_model (data/vllm_towers.json), so a text-only start-up builds neither. transformers'
native ernie4_5_vl_moe config (text_config / vision_config, mlp_layer_types) lacks the keys vLLM's class reads
(moe_layer_start_index, pixel_hidden_size, vision embed_dim / mlp_ratio) and is refused.
"""

from __future__ import annotations

from ..errors import ConfigError
from . import builders as b
from .adapters import _core_dims, _embed_head, _int, _rope, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, MtpModule, MultimodalSpec, Tensor


def _norms(hidden: int) -> tuple[Tensor, ...]:
    return b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)


def _attention(cfg: dict, hidden: int, heads: int, kv: int, hd: int) -> tuple[Tensor, ...]:
    # QKVParallelLinear(bias=use_bias); the o_proj RowParallelLinear never has a bias.
    return b.attention(hidden, heads, kv, hd, qkv_bias=bool(cfg.get("use_bias")))


def _mtp(cfg: dict, att: Attention, hidden: int, heads: int, kv: int, hd: int, inter: int) -> MtpModule | None:
    """vLLM's ErnieMTP (ernie_mtp.py, 0.10.2-0.33), one module per num_nextn_predict_layers: mtp_emb_norm,
    mtp_hidden_norm, a plain nn.Linear mtp_linear_proj [h, 2h] (whole on every GPU, never quantized) and mtp_block,
    a LlamaDecoderLayer built from the same config under the prefix model.layers.{n + j}: full attention (its biases
    from Llama's keys attention_bias / bias, o_proj's too, never ERNIE's use_bias) and a dense gated MLP of
    intermediate_size (mlp_bias), with the checkpoint's quantization. Its own ParallelLMHead and embedding are
    replaced by the target's in every release (the proposer's load_model), so they are not here."""
    n = _int(cfg, "num_nextn_predict_layers", default=0)
    if n <= 0:
        return None
    bias = bool(cfg.get("attention_bias") or cfg.get("bias"))
    layer = Layer(att, Mlp("dense", inter), b.attention(hidden, heads, kv, hd, qkv_bias=bias, o_bias=bias)
                  + b.gated_mlp(hidden, inter, bias=bool(cfg.get("mlp_bias"))) + _norms(hidden))
    own: tuple[Tensor, ...] = ()
    first = _int(cfg, "num_hidden_layers")
    for j in range(n):
        p = f"model.layers.{first + j}."  # where vLLM's WeightsMapper puts the checkpoint's model.mtp_*.0 tensors
        own += (b.norm(p + "mtp_emb_norm", hidden) + b.norm(p + "mtp_hidden_norm", hidden)
                + b.linear(p + "mtp_linear_proj", "mtp", hidden, 2 * hidden, "replicated", quantizable=False))
    return MtpModule(layers=(layer,) * n, tensors=own, style="ernie", since="0.10.2")


def _mtp_not_loaded(mtp: MtpModule | None) -> tuple[Tensor, ...]:
    """The checkpoint's MTP weights, which the main model's loader skips (vLLM builds them only to draft)."""
    if mtp is None:
        return ()
    return (Tensor("mtp", "mtp", (mtp.params,), "replicated"),)


@register("ernie4_5")
def _ernie4_5(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, heads, kv, hd = _core_dims(cfg)
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    # LlamaAttention: bias = attention_bias or bias; vLLM's Ernie4_5ForCausalLM then drops the o_proj bias.
    qkv_bias = bool(cfg.get("attention_bias") or cfg.get("bias"))
    att = Attention("full", heads, kv, hd)
    tensors = (b.attention(hidden, heads, kv, hd, qkv_bias=qkv_bias)
               + b.gated_mlp(hidden, inter, bias=bool(cfg.get("mlp_bias"))) + _norms(hidden))
    layer = Layer(att, Mlp("dense", inter), tensors)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd))


def _moe_end(cfg: dict, n: int) -> int:
    end = cfg.get("moe_layer_end_index")
    # transformers' Ernie4_5_MoeConfig turns the default -1 into the last layer
    return n - 1 if end is None or end == -1 else int(end)


@register("ernie4_5_moe")
def _ernie4_5_moe(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, heads, kv, hd = _core_dims(cfg)
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    e = _int(cfg, "moe_num_experts", default=0)
    k = _int(cfg, "moe_k", default=6)
    mi = _int(cfg, "moe_intermediate_size", default=inter)
    ns = _int(cfg, "moe_num_shared_experts", default=0)
    start, end = _int(cfg, "moe_layer_start_index", default=0), _moe_end(cfg, n)
    interval = _int(cfg, "moe_layer_interval", default=1) or 1
    use_moe = bool(cfg.get("use_moe", e > 0))
    bias = bool(cfg.get("use_bias"))
    att = Attention("full", heads, kv, hd)
    att_t = _attention(cfg, hidden, heads, kv, hd)
    p = b.P + "mlp."
    moe_t = (b.router(hidden, e, name=p + "gate", correction_bias=True, fp32=True)
             + b.experts(hidden, mi, e, prefix=p + "experts"))
    if ns:
        moe_t += b.gated_mlp(hidden, mi * ns, prefix=p + "shared_experts.", kind="shared_experts")
    moe_layer = Layer(att, Mlp("moe", 0, e, k, mi, mi * ns), att_t + moe_t + _norms(hidden))
    dense_layer = Layer(att, Mlp("dense", inter), att_t + b.gated_mlp(hidden, inter, bias=bias) + _norms(hidden))
    layers = [moe_layer if use_moe and (i + 1) % interval == 0 and start <= i <= end else dense_layer
              for i in range(n)]
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    mtp = _mtp(cfg, att, hidden, heads, kv, hd, inter)
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd),
                 not_loaded=_mtp_not_loaded(mtp), mtp=mtp)


def _pair(cfg: dict, key: str, default: list[int] | None = None) -> list[int]:
    v = cfg.get(key, default)
    if not isinstance(v, list) or len(v) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise ConfigError("config", f"ERNIE-4.5-VL's '{key}' must be a [text, vision] pair of integers, got {v!r}")
    return [int(x) for x in v]


def _vision_tower(vis: dict) -> tuple[Tensor, ...]:
    """Ernie4_5_VisionTransformer as vLLM allocates it."""
    d = _int(vis, "embed_dim")
    if _int(vis, "hidden_size", default=d) != d:
        raise ConfigError("config", "vLLM asserts the vision tower's hidden_size equals its embed_dim")
    depth, heads = _int(vis, "depth"), _int(vis, "num_heads")
    patch, ch = _int(vis, "patch_size", default=14), _int(vis, "in_channels", default=3)
    mlp = int(d * float(vis.get("mlp_ratio", 4)))
    blk = "vision_model.blocks.{j}."
    per_block = (b.norm(blk + "norm1", d, bias=True, kind="vision") + b.norm(blk + "norm2", d, bias=True, kind="vision")
                 + b.linear(blk + "attn.qkv", "vision", 3 * d, d, "column", True)
                 + b.linear(blk + "attn.proj", "vision", d, d, "row", True)
                 + b.linear(blk + "mlp.fc1", "vision", mlp, d, "column", True)
                 + b.linear(blk + "mlp.fc2", "vision", d, mlp, "row", True))
    # One lump per tensor over the blocks (each block is sharded alike).
    blocks = tuple(Tensor(t.name, t.kind, (depth * t.shape[0],) + t.shape[1:], t.parallel, t.linear, t.heads)
                   for t in per_block)
    rot = (d // heads) // 2  # Ernie4_5_VisionRotaryEmbedding(head_dim // 2): inv_freq of rot / 2 float32
    return (blocks
            # a plain nn.Linear without bias: whole on every rank
            + (Tensor("vision_model.patch_embed.proj.weight", "vision", (d, ch * patch * patch)),)
            + b.norm("vision_model.ln", d, bias=True, kind="vision")
            + (Tensor("vision_model.rotary_pos_emb.inv_freq", "vision", (rot // 2,), dtype="float32",
                      in_checkpoint=False),))


def _resampler(cfg: dict, hidden: int) -> tuple[Tensor, ...]:
    """VariableResolutionResamplerModel: ColumnParallel linears with gather_output (weights and biases split by output
    rows), LayerNorms and the RMSNorm whole."""
    pix = _int(cfg, "pixel_hidden_size")
    s, t = _int(cfg, "spatial_conv_size", default=2), _int(cfg, "temporal_conv_size", default=2)
    sd = pix * s * s
    r = "resampler_model."
    out = (b.linear(r + "spatial_linear1", "projector", sd, sd, "column", True)
           + b.linear(r + "spatial_linear2", "projector", sd, sd, "column", True)
           + b.norm(r + "spatial_norm", sd, bias=True, kind="projector"))
    if cfg.get("use_temporal_conv"):
        out += (b.linear(r + "temporal_linear1", "projector", sd, sd * t, "column", True)
                + b.linear(r + "temporal_linear2", "projector", sd, sd, "column", True)
                + b.norm(r + "temporal_norm", sd, bias=True, kind="projector"))
    return (out + b.linear(r + "mlp", "projector", hidden, sd, "column", True)
            + b.norm(r + "after_norm", hidden, kind="projector"))


@register("ernie4_5_vl_moe")
def _ernie4_5_vl_native(cfg: dict, outer: dict, name: str) -> ModelSpec:
    raise ConfigError("config", "vLLM 0.33's Ernie4_5_VLMoeForConditionalGeneration reads Baidu's remote-code config "
                      "(model_type ernie4_5_moe_vl: moe_layer_start_index, pixel_hidden_size, vision_config.embed_dim "
                      "and mlp_ratio); transformers' native ernie4_5_vl_moe config lacks them")


@register("ernie4_5_moe_vl")
def _ernie4_5_moe_vl(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, heads, kv, hd = _core_dims(cfg)
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    experts = _pair(cfg, "moe_num_experts")
    if experts[0] != experts[1]:
        raise ConfigError("config", "vLLM asserts ERNIE-4.5-VL's text and vision expert counts are equal, got "
                          f"{experts}")
    e = experts[0]
    mis = _pair(cfg, "moe_intermediate_size")
    starts = _pair(cfg, "moe_layer_start_index")
    ends = _pair(cfg, "moe_layer_end_index", [n - 1, n - 1])
    k = _int(cfg, "moe_k", default=6)
    ns = _int(cfg, "moe_num_shared_experts", default=0)
    interval = _int(cfg, "moe_layer_interval", default=1) or 1
    use_moe = bool(cfg.get("use_moe", e > 0))
    bias = bool(cfg.get("use_bias"))
    pos = _int(cfg, "max_position_embeddings", default=131072)
    att = Attention("full", heads, kv, hd)
    # The layer's own 3-D RoPE cos/sin buffer (not shared): 4 x positions x head_dim in the model dtype.
    rope_t = (Tensor(b.P + "self_attn.rotary_emb.cos_sin_cache", "rope_cache", (4 * pos, hd), in_checkpoint=False),)
    att_t = _attention(cfg, hidden, heads, kv, hd) + rope_t
    dense = b.gated_mlp(hidden, inter, bias=bias)
    p = b.P + "mlp."

    def moe_tensors(text: bool, vision: bool) -> tuple[Tensor, ...]:
        t = (Tensor(p + "e_score_correction_bias", "router", (2, e), "replicated", dtype="float32"),)
        if ns:
            t += b.gated_mlp(hidden, mis[0] * ns, prefix=p + "shared_experts.", kind="shared_experts")
        for on, group, mi in ((text, "text", mis[0]), (vision, "vision", mis[1])):
            if on:
                t += (Tensor(p + f"{group}_experts_gate.weight", "router", (e, hidden), "replicated",
                             dtype="float32"),)
                t += b.experts(hidden, mi, e, prefix=p + f"{group}_experts")
            else:  # the modality's branch outside its layer range: a dense MLP of intermediate_size, held
                # under the same attribute (mlp.text_experts / mlp.vision_experts)
                t += b.gated_mlp(hidden, inter, bias=bias, prefix=p + f"{group}_experts.")
        return t

    cache: dict[tuple[bool, bool], Layer] = {}
    dense_layer = Layer(att, Mlp("dense", inter), att_t + dense + _norms(hidden))
    layers = []
    for i in range(n):
        if not (use_moe and (i + 1) % interval == 0 and min(starts) <= i <= max(ends)):
            layers.append(dense_layer)
            continue
        key = (starts[0] <= i <= ends[0], starts[1] <= i <= ends[1])
        if key not in cache:
            # The activation estimate sees the text experts (the wider group in every published checkpoint).
            mlp = Mlp("moe", 0, e, k, mis[0] if key[0] else mis[1], mis[0] * ns)
            cache[key] = Layer(att, mlp, att_t + moe_tensors(*key) + _norms(hidden))
        layers.append(cache[key])
    vis = cfg.get("vision_config")
    if not isinstance(vis, dict):
        raise ConfigError("config", "ERNIE-4.5-VL's config lacks vision_config")
    # _visual_token_ids_tensor_cache: the image/video special token ids as an int64 buffer on the GPU
    # (written as int32 pairs: units.DTYPE_BYTES has no int64).
    ids = [x for x in ("im_patch_id", "image_start_token_id", "image_end_token_id", "video_start_token_id",
                       "video_end_token_id") if cfg.get(x) is not None] if cfg.get("im_patch_id") else []
    towers = _vision_tower(vis) + _resampler(cfg, hidden)
    if ids:
        towers += (Tensor("_visual_token_ids_tensor_cache", "projector", (2 * len(ids),), dtype="int32",
                          in_checkpoint=False),)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    merge = _int(vis, "spatial_merge_size", default=2)
    mm = MultimodalSpec(sum(t.numel for t in towers if t.in_checkpoint), merge * merge, hidden,
                        tp_heads=_int(vis, "num_heads"))
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, extra=towers, multimodal=mm,
                 # vLLM drafts only for ernie4_5_moe targets (config/speculative.py), so no mtp here
                 not_loaded=_mtp_not_loaded(_mtp(cfg, att, hidden, heads, kv, hd, inter)),
                 notes=("ERNIE-4.5-VL as vLLM 0.33 builds it: every decoder layer holds its own 3-D RoPE cos/sin "
                        "buffer; weights and KV are read from vLLM's model code, not yet checked against a vLLM "
                        "log.",))
