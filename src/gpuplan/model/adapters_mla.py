"""DeepSeek-lineage families vLLM builds in its own files: Sarvam (models/sarvam.py), Huawei openPangu
(models/openpangu.py) and Mistral Large 3 (models/mistral_large_3.py).

* sarvam_mla (Sarvam-105B, SarvamMLAForCausalLM): MLA without a q LoRA, a dense first layer, then a sigmoid MoE whose
  gate is a model-dtype linear with an fp32 correction bias and `num_shared_experts` shared experts. The config
  spells the experts `num_experts` / `num_shared_experts`, which the generic MLA path misread (no shared expert).
* sarvam_moe (Sarvam-30B, SarvamMoEForCausalLM = models/bailing_moe.py): GQA with a fused QKV and per-head q/k
  RMSNorms, the gate kept in `router_dtype` (fp32 on the release) with an fp32 expert bias.
* PanguEmbedded / PanguProMoE / pangu_ultra_moe: one decoder layer class whose attention follows the config: MLA
  when the DeepSeek MLA keys are set (Ultra-MoE), "sink" attention when param_sink_number > 0 (openPangu-R-72B:
  GQA with 192-wide keys, 128-wide values, a K RMSNorm and learned sink keys/values), else Llama attention with
  one `bias` flag for q/k/v/o (Embedded). Sandwich norms add two RMSNorms per layer; the MoE gate is model dtype
  with an fp32 correction bias. Standard and sink attention take a per-layer window from
  interleaved_sliding_window, which none of the public checkpoints sets. The 128 sink tokens sit in the paged
  cache's first blocks and add no pages. MTP layers (num_nextn_predict_layers) are skipped by the loader.
* Mistral Large 3 ships a Mistral-format params.json, no config.json. vLLM turns it into a DeepSeek-V3 config
  (transformers_utils/configs/mistral.py) and serves MistralLarge3ForCausalLM, a DeepseekV3ForCausalLM with a
  checkpoint-name mapper: `mistral_large_3_config` does the same remapping, and the deepseek_v3 adapter sizes it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import ConfigError
from . import builders as b
from .adapters import (
    _core_dims,
    _embed_head,
    _int,
    _moe_layers,
    _rope,
    _spec,
    _tie,
    mla_moe_decoder,
    register,
)
from .spec import Attention, Layer, Mlp, ModelSpec, RopeCache, Tensor

# ----------------------------------------------------------------------------- Sarvam


@register("sarvam_mla")
def _sarvam_mla(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """SarvamMLAForCausalLM: DeepSeek-V2-style MLA + MoE under Sarvam's key names."""
    n = _int(cfg, "num_hidden_layers")
    experts = _int(cfg, "num_experts", "n_routed_experts", default=0)
    first = _int(cfg, "first_k_dense_replace", default=1)  # sarvam.py's default when the key is absent
    freq = _int(cfg, "moe_layer_freq", default=1) or 1
    mi = _int(cfg, "moe_intermediate_size")
    shared = _int(cfg, "num_shared_experts", default=1)
    # A layer is sparse from first_k_dense_replace on, every moe_layer_freq-th counted from there.
    types = ["sparse" if experts and i >= first and (i - first) % freq == 0 else "dense" for i in range(n)]
    mla_cfg = {**cfg, "n_routed_experts": experts, "n_shared_experts": 0, "mlp_layer_types": types,
               "q_lora_rank": cfg.get("q_lora_rank"), "first_k_dense_replace": first,
               # the gate stays in the model dtype; only moe_router_enable_expert_bias adds the fp32 bias
               "topk_method": "noaux_tc" if cfg.get("moe_router_enable_expert_bias", True) else None}
    spec = mla_moe_decoder(mla_cfg, outer, name)
    width = (_int(cfg, "moe_shared_expert_intermediate_size", default=0) or mi) * shared
    return _with_shared_experts(spec, _int(cfg, "hidden_size"), width) if width else spec


