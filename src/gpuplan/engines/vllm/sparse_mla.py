"""The KV layout vLLM gives sparse-MLA models (DeepSeek-V3.2, GLM-5): which dtype the page really uses.

A sparse-MLA layer (config with ``index_topk``) runs on a sparse MLA backend, and that backend rewrites the KV
cache dtype. FlashMLA-sparse keeps an fp8 cache only in DeepSeek's own 656-byte ``fp8_ds_mla`` row; FlashInfer's
sparse MLA keeps the plain 576-byte fp8 row. Read from the wheels:

* 0.11: ``model_executor/models/config.py`` (DeepseekV32ForCausalLM) turns "auto" and any fp8 into fp8_ds_mla.
* 0.12 - 0.17: the same class turns fp8 (not "auto") into fp8_ds_mla; other architectures keep plain fp8.
* 0.18 on: ``MLAAttention`` converts fp8 to fp8_ds_mla when the backend is FLASHMLA_SPARSE. ``platforms/cuda.py``
  picks it everywhere except on Blackwell (SM10x), where FlashInfer's sparse MLA comes first at 16 heads per GPU
  or fewer (0.18), and for every quantized KV cache (from 0.19).
* 0.24 on: RTX Blackwell (SM12x) runs FLASHINFER_MLA_SPARSE_SM120, which stores "auto" and fp8 as fp8_ds_mla.
* 0.29 on: GlmMoeDsaForCausalLM defaults "auto" to fp8_e4m3 on SM10x (``config.py``).
"""

from __future__ import annotations

from ...model.spec import ModelSpec
from .profiles import Profile

DS_MLA = "fp8_ds_mla"


def is_sparse_mla(spec: ModelSpec) -> bool:
    return any(layer.attention.kind == "mla" and layer.attention.sparse for layer in spec.layers)


def backend(spec: ModelSpec, profile: Profile, cc: float, kv_dtype: str, tp: int) -> str:
    """The sparse MLA backend vLLM picks on NVIDIA (platforms/cuda.py, as above): FlashInfer's on Blackwell SM10x
    from 0.18 (at 16 heads per GPU or fewer, or, from 0.19, with a quantized KV cache), its SM12x variant on RTX
    Blackwell from 0.24, FlashMLA-sparse otherwise. `kv_dtype` is the one the user asked for."""
    heads = max(1, spec.num_attention_heads // tp)
    if 12 <= cc < 13 and profile.at_least("0.24"):
        return "FLASHINFER_MLA_SPARSE_SM120"
    if 10 <= cc < 11 and profile.at_least("0.18") and (
            heads <= 16 or (profile.at_least("0.19") and kv_dtype.startswith("fp8"))):
        return "FLASHINFER_MLA_SPARSE"
    return "FLASHMLA_SPARSE"


def kv_cache_dtype(spec: ModelSpec, profile: Profile, cc: float, kv_dtype: str, tp: int) -> tuple[str, str | None]:
    """(the KV dtype vLLM ends up with, a note saying why it changed or None)."""
    if not is_sparse_mla(spec) or kv_dtype == DS_MLA:
        return kv_dtype, None
    arch = spec.architecture
    blackwell, rtx_blackwell = 10 <= cc < 11, 12 <= cc < 13
    chosen = kv_dtype
    if kv_dtype == "auto" and arch == "GlmMoeDsaForCausalLM" and blackwell and profile.at_least("0.29"):
        chosen = "fp8_e4m3"
    fp8 = chosen.startswith("fp8")
    if not profile.at_least("0.18"):
        if arch == "DeepseekV32ForCausalLM" and (fp8 or (chosen == "auto" and not profile.at_least("0.12"))):
            chosen = DS_MLA
    elif rtx_blackwell and profile.at_least("0.24") and chosen in ("auto", "fp8", "fp8_e4m3"):
        chosen = DS_MLA
    elif fp8:
        heads = max(1, spec.num_attention_heads // tp)
        flashinfer_first = blackwell and (profile.at_least("0.19") or heads <= 16)
        if not flashinfer_first:
            chosen = DS_MLA
    if chosen == kv_dtype:
        return kv_dtype, None
    why = {DS_MLA: "the sparse MLA backend stores it as DeepSeek's fp8_ds_mla rows (656 bytes per token)",
           "fp8_e4m3": "vLLM defaults GLM-5 to an fp8 KV cache on Blackwell"}[chosen]
    return chosen, f"kv_cache_dtype {kv_dtype} -> {chosen}: {why}"
