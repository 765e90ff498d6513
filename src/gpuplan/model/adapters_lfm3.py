"""Liquid LFM3 (model_type lfm3, Lfm3ForCausalLM) and LFM3-VL (lfm3_vl): refused, because vLLM 0.33 cannot start
them.

What LFM3 is (transformers 5.23, models/lfm3): LFM2's short-convolution / attention hybrid grown a third layer kind.
Its layer_types mix "conv" layers (a depthwise causal conv of width conv_L_cache, 7 by default, with its own
per-request conv state), "sliding_attention" layers (window 256) and "full_attention" layers (partial rotary,
"proportional" RoPE); attention layers carry a per-head sigmoid output gate (g_proj) and q/k RMSNorms, and every
layer a sandwich norm after the operator and after the feed-forward.

What vLLM 0.33.0 does with it:
- no native class: the model registry (model_executor/models/registry.py) lists Lfm2ForCausalLM,
  Lfm2MoeForCausalLM and Lfm2VlForConditionalGeneration but no Lfm3 architecture, and no file under
  model_executor/models or the new models/ packages names LFM3; LFM3 is not among _PREVIOUSLY_SUPPORTED_MODELS
  either, so no earlier release had one;
- the Transformers modeling backend (model_executor/models/transformers/base.py, _create_attention_instances) makes
  a vLLM Attention for every decoder layer and raises "Layer i (conv) does not dispatch through the Transformers
  attention interface and vLLM has no other way to handle it" for a layer that is not attention: LFM3's conv
  layers (the first, at index 0 by default) stop the start-up there. The backend has no Mamba / conv-state path.
So no vLLM 0.33 deployment of an LFM3 checkpoint starts, whatever the GPU; sizing it as LFM2 (a different layer
set: no sliding layers, no gate, no sandwich norms) or as a generic decoder would answer a question vLLM never gets
to. gpuplan says so instead. When vLLM gains an LFM3 class, its adapter goes here (LFM2's conv state is modelled in
adapters_ssm.py `_lfm2`).
"""

from __future__ import annotations

from ..errors import ConfigError
from .adapters import register
from .spec import ModelSpec

LFM3_REFUSAL = (
    "vLLM 0.33 cannot serve {what}: it has no LFM3 model class (its registry lists only Lfm2ForCausalLM, "
    "Lfm2MoeForCausalLM and Lfm2VlForConditionalGeneration), and its Transformers backend refuses the checkpoint "
    "because LFM3's short-conv layers do not go through the attention interface (transformers/base.py "
    "_create_attention_instances); no start-up to size"
)


@register("lfm3")
def _lfm3(cfg: dict, outer: dict, name: str) -> ModelSpec:
    raise ConfigError("model_type", LFM3_REFUSAL.format(what="LFM3 (Lfm3ForCausalLM)"),
                      accepted=["lfm2", "lfm2_moe", "lfm2_vl"])


@register("lfm3_vl")
def _lfm3_vl(cfg: dict, outer: dict, name: str) -> ModelSpec:
    raise ConfigError("model_type", LFM3_REFUSAL.format(what="LFM3-VL (its text model is LFM3)"),
                      accepted=["lfm2", "lfm2_moe", "lfm2_vl"])