def _with_shared_experts(spec: ModelSpec, hidden: int, width: int) -> ModelSpec:
    """Add a gated shared expert of `width` to every MoE layer (sarvam.py sizes it by its own key)."""
    shared_t = b.gated_mlp(hidden, width, prefix=b.P + "mlp.shared_experts.", kind="shared_experts")
    cache: dict[int, Layer] = {}
    layers = []
    for layer in spec.layers:
        if layer.mlp.kind == "moe" and id(layer) not in cache:
            cache[id(layer)] = Layer(layer.attention, replace(layer.mlp, shared_intermediate_size=width),
                                     layer.tensors + shared_t)
        layers.append(cache.get(id(layer), layer))
    return replace(spec, layers=tuple(layers))


@register("sarvam_moe")
def _sarvam_moe(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """SarvamMoEForCausalLM, served by bailing_moe.py's BailingMoeForCausalLM."""
    hidden, n, heads, kv, hd = _core_dims(cfg)
    e, k = _int(cfg, "num_experts"), _int(cfg, "num_experts_per_tok")
    mi, inter, vocab = _int(cfg, "moe_intermediate_size"), _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    first = _int(cfg, "first_k_dense_replace", default=0)
    bias = bool(cfg.get("use_bias"))
    p = b.P + "attention."
    att_t = b.attention(hidden, heads, kv, hd, qkv_bias=bias or bool(cfg.get("use_qkv_bias")), o_bias=bias,
                        prefix=p, o_name="dense")
    if cfg.get("use_qk_norm"):
        # RMSNorms over the head when use_rmsnorm, else nn.LayerNorm (a weight and a bias each)
        ln_bias = not cfg.get("use_rmsnorm")
        att_t += b.norm(p + "query_layernorm", hd, ln_bias) + b.norm(p + "key_layernorm", hd, ln_bias)
    rd = cfg.get("router_dtype")
    router_dtype = None if rd is None else ("float32" if rd == "fp32" else "bfloat16")
    moe_t: tuple[Tensor, ...] = (Tensor(b.P + "mlp.gate.weight", "router", (e, hidden), dtype=router_dtype),)
    if cfg.get("moe_router_enable_expert_bias"):
        moe_t += (Tensor(b.P + "mlp.gate.expert_bias", "router", (e,), dtype="float32"),)
    moe_t += b.experts(hidden, mi, e)
    shared = 0
    if _int(cfg, "num_shared_experts", default=0):
        shared = (_int(cfg, "moe_shared_expert_intermediate_size", default=0) or mi) * _int(cfg, "num_shared_experts")
        moe_t += b.gated_mlp(hidden, shared, prefix=b.P + "mlp.shared_experts.", kind="shared_experts", bias=bias)
    moe = Mlp("moe", 0, e, k, mi, shared)
    att = Attention("full", heads, kv, hd)
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    layers = []
    dense = Layer(att, Mlp("dense", inter), att_t + b.gated_mlp(hidden, inter, bias=bias) + norms)
    sparse = Layer(att, moe, att_t + moe_t + norms)
    for i in range(n):
        layers.append(dense if i < first else sparse)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden),
                            embed_name="model.word_embeddings")
    rope = _rope(cfg, hd)
    if cfg.get("rotary_dim") and rope:  # bailing_moe.py prefers an explicit rotary_dim to partial_rotary_factor
        rope = (replace(rope[0], rotary_dim=_int(cfg, "rotary_dim")),)
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=rope)


# ----------------------------------------------------------------------------- openPangu


