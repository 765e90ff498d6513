"""Reflection AI Beam (model_type beam: Beam-1.0-501B-A23B and its FP8 / NVFP4 releases) as vLLM 0.33 builds it
(vllm/models/beam/nvidia: model.py, attention.py, moe.py; config class transformers_utils/configs/beam.py).

vLLM reads the config through its own BeamConfig, not transformers', and the two fill a missing key differently:
vLLM makes every layer sliding-window (window 4096) and every MLP sparse, and derives head_dim from hidden_size /
heads; transformers' default is five sliding layers to one full (and the last layer full), three dense layers
first, head_dim 128, window 512. The adapter follows vLLM. A real checkpoint config spells all of them out.

Per layer, vLLM holds:
- attention: q, k, v and an output-gate projection as wide as q (the checkpoint's `self_attn.gate_proj`; vLLM
  renames it `output_gate_proj` and fuses all four into one column-parallel `qkv_gate_proj` when the KV heads are at
  least the TP size; otherwise a QKV linear, which copies KV heads across ranks, plus a column-parallel gate), the
  row-parallel o_proj, per-head q/k RMSNorm weights (head_dim each) and a per-head `gate_bias` split over TP in the
  model dtype. No biases, no sinks, no KV sharing.
- sliding layers (`layer_types` "sliding_attention") use RoPE and a window of `sliding_window`; full layers are
  NoPE (SSMax query scaling, computed, no parameters) and have no window. Both cache num_key_value_heads x head_dim
  K and V: the two page sizes are equal, so vLLM 0.33 groups them by layer count (no packed layout).
- four RMSNorms (input, post-attention, pre-feedforward, post-feedforward; sandwich norm).
- MLP: a gated SiLU MLP of `intermediate_size` where `mlp_layer_types` says "dense", otherwise fused experts of
  `moe_intermediate_size` with a float32 router (GateLinear, params_dtype float32) and a float32
  `e_score_correction_bias` parameter. No shared expert.
Outside the layers: an untied embedding and LM head (vLLM refuses tied ones), a final norm, and one rotary cache
shared by all sliding layers, held in float32 (get_rope(..., dtype=torch.float32)).

transformers keeps `e_score_correction_bias` as a buffer, so its parameter count is one num_experts vector per MoE
layer below vLLM's. The DFlash2 checkpoint (dflash2.py, DFlash2BeamDraftModel) is a separate speculative draft model,
not part of the served model.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from . import builders as b
from .adapters import _embed_head, _int, _moe_layers, _spec, _tie, register
from .spec import Attention, Mlp, ModelSpec, RopeCache, Tensor

_FULL, _SWA = "full_attention", "sliding_attention"


def _rope_params(cfg: dict) -> dict:
    """The sliding layers' RoPE parameters. transformers writes them keyed by layer type with None for the NoPE full
    layers; vLLM's BeamConfig keeps the one non-null entry. A flat dict is used as is."""
    rp = cfg.get("rope_parameters")
    if not isinstance(rp, dict):
        rp = cfg.get("rope_scaling") if isinstance(cfg.get("rope_scaling"), dict) else {}
    if rp and set(rp) <= {_FULL, _SWA}:
        rp = next((v for v in rp.values() if isinstance(v, dict)), {})
    return rp or {}


def _rope_cache(cfg: dict, head_dim: int) -> RopeCache:
    p = _rope_params(cfg)
    rot = int(p.get("rope_dim") or head_dim * float(p.get("partial_rotary_factor", 1.0)))
    pos = _int(cfg, "max_position_embeddings", default=32768)
    if (p.get("rope_type") or p.get("type")) == "yarn" and p.get("original_max_position_embeddings"):
        # vLLM's YaRN caches original_max_position_embeddings x factor positions
        pos = int(p["original_max_position_embeddings"] * float(p.get("factor", 1.0)))
    theta = p.get("rope_theta") or cfg.get("rope_theta") or 10000.0
    # BeamAttention asks get_rope for a float32 cache and hands it to its fused q/k-norm + RoPE kernel as is.
    return RopeCache(pos, rot, dtype="float32", theta=float(theta))


