"""Which engine a vLLM 0.8 - 0.10 start-up runs: V1 by default, V0 where V1 did not support the deployment.

The rules are data (data/vllm_v1_fallback.json), read from each wheel's EngineArgs._is_v1_supported_oracle.
A V0 start-up is sized with the V0 profile's mechanics at its own version, as VLLM_USE_V1=0 is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ...datafiles import data_json
from ...model.spec import ModelSpec
from .profiles import Profile, in_versions, parse_version


@dataclass(frozen=True)
class EngineChoice:
    v0: bool
    feature: str | None = None  # the first unsupported feature, as vLLM names it
    refused: bool = False  # VLLM_USE_V1=1 with a feature V1 raises on: vLLM stops


@cache
def _data() -> dict:
    return data_json("vllm_v1_fallback.json")


def _v0_only(vt: tuple[int, ...]) -> frozenset[str]:
    found: list[str] = []
    for group in _data()["v0_only_architectures"]:
        if parse_version(group["from"]) <= vt:
            found = group["architectures"]
    return frozenset(found)


def _kv_needs_v0(rule: dict, kv_dtype: str, cc: float, mla: bool) -> bool:
    if kv_dtype == "auto":
        return False
    fp8 = kv_dtype.startswith("fp8")
    fa3 = fp8 and 9.0 <= cc < 10.0  # FlashAttention 3 takes fp8 on Hopper only
    supports = rule["v1_supports"]
    if supports == "none":
        return True
    if supports == "fp8_fa3":
        return not fa3
    if supports == "fp8_fa3_or_sm100":
        return not (cc == 10.0 or fa3)
    # 0.10.2: MLA backends take any KV dtype; FlashAttention takes non-fp8 dtypes, fp8 through FA3
    return not (mla or cc == 10.0 or fa3 or not fp8)


def choose_engine(profile: Profile, spec: ModelSpec, *, use_v1: bool | None, cc: float, dtype: str,
                  quant_method: str | None, kv_dtype: str, pp: int, cpu_offload_gb: float) -> EngineChoice:
    """The engine vLLM picks for this deployment (V1 unless a fallback rule applies)."""
    data = _data()
    vt = profile.version_tuple
    if profile.engine != "v1" or not in_versions(vt, data["versions"]) or use_v1 is False:
        return EngineChoice(v0=False)
    forced = use_v1 is True
    mla = any(layer.attention.kind == "mla" for layer in spec.layers)
    state = any(layer.attention.state for layer in spec.layers)
    applies = {
        "compute_capability_below_8": lambda r: cc < 8.0,
        "kv_cache_dtype": lambda r: _kv_needs_v0(r, kv_dtype, cc, mla),
        "cpu_offload": lambda r: cpu_offload_gb > 0,
        "dtype_float32": lambda r: dtype == "float32",
        "quantization": lambda r: quant_method in r["methods"],
        "v0_only_architecture": lambda r: spec.architecture in _v0_only(vt),
        "recurrent_state": lambda r: state,
        "pipeline_parallel": lambda r: pp > 1,
    }
    for rule in data["rules"]:
        if not in_versions(vt, rule["versions"]) or not applies[rule["check"]](rule):
            continue
        feature = spec.architecture if rule["check"] == "v0_only_architecture" else rule["feature"]
        if not forced:
            return EngineChoice(v0=True, feature=feature)
        if rule["kind"] == "raise":
            return EngineChoice(v0=False, feature=feature, refused=True)
        # a 'warn' rule with VLLM_USE_V1=1: V1 goes on, experimentally
    return EngineChoice(v0=False)