def _pangu_moe_keys(cfg: dict) -> tuple[dict, tuple[str, ...]]:
    """openpangu.py reads DeepSeek's names (n_routed_experts, n_shared_experts, first_k_dense_replace). The
    openPangu-R-72B config.json spells them num_experts, shared_expert_intermediate_size and mlp_only_layers and
    leaves the renaming to its remote configuration class; read them that way when the DeepSeek names are absent."""
    notes: list[str] = []
    out = dict(cfg)
    if out.get("n_routed_experts") is None and out.get("num_experts"):
        out["n_routed_experts"] = _int(cfg, "num_experts")
        notes.append("num_experts")
    mi = _int(cfg, "moe_intermediate_size", default=0)
    if out.get("n_shared_experts") is None and cfg.get("shared_expert_intermediate_size") and mi:
        width = _int(cfg, "shared_expert_intermediate_size")
        if width % mi:
            raise ConfigError("shared_expert_intermediate_size",
                              f"{width} is not a whole number of {mi}-wide experts")
        out["n_shared_experts"] = width // mi
        notes.append("shared_expert_intermediate_size")
    only = cfg.get("mlp_only_layers")
    if out.get("first_k_dense_replace") is None and isinstance(only, list):
        if sorted(only) != list(range(len(only))):
            raise ConfigError("mlp_only_layers", "openpangu.py keeps only the first layers dense, got "
                              f"{only!r}")
        out["first_k_dense_replace"] = len(only)
        notes.append("mlp_only_layers")
    if notes:
        return out, (f"read {', '.join(notes)} as the DeepSeek-named keys openpangu.py uses (n_routed_experts, "
                     "n_shared_experts, first_k_dense_replace)",)
    return out, ()


def _pangu_window(cfg: dict, i: int) -> int | None:
    w = cfg.get("interleaved_sliding_window")
    if isinstance(w, list) and w:
        w = w[i % len(w)]
    return int(w) if w else None