def _per_layer(cfg: dict, key: str, n: int, default: str) -> list[str]:
    v = cfg.get(key)
    # vLLM's BeamConfig fills a missing list with `default` everywhere (and refuses one of the wrong length).
    if v is None:
        return [default] * n
    if not isinstance(v, list) or len(v) != n:
        raise ConfigError("config", f"'{key}' must list one entry per layer ({n}), got {v!r}")
    return [str(x) for x in v]


@register("beam")
def _beam(cfg: dict, outer: dict, name: str) -> ModelSpec:
    # vLLM's BeamConfig defaults stand in for missing keys.
    hidden = _int(cfg, "hidden_size", default=2048)
    n = _int(cfg, "num_hidden_layers", default=24)
    heads = _int(cfg, "num_attention_heads", default=32)
    kv = _int(cfg, "num_key_value_heads", default=4)
    hd = _int(cfg, "head_dim", default=0) or hidden // heads
    vocab = _int(cfg, "vocab_size", default=151936)
    inter = _int(cfg, "intermediate_size", default=6144)
    e, k = _int(cfg, "num_experts", default=128), _int(cfg, "num_experts_per_tok", default=8)
    mi = _int(cfg, "moe_intermediate_size", default=768)
    window = _int(cfg, "sliding_window", default=4096)
    types = _per_layer(cfg, "layer_types", n, _SWA)
    mlp_types = _per_layer(cfg, "mlp_layer_types", n, "sparse")
    if _tie(cfg, outer):
        raise ConfigError(
            "tie_word_embeddings",
            "vLLM's Beam model requires tie_word_embeddings=false "
            "(BeamForCausalLM raises NotImplementedError)",
        )
    if "dense" in mlp_types and (cfg.get("hidden_act") or "silu") != "silu":
        raise ConfigError("hidden_act", "vLLM's Beam dense MLP supports only silu")

    p = b.P + "self_attn."
    # q, k, v, o and the q/k norms, then the output gate (one value per query channel) and its per-head bias.
    att_t = (
        b.attention(hidden, heads, kv, hd, qk_norm=True)
        + b.linear(p + "gate_proj", "attention", heads * hd, hidden, "column")
        + (Tensor(p + "gate_bias", "attention", (heads,), "head"),)
    )
    # The cache keeps every layer's K/V at the shared KV shape; the window is what tells the two layer kinds apart.
    full = Attention("full", heads, kv, hd)
    swa = Attention("sliding_window", heads, kv, hd, window=window)

    def att_for(i: int) -> Attention:
        # A sliding layer with no window would be a full one; vLLM passes per_layer_sliding_window=None then.
        return swa if types[i] == _SWA and window > 0 else full

    moe = Mlp("moe", 0, e, k, mi, 0)
    moe_t = b.router(hidden, e, correction_bias=True, fp32=True) + b.experts(hidden, mi, e)
    norms = tuple(
        t
        for nm in (
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
        )
        for t in b.norm(b.P + nm, hidden)
    )
    layers = _moe_layers(
        cfg, n, lambda i: mlp_types[i] == "sparse", att_for, lambda a: att_t, inter, hidden, moe, moe_t, norms
    )
    emb, head = _embed_head(vocab, hidden, False, final_norm=b.norm("model.norm", hidden))
    # Only layers typed sliding build a rotary embedding (with or without a window); get_rope hands them all the
    # same cache.
    rope = (_rope_cache(cfg, hd),) if _SWA in types else ()
    spec = _spec(
        name,
        cfg,
        outer,
        layers,
        hidden=hidden,
        vocab=vocab,
        heads=heads,
        head_dim=hd,
        inter=inter,
        tie=False,
        embedding=emb,
        head=head,
        rope=rope,
    )
    # BeamModel builds a multicast all-reduce workspace for its fused all-reduce + norm kernels (allreduce.py)
    return replace(spec, comm_workspace="beam_lamport")
