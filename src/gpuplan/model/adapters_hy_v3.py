"""Tencent Hunyuan v3 (model_type hy_v3: tencent/Hy3, Hy3-preview) as vLLM builds it (models/hy_v3.py).

Every layer is full attention: q/k/v/o without biases, per-head q/k RMSNorms when the config sets `qk_norm`, RoPE
over the whole head. The first `first_k_dense_replace` layers have a gated MLP of `intermediate_size`; the rest a
sigmoid-routed MoE: `num_experts` fused experts of `expert_hidden_dim`, a shared MLP of
`num_shared_experts x expert_hidden_dim`, a router gate held in float32 (GateLinear with params_dtype float32) and a
float32 `expert_bias` parameter (float32 from vLLM 0.26; the model dtype before, 2 bytes x experts per layer less).
The checkpoint's next-token-prediction layer (layer `num_hidden_layers`) is skipped by the main model's loader;
vLLM builds it (models/hy_v3_mtp.py, 0.20-0.33) only as a speculative draft: a MoE decoder layer under the prefix
model.layers.{n + j} with the checkpoint's quantization, enorm, hnorm, a plain nn.Linear eh_proj [hidden, 2 x hidden]
(whole on every GPU, never quantized) and final_layernorm. Its shared_head.head and embedding are the target's
(the proposer's load_model).
"""

from __future__ import annotations

from . import builders as b
from .adapters import _core_dims, _embed_head, _int, _moe_layers, _rope, _spec, _tie, register
from .spec import Attention, Mlp, ModelSpec, MtpModule, Tensor


def _dense_layers(cfg: dict, n: int) -> int:
    """How many leading layers are dense. vLLM reads first_k_dense_replace (and refuses a config without it);
    transformers' HYV3Config spells the same layout as mlp_layer_types, which is used when that is all there is."""
    if cfg.get("first_k_dense_replace") is not None:
        return _int(cfg, "first_k_dense_replace")
    types = cfg.get("mlp_layer_types")
    if isinstance(types, list) and types:
        return next((i for i, t in enumerate(types[:n]) if t == "sparse"), n)
    return 1


@register("hy_v3")
def _hy_v3(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, heads, kv, hd = _core_dims(cfg)
    e, k = _int(cfg, "num_experts"), _int(cfg, "num_experts_per_tok", default=8)
    # The experts' width is expert_hidden_dim in vLLM; transformers calls the same number moe_intermediate_size.
    mi = _int(cfg, "expert_hidden_dim", "moe_intermediate_size")
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    shared = mi * _int(cfg, "num_shared_experts", default=0)
    dense = _dense_layers(cfg, n)
    moe = Mlp("moe", 0, e, k, mi, shared)
    p = b.P + "mlp."
    moe_t = (b.router(hidden, e, name=p + "router.gate", fp32=True)
             + (Tensor(p + "expert_bias", "router", (e,), "replicated", dtype="float32"),)
             + b.experts(hidden, mi, e))
    if shared:
        moe_t += b.gated_mlp(hidden, shared, prefix=p + "shared_mlp.", kind="shared_experts")
    att = Attention("full", heads, kv, hd)
    # q_norm/k_norm exist only when the config says qk_norm (getattr(config, "qk_norm", False) in vLLM).
    att_t = b.attention(hidden, heads, kv, hd, qk_norm=bool(cfg.get("qk_norm")))
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    layers = _moe_layers(cfg, n, lambda i: i >= dense, lambda i: att, lambda a: att_t, inter, hidden, moe, moe_t,
                         norms)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    mtp: MtpModule | None = None
    not_loaded: tuple[Tensor, ...] = ()
    if (k := _int(cfg, "num_nextn_predict_layers", default=0)) > 0:
        own = tuple(t for j in range(k) for t in b.mtp_input(
            f"model.layers.{n + j}.", hidden, f"model.layers.{n + j}.final_layernorm"))
        # HYV3DecoderLayer reads its index from the prefix: past first_k_dense_replace, so a MoE layer
        mtp = MtpModule(layers=(layers[-1],) * k, tensors=own, style="hy_v3")
        not_loaded = (Tensor("model.layers.mtp", "mtp", (mtp.params,), "replicated"),)
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd), not_loaded=not_loaded, mtp=mtp)
