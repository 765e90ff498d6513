"""Tencent Hunyuan v4 (model_type hy_v4: tencent/Hy4-preview) as vLLM 0.33 builds it (vllm/models/hy_v4/nvidia).

Unrelated to hy_v3 beyond the tokenizer: every layer is DeepSeek-style latent attention (MLA) with an output gate
and a learnable per-head sink, layer 0 has a dense SwiGLU MLP and the rest a sigmoid-routed MoE with one shared
expert, and the residual runs as `hc_mult` parallel streams ("independent hyper-connections", iHC).

Per decoder layer vLLM allocates:

* attention: q_a_proj and kv_a_proj_with_mqa fused into one replicated GEMM, the q_a / kv_a RMSNorms, column-parallel
  q_b_proj and kv_b_proj, a row-parallel o_proj, a column-parallel `linear_gate` (heads x v_head_dim wide for
  "elementwise" gating, heads wide for "headwise"; only with `gated_mla`) and, with `learnable_sink`, a per-head
  sink split over TP. The sink is float32 when a sink-capable backend serves the layer (the sparse layers, on the
  model's own FlashMLA-sparse subclass); on dense MLA no CUDA backend takes sinks, so vLLM keeps it in bfloat16 and
  drops the bias.
* the DSA lightning indexer, replicated, on sparse layers whose `indexer_types` entry is "full" (a "shared" layer
  reuses the top-k indices of the last full one and builds no indexer and no indexer cache): wq_b from the q latent,
  wk and weights_proj fused into one unquantized GEMM, and an fp32 LayerNorm (weight and bias) on the key.
* MLP: gate_up + down for the dense layer; on MoE layers an fp32 router gate, an fp32 `expert_bias` (the checkpoint's
  e_score_correction_bias, which transformers keeps as a buffer), fused experts and a shared SwiGLU of
  n_shared_experts x moe_intermediate_size.
* iHC (with `enable_ihc`): one "pre" block before attention and one before the MLP, each an fp32 hc_fn
  [2 x hc, hc x hidden] plus hc_base [2 x hc] and hc_scale [2]; after the last layer the model merges the streams
  with hc_head_fn [hc, hc x hidden], hc_head_base [hc] and hc_head_scale [1] (all fp32, on the last PP stage).

A layer is sparse when its `layer_types` entry names sparse attention; vLLM's own HYV4Config leaves `layer_types`
unset when config.json lacks it, and then every layer is dense MLA. The model also allocates a
[max_num_batched_tokens, index_topk] int32 top-k buffer at load time, and one bf16 rotary cache of
max_position_embeddings x qk_rope_head_dim shared by attention and indexer (get_rope caches identical requests).

KV: each sparse layer holds an MLA latent row (kv_lora_rank + qk_rope_head_dim values) and each full-indexer layer
also a DeepseekV32IndexerCache row (index_head_dim fp8 values + one fp32 scale per 128: 132 bytes for 128); all are
MLAAttentionSpec, so they form one uniform group on the sparse backends' 64-token blocks.

The checkpoint's MTP layer (layer num_hidden_layers, or model.mtp_layers) is dropped by the main model's loader;
vLLM builds it only as a speculative draft (mtp.py: a MoE decoder layer without iHC, enorm/hnorm, eh_proj and a
final norm, sharing the embedding and LM head).
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from . import builders as b
from .adapters import _indexer_tensors, _int, _rope, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, Tensor, TokenBuffer

# vLLM's HYV4Config defaults for the keys its model reads (vllm/transformers_utils/configs/hy_v4.py).
DEFAULTS = {
    "index_topk": 2048,
    "index_head_dim": 128,
    "index_n_heads": 16,
    "hc_mult": 4,
    "enable_ihc": True,
    "gated_mla": True,
    "gating_type": "elementwise",
    "learnable_sink": True,
    "n_shared_experts": 1,
    "num_nextn_predict_layers": 1,
    "q_lora_rank": 1536,
}
# Attention kinds vLLM's HY V4 attention serves with sparse MLA (attention.py, _SPARSE_LAYER_TYPES).
SPARSE_TYPES = ("sparse_attention", "sparse", "indexed_attention", "deepseek_sparse_attention")
INDEXER_QUANT_BLOCK = 128  # the indexer cache keeps one fp32 scale per 128 fp8 values


def _f32(name: str, *shape: int, kind: str = "other") -> Tensor:
    # iHC parameters are ReplicatedLinear / nn.Parameter with params_dtype float32 and no quant_config
    return Tensor(name, kind, tuple(shape), "replicated", dtype="float32")


def _indexer_types(cfg: dict, n: int) -> list[str]:
    """vLLM's compute_skip_topk_layers: indexer_types when given (one per layer), else layer 0 and every fourth layer
    from 1 run their own indexer (HYV4Config's default)."""
    types = cfg.get("indexer_types")
    if types is None:
        return ["full" if i == 0 or (i - 1) % 4 == 0 else "shared" for i in range(n)]
    if not isinstance(types, list) or len(types) != n or set(types) - {"full", "shared"}:
        raise ConfigError(
            "indexer_types", f"hy_v4 needs indexer_types with one 'full' / 'shared' per layer ({n})"
        )
    return [str(t) for t in types]


def _sparse_layers(cfg: dict, n: int) -> list[bool]:
    types = cfg.get("layer_types")
    if types is None:
        return [False] * n  # vLLM's HYV4Config does not fill layer_types: dense MLA everywhere
    if not isinstance(types, list):
        raise ConfigError("layer_types", "hy_v4 layer_types must be a list")
    return [i < len(types) and types[i] in SPARSE_TYPES for i in range(n)]


def _mlp_types(cfg: dict, n: int) -> list[str]:
    types = cfg.get("mlp_layer_types")
    if types is None:
        return ["dense"] * min(1, n) + ["sparse"] * max(n - 1, 0)
    if not isinstance(types, list) or len(types) < n:
        raise ConfigError("mlp_layer_types", f"hy_v4 needs mlp_layer_types with one entry per layer ({n})")
    return [str(t) for t in types[:n]]


@register("hy_v4")
def _hy_v4(cfg: dict, outer: dict, name: str) -> ModelSpec:
    cfg = {**DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    hidden, n, heads = (
        _int(cfg, "hidden_size"),
        _int(cfg, "num_hidden_layers"),
        _int(cfg, "num_attention_heads"),
    )
    qlr, kvr = _int(cfg, "q_lora_rank"), _int(cfg, "kv_lora_rank")
    rope_d, nope_d, v_d = (
        _int(cfg, "qk_rope_head_dim"),
        _int(cfg, "qk_nope_head_dim"),
        _int(cfg, "v_head_dim"),
    )
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    e, k, mi = (
        _int(cfg, "n_routed_experts"),
        _int(cfg, "num_experts_per_tok"),
        _int(cfg, "moe_intermediate_size"),
    )
    shared = _int(cfg, "n_shared_experts") * mi
    ihd, topk = _int(cfg, "index_head_dim"), _int(cfg, "index_topk")
    hc = _int(cfg, "hc_mult") if cfg.get("enable_ihc") else 1
    if not qlr:
        raise ConfigError(
            "q_lora_rank", "hy_v4's indexer projects queries from the q latent: q_lora_rank is required"
        )
    sparse = _sparse_layers(cfg, n)
    full_idx = _indexer_types(cfg, n)
    mlp_types = _mlp_types(cfg, n)
    if any(sparse) and ihd != INDEXER_QUANT_BLOCK:
        # gpuplan's indexer row is 128 fp8 values + one fp32 scale; vLLM sizes it index_head_dim + index_head_dim/128*4
        raise ConfigError("index_head_dim", f"hy_v4 with index_head_dim {ihd}: only 128 is modelled")

    p = b.P + "self_attn."
    gating = str(cfg.get("gating_type"))
    if cfg.get("gated_mla") and gating not in ("elementwise", "headwise"):
        raise ConfigError("gating_type", f"unknown hy_v4 gating_type {gating!r}")
    gate_w = (v_d if gating == "elementwise" else 1) if cfg.get("gated_mla") else 0
    att_t = b.mla_attention(hidden, heads, qlr, kvr, rope_d, nope_d, v_d, prefix=p)
    if gate_w:
        att_t += b.linear(p + "linear_gate", "attention", heads * gate_w, hidden, "column")

    def sink(is_sparse: bool) -> tuple[Tensor, ...]:
        if not cfg.get("learnable_sink"):
            return ()
        # fp32 when the sink-capable FlashMLA-sparse subclass serves the layer, else loaded in bf16 and unused
        return (
            Tensor(
                p + "learnable_sink_param",
                "attention",
                (heads,),
                "head",
                dtype="float32" if is_sparse else "bfloat16",
            ),
        )

    idx_t = _indexer_tensors(cfg, hidden, qlr, ihd)
    hc_t: tuple[Tensor, ...] = ()
    if cfg.get("enable_ihc"):
        for part in ("hc_attn_layer", "hc_mlp_layer"):
            q = b.P + part + ".hc_pre."
            hc_t += (
                _f32(q + "hc_fn.weight", 2 * hc, hc * hidden),
                _f32(q + "hc_base", 2 * hc),
                _f32(q + "hc_scale", 2),
            )
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    moe = Mlp("moe", 0, e, k, mi, shared)
    moe_t = (
        b.router(hidden, e, name=b.P + "mlp.gate", fp32=True)
        + (Tensor(b.P + "mlp.expert_bias", "router", (e,), "replicated", dtype="float32"),)
        + b.experts(hidden, mi, e)
    )
    if shared:
        moe_t += b.gated_mlp(hidden, shared, prefix=b.P + "mlp.shared_experts.", kind="shared_experts")

    def attention(is_sparse: bool, with_indexer: bool) -> Attention:
        return Attention(
            "mla",
            heads,
            1,
            kvr + rope_d,
            kv_lora_rank=kvr,
            qk_rope_head_dim=rope_d,
            qk_nope_head_dim=nope_d,
            v_head_dim=v_d,
            indexer_head_dim=ihd if with_indexer else 0,
            sparse=is_sparse,
        )

    cache: dict[tuple, Layer] = {}
    layers = []
    for i in range(n):
        # a "shared" sparse layer reuses an earlier layer's top-k indices: no indexer weights, no indexer cache
        with_indexer = sparse[i] and full_idx[i] == "full"
        is_moe = mlp_types[i] == "sparse"
        key = (sparse[i], with_indexer, is_moe)
        if key not in cache:
            mlp_t = moe_t if is_moe else b.gated_mlp(hidden, inter)
            tensors = att_t + sink(sparse[i]) + (idx_t if with_indexer else ()) + mlp_t + norms + hc_t
            cache[key] = Layer(
                attention(sparse[i], with_indexer), moe if is_moe else Mlp("dense", inter), tensors
            )
        layers.append(cache[key])

    tie = _tie(cfg, outer)
    final: tuple[Tensor, ...] = b.norm("model.norm", hidden)
    if cfg.get("enable_ihc"):
        final += (
            _f32("model.hc_head.hc_head_fn.weight", hc, hc * hidden),
            _f32("model.hc_head.hc_head_base", hc),
            _f32("model.hc_head.hc_head_scale", 1),
        )
    emb = (b.embedding(vocab, hidden),)
    head = final + b.lm_head(vocab, hidden)

    not_loaded: tuple[Tensor, ...] = ()
    mtp = _int(cfg, "num_nextn_predict_layers")
    if mtp:
        # One draft block per MTP layer (vLLM builds max(n - 1, 1)): a MoE decoder layer without iHC; vLLM's draft
        # extends layer_types past the backbone with "full_attention", so it has no indexer; plus enorm, hnorm,
        # eh_proj [hidden, 2 x hidden] and final_layernorm. Embedding and LM head are the main model's.
        block = att_t + sink(False) + moe_t + norms
        per = sum(t.numel for t in block) + 2 * hidden * hidden + 3 * hidden
        not_loaded = (Tensor("model.mtp_layers", "mtp", (max(mtp - 1, 1) * per,), "replicated"),)

    rope_cfg = cfg
    params = cfg.get("rope_parameters")
    if isinstance(params, dict) and not cfg.get("rope_scaling"):
        rope_cfg = {**cfg, "rope_scaling": params}  # a YaRN-extended cache is sized from rope_parameters
    spec = _spec(
        name,
        cfg,
        outer,
        layers,
        hidden=hidden,
        vocab=vocab,
        heads=heads,
        head_dim=kvr + rope_d,
        inter=inter,
        tie=tie,
        embedding=emb,
        head=head,
        rope=_rope(rope_cfg, rope_d),
        not_loaded=not_loaded,
        residual_streams=hc,
        # HYV4Model allocates the sparse top-k index buffer whenever the config has index_topk (always)
        token_buffers=(TokenBuffer("topk_indices_buffer", topk, "int32"),),
    )
    notes = ()
    if not any(sparse):
        notes = (
            "hy_v4 config without sparse layer_types: vLLM serves every layer as dense MLA, without indexers "
            "and with the learnable sink disabled",
        )
    return replace(spec, notes=spec.notes + notes)
