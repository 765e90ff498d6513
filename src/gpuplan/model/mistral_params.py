"""Mistral-format checkpoints: the HF-style config vLLM builds from a params.json.

Some Mistral repositories (Mistral Large 3, older consolidated-only uploads) ship a params.json and no
config.json. vLLM's config_format "auto" then reads params.json and remaps it (transformers_utils/configs/
mistral.py, adapt_config_dict): Mistral key names to HF ones, a dense model to MistralForCausalLM, an MoE to
MixtralForCausalLM, an MLA MoE with shared experts to MistralLarge3ForCausalLM (DeepSeek-V3 keys). This module
does the same remapping, so the usual adapters size the result. A params.json with a vision or audio encoder
is refused (vLLM serves those through Pixtral / Voxtral, whose towers gpuplan would not size from it), except
Mistral Large 3, whose small vision encoder is left out and said so.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .adapters_mla import mistral_large_3_config, mistral_quantization, mistral_text_config

_KEPT = ("head_dim", "vocab_size", "rope_theta")
_REQUIRED = ("dim", "n_layers", "n_heads", "vocab_size")


def is_mistral_params(params: Any) -> bool:
    return isinstance(params, dict) and all(k in params for k in ("dim", "n_layers", "n_heads"))


def _sliding(cfg: dict[str, Any], window: Any) -> None:
    """A per-layer list of windows (None = full) becomes layer_types, as vLLM's remap does."""
    n = cfg["num_hidden_layers"]
    if isinstance(window, list):
        if not window or n % len(window):
            raise ConfigError("params.json", f"sliding_window pattern of {len(window)} does not tile {n} layers")
        sizes = {w for w in window if w is not None}
        if len(sizes) > 1:
            raise ConfigError("params.json", f"sliding_window mixes several window sizes: {sorted(sizes)}")
        cfg["layer_types"] = ["full_attention" if w is None else "sliding_attention" for w in window * (n // len(window))]
        cfg["sliding_window"] = next(iter(sizes), None)
    elif isinstance(window, int) and window > 0:
        cfg["sliding_window"] = window
        cfg["layer_types"] = ["sliding_attention"] * n
    else:
        raise ConfigError("params.json", f"sliding_window must be an integer or a list, not {window!r}")


def config_from_mistral_params(params: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(HF-style config, notes) for a Mistral params.json. Raises ConfigError naming what it cannot read."""
    if not is_mistral_params(params):
        raise ConfigError("params.json", "not a Mistral-format params.json (needs dim, n_layers and n_heads)")
    moe = params.get("moe")
    towers = bool(params.get("vision_encoder") or (params.get("multimodal") or {}))
    if isinstance(moe, dict) and (moe.get("num_shared_experts") or 0) > 0:
        notes = ["config derived from params.json (Mistral format), as vLLM does for a repository without "
                 "config.json: Mistral Large 3"]
        if towers:
            notes.append("its vision encoder (served through Pixtral) is not sized: the language model only")
        return mistral_large_3_config(params), tuple(notes)
    if towers:
        raise ConfigError("params.json", "this params.json has a vision or audio encoder, which vLLM serves "
                                         "through Pixtral or Voxtral; pass the model's HF-format config.json")
    if params.get("model_type") == "mamba":
        raise ConfigError("params.json", "a Mamba params.json: pass the model's HF-format config.json")
    missing = [k for k in _REQUIRED if k not in params]
    if missing:
        raise ConfigError("params.json", f"missing {', '.join(missing)}")
    cfg = mistral_text_config(params)
    cfg.update({k: params[k] for k in _KEPT if k in params})
    if params.get("sliding_window"):
        _sliding(cfg, params["sliding_window"])
    if isinstance(moe, dict) and moe:
        cfg.update(model_type="mixtral", architectures=["MixtralForCausalLM"],
                   num_local_experts=moe.get("num_experts"), num_experts_per_tok=moe.get("num_experts_per_tok"))
        if not cfg["num_local_experts"] or not cfg["num_experts_per_tok"]:
            raise ConfigError("params.json", "moe needs num_experts and num_experts_per_tok")
    else:
        cfg.update(model_type="mistral", architectures=["MistralForCausalLM"])
    yarn = params.get("yarn")
    if isinstance(yarn, dict) and yarn:
        cfg["rope_scaling"] = {"rope_type": "yarn", "factor": float(yarn["factor"]),
                               "original_max_position_embeddings": int(yarn["original_max_position_embeddings"])}
    quant = mistral_quantization(params)
    q = params.get("quantization")
    if quant is None and isinstance(q, dict) and q:
        raise ConfigError("params.json", f"quantization {q.get('qformat_weight')!r} is not one vLLM reads "
                                         "from a params.json (fp8_e4m3)")
    if quant is not None:
        cfg["quantization_config"] = quant
    return cfg, ("config derived from params.json (Mistral format), as vLLM does for a repository without "
                 "config.json",)
