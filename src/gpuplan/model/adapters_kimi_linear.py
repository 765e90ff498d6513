"""Kimi-Linear (model_type kimi_linear): Kimi Delta Attention (KDA) layers interleaved with NoPE MLA layers,
DeepSeek-V3-style MoE after the first dense layers.

vLLM: models/kimi_linear.py with layers/kda.py (0.11–0.26), then models/kimi_k3 with the shared Kimi GDN layer
(layers/mamba/gdn/kimi_gdn_linear_attn.py). Both load the same tensors; the later one fuses q/k/v/b/f_a into one
projection (f_a replicated within it) and the three short convolutions into one, which changes no byte count.
"""

from __future__ import annotations

from . import builders as b
from .adapters import _embed_head, _int, _moe_layers, _spec, _tie, register
from .spec import Attention, Mlp, ModelSpec, StateTensor, Tensor


def _kda(cfg: dict, hidden: int) -> tuple[Attention, tuple[Tensor, ...]]:
    """One KDA layer: its per-request state (MambaStateShapeCalculator.kda_state_shape: a short-conv window of
    kernel-1 positions over q, k and v, and a [heads, head_dim, head_dim] recurrent state kept in float32 by
    kda_state_dtype) and its tensors."""
    lin = cfg.get("linear_attn_config")
    if isinstance(lin, dict):
        heads, hd = _int(lin, "num_heads"), _int(lin, "head_dim")
        ck = _int(lin, "short_conv_kernel_size", default=4)
    else:  # transformers 5 spells the KDA geometry as flat keys
        heads, hd = _int(cfg, "linear_num_heads"), _int(cfg, "linear_head_dim")
        ck = _int(cfg, "linear_conv_kernel_dim", default=4)
    proj = heads * hd
    state = (StateTensor("conv", (ck - 1, 3 * proj), 1, "conv"),
             StateTensor("recurrent", (heads, hd, hd), 0, "float32", "KDA heads"))
    p = b.P + "self_attn."
    t = (b.linear(p + "q_proj", "attention", proj, hidden, "column")
         + b.linear(p + "k_proj", "attention", proj, hidden, "column")
         + b.linear(p + "v_proj", "attention", proj, hidden, "column")
         + b.linear(p + "b_proj", "attention", heads, hidden, "column")
         + b.linear(p + "f_a_proj", "attention", hd, hidden, "replicated")
         + b.linear(p + "f_b_proj", "attention", proj, hd, "column")
         + b.linear(p + "g_a_proj", "attention", hd, hidden, "replicated")
         + b.linear(p + "g_b_proj", "attention", proj, hd, "column")
         + b.linear(p + "o_proj", "attention", hidden, proj, "row")
         # fp32 parameters built without the quantization config: the convolutions, dt_bias, A_log
         + (Tensor(p + "conv1d.weight", "attention", (3 * proj, ck), "column", dtype="float32"),
            Tensor(p + "dt_bias", "attention", (proj,), "column", dtype="float32"),
            Tensor(p + "A_log", "attention", (heads,), "head", dtype="float32"))
         + b.norm(p + "o_norm", hd))
    return Attention("mamba", state=state, state_kind="kda"), t


def _mla(cfg: dict, hidden: int, heads: int) -> tuple[Attention, tuple[Tensor, ...]]:
    """KimiMLAAttention: MLA without a q LoRA (q_proj straight from the hidden state) and without rotary
    embedding (mla_use_nope); the cache row is the usual kv_lora_rank + qk_rope_head_dim latent."""
    kvr, rope_d = _int(cfg, "kv_lora_rank"), _int(cfg, "qk_rope_head_dim")
    nope_d, v_d = _int(cfg, "qk_nope_head_dim"), _int(cfg, "v_head_dim")
    p = b.P + "self_attn."
    t = (b.linear(p + "q_proj", "attention", heads * (nope_d + rope_d), hidden, "column")
         + b.linear(p + "kv_a_proj_with_mqa", "attention", kvr + rope_d, hidden, "replicated")
         + b.norm(p + "kv_a_layernorm", kvr)
         + b.linear(p + "kv_b_proj", "attention", heads * (nope_d + v_d), kvr, "column")
         + b.linear(p + "o_proj", "attention", hidden, heads * v_d, "row"))
    att = Attention("mla", heads, 1, kvr + rope_d, kv_lora_rank=kvr, qk_rope_head_dim=rope_d,
                    qk_nope_head_dim=nope_d, v_head_dim=v_d)
    return att, t


def _kda_layers(cfg: dict, n: int) -> list[bool]:
    """Which layers are KDA: linear_attn_config.kda_layers, 1-based as KimiLinearConfig.is_kda_layer reads it, or
    transformers 5's per-layer layer_types. With neither every layer is MLA."""
    lin = cfg.get("linear_attn_config")
    kda = lin.get("kda_layers") if isinstance(lin, dict) else None
    if isinstance(kda, list):
        chosen = {int(x) for x in kda}
        return [i + 1 in chosen for i in range(n)]
    types = cfg.get("layer_types")
    if isinstance(types, list) and len(types) >= n:
        return [types[i] == "linear_attention" for i in range(n)]
    return [False] * n


@register("kimi_linear")
def _kimi_linear(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, heads = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "num_attention_heads")
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    e, k = _int(cfg, "num_experts", default=0), _int(cfg, "num_experts_per_token", default=0)
    mi = _int(cfg, "moe_intermediate_size", default=0)
    shared = _int(cfg, "num_shared_experts", default=0)
    first_dense, freq = _int(cfg, "first_k_dense_replace", default=0), _int(cfg, "moe_layer_freq", default=1) or 1
    kda, kda_t = _kda(cfg, hidden)
    mla, mla_t = _mla(cfg, hidden, heads)
    is_kda = _kda_layers(cfg, n)
    moe = Mlp("moe", 0, e, k, mi, shared * mi)
    # KimiMoE: an unquantized replicated gate with an fp32 correction bias (bf16 before the kimi_k3 rewrite in 0.27;
    # 13 KB in all), fused experts, and num_shared_experts folded into one gated MLP.
    moe_t = (b.router(hidden, e, name=b.P + "mlp.gate", correction_bias=True)
             + b.experts(hidden, mi, e))
    if shared:
        moe_t += b.gated_mlp(hidden, shared * mi, prefix=b.P + "mlp.shared_experts.", kind="shared_experts")
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    mlp_types = cfg.get("mlp_layer_types")  # transformers 5 spells the dense/sparse layout per layer
    if isinstance(mlp_types, list) and len(mlp_types) >= n:
        def is_moe(i: int) -> bool:
            return e > 0 and mlp_types[i] == "sparse"
    else:
        def is_moe(i: int) -> bool:
            return e > 0 and i >= first_dense and i % freq == 0
    layers = _moe_layers(cfg, n, is_moe,
                         lambda i: kda if is_kda[i] else mla, lambda a: kda_t if a is kda else mla_t,
                         inter, hidden, moe, moe_t, norms)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    # NoPE: no rotary cache is built (KimiMLAAttention passes rotary_emb=None).
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=mla.head_dim,
                 inter=inter, tie=tie, embedding=emb, head=head)
