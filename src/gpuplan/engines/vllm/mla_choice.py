"""Whether vLLM builds a DeepSeek-style latent-attention layer as MLA or as plain multi-head attention.

vLLM's ModelConfig.use_mla decides it, per release (config.py):

- before 0.7.1 there is no MLA backend: DeepSeek-V2/V3 layers attend with every query head as a KV head, each
  padded to 256 wide up to 0.6.x (get_head_size returns 256, deepseek_v2.py pads q, k and v), qk_nope + qk_rope wide
  from 0.7.0 (v padded to it); gt027 (0.5.0.post1, DeepSeek-V2-Lite, 5549 blocks) checks the padded form;
- VLLM_MLA_DISABLE=1 turns MLA off in every release that has it (0.7.1 - 0.33);
- 0.7.1 and 0.7.2 turn it off for any quantization but fp8 and compressed-tensors FP8 (awq_marlin, gptq_marlin,
  bitsandbytes, gguf, ...); 0.7.3 drops that check.

The multi-head layer keeps the same weights (q/kv_a/kv_b/o projections), so only its Attention changes; the KV cache,
the block size and the profile run then follow the full-attention rules.
"""

from __future__ import annotations

from dataclasses import replace

from ...deployment import Deployment
from ...model.spec import Attention, Layer, ModelSpec, QuantConfig
from ...quant.methods import fp8_weights
from .profiles import Profile

MLA_DISABLE_ENV = "VLLM_MLA_DISABLE"
PADDED_HEAD_SIZE = 256  # up to 0.6.x, a DeepSeek layer's q/k/v heads were padded to this width


def mla_off_reason(spec: ModelSpec, profile: Profile, dep: Deployment, quant: QuantConfig | None) -> str | None:
    """Why this release builds the model's MLA layers as multi-head attention (None: it builds MLA, or the model has
    no MLA layer). Sparse MLA (DeepSeek-V3.2's indexer) has no multi-head form and is left as it is."""
    if "mla" not in spec.attention_kinds or not any(
            layer.attention.kind == "mla" and not layer.attention.sparse for layer in spec.layers):
        return None
    if not profile.at_least("0.7.1"):
        return f"vLLM {profile.version} has no MLA backend (added in 0.7.1)"
    if dep.env_flag(MLA_DISABLE_ENV):
        return f"{MLA_DISABLE_ENV}=1"
    until = profile.flags.get("mla_disabled_quant_until")
    if until and not profile.at_least(until) and quant is not None and not fp8_weights(quant):
        return f"vLLM {profile.version} turns MLA off for {quant.method} checkpoints (fp8 only, until 0.7.3)"
    return None


def as_multi_head(spec: ModelSpec, profile: Profile) -> ModelSpec:
    """The spec with its (dense) MLA layers as vLLM's multi-head fallback: every query head a KV head, head size
    qk_nope + qk_rope (256 before 0.7.0)."""
    done: dict[int, Layer] = {}

    def convert(layer: Layer) -> Layer:
        a = layer.attention
        if a.kind != "mla" or a.sparse:
            return layer
        if id(layer) not in done:  # layers are shared objects; keep them shared
            head = a.qk_nope_head_dim + a.qk_rope_head_dim if profile.at_least("0.7") else PADDED_HEAD_SIZE
            done[id(layer)] = replace(layer, attention=Attention("full", a.num_heads, a.num_heads, head))
        return done[id(layer)]

    return replace(spec, layers=tuple(convert(layer) for layer in spec.layers))
