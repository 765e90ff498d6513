"""GLM-4.x: dense glm4 (GLM-4-0414, GLM-Z1), MoE glm4_moe (GLM-4.5, 4.5-Air, 4.6, 4.7), the MLA
glm4_moe_lite (GLM-4.7-Flash), and the vision-language glm4v (GLM-4.1V, GLM-4.6V-Flash) and glm4v_moe (GLM-4.5V,
GLM-4.6V).

As vLLM builds them (vllm/model_executor/models/glm4.py, glm4_moe.py, glm4_1v.py): biased q/k/v, an unbiased
o_proj, and RoPE over half of each head unless the config says otherwise.
"""

from __future__ import annotations

from . import builders as b
from .adapters import (
    _core_dims,
    _embed_head,
    _int,
    _moe_layers,
    _rope,
    _spec,
    _tie,
    _with,
    mla_moe_decoder,
    mtp_module,
    register,
)
from .spec import Attention, Layer, Mlp, ModelSpec, MultimodalSpec, RopeCache, Tensor
from .tower_linears import Tower


def _half_rotary(cfg: dict) -> dict:
    # vLLM defaults partial_rotary_factor to 0.5 for GLM-4 attention when the config leaves it out.
    if cfg.get("partial_rotary_factor") is None and not (
            isinstance(cfg.get("rope_parameters"), dict) and "partial_rotary_factor" in cfg["rope_parameters"]):
        return {**cfg, "partial_rotary_factor": 0.5}
    return cfg


@register("glm4")
def _glm4(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """GLM-4-0414: four RMSNorms per layer (around attention and around the MLP)."""
    cfg = _half_rotary(cfg)
    hidden, n, heads, kv, hd = _core_dims(cfg)
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    norms = sum((b.norm(b.P + k, hidden) for k in ("input_layernorm", "post_self_attn_layernorm",
                                                    "post_attention_layernorm", "post_mlp_layernorm")), ())
    tensors = (b.attention(hidden, heads, kv, hd, qkv_bias=bool(cfg.get("attention_bias", True)))
               + b.gated_mlp(hidden, inter) + norms)
    layer = Layer(Attention("full", heads, kv, hd), Mlp("dense", inter), tensors)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd))


@register("glm4_moe")
def _glm4_moe(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """GLM-4.5/4.6/4.7: the first `first_k_dense_replace` layers dense, the rest a sigmoid-routed MoE with
    n_shared_experts x moe_intermediate_size of shared expert. The router is an fp32 nn.Linear with an fp32
    correction bias; the MTP layers (num_nextn_predict_layers) are not built by the main model."""
    cfg = _half_rotary(cfg)
    hidden, n, heads, kv, hd = _core_dims(cfg)
    e, k = _int(cfg, "n_routed_experts"), _int(cfg, "num_experts_per_tok", default=8)
    mi, inter, vocab = _int(cfg, "moe_intermediate_size"), _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    shared = mi * _int(cfg, "n_shared_experts", default=0)
    first_dense = _int(cfg, "first_k_dense_replace", default=0)
    moe = Mlp("moe", 0, e, k, mi, shared)
    moe_t = b.router(hidden, e, correction_bias=True, fp32=True) + b.experts(hidden, mi, e, prefix=b.P + "mlp.experts")
    if shared:
        moe_t += b.gated_mlp(hidden, shared, prefix=b.P + "mlp.shared_experts.", kind="shared_experts")
    att = Attention("full", heads, kv, hd)
    qkv_bias, qk_norm = bool(cfg.get("attention_bias")), bool(cfg.get("use_qk_norm"))
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    layers = _moe_layers(cfg, n, lambda i: i >= first_dense, lambda i: att,
                         lambda a: b.attention(hidden, heads, kv, hd, qkv_bias=qkv_bias, qk_norm=qk_norm),
                         inter, hidden, moe, moe_t, norms)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd),
                 mtp=mtp_module(layers, hidden, vocab, _int(cfg, "num_nextn_predict_layers", default=0), "deepseek"))


