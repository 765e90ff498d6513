"""Kimi-Linear (model_type kimi_linear) and Kimi K3 (kimi_k3, a kimi_linear text model behind Kimi-K2.5's vision
tower): Kimi Delta Attention (KDA) layers interleaved with NoPE MLA layers, DeepSeek-V3-style MoE after the first
dense layers.

vLLM: models/kimi_linear.py with layers/kda.py (0.12–0.26), then models/kimi_k3 (0.27+), whose shared Kimi GDN layer
(layers/mamba/gdn/kimi_gdn_linear_attn.py) and KimiK3DeltaAttention fuse q/k/v(/g)/b/f_a into one projection (f_a
replicated within it) and the three short convolutions into one, which changes no byte count. K3 adds a full-rank
KDA output gate, q-LoRA MLA with an output gate, latent MoE (experts work in routed_expert_hidden_size, between a
replicated down and up projection) and Block Attention Residuals (a norm and a 1-wide projection per sublayer).
"""

from __future__ import annotations

from dataclasses import replace

from . import builders as b
from .adapters import (
    _embed_head,
    _int,
    _moe_layers,
    _moonvit,
    _spec,
    _text_model,
    _tie,
    _with_tower,
    register,
    sparse_layers,
)
from .spec import Attention, Mlp, ModelSpec, SequenceParallelRule, StateTensor, Tensor


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
    # K3's KimiK3DeltaAttention passes --mamba-ssm-cache-dtype to kda_state_dtype (0.30+: auto is float32); Kimi-Linear's
    # KimiGatedDeltaNetAttention never does.
    k3 = isinstance(lin, dict) and bool(lin.get("use_full_rank_gate"))
    state = (StateTensor("conv", (ck - 1, 3 * proj), 1, "conv"),
             StateTensor("recurrent", (heads, hd, hd), 0, "ssm" if k3 else "float32", "KDA heads"))
    p = b.P + "self_attn."
    if k3:  # K3: g_proj straight from the hidden state
        gate = b.linear(p + "g_proj", "attention", proj, hidden, "column")
    else:
        gate = (b.linear(p + "g_a_proj", "attention", hd, hidden, "replicated")
                + b.linear(p + "g_b_proj", "attention", proj, hd, "column"))
    t = (b.linear(p + "q_proj", "attention", proj, hidden, "column")
         + b.linear(p + "k_proj", "attention", proj, hidden, "column")
         + b.linear(p + "v_proj", "attention", proj, hidden, "column")
         + b.linear(p + "b_proj", "attention", heads, hidden, "column")
         + b.linear(p + "f_a_proj", "attention", hd, hidden, "replicated")
         + b.linear(p + "f_b_proj", "attention", proj, hd, "column")
         + gate
         + b.linear(p + "o_proj", "attention", hidden, proj, "row")
         # fp32 parameters built without the quantization config: the convolutions, dt_bias, A_log
         + (Tensor(p + "conv1d.weight", "attention", (3 * proj, ck), "column", dtype="float32"),
            Tensor(p + "dt_bias", "attention", (proj,), "column", dtype="float32"),
            Tensor(p + "A_log", "attention", (heads,), "head", dtype="float32"))
         + b.norm(p + "o_norm", hd))
    # KimiK3DeltaAttention (full-rank gate) can prefill with FlashKDA, which keeps a prefill-checkpoint state when
    # the gate is bounded and head_dim is 128 (resolve_kda_prefill_backend); the engine decides on the GPU side.
    flash = k3 and lin.get("gate_lower_bound") is not None
    return Attention("mamba", state=state, state_kind="kda_flash" if flash and hd == 128 else "kda"), t


def _mla(cfg: dict, hidden: int, heads: int) -> tuple[Attention, tuple[Tensor, ...]]:
    """KimiMLAAttention: MLA without rotary embedding (mla_use_nope); the cache row is the usual kv_lora_rank +
    qk_rope_head_dim latent. Kimi-Linear projects q straight from the hidden state; K3 goes through a q LoRA
    (q_a replicated, q_b column-parallel) and gates the output (g_proj, column-parallel, mla_use_output_gate)."""
    kvr, rope_d = _int(cfg, "kv_lora_rank"), _int(cfg, "qk_rope_head_dim")
    nope_d, v_d = _int(cfg, "qk_nope_head_dim"), _int(cfg, "v_head_dim")
    qlr = cfg.get("q_lora_rank")
    p = b.P + "self_attn."
    t = b.mla_attention(hidden, heads, int(qlr or 0), kvr, rope_d, nope_d, v_d, prefix=p,
                        gate=bool(cfg.get("mla_use_output_gate")))
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


