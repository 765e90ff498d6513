"""Xiaomi MiMo-V2 (model_type mimo_v2_flash: MiMo-V2-Flash; mimo_v2: MiMo-V2.5 / V2.5-Pro and later): full and
sliding-window attention layers with their own head counts (the SWA layers have twice the KV heads of the full
ones in V2-Flash), 192-wide query/key heads over 128-wide values, attention sinks on the SWA layers, and a
256/384-expert MoE after a dense first layer whose router runs in float32.

vLLM: models/mimo_v2_flash.py (0.14–0.20), models/mimo_v2.py (0.21+). Before 0.20 the values were padded to the
key head size, so the KV cache held 192 + 192 per head; from 0.20 the DiffKV attention backends cache 192 + 128
(`kv_head_size_v` in the version profiles). The hub config also carries `attention_chunk_size`, which no layer
uses but which vLLM's ModelConfig reads: until vLLM 0.21 stripped it for MiMo, it switched the hybrid KV cache
manager off where VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE was 0 (the default before 0.16).
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from . import builders as b
from .adapters import _core_dims, _embed_head, _int, _moe_layers, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, MtpModule, RopeCache, Tensor

_FULL, _SWA = "full_attention", "sliding_attention"


def _pattern(cfg: dict, n: int, key: str, types_key: str, codes: dict, types: dict, default: list) -> list:
    """A per-layer list in the hub spelling (`key`, integer codes) or transformers' (`types_key`, names)."""
    for k, table in ((key, codes), (types_key, types)):
        raw = cfg.get(k)
        if raw is None:
            continue
        if not isinstance(raw, list) or len(raw) != n or any(x not in table for x in raw):
            raise ConfigError("config", f"'{k}' must list one of {sorted(table, key=str)} for each of the {n} "
                              f"layers, got {raw!r}")
        return [table[x] for x in raw]
    return default


def _mimo_attention(cfg: dict, hidden: int, sliding: bool) -> tuple[Attention, tuple[Tensor, ...]]:
    pre = "swa_" if sliding else ""
    heads = _int(cfg, pre + "num_attention_heads", "num_attention_heads")
    hd = _int(cfg, pre + "head_dim", "head_dim")
    vd = _int(cfg, pre + "v_head_dim", "v_head_dim", default=hd)
    full_kv = _int(cfg, "num_key_value_heads", default=heads)
    # transformers' native MiMoV2FlashConfig has no SWA KV key and doubles the full layers' on SWA layers
    kv = _int(cfg, "swa_num_key_value_heads", default=2 * full_kv) if sliding else full_kv
    t = b.attention(hidden, heads, kv, hd, qkv_bias=bool(cfg.get("attention_bias")), v_head_dim=vd)
    if sliding:
        window = _int(cfg, "sliding_window_size", "sliding_window")
        att = Attention("sliding_window", heads, kv, hd, v_head_dim=vd, window=window)
        if cfg.get("add_swa_attention_sink_bias"):
            # one sink logit per query head, a model-dtype parameter split with the heads
            t += (Tensor(b.P + "self_attn.attention_sink_bias", "attention", (heads,), "head"),)
    else:
        # vLLM builds the full layers without sinks whatever add_full_attention_sink_bias says
        att = Attention("full", heads, kv, hd, v_head_dim=vd)
    return att, t


@register("mimo_v2_flash", "mimo_v2")
def _mimo_v2(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, heads, _kv, hd = _core_dims(cfg)
    vocab = _int(cfg, "vocab_size")
    sliding = _pattern(cfg, n, "hybrid_layer_pattern", "layer_types", {0: False, 1: True},
                       {_FULL: False, _SWA: True}, [not (i == 0 or (i + 1) % 6 == 0) for i in range(n)])
    sparse = _pattern(cfg, n, "moe_layer_freq", "mlp_layer_types", {0: False, 1: True},
                      {"dense": False, "sparse": True}, [i > 0 for i in range(n)])
    e, k = _int(cfg, "n_routed_experts"), _int(cfg, "num_experts_per_tok")
    mi = _int(cfg, "moe_intermediate_size")
    full, full_t = _mimo_attention(cfg, hidden, False)
    swa, swa_t = _mimo_attention(cfg, hidden, True)
    router = b.router(hidden, e, correction_bias=True, fp32=cfg.get("moe_router_dtype", "float32") == "float32")
    moe = Mlp("moe", 0, e, k, mi)
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    layers = _moe_layers(cfg, n, lambda i: sparse[i], lambda i: swa if sliding[i] else full,
                         lambda a: swa_t if a is swa else full_t, _int(cfg, "intermediate_size"), hidden, moe,
                         router + b.experts(hidden, mi, e), norms)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    # Two rotary caches, one per base (full and SWA layers), over int(head_dim * partial_rotary_factor) dims.
    rot = int(hd * float(cfg.get("partial_rotary_factor") or 1.0))
    pos = _int(cfg, "max_position_embeddings", default=32768)
    theta = float(cfg.get("rope_theta") or 1e6)
    rope = (RopeCache(pos, rot, theta=theta), RopeCache(pos, rot, theta=float(cfg.get("swa_rope_theta") or theta)))
    notes: tuple[str, ...] = ()
    if outer.get("vision_config") or outer.get("audio_config"):
        notes = ("MiMo-V2 omni checkpoint: the text model is sized; its vision and audio encoders are not counted "
                 "in the weights",)
    # The checkpoint's MTP layers (model.mtp.layers.*) are skipped by the main model's loader; vLLM builds one only
    # as a speculative draft.
    spec = _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=mi, tie=tie,
                 embedding=emb, head=head, rope=rope, notes=notes, mtp=_mtp(cfg, hidden, swa, swa_t))
    return replace(spec, attention_chunk_dropped_from="0.21")


def _mtp(cfg: dict, hidden: int, swa: Attention, swa_t: tuple[Tensor, ...]) -> MtpModule:
    """vLLM's MiMoV2MTP (mimo_v2_mtp.py, 0.21-0.33): whatever the checkpoint ships, one module (model.mtp.layers.0)
    with a sliding-window attention layer of the SWA layers' shape (sinks included), a dense MLP of the first
    layer's width, both built with the checkpoint's quantization, its input, pre-MLP and final norms, enorm / hnorm
    and an unquantized eh_proj [H, 2H]; the proposer shares the target's embedding and LM head."""
    p = "model.mtp.layers.0."
    inter = _int(cfg, "intermediate_size")
    tensors = tuple(replace(x, name=x.name.replace(b.P, p)) for x in swa_t + b.gated_mlp(hidden, inter)
                    + b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "pre_mlp_layernorm", hidden))
    own = b.mtp_input(p, hidden, p + "final_layernorm")
    return MtpModule(layers=(Layer(swa, Mlp("dense", inter), tensors),), tensors=own, style="mimo_v2", since="0.21")