@register("PanguEmbedded", "PanguProMoE", "pangu_ultra_moe")
def _openpangu(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """PanguEmbeddedForCausalLM, PanguProMoEV2ForCausalLM and PanguUltraMoEForCausalLM (models/openpangu.py)."""
    cfg, notes = _pangu_moe_keys(cfg)
    hidden, n = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers")
    heads, vocab = _int(cfg, "num_attention_heads"), _int(cfg, "vocab_size")
    inter = _int(cfg, "intermediate_size")
    mla = all(cfg.get(k) is not None for k in ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "kv_lora_rank"))
    sink = _int(cfg, "param_sink_number", default=0) if not mla else 0
    bias = bool(cfg.get("attention_bias") or cfg.get("bias"))
    qkv_bias = bool(cfg["qkv_bias"]) if cfg.get("qkv_bias") is not None else bias
    not_loaded: tuple[Tensor, ...] = ()
    tp_divides: tuple[tuple[int, str], ...] = ()
    p = b.P + "self_attn."
    if mla:
        # MLA with a fused q_a/kv_a projection (replicated, as q_a_proj + kv_a_proj_with_mqa are in DeepSeek);
        # the rotary embedding is always deepseek_yarn with factor 1: an fp32 cache of max_position_embeddings.
        ds = mla_moe_decoder({**cfg, "n_routed_experts": 0, "first_k_dense_replace": n}, outer, name)
        att0 = ds.layers[0].attention
        att_t = tuple(t for t in ds.layers[0].tensors if t.name.startswith(p))
        hd = att0.head_dim

        def att_for(i: int) -> Attention:
            return att0

        def att_tensors(a: Attention) -> tuple[Tensor, ...]:
            return att_t

        rope = (RopeCache(_int(cfg, "max_position_embeddings", default=8192), _int(cfg, "qk_rope_head_dim"),
                          "float32"),)
    else:
        kv = _int(cfg, "num_key_value_heads", default=heads)
        if sink:
            # StaticSinkAttention on the DiffKV backend: keys qk_nope_dim + qk_rope_dim wide, values v_channels
            # wide; RoPE on the last qk_rope_dim of each key (a partial rotary cache).
            rope_d, vd = _int(cfg, "qk_rope_dim"), _int(cfg, "v_channels")
            hd = _int(cfg, "qk_nope_dim") + rope_d
            rot = rope_d
        else:
            hd = _int(cfg, "head_dim", default=0) or hidden // heads
            vd, rot = hd, 0
        base_t = b.attention(hidden, heads, kv, hd, qkv_bias=qkv_bias, o_bias=bias, v_head_dim=vd)
        if sink:
            base_t += b.norm(p + "k_layernorm", hd)
            # [sinks, kv heads, dim] split over the KV heads (openpangu.py refuses fewer KV heads than ranks)
            kv_t = (Tensor(p + "param_sink_key", "attention", (kv * sink * hd,), "kv", heads=kv),)
            v_t = Tensor(p + "param_sink_value", "attention", (kv * sink * vd,), "kv", heads=kv,
                         in_checkpoint=bool(cfg.get("param_sink_with_value")))  # else a zero buffer
            # post_weight_load keeps the K-normed sink keys as a tensor of their own
            base_t += kv_t + (v_t, Tensor(p + "sink_key_normed", "attention", (kv * sink * hd,), "kv", heads=kv,
                                          in_checkpoint=False))
            tp_divides = ((kv, "the sink attention's KV heads (openpangu.py cannot replicate them)"),)
        cache: dict[int | None, Attention] = {}

        def att_for(i: int) -> Attention:
            w = _pangu_window(cfg, i)
            if w not in cache:
                cache[w] = Attention("sliding_window" if w else "full", heads, kv, hd,
                                     v_head_dim=vd if vd != hd else None, window=w, v_own_size=bool(sink))
            return cache[w]

        def att_tensors(a: Attention) -> tuple[Tensor, ...]:
            return base_t

        rope = (RopeCache(_int(cfg, "max_position_embeddings", default=8192), rot),) if rot else _rope(cfg, hd)
    experts = cfg.get("n_routed_experts")
    first = _int(cfg, "first_k_dense_replace", default=n)
    moe = Mlp("dense", inter)
    moe_t: tuple[Tensor, ...] = ()
    if experts is not None:
        e, mi = _int(cfg, "n_routed_experts"), _int(cfg, "moe_intermediate_size")
        shared = mi * _int(cfg, "n_shared_experts", default=0)
        moe = Mlp("moe", 0, e, _int(cfg, "num_experts_per_tok"), mi, shared)
        moe_t = b.router(hidden, e, correction_bias=bool(cfg.get("router_enable_expert_bias"))) + b.experts(
            hidden, mi, e)
        if cfg.get("n_shared_experts") is not None:
            moe_t += b.gated_mlp(hidden, shared, prefix=b.P + "mlp.shared_experts.", kind="shared_experts")
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    if cfg.get("sandwich_norm"):
        norms += b.norm(b.P + "pre_mlp_layernorm", hidden) + b.norm(b.P + "post_mlp_layernorm", hidden)
    if experts is None:
        dense_t = b.gated_mlp(hidden, inter, bias=bool(cfg.get("mlp_bias")))
        layers = []
        lcache: dict[int, Layer] = {}
        for i in range(n):
            a = att_for(i)
            if id(a) not in lcache:
                lcache[id(a)] = Layer(a, Mlp("dense", inter), att_tensors(a) + dense_t + norms)
            layers.append(lcache[id(a)])
    else:
        layers = _moe_layers(cfg, n, lambda i: i >= first, att_for, att_tensors, inter, hidden, moe, moe_t, norms)
    mtp = _int(cfg, "num_nextn_predict_layers", default=0)
    if mtp:
        # Checkpoint layers past num_hidden_layers (one decoder layer, eh_proj, two norms and a head each) are
        # dropped by OpenPanguModel's loader; vLLM builds them only as the OpenPanguMTP draft model.
        per = layers[-1].numel + 2 * hidden * hidden + 3 * hidden + vocab * hidden
        not_loaded = (Tensor("model.layers.mtp", "mtp", (mtp * per,)),)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    spec = _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=rope, not_loaded=not_loaded, notes=notes)
    return replace(spec, tp_divides=tp_divides) if tp_divides else spec


# ----------------------------------------------------------------------------- Mistral Large 3


_MISTRAL_KEYS = {"dim": "hidden_size", "norm_eps": "rms_norm_eps", "n_kv_heads": "num_key_value_heads",
                 "n_layers": "num_hidden_layers", "n_heads": "num_attention_heads", "hidden_dim": "intermediate_size"}