# kda_state_dtype: the recurrent state is float32 under "auto" and takes only float32 or bfloat16 explicitly (for the
# layers that pass the flag at all: spec.StateTensor dtype "ssm").
KDA_SSM_FLAG = {"mamba_ssm_dtype": "float32", "mamba_ssm_flag_values": ("auto", "float32", "bfloat16")}


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
    latent = _int(cfg, "routed_expert_hidden_size", default=0)
    f = b.P + "block_sparse_moe."  # vLLM's and the checkpoints' module name, which ignore lists match
    # vLLM's kimi_k3 model (0.27+, Kimi-Linear included) pads the experts so each TP partition keeps at least 256
    # intermediate rows when the experts are split over TP (min_moe_intermediate_per_partition).
    floor = _int(cfg, "min_moe_intermediate_per_partition", default=256)
    moe_t = (b.router(hidden, e, name=f + "gate", correction_bias=True)
             + tuple(replace(t, min_shard=floor) for t in b.experts(latent or hidden, mi, e)))
    if latent:
        # Latent MoE (K3): the experts see a routed_expert_hidden_size projection of the hidden state. Both
        # projections are ReplicatedLinear, and the checkpoint keeps them (and the norm) in bf16 beside MXFP4 experts.
        moe_t += (b.linear(f + "routed_expert_down_proj", "router", latent, hidden, "replicated", quantizable=False)
                  + b.linear(f + "routed_expert_up_proj", "router", hidden, latent, "replicated", quantizable=False)
                  + (b.norm(f + "routed_expert_norm", latent) if cfg.get("latent_moe_use_norm") else ()))
    if shared:
        moe_t += b.gated_mlp(hidden, shared * mi, prefix=f + "shared_experts.", kind="shared_experts")
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    if cfg.get("attn_res_block_size"):
        # Block Attention Residuals: per sublayer an RMSNorm and a ReplicatedLinear(hidden, 1) built without the
        # quantization config.
        for part in ("self_attention_res", "mlp_res"):
            norms += b.norm(b.P + part + "_norm", hidden) + b.linear(b.P + part + "_proj", "norm", 1, hidden,
                                                                     "replicated", quantizable=False)
    layers = _moe_layers(cfg, n, sparse_layers(cfg, n, e, first_dense, freq),
                         lambda i: kda if is_kda[i] else mla, lambda a: kda_t if a is kda else mla_t,
                         inter, hidden, moe, moe_t, norms)
    tie = _tie(cfg, outer)
    final = b.norm("model.norm", hidden)
    if cfg.get("attn_res_block_size"):
        final += b.norm("model.output_attn_res_norm", hidden) + b.linear("model.output_attn_res_proj", "norm", 1, hidden,
                                                                         "replicated", quantizable=False)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=final)
    # NoPE: no rotary cache is built (KimiMLAAttention passes rotary_emb=None).
    spec = _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=mla.head_dim,
                 inter=inter, tie=tie, embedding=emb, head=head)
    # The kimi_k3 model code (0.27+) keeps shared experts and dense MLPs whole under sequence-parallel MoE without
    # pipeline parallelism (KimiMLP: disable_tp=replicate); VLLM_KIMI_K3_SHARD_SP_SHARED_EXPERT=1 splits the dense
    # MLP again (the shared experts too only with the MegaMoE or DeepEP-v2 backends, not the default one).
    return replace(spec, **KDA_SSM_FLAG, mamba_ssm_flag_from="0.30", sequence_parallel=(
        SequenceParallelRule(("shared_experts",), "0.27", pp1=True),
        SequenceParallelRule(("mlp",), "0.27", pp1=True, unless_env="VLLM_KIMI_K3_SHARD_SP_SHARED_EXPERT")))


@register("kimi_k3")
def _kimi_k3(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Kimi K3 (KimiK3ForConditionalGeneration): the kimi_linear text model in text_config (which also holds the
    checkpoint's quantization_config) behind Kimi-K2.5's MoonViT3d and its patch-merger projector."""
    inner = _text_model(outer, name, "kimi_linear")
    vis = outer.get("vision_config")
    if not isinstance(vis, dict) or not vis:
        return inner
    return _with_tower(inner, outer, *_moonvit(vis, inner.hidden_size, projector="mm_projector",
                                               whole_unless_tp_divides_heads=True))
