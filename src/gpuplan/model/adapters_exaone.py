"""EXAONE 4.0 (exaone4) and EXAONE 4.5 (exaone4_5) as vLLM builds them (vllm/model_executor/models/exaone4.py,
exaone4_5.py).

EXAONE 4.0 is Llama-shaped with per-head q/k RMSNorms, the two layer norms after attention and after the MLP
(none before), and sliding-window attention on three of every four layers (`layer_types`, else
`sliding_window_pattern`); one rotary cache serves all layers. EXAONE 4.5 runs that text model behind a
Qwen2.5-VL vision tower whose blocks use grouped K/V heads (num_key_value_heads), biased attention and gated MLP;
the checkpoint's mtp.* layers are not loaded.
"""

from __future__ import annotations

from collections.abc import Callable

from .adapters import _llama_like, _qwen_vl_vision_params, _with, register
from .spec import ModelSpec, MultimodalSpec, Tensor


def _sliding_pattern(cfg: dict) -> Callable[[int], bool] | None:
    # transformers' Exaone4Config: layer i is local unless (i + 1) is a multiple of the pattern (default 4).
    if not cfg.get("sliding_window"):
        return None
    pattern = cfg.get("sliding_window_pattern", 4)
    if isinstance(pattern, str) and pattern:
        return lambda i: pattern[i % len(pattern)] == "L"
    if isinstance(pattern, int) and pattern > 0:
        return lambda i: (i + 1) % pattern != 0
    return None


@register("exaone4")
def _exaone4(cfg: dict, outer: dict, name: str) -> ModelSpec:
    return _llama_like(cfg, outer, name, qk_norm=True, sw_pattern=_sliding_pattern(cfg))


@register("exaone4_5")
def _exaone4_5(cfg: dict, outer: dict, name: str) -> ModelSpec:
    if cfg.get("vocab_size") is None and outer.get("vocab_size"):
        cfg = {**cfg, "vocab_size": outer["vocab_size"]}  # some EXAONE 4.5 configs keep it at the top only
    inner = _exaone4(cfg, outer, name)
    vis = outer.get("vision_config")
    if not isinstance(vis, dict) or not vis:
        return inner
    vparams = _qwen_vl_vision_params(vis, inner.hidden_size, True)
    return _with(inner, extra=inner.extra + (Tensor("visual", "vision", (vparams,), "column"),),
                 multimodal=MultimodalSpec(vparams, 1024, inner.hidden_size))