_MISTRAL_MOE_KEYS = {"route_every_n": "moe_layer_freq", "first_k_dense_replace": "first_k_dense_replace",
                     "num_experts_per_tok": "num_experts_per_tok", "num_experts": "n_routed_experts",
                     "expert_hidden_dim": "moe_intermediate_size", "routed_scale": "routed_scaling_factor",
                     "num_shared_experts": "n_shared_experts", "num_expert_groups": "n_group",
                     "num_expert_groups_per_tok": "topk_group"}


def mistral_text_config(params: dict[str, Any]) -> dict[str, Any]:
    """Mistral key names to HF ones, with vLLM's defaults for what a params.json leaves out (adapt_config_dict's
    _remap_general_mistral_args): shared by every params.json vLLM reads."""
    cfg: dict[str, Any] = {new: params[old] for old, new in _MISTRAL_KEYS.items() if old in params}
    cfg["hidden_act"] = params.get("activation", "silu")
    cfg["tie_word_embeddings"] = bool(params.get("tied_embeddings", False))
    cfg["max_position_embeddings"] = params.get("max_position_embeddings", 128_000)
    cfg["max_seq_len"] = params.get("max_seq_len", cfg["max_position_embeddings"])  # a length limit vLLM reads too
    return cfg


def mistral_quantization(params: dict[str, Any]) -> dict[str, Any] | None:
    """A params.json's quantization as vLLM reads it: Mistral's own FP8 spelling (per-tensor FP8, activation
    scales static unless qscheme_act is NO_SCALES) wins, else a quantization_config passed through."""
    q = params.get("quantization")
    if isinstance(q, dict) and q.get("qformat_weight") == "fp8_e4m3":
        return {"quant_method": "fp8", "activation_scheme": "dynamic" if q.get("qscheme_act") == "NO_SCALES"
                else "static"}
    qc = params.get("quantization_config")
    return qc if isinstance(qc, dict) else None


def mistral_large_3_config(params: dict[str, Any]) -> dict[str, Any]:
    """The HF-style text config vLLM derives from a Mistral Large 3 params.json (transformers_utils/configs/
    mistral.py: adapt_config_dict for an MLA MoE with shared experts): DeepSeek-V3 keys, model_type deepseek_v3,
    architecture MistralLarge3ForCausalLM, softmax routing without a correction bias, and YaRN rope parameters.
    The vision encoder (vision_encoder / multimodal), which vLLM serves through PixtralForConditionalGeneration,
    is left out: this is the language model only."""
    moe = params.get("moe")
    if not isinstance(moe, dict) or not (moe.get("num_shared_experts") or 0) or not params.get("qk_nope_head_dim"):
        raise ConfigError("params.json", "not a Mistral Large 3 params.json (MLA with a shared-expert MoE)")
    cfg = mistral_text_config(params)
    for key in ("vocab_size", "head_dim", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                "v_head_dim", "llama_4_scaling"):
        if key in params:
            cfg[key] = params[key]
    cfg.update({new: moe[old] for old, new in _MISTRAL_MOE_KEYS.items() if old in moe})
    cfg.update(topk_method=None, norm_topk_prob=True, scoring_func="softmax", model_type="deepseek_v3",
               architectures=["MistralLarge3ForCausalLM"])
    yarn = params.get("yarn")
    if isinstance(yarn, dict) and yarn:
        rope = {"rope_type": "yarn", "mscale_all_dim": 1, "rope_theta": params.get("rope_theta", 10000.0),
                "factor": float(yarn["factor"]),
                "original_max_position_embeddings": int(yarn["original_max_position_embeddings"]),
                "beta_fast": float(yarn.get("beta", 32)), "beta_slow": float(yarn.get("alpha", 1))}
        if not yarn.get("apply_scale", True):
            rope["attention_factor"] = 1.0
        # vLLM's deepseek attention turns a non-default rope into DeepseekScalingRotaryEmbedding: an fp32 cache of
        # original_max_position_embeddings x factor positions, which the deepseek adapter reads from rope_scaling.
        cfg["rope_parameters"] = cfg["rope_scaling"] = rope
    elif "rope_theta" in params:
        cfg["rope_theta"] = params["rope_theta"]
    quant = mistral_quantization(params)
    if quant is not None:
        cfg["quantization_config"] = quant
    return cfg