@register("glm4_moe_lite")
def _glm4_moe_lite(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """GLM-4.7-Flash: DeepSeek-V2's MLA attention with GLM-4 MoE blocks (vllm/model_executor/models/
    glm4_moe_lite.py): fp32 sigmoid router with correction bias, shared experts, MTP layers not loaded."""
    return mla_moe_decoder(cfg, outer, name, fp32_router=True)


@register("glm4v", "glm4v_moe")
def _glm4v(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Glm4vForConditionalGeneration / Glm4vMoeForConditionalGeneration (models/glm4_1v.py): the text_config runs
    as Glm4ForCausalLM (glm4v) or Glm4MoeForCausalLM (glm4v_moe), behind Glm4vVisionTransformer."""
    text_adapter = _glm4_moe if outer.get("model_type") == "glm4v_moe" else _glm4
    inner = text_adapter(cfg, outer, name)
    vis = outer.get("vision_config")
    if not isinstance(vis, dict) or not vis:
        return inner
    extra, mm, rope = _glm4v_vision(vis)
    return _with(inner, extra=inner.extra + extra, multimodal=mm, rope_caches=inner.rope_caches + rope)


def _glm4v_vision(vis: dict) -> tuple[tuple[Tensor, ...], MultimodalSpec, tuple[RopeCache, ...]]:
    """Glm4vVisionTransformer as vLLM builds it: a biased Conv3d patch embedding, a learned position table over
    (image_size / patch_size)^2 patches, `depth` blocks of two RMSNorms, bias-free fused qkv and proj, and a
    bias-free gated MLP whose width is out_hidden_size (not intermediate_size); then an RMSNorm, a biased Conv2d
    downsample to out_hidden_size, and the patch merger (proj, LayerNorm with bias, gated MLP of
    intermediate_size). qkv, gate_up and the merger's proj and gate_up are column-parallel, proj and the down
    projections row-parallel; convolutions, norms and the position table are whole on every GPU. Its 2-D rotary
    cache covers 8192 positions over half of each head."""
    h, n = _int(vis, "hidden_size", default=1536), _int(vis, "depth", default=24)
    heads = _int(vis, "num_heads", default=12)
    out, inter = _int(vis, "out_hidden_size", default=4096), _int(vis, "intermediate_size", default=13696)
    p, tp, ch = _int(vis, "patch_size", default=14), _int(vis, "temporal_patch_size", default=2), _int(
        vis, "in_channels", default=3)
    merge = _int(vis, "spatial_merge_size", default=2)
    positions = (_int(vis, "image_size", default=336) // p) ** 2
    column = n * (3 * h * h + 2 * out * h) + out * out + 2 * inter * out
    row = n * (h * h + h * out) + out * inter
    whole = (ch * tp * p * p * h + h + positions * h + n * 2 * h  # patch conv + bias, positions, block norms
             + 2 * h + h * out * merge * merge + out  # post-conv and post norms, downsample conv + bias
             + 2 * out)  # merger LayerNorm
    # glm4_1v.py passes the model's quant_config to every block's qkv, proj, gate/up and down and to the merger's
    # proj, gate/up and down (all bias-free): one tensor per Linear under vLLM's prefixes, same count as above.
    # qkv is named "attn.qkv", vLLM's prefix for it except under compressed-tensors ("attn.qkv_proj").
    t = Tower("visual", whole_name="visual.replicated")  # convolutions, norms, positions (bias-free Linears)
    t.whole += whole
    for j in range(n):
        pre = f"visual.blocks.{j}."
        t.add(pre + "attn.qkv", 3 * h, h)
        t.add(pre + "attn.proj", h, h, "row")
        t.add(pre + "mlp.gate_proj", out, h)
        t.add(pre + "mlp.up_proj", out, h)
        t.add(pre + "mlp.down_proj", h, out, "row")
    t.add("visual.merger.proj", out, out)
    t.add("visual.merger.gate_proj", inter, out)
    t.add("visual.merger.up_proj", inter, out)
    t.add("visual.merger.down_proj", out, inter, "row")
    tensors = t.tensors()
    assert sum(x.numel for x in tensors) == column + row + whole
    # glm4_1v.py splits the tower's heads over TP without vLLM's data-parallel fallback (12 heads: vllm#24004).
    return (tensors, MultimodalSpec(column + row + whole, 1024, out, tp_heads=heads),
            (RopeCache(8192, (h // heads) // 2, tower=True),))
