"""OpenBMB's MiniCPM decoders as vLLM 0.32 builds them (vllm/model_executor/models/minicpm.py, minicpm3.py).

MiniCPM (1/2/4) is Llama-shaped; its scale_emb / scale_depth / dim_model_base rescale activations and add no
weights. MiniCPM3 has DeepSeek-V2's low-rank q and kv projections but does not cache the latent: it expands K and
V per head and runs ordinary attention with num_kv_heads = num_heads and head size qk_nope + qk_rope, padding V
up to that size. Its KV cache is therefore 2 x heads x (qk_nope + qk_rope) per token per layer, about 15x what
an MLA cache of the same ranks would hold.
"""

from __future__ import annotations

from dataclasses import replace

from .adapters import _EXPERT_KEYS, _generic_moe, _int, _llama_like, mla_moe_decoder, register
from .spec import Attention, ModelSpec


@register("minicpm")
def _minicpm(cfg: dict, outer: dict, name: str) -> ModelSpec:
    experts = next((int(cfg[k]) for k in _EXPERT_KEYS if cfg.get(k)), 0)
    if experts > 1:  # MiniCPM-MoE-8x2B: vLLM's MiniCPMMoE, fused w13/w2 sharded over TP, a replicated gate
        return _generic_moe(cfg, outer, name, experts)
    return _llama_like(cfg, outer, name)


@register("minicpm3")
def _minicpm3(cfg: dict, outer: dict, name: str) -> ModelSpec:
    heads = _int(cfg, "num_attention_heads")
    qk = _int(cfg, "qk_nope_head_dim") + _int(cfg, "qk_rope_head_dim")
    # The MLA builder gives the projections exactly (a dense MLP on every layer: no routed experts).
    # The official config has no v_head_dim; transformers' MiniCPM3Config then uses hidden_size // heads.
    v_d = cfg.get("v_head_dim") or _int(cfg, "hidden_size") // heads
    spec = mla_moe_decoder({**cfg, "n_routed_experts": 0, "v_head_dim": v_d}, outer, name)
    att = Attention("full", heads, heads, qk)
    layers = tuple(replace(layer, attention=att) for layer in spec.layers)
    return replace(spec, layers=layers, head_dim=qk, notes=spec.notes + (
        "MiniCPM3 caches full per-head K and V (V padded to the q/k head size), not the MLA latent",))
