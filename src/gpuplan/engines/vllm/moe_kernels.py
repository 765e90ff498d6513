"""vLLM's --moe-backend (0.17+), and the fused-MoE kernel gpuplan sizes a start-up's MoE scratch for.

gpuplan sizes a MoE layer's scratch by default as the Triton experts' shared workspace (budget._moe_workspace),
which every release's unquantized, FP8 and INT paths use or stay near. One other kernel is sized from its own code:

- "cutlass_nvfp4": vLLM's CUTLASS NVFP4 grouped GEMMs (CutlassExpertsFp4 and run_cutlass_moe_fp4,
  fused_moe/cutlass_moe.py; the same allocations in every wheel 0.17 - 0.33), which --moe-backend cutlass picks for
  NVFP4 experts (oracle/nvfp4.py maps "cutlass" to VLLM_CUTLASS). Its shared workspace is smaller than Triton's, but
  it permutes the tokens' hidden states to expert order and back in fresh tensors and weighs the top-k outputs in a
  third, each [tokens x top_k, hidden]: about twice the Triton figure in all (budget.cutlass_nvfp4_moe).

Other backends are accepted as vLLM accepts them and sized as the default, with a warning.
"""

from __future__ import annotations

from functools import cache

from ...datafiles import data_json
from ...deployment import Deployment
from ...errors import GpuplanError
from ...model.spec import ModelSpec, QuantConfig
from .profiles import Profile, parse_version
from .weights import experts_quant

DEFAULT = "default"
CUTLASS_NVFP4 = "cutlass_nvfp4"
SINCE = "0.17.0"  # the first release with --moe-backend (config/kernel.py)
CUTLASS_EP_FROM = "0.32.0"  # CutlassExpertsFp4._supports_parallel_config: ep_size == 1 up to 0.31


@cache
def _releases() -> tuple[tuple[tuple[int, ...], tuple[str, ...]], ...]:
    rows = data_json("vllm_moe_backends.json")["releases"]
    return tuple(sorted((parse_version(r["from"]), tuple(r["choices"])) for r in rows))


def choices(profile: Profile) -> tuple[str, ...]:
    """The values this release's --moe-backend takes (empty before 0.17)."""
    found: tuple[str, ...] = ()
    for since, values in _releases():
        if profile.version_tuple >= since:
            found = values
    return found


def normalized(value: str | None) -> str:
    return (value or "auto").lower().replace("-", "_")  # KernelConfig._normalize_moe_backend


def kernel(spec: ModelSpec, dep: Deployment, profile: Profile, cc: float | None, quant: QuantConfig | None, ep: int,
           warnings: list[str]) -> str:
    """The MoE kernel to size; refuses a --moe-backend this release lacks or that vLLM refuses for this start-up.
    `cc`: the GPU's compute capability where known (None: a card gpuplan cannot name, taken to suit the backend)."""
    value = normalized(dep.moe_backend)
    if value == "auto":
        return DEFAULT
    allowed = choices(profile)
    if not allowed:
        raise GpuplanError("moe_backend", f"vLLM {profile.version} has no --moe-backend: it came in {SINCE}",
                           accepted=["auto", f"a vllm_version of {SINCE} or later"])
    if value not in allowed:
        raise GpuplanError("moe_backend", f"vLLM {profile.version} has no MoE backend {dep.moe_backend!r}",
                           accepted=list(allowed))
    if not spec.is_moe:
        warnings.append(f"--moe-backend {value}: {spec.architecture or spec.model_type} has no MoE layers, so vLLM "
                        "does not use it")
        return DEFAULT
    q = experts_quant(spec, quant)
    if value == "cutlass" and q is not None and q.scheme == "nvfp4":
        if cc is not None and not 10.0 <= cc < 13.0:
            # CutlassExpertsFp4._supports_current_device: capability families 100, 110 and 120
            raise GpuplanError("moe_backend", f"vLLM's CUTLASS NVFP4 experts run on compute capability 10.x, 11.x and "
                               f"12.x only, not {cc:g}; vLLM stops at start-up",
                               accepted=["auto", "a Blackwell GPU (B200, B300, GB200, RTX 50xx, RTX PRO 6000)"])
        if ep > 1 and not profile.at_least(CUTLASS_EP_FROM):
            raise GpuplanError("moe_backend", f"vLLM {profile.version}'s CUTLASS NVFP4 experts take no expert "
                               "parallelism (ep_size must be 1 until 0.32); vLLM stops at start-up",
                               accepted=["auto", "enable_expert_parallel false",
                                         f"a vllm_version of {CUTLASS_EP_FROM} or later"])
        return CUTLASS_NVFP4
    warnings.append(f"--moe-backend {value}: gpuplan sizes the MoE layers' scratch as for vLLM's default kernel; "
                    "this backend's own workspace is not modelled")
    return DEFAULT
