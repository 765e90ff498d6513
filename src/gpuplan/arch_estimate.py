"""Architecture estimation for models known only by name or parameter count (seed 002's method).

Seed 002 describes the estimator in three steps: layer and head counts chosen by parameter range, the
hidden size from solving a quadratic in the parameter count, and the FFN width from a scaling factor.
We keep those steps and emit a Llama-style HF config.json dict, so an estimated model travels through
exactly the same engine path as a real checkpoint.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["params_from_name", "config_from_params", "llama_param_count"]

# Fraction of a dense Mistral/Llama-style model that sits in the FFN. In "E x S" MoE names (Mixtral
# 8x7B) only the FFN is replicated per expert, so the total is S + (E - 1) * f * S. Mistral-7B has
# 78% of its weights in the FFN; 0.81 reproduces Mixtral-8x7B's 46.7B total (8x22B: 146.7B vs 140.6B
# real, within 5%). Multiplying E x S would overstate both by ~20%.
MOE_FFN_FRACTION = 0.81

_UNITS = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}

# "8x7b", "8 x 22B", "8×7b"; the number must not be glued to a preceding letter or digit.
_MOE_RE = re.compile(r"(?<![a-z0-9.])(\d+)\s*[x×]\s*(\d+(?:\.\d+)?)\s*([mbt])(?![a-z0-9])")
# "13b", "1.5b", "350m", "1.8t". The look-behind rejects active-parameter tags such as "A3B"/"A2.7B"
# and the tail of version numbers; the look-ahead rejects words like "8bit" or "7base".
_SIZE_RE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)\s*([mbt])(?![a-z0-9])")


def params_from_name(name: str) -> float | None:
    """Parameter count implied by a model name, or None when the name carries no size.

    "foo-13b" -> 13e9, "1.5b" -> 1.5e9, "350m" -> 3.5e8, "70b-instruct" -> 70e9, "8x7B" -> ~46.7e9
    (see MOE_FFN_FRACTION). "Qwen3-30B-A3B" -> 30e9: the "A3B" active-parameter tag is ignored. The
    first size in the name wins, since later ones are usually draft or active sizes.
    """
    text = name.lower().replace("_", ".")  # "stablelm-2-1_6b" writes 1.6B with an underscore
    moe = _MOE_RE.search(text)
    if moe:
        experts = int(moe.group(1))
        expert_size = float(moe.group(2)) * _UNITS[moe.group(3)]
        return expert_size + (experts - 1) * MOE_FFN_FRACTION * expert_size
    size = _SIZE_RE.search(text)
    if size:
        return float(size.group(1)) * _UNITS[size.group(2)]
    return None


@dataclass(frozen=True)
class _Band:
    """Shape choices for one parameter range (upper bound exclusive)."""

    max_params: float
    layers: int
    head_dim: int
    ffn_scaling: float  # intermediate_size / hidden_size
    tie_embeddings: bool


# Layers and FFN scaling follow the open models nearest each range (Llama 3.2 1B/3B, Llama 3 8B,
# Llama 2 13B, Yi 34B, Llama 3 70B, Mistral Large 123B, Falcon 180B, Llama 3.1 405B). Small models
# tie embeddings, as Llama 3.2 1B/3B and Qwen 0.5B-3B do.
_BANDS: tuple[_Band, ...] = (
    _Band(0.4e9, 12, 64, 4.0, True),
    _Band(1.5e9, 16, 64, 4.0, True),
    _Band(4.5e9, 28, 128, 2.75, True),
    _Band(10e9, 32, 128, 3.5, False),
    _Band(20e9, 40, 128, 2.75, False),
    _Band(45e9, 60, 128, 2.75, False),
    _Band(100e9, 80, 128, 3.5, False),
    _Band(150e9, 88, 128, 2.5, False),
    _Band(300e9, 100, 128, 3.0, False),
    _Band(math.inf, 126, 128, 3.25, False),
)

_VOCAB = 32000  # Llama/Mistral's vocabulary: the common choice of the seed's era
_MAX_KV_HEADS = 8  # grouped-query attention with 8 KV heads, as every Llama >= 3 and Mistral uses
_HIDDEN_MULTIPLE = 128
_FFN_MULTIPLE = 256


def _band(params: float) -> _Band:
    return next(b for b in _BANDS if params < b.max_params)


def _hidden_step(h_exact: float, head_dim: int) -> int:
    """The rounding step for the hidden size: whole groups of 8 heads where the model is large enough.

    Rounding to 128 alone gives head counts such as 267 or 43, whose largest divisor up to 8 is 3 or 1:
    the stand-in would then have 1-3 KV heads (a KV cache 3-8x smaller than any GQA model of its size)
    and could not be split over 2, 4 or 8 GPUs. Groups of 8 (then 4, 2) heads keep 8 KV heads, as every
    open model of these sizes has. A step is taken only when rounding to it moves the hidden size by at
    most 10% (h >= 5 steps); the FFN width is re-solved afterwards, so the total barely moves.
    """
    for group in (_MAX_KV_HEADS, 4, 2):
        step = max(_HIDDEN_MULTIPLE, group * head_dim)
        if h_exact >= 5 * step:
            return step
    return _HIDDEN_MULTIPLE


def _kv_heads(heads: int) -> int:
    # The largest power of two up to 8 dividing `heads`, so heads split evenly into KV groups; open GQA
    # models use 1, 2, 4 or 8 KV heads (a count such as 5 or 6 would also block TP=2 or TP=4).
    return next(k for k in (_MAX_KV_HEADS, 4, 2, 1) if heads % k == 0)


def _non_ffn_params(
    h: int, layers: int, heads: int, kv_heads: int, head_dim: int, vocab: int, tied: bool
) -> int:
    attn = h * heads * head_dim * 2 + 2 * h * kv_heads * head_dim  # q and o, then k and v
    per_layer = attn + 2 * h  # two RMSNorm weights
    return layers * per_layer + vocab * h * (1 if tied else 2) + h


def config_from_params(params: float, name: str = "") -> dict:
    """An HF Llama-style config.json dict whose parameter count is close to `params`.

    Seed 002's quadratic is params = L*(4h^2 + 3*h*i) + 2*V*h with i = s*h. We write the attention term
    as (2 + 2*kv/heads)*h^2 rather than 4*h^2 because the config we emit uses grouped-query attention,
    and solve for h. h is rounded to a multiple of 128; the FFN width is then re-solved from what is left
    of the budget (rounded to 256), so the rounding of h does not leak into the total.
    """
    if not params or params <= 0 or not math.isfinite(params):
        raise ValueError(f"params must be a positive number, got {params!r}")
    band = _band(params)
    layers, head_dim, s = band.layers, band.head_dim, band.ffn_scaling
    kv_ratio = _MAX_KV_HEADS / max(_MAX_KV_HEADS, 32)  # a typical 8-of-32 grouping for the first solve
    a = layers * (2 + 2 * kv_ratio + 3 * s)
    b = _VOCAB * (1 if band.tie_embeddings else 2) + 2 * layers + 1
    h_exact = (-b + math.sqrt(b * b + 4 * a * params)) / (2 * a)
    step = _hidden_step(h_exact, head_dim)
    hidden = max(step, round(h_exact / step) * step)
    heads = max(1, hidden // head_dim)
    kv_heads = _kv_heads(heads)
    rest = params - _non_ffn_params(hidden, layers, heads, kv_heads, head_dim, _VOCAB, band.tie_embeddings)
    inter = rest / (3 * layers * hidden)
    # Keep the FFN within the range real models use (1.5x to 6x hidden) even for odd targets.
    inter = min(max(inter, 1.5 * hidden), 6 * hidden)
    intermediate = max(_FFN_MULTIPLE, round(inter / _FFN_MULTIPLE) * _FFN_MULTIPLE)
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "_name_or_path": name or f"estimated-{params / 1e9:.3g}B",
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "vocab_size": _VOCAB,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "tie_word_embeddings": band.tie_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "bfloat16",
    }


def llama_param_count(config: dict) -> int:
    """Exact parameter count of a Llama/Mistral/Qwen2-style decoder described by an HF config dict.

    embed V*h + lm_head V*h (unless tied) + L*(q h*H*d + k,v 2*h*kv*d + o H*d*h + 3*h*i + 2*h norms)
    + h final norm. Biases (Qwen2's q/k/v bias) and Qwen3's per-head q/k norms are added when the config
    says the model has them, so the count is exact for those families too.
    """
    h = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    heads = int(config["num_attention_heads"])
    kv = int(config.get("num_key_value_heads") or heads)
    d = int(config.get("head_dim") or h // heads)
    inter = int(config["intermediate_size"])
    vocab = int(config["vocab_size"])
    tied = bool(config.get("tie_word_embeddings", False))
    attn = h * heads * d + 2 * h * kv * d + heads * d * h
    model_type = config.get("model_type")
    if model_type == "qwen2" or config.get("attention_bias"):
        attn += heads * d + 2 * kv * d  # q/k/v biases (Qwen2 always has them)
    if model_type == "qwen3":
        attn += 2 * d  # q_norm and k_norm, one weight vector of head_dim each
    per_layer = attn + 3 * h * inter + 2 * h
    return vocab * h * (1 if tied else 2) + layers * per_layer + h
