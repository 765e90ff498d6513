"""vLLM's per-GPU memory accounting for one deployment: the single code path every face uses."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from typing import TYPE_CHECKING

from ...deployment import PERFORMANCE_MODES, Deployment
from ...errors import GpuplanError, UnservableDeployment
from ...model.spec import ModelSpec, QuantConfig, ServingLimits
from ...quant.methods import ASSUMED_FORMATS, KNOWN_METHODS, fp8_weights
from ...report import Component, KVCacheReport, MemoryReport
from ...units import DTYPE_BYTES, GiB, MiB, cdiv, round_up
from . import budget as B
from . import drafter as D
from . import encoder_profile as E
from . import kv as K
from . import lora as LR
from . import mla_choice as MC
from . import moe_kernels as MK
from . import sparse_mla as SM
from . import sparse_workspace as SW
from . import towers as T
from .comm_workspace import workspace_bytes
from .engine_choice import choose_engine
from .native import no_native_warning
from .profiles import (
    Profile,
    added_after,
    architecture_of_model_type,
    flashinfer_if_installed,
    flashinfer_sampler,
    get_profile,
    lacks_tp_plan,
    model_runner_v2_profiles_cudagraphs,
    modelopt_mixed_refusal,
    moe_workspace_persistent,
    on_transformers_backend,
    quant_min_capability,
    removed_after,
    shares_host_memory,
    unified_memory,
    usage_line_logged,
    uses_model_runner_v2,
    v0_default_mnbt,
    v1_batch_defaults,
    v1_chunked_prefill,
)
from .weights import Sharding, input_embedding_bytes, pp_partition, stage_layers, stage_weights, whole_towers

if TYPE_CHECKING:
    from ...gpus import GPU
    from .kv_dsv4 import DSV4Plan

DTYPES = ("auto", "bfloat16", "float16", "half", "float32", "float")
HOPPER = 9.0
CHUNKED_ENV = "VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE"


@dataclass(frozen=True)
class Resolved:
    """A deployment with every vLLM default filled in for this model, GPU and version."""

    dep: Deployment
    profile: Profile
    total: int
    tp: int
    pp: int
    dtype: str
    act_bytes: int
    quant: QuantConfig | None
    quant_name: str | None
    kv_dtype: str
    utilization: float
    max_model_len: int
    max_num_seqs: int
    mnbt: int
    cc: float
    hybrid_manager: bool
    sharding: Sharding
    warnings: tuple[str, ...]
    mamba_mode: str = "none"  # vLLM's mamba_cache_mode: none | align | all
    mamba_checkpoint: frozenset[str] = frozenset()  # 0.32+: state kinds holding one more block per request
    runner_v2: bool = False  # vLLM's second GPU model runner (vllm/v1/worker/gpu/)
    attention_free: bool = False  # every layer recurrent (Mamba, Mamba-2): no attention KV at all
    sparse_mla: bool = False  # DeepSeek-V3.2 / GLM-5: sparse MLA backends
    towers: str = "first"  # where vision/audio tower weights live: none | first | every (pipeline stage)
    text_only: bool = False  # the profile run skips the encoder (every modality turned off)
    encoder_dp: bool = False  # --mm-encoder-tp-mode data: whole towers on every TP rank
    partition: tuple[int, ...] = ()  # VLLM_PP_LAYER_PARTITION: decoder layers per pipeline stage; (): vLLM's split
    mla_off: bool = False  # MLA layers built as multi-head attention (mla_choice.py)
    moe_kernel: str = "default"  # the fused-MoE kernel sized (moe_kernels.py)

    @property
    def cudagraph_in_budget(self) -> bool:
        """Whether the CUDA-graph estimate is subtracted before the KV cache is sized."""
        return bool(self.profile.cudagraph_subtracted) and (
            not self.runner_v2 or model_runner_v2_profiles_cudagraphs(self.profile))


# ----------------------------------------------------------------------------- resolution of defaults


def _dsv4_kv_dtype(profile: Profile, cc: float, kv_dtype: str, warnings: list[str]) -> str:
    """DeepSeek-V4's cache dtype. On SM 9.x/10.x vLLM serves it with FlashMLA's fp8_ds_mla rows, and from 0.30 maps
    auto to them (before, auto fails its fp8 assertion: the verdict says so). From 0.28, SM 12.x defaults to
    FlashInfer's plain bf16/fp8 rows instead, a layout gpuplan does not plan."""
    if cc >= 12.0 and profile.flag_from("dsv4_sm12_flashinfer"):
        raise GpuplanError("gpu", f"vLLM {profile.version} serves DeepSeek-V4 on compute capability 12.x GPUs through "
                           "FlashInfer's plain-row sparse cache, whose layout gpuplan does not plan; pick an SM 9.x "
                           "or 10.x GPU (H100, H200, B200)", accepted=["H100", "H200", "B200", "B300"])
    if 12.0 <= cc < 13.0 and profile.flag_from("dsv4_sm12_fp8_ds_mla"):
        warnings.append(f"vLLM {profile.version} serves DeepSeek-V4 on compute capability 12.x through FlashInfer's "
                        "SM120 sparse-MLA kernels, on the same fp8_ds_mla cache rows; it stops at start-up unless the "
                        "installed FlashInfer has its sparse MLA decode API")
    if kv_dtype == "auto" and 9.0 <= cc < 11.0 and profile.flag_from("dsv4_auto_fp8"):
        warnings.append(f"vLLM {profile.version} keeps DeepSeek-V4's cache in fp8_ds_mla: kv_cache_dtype auto means "
                        "fp8 here")
        return "fp8"
    return kv_dtype


def _resolve_dtype(spec: ModelSpec, dep: Deployment, cc: float) -> str:
    d = (dep.dtype or "auto").lower()
    if d not in DTYPES:
        raise GpuplanError("dtype", f"unsupported dtype {dep.dtype!r}", accepted=DTYPES)
    if d == "auto":
        d = spec.torch_dtype if spec.torch_dtype in ("bfloat16", "float16") else "bfloat16"
        if spec.torch_dtype == "float32":
            d = "bfloat16"
    d = {"half": "float16", "float": "float32"}.get(d, d)
    if d == "bfloat16" and cc < 8.0:
        d = "float16"  # pre-Ampere GPUs have no bf16
    return d


def _resolve_quant(spec: ModelSpec, dep: Deployment, warnings: list[str]) -> tuple[QuantConfig | None, str | None]:
    want = (dep.quantization or "").strip().lower() or None
    have = spec.quant
    if want in (None, "none", "auto"):
        return have, (have.method if have else None)
    aliases = {"awq_marlin": "awq", "gptq_marlin": "gptq", "modelopt": "nvfp4", "gpt_oss_mxfp4": "mxfp4",
               "bnb": "bitsandbytes", "compressed_tensors": "compressed-tensors", "auto-round": "inc",
               "auto_round": "inc"}
    if want.startswith("modelopt") and have is not None and have.origin == "modelopt":
        return have, have.method  # vLLM picks the ModelOpt config class the checkpoint's quant_algo names
    want = aliases.get(want, want)
    if want == "inc":  # vLLM's name for AutoRound checkpoints, which it serves through GPTQ / AWQ Marlin or FP8
        if have is not None and have.origin == "auto-round":
            return have, have.method
        raise GpuplanError("quantization", "--quantization inc needs an AutoRound checkpoint (quant_method "
                           "auto-round in its config)" + (f"; this one is {have.method}" if have else ""),
                           accepted=[have.method] if have else sorted(ASSUMED_FORMATS))
    if have is not None:
        if want in (have.method, "compressed-tensors") or (have.method == "compressed-tensors"):
            return have, have.method
        if want == "fp8" and have.method == "fp8":
            return have, "fp8"
        raise GpuplanError("quantization", f"--quantization {want} does not match the checkpoint's "
                           f"quantization ({have.method})", accepted=[have.method])
    if want == "compressed-tensors" or want == "gguf":
        raise GpuplanError("quantization", f"{want} needs a checkpoint that is stored that way; this model's "
                           "config has no quantization_config", accepted=sorted(ASSUMED_FORMATS))
    if want not in ASSUMED_FORMATS:
        raise GpuplanError("quantization", f"unsupported quantization {dep.quantization!r}", accepted=KNOWN_METHODS)
    q = ASSUMED_FORMATS[want]
    if q.source == "assumed":
        warnings.append(f"quantization {want}: this checkpoint is not quantized; sized as a {q.bits}-bit "
                        f"{q.method} checkpoint of the same model (you need such a checkpoint to serve it)")
    return q, want


COMPILE_CACHES = ("warm", "cold")
INTERCONNECTS = ("nvswitch", "pcie", "pcie_no_p2p")
PLATFORMS = ("linux", "wsl")


def _cold_compile_gap(r: Resolved) -> str | None:
    """None where gpuplan models a first start on an empty torch.compile cache for this start-up, else why the
    cache state changes nothing or is not modelled. vLLM compiles inside the profile run that memory_profiling
    measures; public first/restart pairs show the cost from 0.24. Earlier V1 releases compile inside the same
    measured pass, but no public log pairs a first start with its restart there, and their calibrations come
    from logs whose cache state is unknown."""
    p = r.profile
    if p.engine != "v1" or r.dep.enforce_eager:
        return "nothing is compiled here (enforce_eager or the V0 engine), so it changes nothing"
    if r.dep.kv_cache_memory_bytes is not None:
        return "with kv_cache_memory_bytes vLLM skips memory profiling, so it changes nothing"
    if not p.flag_from("cold_compile_scratch"):
        return (f"not modelled for vLLM {p.version}; its figures are calibrated on public logs whose "
                "compile-cache state is unknown (public first/restart pairs exist from 0.24)")
    return None


def _cold_compile_bytes(spec: ModelSpec, r: Resolved, peak: int, embedding: int, *, tied: bool, last: bool) -> int:
    """Per GPU, what a cold compile adds to the profile run's measured peak (calibration.json cold_compile_gib).
    A dense model's compiler spike is freed before the forward runs; vLLM's peak is the larger of the two
    (vllm#54209), so a forward bigger than the spike (8192 batched tokens on an 80 GB card) hides it. The spike is
    one more copy of the stage's token-embedding shard (`embedding`, 0 off the first stage), whatever the batch
    size: Inductor's combo-kernel benchmarking, which vLLM turns on, runs candidate kernels on random copies of their
    arguments on an empty cache, the table the embedding gather reads among them. The public first starts add a
    small share on the stage that samples; the MoE pairs show none. What the compile leaves behind is never
    hidden: a copy of a tied embedding (one the stage's lm_head shares), and an MoE model's share."""
    c = r.profile.calib["cold_compile_gib"]
    resident = embedding if tied else 0
    if spec.is_moe:
        return resident + int(c["moe_resident"] * GiB / r.tp)
    share = int(c["spike_last_stage"] * GiB / r.tp) if last else 0
    return resident + max(0, embedding + share - peak)


def _fp8_marlin(quant: QuantConfig | None, cc: float, profile: Profile, warnings: list[str]) -> QuantConfig | None:
    """Below compute capability 8.9 vLLM serves FP8 weights through the weight-only Marlin kernel (fp8.py,
    compressed_tensors_w8a16_fp8.py): per-tensor and per-channel FP8 since FP8 Marlin existed, block-wise FP8
    and FP8 MoE from 0.9 (marlin_utils_fp8.py). A mixed-precision checkpoint's FP8 modules go the same way
    (ModelOpt's mixed config accepts such GPUs from 0.24)."""
    if quant is not None and quant.modules is not None:
        said: list[str] = []
        each = {q: _fp8_marlin(q, cc, profile, said) or q for q in quant.modules.formats()}
        warnings.extend(dict.fromkeys(said))
        return replace(quant, modules=quant.modules.mapped(each.__getitem__)) if said else quant
    if not fp8_weights(quant) or cc >= 8.9:
        return quant
    if cc < (quant_min_capability(profile, "fp8") or 8.0):
        return quant  # vLLM refuses it: the verdict says so
    if quant.weight_block and not profile.at_least("0.9"):
        return quant
    warnings.append(f"no native FP8 on this GPU (compute capability {cc:g} < 8.9): vLLM runs the FP8 weights "
                    "through the weight-only Marlin kernel, which keeps their scales in the model dtype and "
                    "computes in 16 bits")
    return replace(quant, fp8_marlin=True)


def chunked_prefill(spec: ModelSpec, dep: Deployment, profile: Profile, max_model_len: int) -> bool:
    """Whether the engine prefills in chunks: as the user says (V1 before 0.9.2 chunks regardless), else V1
    always and V0 by its long-context default."""
    if profile.engine != "v0":
        return v1_chunked_prefill(profile, dep.enable_chunked_prefill)
    if dep.enable_chunked_prefill is not None:
        return dep.enable_chunked_prefill
    return max_model_len > 32768 and _v0_long_context_chunked(spec, profile)


def _v0_long_context_chunked(spec: ModelSpec, profile: Profile) -> bool:
    """Whether V0 turns chunked prefill on by default above 32K tokens (arg_utils.py, from 0.5.3): not for a model
    with a sliding window, a multimodal model (0.6.3+) or an MLA model (0.8+), which V0 prefills whole (nor with a
    speculative decoder, which gpuplan sizes on V1 only)."""
    if not profile.flag_from("long_context_chunked_prefill"):
        return False
    kinds = {layer.attention.kind for layer in spec.layers}
    if "sliding_window" in kinds:
        return False
    if spec.multimodal is not None and profile.at_least("0.6.3"):
        return False
    return not ("mla" in kinds and profile.at_least("0.8"))


def _v0_mla_context_rows(spec: ModelSpec, r: Resolved) -> int:
    """Rows of V0's MLA context workspace: allocated when prefix caching (off by default in every V0 release:
    arg_utils.py leaves it unset, and 0.8+ turns it off for multimodal models) or chunked prefill is on (V0 needs
    max_num_batched_tokens >= max_model_len without it; 0.8+ never turns it on by default for MLA)."""
    if r.profile.engine != "v0" or not any(layer.attention.kind == "mla" for layer in spec.layers):
        return 0
    prefix = bool(r.dep.enable_prefix_caching) and not (spec.multimodal is not None and r.profile.at_least("0.8"))
    if not (prefix or r.mnbt < r.max_model_len):
        return 0
    return B.v0_mla_context_rows(r.max_model_len, r.max_num_seqs, r.dep.block_size or 16)


def _batch_defaults(profile: Profile, dep: Deployment, total: int, max_model_len: int,
                    spec: ModelSpec) -> tuple[int, int]:
    seqs, mnbt = dep.max_num_seqs, dep.max_num_batched_tokens
    if profile.engine == "v0":
        seqs = seqs or 256
        if mnbt is None:
            mnbt = v0_default_mnbt(profile, max_model_len, seqs,
                                   chunked=chunked_prefill(spec, dep, profile, max_model_len),
                                   multimodal=spec.multimodal is not None)
        return seqs, mnbt
    # A GPU sharing the host's memory (GB10, Jetson) stays on the small tier: vLLM sizes the tier from NVML's
    # memory total, which these parts do not report (arg_utils.py falls back to 0 on the error; every GB10 and Thor
    # log we have, 0.10.2-0.18.1, shows the small tier's 2048 tokens), and 0.33 names GB10 outright.
    cc = dep.compute_capability or getattr(_card(dep), "compute_capability", None)
    shares_host = shares_host_memory(cc) or (cc == 12.1 and profile.flag_from("gb10_small_defaults"))
    big = total >= 70 * GiB and "a100" not in (dep.gpu_name or "").lower() and not shares_host
    huge = total >= 160 * GiB and profile.flag_from("big_gpu_defaults")
    if huge:
        d_mnbt, d_seqs = 16384, 1024
    elif big:
        d_mnbt, d_seqs = (8192 if dep.api_server else 16384), 1024
    else:
        d_mnbt, d_seqs = (2048 if dep.api_server else 8192), 256
    return v1_batch_defaults(profile, seqs, mnbt, d_seqs, d_mnbt, max_model_len,
                             chunked=chunked_prefill(spec, dep, profile, max_model_len),
                             throughput=dep.performance_mode == "throughput")


def resolve(spec: ModelSpec, dep: Deployment) -> Resolved:
    profile = get_profile(dep.vllm_version, dep.env_flag("VLLM_USE_V1"))
    warnings: list[str] = []
    if last := removed_after(profile, spec.architecture):
        warnings.append(f"vLLM dropped its own {spec.architecture} after v{last}: v{profile.version} starts it only "
                        "if its Transformers backend can run the checkpoint's code, which gpuplan does not size; "
                        f"these numbers follow the native implementation (--vllm-version {last})")
    if span := added_after(profile, spec.architecture):
        warnings.append(f"vLLM {profile.version} has no implementation of {spec.architecture} (added after v{span[0]}, "
                        f"by v{span[1]}): it refuses the model unless its Transformers backend can run the "
                        f"checkpoint's code; these numbers follow the native implementation (--vllm-version {span[1]})")
    # A config without `architectures` is checked as its model_type's transformers class.
    named = spec.architecture or architecture_of_model_type(spec.model_type) or ""
    if note := no_native_warning(profile, named):  # raises when vLLM certainly refuses it
        warnings.append(note)
    if (dep.tensor_parallel_size or 1) > 1 and lacks_tp_plan(spec.architecture) and on_transformers_backend(
            profile, spec.architecture):
        warnings.append(f"vLLM {profile.version} runs {spec.architecture} through its Transformers backend, and its "
                        "transformers config has no tensor-parallel plan: vLLM splits only what its graph fusers "
                        "recognise and keeps the rest whole on every GPU, so weights per GPU may be higher than the "
                        "even split shown here")
    if not dep.gpu_memory_bytes or dep.gpu_memory_bytes <= 0:
        raise GpuplanError("gpu", "a GPU (or its memory in GiB) is needed to size the KV cache")
    total = int(dep.gpu_memory_bytes)
    tp, pp = int(dep.tensor_parallel_size or 1), int(dep.pipeline_parallel_size or 1)
    if tp < 1 or pp < 1 or (dep.data_parallel_size or 1) < 1:
        raise GpuplanError("tensor_parallel_size", "parallel sizes must be >= 1")
    card = _card(dep)
    cc = dep.compute_capability or getattr(card, "compute_capability", None) or HOPPER
    if card is not None and not dep.gpu_name:
        warnings.append(f"an unnamed GPU with {total / GiB:.2f} GiB visible is taken to be the {card.name} (the "
                        f"catalog card of that exact total: compute capability {card.compute_capability:g}, "
                        f"{'NVSwitch' if card.fabric == 'nvswitch' else 'PCIe'}); pass --gpu to say otherwise")
    u = dep.gpu_memory_utilization if dep.gpu_memory_utilization is not None else profile.default_utilization
    if not 0 < u <= 1:
        raise GpuplanError("gpu_memory_utilization", f"must be in (0, 1], got {u}")
    if not 0 <= dep.cpu_offload_gb < 1 << 14:
        raise GpuplanError("cpu_offload_gb", f"must be GiB per GPU in [0, 16384), got {dep.cpu_offload_gb}")
    if dep.cpu_offload_gb:
        warnings.append(f"--cpu-offload-gb {dep.cpu_offload_gb:g}: the offloaded weights are read from CPU memory "
                        "over PCIe/C2C on every forward pass; expect much lower throughput")
    lim = spec.max_len_limit
    # vLLM's default: the derived length, or 2048 when the config names none.
    L = dep.max_model_len or (lim.default if lim else 2048)
    if L <= 0:
        raise GpuplanError("max_model_len", f"must be positive, got {L}")
    if dep.max_model_len and lim and L > lim.derived and dep.env_flag(LONG_LEN_ENV):
        warnings.append(f"max_model_len {L} exceeds the model's derived maximum ({lim.key}={lim.derived}); "
                        f"{LONG_LEN_ENV} lets vLLM start, but positions past {lim.derived} are untrained")
    if dep.compile_cache not in COMPILE_CACHES:
        raise GpuplanError("compile_cache", f"unknown torch.compile cache state {dep.compile_cache!r}",
                           accepted=COMPILE_CACHES)
    if dep.interconnect is not None and dep.interconnect not in INTERCONNECTS:
        raise GpuplanError("interconnect", f"unknown interconnect {dep.interconnect!r}", accepted=INTERCONNECTS)
    if dep.platform not in PLATFORMS:
        raise GpuplanError("platform", f"unknown platform {dep.platform!r}", accepted=PLATFORMS)
    if dep.platform == "wsl":
        warnings.append(f"WSL2: CUDA reports the whole {(dep.gpu_memory_bytes or 0) / GiB:.2f} GiB board and vLLM "
                        "takes its budget from that, but Windows' desktop and programs hold part of it; vLLM 0.9+ "
                        "stops at start-up when free memory is below the budget (lower gpu_memory_utilization then). "
                        "GPUs under WSL2 have no peer access")
    kv_dtype = (dep.kv_cache_dtype or "auto").lower()
    if kv_dtype not in K.KV_DTYPES:
        raise GpuplanError("kv_cache_dtype", f"unsupported KV cache dtype {dep.kv_cache_dtype!r}",
                           accepted=K.KV_DTYPES)
    if kv_dtype == "fp8_ds_mla" and not any(layer.attention.kind == "mla" for layer in spec.layers):
        raise GpuplanError("kv_cache_dtype", "fp8_ds_mla applies to MLA models only",
                           accepted=[x for x in K.KV_DTYPES if x != "fp8_ds_mla"])
    if "dsv4" in spec.attention_kinds and not profile.at_least("0.20"):
        raise GpuplanError("vllm_version", f"vLLM {profile.version} cannot serve DeepSeek-V4 (added in 0.20)",
                           accepted=[">= 0.20"])
    dtype = _resolve_dtype(spec, dep, cc)
    quant, qname = _resolve_quant(spec, dep, warnings)
    quant = _fp8_marlin(quant, cc, profile, warnings)
    if kv_dtype == "auto" and quant is not None and quant.kv_cache_fp8 and profile.at_least("0.16"):
        # vLLM >= 0.16 maps "auto" to fp8 when the checkpoint declares an FP8 KV cache.
        kv_dtype = "fp8"
        warnings.append("the checkpoint declares an FP8 KV cache: vLLM's kv_cache_dtype auto means fp8 here")
    if "dsv4" in spec.attention_kinds:
        kv_dtype = _dsv4_kv_dtype(profile, cc, kv_dtype, warnings)
    kv_dtype, changed = SM.kv_cache_dtype(spec, profile, cc, kv_dtype, tp)
    if changed:
        warnings.append(changed)
    profile = _engine(profile, spec, dep, cc, dtype, quant, kv_dtype, pp, warnings)
    mla_off = MC.mla_off_reason(spec, profile, dep, quant)
    if mla_off and profile.at_least("0.7.1"):
        warnings.append(f"{mla_off}: vLLM builds the latent-attention layers as multi-head attention, so every "
                        "query head caches its own K and V (many times the latent cache MLA would keep)")
    _check_performance_mode(dep, profile)
    warnings += _check_mamba_ssm_dtype(spec, dep, profile)
    warnings += LR.check(spec, dep, profile)
    seqs, mnbt = _batch_defaults(profile, dep, total, L, spec)
    for name, v in (("max_num_seqs", seqs), ("max_num_batched_tokens", mnbt)):
        if v <= 0:
            raise GpuplanError(name, f"must be positive, got {v}")
    _check_capture_size(dep, profile)
    ep = tp * (dep.data_parallel_size or 1) if dep.enable_expert_parallel else 1
    moe_tp = 1 if dep.enable_expert_parallel else tp * (dep.data_parallel_size or 1)
    moe_kernel = MK.kernel(spec, dep, profile, dep.compute_capability or getattr(card, "compute_capability", None),
                           quant, ep, warnings)
    manager = bool(profile.hybrid_manager) and dep.disable_hybrid_kv_cache_manager is not True
    if manager and declares_chunked_attention(spec, profile):
        env = dep.env_flag(CHUNKED_ENV)
        allowed = env if env is not None else profile.flag_from("chunked_hybrid_default")
        if not allowed:
            manager = False
            warnings.append("attention_chunk_size in the config: vLLM keeps the hybrid KV cache manager off by "
                            "default in this version; every windowed or chunked layer is charged full length "
                            f"(set {CHUNKED_ENV}=1 to change it)")
    mode, checkpoint = _mamba_cache_mode(spec, dep, profile, cc, dtype, warnings)
    runner_v2 = uses_model_runner_v2(
        profile, spec.architecture, dep.env_flag("VLLM_USE_V2_MODEL_RUNNER"), mode, moe=spec.is_moe,
        # vLLM's is_quantized reads the checkpoint's quantization_config: an assumed AWQ/GPTQ checkpoint has one,
        # --quantization fp8 on a bf16 checkpoint (source "online") and a GGUF file do not.
        quantized=quant is not None and quant.source != "online" and quant.method != "gguf",
        has_state=any(layer.attention.state for layer in spec.layers), attention_free=spec.attention_free,
        spec_method=D.normalized_method(dep.speculative_method) if dep.speculative_method else "")
    off = T.text_only(spec, dep, profile)
    towers = T.placement(spec, profile, off=off, pp=pp, runner_v2=runner_v2)
    encoder_dp = T.encoder_data_parallel(spec, dep, profile, tp, warnings)
    _check_parallel(spec, tp, pp, "whole" if encoder_dp else towers)
    text_only = T.profiles_text_only(profile, off)
    if towers == "none":
        warnings.append(f"text only ({_text_only_how(spec, dep)}): vLLM {profile.version} does not build the "
                        f"{' and '.join(T.modalities(spec.architecture))} tower weights")
    elif off:
        warnings.append(f"text only ({_text_only_how(spec, dep)}): vLLM {profile.version} still loads the tower "
                        "weights for this model" + ("" if text_only else ", and profiles it as multimodal"))
    sharding = Sharding(tp, moe_tp, ep, expert_min_shard=profile.at_least("0.27"),
                        replicated_kinds=_sequence_parallel_kinds(spec, dep, profile, tp, pp, warnings),
                        compute_capability=dep.compute_capability,
                        sm_count=getattr(card, "sm_count", None))
    return Resolved(dep, profile, total, tp, pp, dtype, DTYPE_BYTES[dtype], quant, qname, kv_dtype, u, L, seqs, mnbt,
                    cc, manager, sharding, tuple(warnings), mode, checkpoint, runner_v2,
                    spec.attention_free, SM.is_sparse_mla(spec), towers, text_only, encoder_dp,
                    _layer_partition(spec, dep, pp), mla_off is not None, moe_kernel)


PP_PARTITION_ENV = "VLLM_PP_LAYER_PARTITION"


def _layer_partition(spec: ModelSpec, dep: Deployment, pp: int) -> tuple[int, ...]:
    """VLLM_PP_LAYER_PARTITION ("a,b,..."): decoder layers per pipeline stage, as vLLM's get_pp_indices checks it
    (one count per stage, summing to the model's decoder layers)."""
    raw = dep.env_value(PP_PARTITION_ENV)
    if raw is None:
        return ()
    n = spec.num_decoder_layers
    hint = f"{pp} comma-separated layer counts summing to {n}, e.g. {','.join(map(str, _even(n, pp)))}"
    try:
        sizes = tuple(int(x) for x in raw.split(","))
    except ValueError:
        raise GpuplanError("env", f"{PP_PARTITION_ENV}={raw!r} is not a list of layer counts", accepted=[hint]) from None
    if len(sizes) != pp or sum(sizes) != n or min(sizes) < 1:
        raise GpuplanError("env", f"{PP_PARTITION_ENV}={raw!r} must give each of the {pp} pipeline stages at least "
                                  f"one of the model's {n} decoder layers", accepted=[hint])
    return sizes


def _even(n: int, pp: int) -> list[int]:
    return [hi - lo for lo, hi in pp_partition(n, pp)]


def _text_only_how(spec: ModelSpec, dep: Deployment) -> str:
    if dep.language_model_only:
        return "--language-model-only"
    return "--limit-mm-per-prompt " + ", ".join(f"{m}=0" for m in T.modalities(spec.architecture))


def _check_performance_mode(dep: Deployment, profile: Profile) -> None:
    if dep.performance_mode not in PERFORMANCE_MODES:
        raise GpuplanError("performance_mode", f"unknown mode {dep.performance_mode!r}", accepted=PERFORMANCE_MODES)
    if dep.performance_mode != "balanced" and not (profile.engine == "v1" and profile.at_least("0.17")):
        raise GpuplanError("performance_mode", f"vLLM {profile.version} has no --performance-mode: it came in 0.17",
                           accepted=["balanced", "a vllm_version of 0.17 or later"])


def _check_capture_size(dep: Deployment, profile: Profile) -> None:
    v = dep.max_cudagraph_capture_size
    if v is None:
        return
    if v < 1:
        raise GpuplanError("max_cudagraph_capture_size", f"must be at least 1, got {v}")
    if profile.engine != "v1" or not profile.at_least("0.11.1"):
        raise GpuplanError("max_cudagraph_capture_size",
                           f"vLLM {profile.version} has no such option: it came in 0.11.1",
                           accepted=["a vllm_version of 0.11.1 or later", "unset"])


def _sequence_parallel_kinds(spec: ModelSpec, dep: Deployment, profile: Profile, tp: int, pp: int,
                             warnings: list[str]) -> frozenset[str]:
    """Under sequence-parallel MoE (vLLM 0.11+: expert parallelism with TP > 1 and DP > 1) each TP rank runs the
    MoE block on its own slice of the tokens, and some models keep their shared experts (and dense MLPs) whole on
    every GPU instead of splitting them over TP (ParallelConfig.use_sequence_parallel_moe; SequenceParallelRule)."""
    if not (dep.enable_expert_parallel and tp > 1 and (dep.data_parallel_size or 1) > 1):
        return frozenset()
    kinds: set[str] = set()
    for rule in spec.sequence_parallel:
        if profile.at_least(rule.since) and (pp == 1 or not rule.pp1) and not (
                rule.unless_env and dep.env_flag(rule.unless_env)):
            kinds.update(rule.kinds)
    if kinds:
        what = " and ".join(sorted(k.replace("_", " ") for k in kinds))
        warnings.append(f"sequence-parallel MoE (expert parallel with TP>1 and DP>1): vLLM keeps the {what} whole "
                        "on every GPU instead of splitting them over TP")
    return frozenset(kinds)


def declares_chunked_attention(spec: ModelSpec, profile: Profile) -> bool:
    """vLLM's check reads model_config.attention_chunk_size, so a config key that no layer uses counts too
    (MiMo-V2-Flash's, until the version that strips it)."""
    if any(layer.attention.kind == "chunked_local" for layer in spec.layers):
        return True
    dropped = spec.attention_chunk_dropped_from
    return bool(spec.attention_chunk_size) and not (dropped and profile.at_least(dropped))


def _engine(profile: Profile, spec: ModelSpec, dep: Deployment, cc: float, dtype: str, quant: QuantConfig | None,
            kv_dtype: str, pp: int, warnings: list[str]) -> Profile:
    """vLLM 0.8-0.10 run V0 for what their V1 engine did not support; size such a start-up as V0."""
    choice = choose_engine(profile, spec, use_v1=dep.env_flag("VLLM_USE_V1"), cc=cc, dtype=dtype,
                           quant_method=quant.method if quant else None, kv_dtype=kv_dtype, pp=pp,
                           cpu_offload_gb=dep.cpu_offload_gb)
    if choice.refused:
        raise UnservableDeployment("env", f"VLLM_USE_V1=1 is not supported with {choice.feature} in vLLM "
                                   f"{profile.version}: vLLM stops at start-up", accepted=["VLLM_USE_V1=0", "unset"])
    if not choice.v0:
        return profile
    warnings.append(f"{choice.feature} is not supported by vLLM {profile.version}'s V1 engine: it falls back to "
                    "V0, and these numbers follow V0's accounting")
    return get_profile(profile.version, False)


# Mamba layer kinds whose vLLM models implement SupportsMambaPrefixCaching (Jamba, Mamba, Mamba2, NemotronH,
# Bamba, FalconH1, GraniteMoeHybrid, Zamba2 in 0.22): they got mamba_cache_mode "all" up to 0.27.
_ALL_MODE_STATE_KINDS = ("mamba1", "mamba2")


def _mamba_cache_mode(spec: ModelSpec, dep: Deployment, profile: Profile, cc: float, dtype: str,
                      warnings: list[str]) -> tuple[str, frozenset[str]]:
    """Prefix caching on a model with Mamba / linear-attention state (model_executor/models/config.py,
    MambaModelConfig): off by default until 0.27, on by default from 0.28 (vllm#50991) in mode "align"."""
    kinds = {layer.attention.state_kind for layer in spec.layers if layer.attention.state}  # Falcon-H1: "full"
    if not kinds:
        return "none", frozenset()
    on = dep.enable_prefix_caching if dep.enable_prefix_caching is not None else profile.at_least("0.28")
    if not on:
        return "none", frozenset()
    if spec.attention_free:
        # ModelConfig.is_prefix_caching_supported: attention-free models never get prefix caching.
        if dep.enable_prefix_caching:
            warnings.append("enable_prefix_caching: vLLM has no prefix caching for attention-free models "
                            "(Mamba, Mamba-2); sized without it")
        return "none", frozenset()
    if not profile.at_least("0.11.1"):
        warnings.append("enable_prefix_caching: this vLLM has no prefix caching for Mamba / linear-attention "
                        "layers; sized without it")
        return "none", frozenset()
    if profile.at_least("0.28"):
        mode = "align"
    else:
        mode = "all" if kinds <= set(_ALL_MODE_STATE_KINDS) else "align"
    # Some state layers keep a prefill-checkpoint block (one more state per request in align mode): every
    # Mamba-2 mixer from 0.32 (mamba_mixer2.py, any GPU), and from 0.33 Qwen's Gated DeltaNet where
    # FlashInfer's kernel exports checkpoints (Hopper; Blackwell with 128-wide keys on CUDA 13, assumed), which
    # also puts blocks on its 64-token grid (qwen_gdn_linear_attn.py). OLMo's GDN ("olmo_gdn"), Mamba-1 and
    # short convolutions have none.
    checkpoint: set[str] = set()
    if mode == "align" and profile.at_least("0.32") and "mamba2" in kinds:
        checkpoint.add("mamba2")
    # Qwen4Exp's per-layer-embedding short conv ("ple_conv") always declares an alignment, but vLLM takes the lcm
    # over every Mamba layer, so it checkpoints only when the GDN layers do too.
    if mode == "align" and profile.at_least("0.33") and "gdn" in kinds and kinds <= {"gdn", "ple_conv"}:
        dk = {layer.attention.state[-1].shape[1] for layer in spec.layers
              if layer.attention.kind == "mamba" and layer.attention.state_kind == "gdn"}
        if 9.0 <= cc < 10.0 or ((10.0 <= cc < 11.0 or 12.0 <= cc < 13.0) and dk == {128}):
            checkpoint |= kinds
    # Kimi K3's KDA prefills with FlashKDA from 0.31 on SM90/SM10x/SM12x with bf16 activations, and FlashKDA
    # exports a checkpoint state (models/kimi_k3/nvidia/kda.py: is_flashkda_supported, get_kv_cache_spec).
    if mode == "align" and profile.at_least("0.31") and "kda_flash" in kinds and int(cc) in (9, 10, 12) \
            and dtype == "bfloat16":
        checkpoint.add("kda_flash")
    if dep.enable_prefix_caching is None:  # on by default (0.28+): say what it costs
        states = "2" if not checkpoint else "3" if checkpoint == kinds else "2 or 3"
        warnings.append(f"prefix caching is on by default for hybrid models from vLLM 0.28: mamba_cache_mode align "
                        f"keeps {states} states per request in each Mamba group "
                        "(--no-enable-prefix-caching keeps one)")
    return mode, frozenset(checkpoint)


def _check_parallel(spec: ModelSpec, tp: int, pp: int, towers: str) -> None:
    """vLLM's divisibility checks. `towers`: "none" (not built) or "whole" (not split) skip the tower's."""
    heads = spec.num_attention_heads
    if heads and heads % tp:
        raise UnservableDeployment("tensor_parallel_size", f"{spec.num_attention_heads} attention heads cannot be split "
                           f"over {tp} GPUs", accepted=[str(d) for d in _divisors(heads)])
    kv = spec.num_kv_heads

    def kv_ok(d: int) -> bool:  # KV heads are split over TP, or replicated when TP is a multiple of them
        return not kv or kv % d == 0 or d % kv == 0

    if not kv_ok(tp):
        raise UnservableDeployment("tensor_parallel_size", f"{kv} KV heads and TP={tp}: one must divide the other",
                           accepted=[str(d) for d in _divisors(heads) if kv_ok(d)])
    mm_heads = spec.multimodal.tp_heads if spec.multimodal and towers not in ("none", "whole") else 0
    if mm_heads and mm_heads % tp:
        raise UnservableDeployment("tensor_parallel_size", f"the vision tower's {mm_heads} attention heads cannot be "
                                   f"split over {tp} GPUs (vLLM asserts they divide evenly)",
                                   accepted=[str(d) for d in _divisors(heads) if mm_heads % d == 0 and kv_ok(d)])
    if round_up(spec.vocab_size, 64) % tp:
        raise UnservableDeployment("tensor_parallel_size", f"the padded vocabulary ({round_up(spec.vocab_size, 64)}) "
                           f"cannot be split over {tp} GPUs")
    _check_state_split(spec, tp)
    for size, what in spec.tp_divides:
        if size % tp:
            raise UnservableDeployment("tensor_parallel_size", f"{what} ({size}) cannot be split over {tp} GPUs "
                                       "(vLLM asserts it divides evenly)",
                                       accepted=[str(d) for d in _divisors(size) if kv_ok(d)])
    if pp > 1 and (why := _no_pp_reason(spec.architecture)):
        raise UnservableDeployment("pipeline_parallel_size", why, accepted=["1"])
    n = spec.num_decoder_layers
    if pp > n:
        raise UnservableDeployment("pipeline_parallel_size", f"{pp} stages for {n} layers", accepted=[f"1..{n}"])


@lru_cache(maxsize=1)
def _no_pp_architectures() -> frozenset[str]:
    from ...datafiles import data_json

    return frozenset(data_json("vllm_no_pipeline_parallel.json")["architectures"])


def _no_pp_reason(architecture: str) -> str:
    """vLLM refuses pipeline parallelism for classes without SupportsPP (read from the newest wheel; a class that
    lacks it there is taken to have lacked it before)."""
    if architecture in _no_pp_architectures():
        return f"vLLM's {architecture} does not support pipeline parallelism (it does not implement SupportsPP)"
    return ""


def _check_state_split(spec: ModelSpec, tp: int) -> None:
    """Mamba / linear-attention layers shard heads (and groups) over TP; vLLM asserts they divide evenly."""
    seen: set[tuple[str, int]] = set()
    for layer in {id(x): x for x in spec.layers}.values():
        for st in layer.attention.state:
            if st.tp_dim is None or (st.name, st.shape[st.tp_dim]) in seen:
                continue
            size = st.shape[st.tp_dim]
            seen.add((st.name, size))
            if size % tp and not (st.whole_when_one and size == 1):
                kind = {"mamba1": "Mamba", "mamba2": "Mamba-2", "gdn": "Gated-DeltaNet", "olmo_gdn": "Gated-DeltaNet",
                        "kda": "KDA", "kda_flash": "KDA"}.get(layer.attention.state_kind, "recurrent-state")
                raise UnservableDeployment(
                    "tensor_parallel_size", f"{size} {kind} {st.split_unit} cannot be split over {tp} GPUs",
                    accepted=[str(d) for d in _divisors(size)])


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, min(n, 64) + 1) if n % d == 0]


# ----------------------------------------------------------------------------- the estimate


def _matrix_absorption_mode(p: Profile) -> str:
    """0.7.1-0.7.3's absorbed MLA weights (vllm_profiles.json mla_matrix_absorption): "fp32_dequant" where FP8 is
    dequantized to float32 (0.7.1-0.7.2), "dequant" (0.7.3), "" in other releases."""
    rule = p.flags.get("mla_matrix_absorption")
    if not rule or not p.at_least(rule["from"]) or p.at_least(rule["until"]):
        return ""
    return "dequant" if p.at_least(rule["fp32_dequant_until"]) else "fp32_dequant"


@dataclass(frozen=True)
class _SparseStage:
    """The sparse-MLA path's buffers on one pipeline stage (sparse_workspace.py)."""

    load: int  # beyond the top-k token buffer: index groups, FlashMLA-sparse's workspace reservation
    transient: int  # held by the indexer only while it runs in the profile run
    workspace: Callable[[int], int]  # the shared workspace's profile-run growth, given the MoE kernel's request


# The architectures vLLM serves through deepseek_v2.py's sparse path (0.33: models/deepseek_v32), which
# sparse_workspace.py was read on; other sparse-MLA families (HY V4, Dots3Note, ...) have model files of their own.
_DSA_ARCHITECTURES = frozenset({"DeepseekV32ForCausalLM", "GlmMoeDsaForCausalLM", "DeepseekV3ForCausalLM"})


def _sparse_stage(spec: ModelSpec, r: Resolved, lo: int, hi: int) -> _SparseStage | None:
    """DeepSeek-V3.2 / GLM-5 on V1 (the layers deepseek_v2.py builds with an indexer and a top-k token buffer)."""
    if not r.sparse_mla or spec.architecture not in _DSA_ARCHITECTURES or r.profile.engine != "v1" \
            or not r.profile.at_least(SW.FIRST):
        return None  # checked first: this runs for every stage of every estimate
    topk = next((b.width for b in spec.token_buffers if b.name == "topk_indices_buffer"), 0)
    mla = [layer.attention for layer in spec.layers if layer.attention.kind == "mla" and layer.attention.sparse]
    if not topk or any(a.recipe or a.block_outermost for a in mla):
        return None
    v, a = r.profile.version, mla[0]
    backend = SM.backend(spec, r.profile, r.cc, r.kv_dtype, r.tp)
    heads = cdiv(a.num_heads, r.tp)
    reserve = SW.flashmla_init_request(v, heads_per_rank=heads, mnbt=r.mnbt, max_model_len=r.max_model_len,
                                       kv_dtype=r.kv_dtype, cc=r.cc, kv_lora_rank=a.kv_lora_rank
                                       ) if backend == "FLASHMLA_SPARSE" else 0
    # one reservation per worker process (each pipeline stage has its own workspace manager), whatever its layers
    load = reserve + SW.index_group_bytes(v, index_layers=SW.index_layers(spec, lo, hi), mnbt=r.mnbt,
                                 max_num_seqs=r.max_num_seqs, index_topk=topk)
    # vLLM's default CUDA-graph mode (FULL_AND_PIECEWISE) keeps 0.32+'s row-shard exchange at TP > 1
    transient = SW.profile_transient_bytes(v, max_model_len=r.max_model_len, mnbt=r.mnbt, index_topk=topk, tp=r.tp,
                                           index_head_dim=a.indexer_head_dim or 128)

    def workspace(moe: int) -> int:
        return SW.profile_workspace_bytes(v, backend=backend, load_reservation=reserve, moe_request=moe,
                                          max_model_len=r.max_model_len, index_head_dim=a.indexer_head_dim or 128)

    return _SparseStage(load, transient, workspace)


def _mxfp4_pad(r: Resolved) -> tuple[int, int] | None:
    if r.quant is None or r.quant.method != "mxfp4":
        return None
    if r.cc < 9.0:
        return (128, 256)  # Marlin (Ampere): I to 128, H to 256
    if r.cc >= 10.0:
        return (256, 256)  # FlashInfer on Blackwell
    return (128, 256)  # Hopper's triton swizzle: inferred from gt118 (13.64 GiB logged for gpt-oss-20b)


@lru_cache(maxsize=256)
def _gpu_of(name: str | None) -> GPU | None:
    if not name:
        return None
    from ...gpus import find_gpu

    try:
        return find_gpu(name)
    except GpuplanError:
        return None


def _card(dep: Deployment) -> GPU | None:
    """The catalog card: the named one, or an unnamed one its exact visible total identifies."""
    if dep.gpu_name:
        return _gpu_of(dep.gpu_name)
    from ...gpus import card_of_memory

    return card_of_memory(dep.gpu_memory_bytes)


def _fabric(dep: Deployment) -> str:
    """The deployment's interconnect where it names one, else the catalog's fabric, with PCIe cards that give no
    peer access told apart ("pcie_no_p2p"): GeForce cards, on which vLLM logs "Custom allreduce is disabled because
    your platform lacks GPU P2P capability" (two RTX 4090s, heldout_public ghs-001/002)."""
    if dep.interconnect is not None:
        return dep.interconnect
    if dep.platform == "wsl":
        return "pcie_no_p2p"  # WSL2 gives CUDA no peer-to-peer access between GPUs
    gpu = _card(dep)
    if gpu is None:
        return "nvswitch"
    no_p2p = gpu.fabric == "pcie" and gpu.vendor == "nvidia" and "GeForce" in gpu.name
    return "pcie_no_p2p" if no_p2p else gpu.fabric


_CUSTOM_ALLREDUCE_SIZES = (2, 4, 6, 8, 16)


def _nccl_in_graphs(dep: Deployment, tp: int, fabric: str) -> bool:
    """Whether the tensor-parallel all-reduces vLLM captures in CUDA graphs are NCCL's: its custom all-reduce
    (distributed/device_communicators/custom_all_reduce.py) turns itself off for a TP size it does not support,
    on more than two PCIe-only GPUs, and where its peer-to-peer test fails, as on GeForce cards (`fabric`
    "pcie_no_p2p"; two RTX 4090s at TP=2 show the NCCL graphs, heldout_public ghs-001/002), and where the user
    turns it off (--disable-custom-all-reduce)."""
    card = _card(dep)
    if tp <= 1 or (card is not None and card.vendor != "nvidia"):
        return False
    if dep.disable_custom_all_reduce:
        return True
    if tp not in _CUSTOM_ALLREDUCE_SIZES:
        return True
    return fabric == "pcie_no_p2p" or (fabric == "pcie" and tp > 2)


def _host_free_warning(r: Resolved, budget: int) -> str | None:
    """On a GPU sharing the host's memory vLLM checks the budget against the host's available memory, which the
    OS and desktop keep well below the device total."""
    card = _card(r.dep)
    if card is None or card.host_free_gib is None or not unified_memory(r.profile, r.cc):
        return None
    if budget <= card.host_free_gib * GiB:
        return None
    safe = math.floor(card.host_free_gib * GiB / r.total * 100) / 100
    return (f"{card.name} shares the host's memory: vLLM checks the {budget / GiB:.2f} GiB budget against the host's "
            f"available memory, typically ~{card.host_free_gib:g} GiB, and stops at start-up when it is short "
            f"(\"Free memory on device ... is less than desired GPU memory utilization\"). On a busy host use "
            f"--gpu-memory-utilization {safe:.2f} or lower")


def _resident_threads(dep: Deployment) -> int | None:
    gpu = _card(dep)
    return gpu.resident_threads if gpu else None


def _kv_context(r: Resolved) -> K.KVContext:
    # VllmConfig.max_concurrent_batches: PP needs pp batches in flight, async scheduling (on by default from 0.26,
    # sw_in_flight_factor 2) one more, and with pipeline stages only the V2 model runner overlaps that extra one.
    async_default = r.profile.sw_in_flight_factor == 2
    if r.pp == 1:
        in_flight = r.profile.sw_in_flight_factor
    else:
        in_flight = r.pp + 1 if (async_default and r.runner_v2) else max(r.pp, r.profile.sw_in_flight_factor)
    return K.KVContext(tp=r.tp, kv_bytes=K.kv_element_bytes(r.kv_dtype, r.act_bytes), kv_cache_dtype=r.kv_dtype,
                       model_dtype_bytes=r.act_bytes, block_size=r.dep.block_size, max_model_len=r.max_model_len,
                       mnbt=r.mnbt, in_flight_factor=in_flight, hybrid_manager=r.hybrid_manager,
                       compute_capability=r.cc, mamba_mode=r.mamba_mode, mamba_checkpoint=r.mamba_checkpoint,
                       attention_free=r.attention_free,
                       sparse_mla=r.sparse_mla, head_size_v=r.profile.flag_from("kv_head_size_v"),
                       spec_state_blocks=r.dep.num_speculative_tokens if r.dep.speculative_method else 0)


def _encoder_plan(spec: ModelSpec, r: Resolved) -> E.EncoderPlan | None:
    """V1's encoder pass in the profile run (V0 profiles multimodal inputs its own way, left to the calibration)."""
    if spec.multimodal is None or r.profile.engine == "v0" or r.text_only:
        return None
    if r.dep.skip_mm_profiling:
        return E.SKIPPED
    shape = spec.multimodal.encoder
    if shape is None:
        return None
    # Data-parallel towers: the rank holding the largest item runs it through unsplit weights.
    return E.plan(shape, r.profile, max_model_len=r.max_model_len, mnbt=r.mnbt, max_num_seqs=r.max_num_seqs,
                  tp=1 if r.encoder_dp else r.tp, act_bytes=r.act_bytes, text_hidden=spec.hidden_size,
                  limits=dict(r.dep.limit_mm_per_prompt), max_pixels=dict(r.dep.mm_processor_kwargs).get("max_pixels"))


def _encoder_cost(enc: E.EncoderPlan) -> str:
    return f"{enc.tower_bytes / GiB:.2f} GiB tower pass, {enc.output_bytes / GiB:.2f} GiB of outputs cached"


def _encoder_warning(spec: ModelSpec, r: Resolved, enc: E.EncoderPlan) -> str:
    what = f"{enc.items} max-size {enc.modality}{'s' if enc.items > 1 else ''}"
    hint = []
    if enc.modality == "video":
        images = _encoder_plan(spec, replace(r, dep=r.dep.with_(
            limit_mm_per_prompt=tuple({**dict(r.dep.limit_mm_per_prompt), "video": 0}.items()))))
        if images is not None:
            hint.append(f"--limit-mm-per-prompt '{{\"video\": 0}}' (images only: "
                        f"{_encoder_cost(images)})")
    hint += ["a smaller max_pixels in --mm-processor-kwargs", "--skip-mm-profiling (then large inputs can run out "
             "of memory at serving time)"]
    grows = ("grows with max_model_len (video frames) and the processor's max_pixels" if enc.modality == "video"
             else "is set by the processor's max_pixels")
    return (f"vLLM's profile run pushes {what} through the vision tower ({enc.item_tokens:,} tokens each, "
            f"{enc.patches:,} patches at once): {_encoder_cost(enc)} through the language model's pass, most "
            f"of the activation peak. The item {grows}; lower it with " + ", ".join(hint))


# --mamba-ssm-cache-dtype's values and the release each arrived in (config/cache.py's MambaDType).
MAMBA_SSM_DTYPES = {"auto": "0", "float32": "0.10.1", "float16": "0.13", "bfloat16": "0.22"}


def _check_mamba_ssm_dtype(spec: ModelSpec, dep: Deployment, profile: Profile) -> list[str]:
    """Refuse a --mamba-ssm-cache-dtype the release or the model's state code refuses; say when vLLM ignores it."""
    v = dep.mamba_ssm_cache_dtype
    if v not in MAMBA_SSM_DTYPES:
        raise GpuplanError("mamba_ssm_cache_dtype", f"unknown SSM state dtype {v!r}", accepted=list(MAMBA_SSM_DTYPES))
    if not profile.at_least(MAMBA_SSM_DTYPES[v]):
        raise GpuplanError("mamba_ssm_cache_dtype", f"vLLM {profile.version} has no --mamba-ssm-cache-dtype {v} "
                           f"(it came in {MAMBA_SSM_DTYPES[v]})",
                           accepted=[x for x, since in MAMBA_SSM_DTYPES.items() if profile.at_least(since)])
    if v == "auto":
        return []
    if not _has_ssm_state(spec):
        fixed = sorted({st.dtype for x in spec.layers for st in x.attention.state} - {"conv"})
        return [f"vLLM keeps {spec.architecture}'s recurrent state in {'/'.join(fixed)} whatever "
                f"--mamba-ssm-cache-dtype says"] if fixed and fixed != [v] else []
    if not _ssm_flag_read(spec, profile):
        return [f"vLLM {profile.version} keeps {spec.architecture}'s recurrent state in {spec.mamba_ssm_dtype} "
                f"whatever --mamba-ssm-cache-dtype says (it follows the flag from {spec.mamba_ssm_flag_from})"
                ] if v != spec.mamba_ssm_dtype else []
    if spec.mamba_ssm_flag_values and v not in spec.mamba_ssm_flag_values:
        raise GpuplanError("mamba_ssm_cache_dtype", f"vLLM keeps {spec.architecture}'s recurrent state only in "
                           f"{', '.join(x for x in spec.mamba_ssm_flag_values if x != 'auto')}",
                           accepted=list(spec.mamba_ssm_flag_values))
    return []


def _ssm_flag_read(spec: ModelSpec, profile: Profile) -> bool:
    return not spec.mamba_ssm_flag_from or profile.at_least(spec.mamba_ssm_flag_from)


def _ssm_dtype(spec: ModelSpec, r: Resolved) -> str:
    """The Mamba SSM state's dtype: --mamba-ssm-cache-dtype when given (vLLM's config hooks act only on "auto"),
    else the config's dtype where the release reads it, else the model's vLLM default for the release (the model
    dtype before any hook)."""
    if r.dep.mamba_ssm_cache_dtype != "auto" and _ssm_flag_read(spec, r.profile):
        return r.dep.mamba_ssm_cache_dtype
    dtype = spec.mamba_ssm_dtype
    if spec.mamba_ssm_dtype_from and not r.profile.at_least(spec.mamba_ssm_dtype_from):
        dtype = None
    if dtype is None:
        for since, default in spec.mamba_ssm_dtype_defaults:
            if r.profile.at_least(since):
                dtype = default
    return dtype if dtype in DTYPE_BYTES else r.dtype


def _has_ssm_state(spec: ModelSpec) -> bool:
    return any(st.dtype == "ssm" for x in spec.layers for st in x.attention.state)


def _ssm_bytes(spec: ModelSpec, r: Resolved) -> int:
    return DTYPE_BYTES.get(_ssm_dtype(spec, r), r.act_bytes)


def estimate(spec: ModelSpec, dep: Deployment) -> MemoryReport:
    """The per-GPU memory report of `spec` served by vLLM as `dep` describes."""
    report = _estimate(spec, dep)
    if report.fits or not report.max_model_len_fit or report.max_model_len_fit == report.max_model_len:
        return report
    return replace(report, max_model_len_fit=_settled_fit(spec, dep, report.max_model_len_fit))


def _settled_fit(spec: ModelSpec, dep: Deployment, length: int) -> int | None:
    """The suggested max_model_len, checked by starting it. V0 sizes its profile batch by max_model_len (the whole
    prompt up to 32K tokens, 2,048-token chunks above), so a shorter context can profile a larger batch and hold
    fewer tokens than the first estimate promised: follow the suggestions down until one starts."""
    for _ in range(6):
        again = _estimate(spec, dep.with_(max_model_len=length))
        if again.fits:
            return length
        if not again.max_model_len_fit or again.max_model_len_fit >= length:
            return None
        length = again.max_model_len_fit
    return None


def _estimate(spec: ModelSpec, dep: Deployment) -> MemoryReport:
    stored = spec.checkpoint
    r = resolve(spec, dep)
    p = r.profile
    target = spec
    spec, drafter = D.serving_spec(spec, r.dep, p, r.pp)
    if r.mla_off:
        spec = MC.as_multi_head(spec, p)
    parts = stage_layers(spec, r.pp, r.partition)

    def weights_of(sp: ModelSpec, from_headers: tuple | None) -> list:
        # The Transformers backend keeps transformers' rotary embedding, which computes cos/sin per step.
        w_sp = replace(sp, rope_caches=()) if on_transformers_backend(p, sp.architecture) else sp
        if r.encoder_dp:
            w_sp = replace(w_sp, extra=whole_towers(w_sp.extra))
            from_headers = whole_towers(from_headers) if from_headers is not None else None
        return stage_weights(w_sp, r.sharding, r.quant, r.act_bytes, r.pp,
                             mla_absorbed=p.flag_from("mla_absorbed_weights") and not r.mla_off,
                             mla_matrix_absorption="" if r.mla_off else _matrix_absorption_mode(p),
                             mxfp4_pad=_mxfp4_pad(r), stored=from_headers,
                             mnbt=r.mnbt, cpu_offload_bytes=int(r.dep.cpu_offload_gb * GiB), at_least=p.at_least,
                             towers=r.towers, partition=r.partition)

    weights = weights_of(spec, stored)
    if stored is not None and drafter.method == "mtp":
        # The headers' tensors are placed by the target's decoder layers; the MTP modules are what the config
        # computes them to add on each stage.
        t_spec = MC.as_multi_head(target, p) if r.mla_off else target
        for s, (both, alone) in enumerate(zip(weights_of(spec, None), weights_of(t_spec, None), strict=True)):
            if extra := both.total - alone.total:
                by = dict(weights[s].by_kind)
                by["mtp"] = by.get("mtp", 0) + extra
                weights[s] = replace(weights[s], by_kind=tuple(by.items()), total=weights[s].total + extra)
    # A text-only profile run has no encoder pass, encoder cache or multimodal input embeddings.
    a_spec = replace(spec, multimodal=None) if r.text_only else spec
    ctx = _kv_context(r)
    ssm_dtype = _ssm_dtype(spec, r)
    ssm_bytes = DTYPE_BYTES.get(ssm_dtype, r.act_bytes)
    budget = math.ceil(r.total * r.utilization) if p.flag_from("budget_ceil") else int(r.total * r.utilization)
    fabric = _fabric(r.dep)
    comm = workspace_bytes(spec, tp=r.tp, mnbt=r.mnbt, max_num_seqs=r.max_num_seqs, cc=r.cc, fabric=fabric,
                           dtype=r.dtype)
    n_torch = B.non_torch(p, r.tp, r.pp, fabric) + comm
    nccl_graphs = _nccl_in_graphs(r.dep, r.tp, fabric)
    fi_env = r.dep.env_flag("VLLM_USE_FLASHINFER_SAMPLER")
    fi_sampler = flashinfer_sampler(p, fi_env)
    # 0.8-0.11.0 sample with FlashInfer wherever it is installed: how much the estimate would gain if it is
    fi_unknown, fi_gain = fi_env is None and flashinfer_if_installed(p), 0
    if unified_memory(p, r.cc):
        # free memory comes from the host (psutil), so the start-up's host-side growth is measured as non-torch
        n_torch += int(p.calib["unified_memory_host_gib"] * GiB)
    base = B.baseline(p, r.tp, r.pp, fabric, _resident_threads(r.dep))
    if p.formula == "v1_absolute_peak":
        # 0.8's V1 measured used memory as total - free, so the CUDA context sits inside its non-torch figure and
        # inside the budget; shown there so the components add up to the budget.
        n_torch += base
    rows = r.max_num_seqs if p.engine == "v0" else min(r.max_num_seqs, r.mnbt)
    qm = r.quant.method if r.quant else None
    v0_slots = B.v0_state_slots(p, r.max_num_seqs, r.dep.enforce_eager) if p.engine == "v0" else 0
    mla_rows = _v0_mla_context_rows(spec, r)
    enc = _encoder_plan(spec, r)
    cold_gap = _cold_compile_gap(r)
    cold_models = cold_gap is None
    # A multimodal model that takes multimodal inputs is fed input embeddings, gathered outside the compiled graph
    # (gpu_model_runner.py supports_mm_inputs, both runners), so its embedding table is not among the compiled
    # kernels' arguments that a cold compile copies.
    feeds_embeddings = T.takes_multimodal_inputs(spec, r.dep)
    embedding = input_embedding_bytes(spec, r.sharding, r.quant, r.act_bytes) \
        if cold_models and not feeds_embeddings else 0
    charge_cold = cold_models and r.dep.compile_cache == "cold"
    stages = []
    lora_notes: list[str] = []
    lora_at = LR.placement(p)
    piecewise_only = False  # a drafter on FlashInfer without multi-token decode graphs (B.full_decode_graphs)
    for s, (lo, hi) in enumerate(parts):
        last = s == len(parts) - 1
        lora = LR.stage_bytes(spec, lo, hi, first=s == 0, last=last, sh=r.sharding, dep=r.dep, profile=p,
                              act_bytes=r.act_bytes)
        if lora and lora_at == "weights":
            by = dict(weights[s].by_kind)
            by["lora"] = lora
            weights[s] = replace(weights[s], by_kind=tuple(by.items()), total=weights[s].total + lora)
        elif lora and lora_at == "missed" and s == 0:
            lora_notes.append(
                f"enable_lora: vLLM {p.version}'s V0 memory profile leaves out the LoRA slots ({lora / GiB:.2f} GiB per "
                "GPU): the KV cache is sized as without them, so the GPU holds that much beyond "
                "gpu_memory_utilization (vllm issue 14450); keep utilization that much below 1")
        sparse = _sparse_stage(spec, r, lo, hi)
        if sparse is not None and sparse.load:
            by = dict(weights[s].by_kind)
            by["buffers"] = by.get("buffers", 0) + sparse.load
            weights[s] = replace(weights[s], by_kind=tuple(by.items()), total=weights[s].total + sparse.load)
        stage_act = partial(B.activation, a_spec, lo, hi, last_stage=last, tokens=r.mnbt, sampler_rows=rows,
                            tp=r.tp, moe_tp=r.sharding.moe_tp, ep=r.sharding.ep, act_bytes=r.act_bytes,
                            quant_method=qm, profile=p, cc=r.cc, pipeline=len(parts) > 1, runner_v2=r.runner_v2,
                            max_num_reqs=r.max_num_seqs, v0_state_slots=v0_slots, encoder=enc,
                            v0_mla_context_rows=mla_rows, sparse_transient=sparse.transient if sparse else 0,
                            sparse_workspace=sparse.workspace if sparse else None,
                            rejection_sampler=bool(drafter.method), moe_kernel=r.moe_kernel)
        act = stage_act(flashinfer_sampler=fi_sampler)
        if lora and lora_at == "profile":  # allocated after the loading figure, inside the profile's drop
            act = replace(act, peak=act.peak + lora)
        if last and drafter.hidden_width and p.flag_from("runner_buffers_in_budget"):
            # Up to 0.26 the budget counts the profile's torch peak above what was allocated when it began, so the
            # proposer's buffers (allocated with the model runner, before it) come out of the headroom instead.
            d_buf = drafter.buffer_bytes(r.mnbt, r.act_bytes)
            act = replace(act, peak=act.peak + d_buf, drafter=d_buf)
        if last and fi_unknown:
            fi_gain = act.peak - stage_act(flashinfer_sampler=True).peak
        q_len = 1 + (r.dep.num_speculative_tokens if drafter.method else 0)
        full_decode = B.full_decode_graphs(spec, lo, hi, p, r.cc, r.kv_dtype, q_len)
        if not full_decode and not r.dep.enforce_eager and p.cudagraph_sizes == "v1_0.11":
            piecewise_only = True
        shape = B.GraphShape(decode_query_len=q_len, cc=r.cc, runner_v2=r.runner_v2,
                             interactivity=r.dep.performance_mode == "interactivity",
                             lora_cases=LR.graph_cases(r.dep, p), full_decode=full_decode)
        graphs = B.cudagraph(spec, lo, hi, p, tp=r.tp, max_num_seqs=r.max_num_seqs, mnbt=r.mnbt,
                             enforce_eager=r.dep.enforce_eager, cc=r.cc, kv_dtype=r.kv_dtype,
                             runner_v2=("estimate" if r.cudagraph_in_budget else "actual") if r.runner_v2 else None,
                             max_capture=r.dep.max_cudagraph_capture_size, nccl_in_graphs=nccl_graphs,
                             shape=shape)
        # The pool the capture itself takes ("Graph capturing finished ..., took X GiB"): the same figure, except
        # where vLLM's V2 runner subtracts its estimate, which is about twice what it then captures (both are
        # shares of one formula, budget.cudagraph).
        captured = graphs if not (r.runner_v2 and r.cudagraph_in_budget) else int(
            graphs * B.runner_v2_captured_share(p))
        w = weights[s].total
        graphs_in = graphs if r.cudagraph_in_budget else 0
        cold = _cold_compile_bytes(spec, r, act.peak, embedding if s == 0 else 0,
                                   tied=spec.tie_word_embeddings and len(parts) == 1, last=last) if cold_models else 0
        peak = act.peak + (cold if charge_cold else 0)
        if r.dep.kv_cache_memory_bytes is not None:
            avail = int(r.dep.kv_cache_memory_bytes)
        else:
            avail = budget - (w + peak + n_torch + graphs_in)
        specs = K.stage_specs(spec, lo, hi, ctx, ssm_bytes)
        plan = K.plan_for(spec, lo, hi, ctx, ssm_bytes, p)
        blocks = _blocks(avail, plan)
        stages.append({"stage": s, "layers": [lo, hi], "weights_bytes": w, "activation_bytes": peak, "cold": cold,
                       "activation": act, "cudagraph_bytes": graphs,
                       "capture_sizes": B.capture_sizes(p, r.max_num_seqs, r.mnbt, r.dep.max_cudagraph_capture_size,
                                                        shape),
                       "full_capture_sizes": B.full_capture_sizes(p, r.max_num_seqs, r.mnbt,
                                                                  r.dep.max_cudagraph_capture_size, shape),
                       "cudagraph_captured_bytes": captured, "available_bytes": avail, "plan": plan,
                       "num_blocks": blocks, "weights_by_kind": dict(weights[s].by_kind),
                       "bytes_per_token": sum(x.bytes_per_token for x in specs if not x.is_state)})
    if (n_draft := len(spec.layers) - len(target.layers)) > 1 and D.asserts_one_group(drafter, p):
        lo, hi = parts[-1]
        D.check_one_group(p, D.kv_groups_spanned(
            stages[-1]["plan"], K.stage_specs(spec, lo, hi - n_draft, ctx, ssm_bytes),
            K.stage_specs(spec, hi - n_draft, hi, ctx, ssm_bytes), p))
    lim, kvr = _engine_kv(stages, ctx, r)
    plan = lim["plan"]
    verdict = _verdict(spec, r, stages, lim, plan, kvr, budget, base, n_torch, ctx, rows, qm)
    fits, reason, fit_len = verdict.fits, verdict.reason, verdict.fit_len
    first_start = None
    if cold_models and not charge_cold:
        # The same start on an empty compile cache (the restart's own figures where every stage hides the spike).
        c_stages, c_lim, c_kvr, c_verdict = stages, lim, kvr, verdict
        if any(st["cold"] for st in stages):
            c_stages = [{**st, "activation_bytes": st["activation_bytes"] + st["cold"],
                         "available_bytes": st["available_bytes"] - st["cold"],
                         "num_blocks": _blocks(st["available_bytes"] - st["cold"], st["plan"])} for st in stages]
            c_lim, c_kvr = _engine_kv(c_stages, ctx, r)
            c_verdict = _verdict(spec, r, c_stages, c_lim, c_lim["plan"], c_kvr, budget, base, n_torch, ctx, rows, qm)
        first_start = {"cold_compile_bytes": stages[0]["cold"],
                       "available_kv_cache_bytes": max(0, c_stages[0]["available_bytes"]),
                       "kv_cache_tokens": c_kvr.kv_cache_tokens if c_kvr else 0,
                       "max_concurrency": c_kvr.max_concurrency if c_kvr else 0.0,
                       "num_gpu_blocks": c_kvr.num_gpu_blocks if c_kvr else 0,
                       "fits": c_verdict.fits, "reason": c_verdict.reason, "max_model_len_fit": c_verdict.fit_len,
                       "failure": c_verdict.failure}
    comps = _components(spec, r, stages[0], n_torch, budget, stored is not None,
                        stages[0]["cold"] if charge_cold else 0, comm)
    warnings = list(r.warnings) + list(spec.notes) + list(drafter.notes) + lora_notes
    if p.engine == "v0" and any(layer.attention.kind in ("sliding_window", "chunked_local") for layer in spec.layers):
        warnings.append("V0 engine: windowed layers are allocated full length")
    tower = stages[0]["activation"].encoder
    if enc is not None and max(tower, enc.output_bytes) > stages[0]["activation"].peak // 2:
        warnings.append(_encoder_warning(spec, r, enc))
    if w := _first_start_warning(r, fits, kvr, first_start):
        warnings.append(w)
    if r.dep.compile_cache == "cold" and cold_gap:
        warnings.append(f"compile_cache cold: {cold_gap}")
    if piecewise_only:
        warnings.append(f"speculative decoding on FlashInfer attention: vLLM {p.version}'s FlashInfer takes no "
                        f"multi-token decode batches in CUDA graphs on compute capability {r.cc:.1f}, so vLLM captures "
                        "PIECEWISE graphs only (no FULL decode graphs; decode runs attention outside the graphs)")
    if w := _host_free_warning(r, budget):
        warnings.append(w)
    if fi_gain >= 0.05 * GiB:
        warnings.append(f"vLLM {p.version} samples the profile run with FlashInfer when flashinfer is installed (the "
                        "official vllm-openai image has it; a plain pip install does not), and its peak on the "
                        f"sampling GPU is then {fi_gain / GiB:.2f} GiB lower, left to the KV cache; this estimate "
                        "assumes it is not installed: set VLLM_USE_FLASHINFER_SAMPLER=1 if it is")
    # Per-GPU figures are those of the first worker (the lines vLLM prints); the block count is the minimum
    # over stages, and per_stage lists every stage.
    first = stages[0]
    used = first["weights_bytes"]
    ledger_act = _ledger_activation(first, r)
    graphs_outside = 0 if r.cudagraph_in_budget else first["cudagraph_bytes"]
    return MemoryReport(
        model=spec.name, model_type=spec.model_type, engine="vllm", engine_version=p.version, profile=p.name,
        gpu_name=r.dep.gpu_name, gpu_memory_bytes=r.total, tensor_parallel_size=r.tp, pipeline_parallel_size=r.pp,
        num_gpus=r.tp * r.pp * (r.dep.data_parallel_size or 1), gpu_memory_utilization=r.utilization,
        max_model_len=r.max_model_len, max_num_seqs=r.max_num_seqs, max_num_batched_tokens=r.mnbt, dtype=r.dtype,
        quantization=r.quant_name, weights_bytes=used, activation_peak_bytes=first["activation_bytes"],
        non_torch_bytes=n_torch, cudagraph_bytes=first["cudagraph_bytes"],
        cudagraph_captured_bytes=first["cudagraph_captured_bytes"],
        ledger_activation_bytes=ledger_act,
        ledger_consumed_bytes=_ledger_consumed(first, r, used, n_torch),
        ledger_line=_ledger_line(first, r, used, n_torch, ledger_act),
        cudagraph_in_budget=r.cudagraph_in_budget, budget_bytes=budget, available_kv_cache_bytes=max(0, first["available_bytes"]),
        kv=kvr, components=comps, fits=fits, reason=reason, max_model_len_fit=fit_len, failure=verdict.failure,
        fails_after_kv=verdict.after_kv,
        total_params=spec.total_params, param_counts=spec.param_counts(), warnings=tuple(warnings),
        per_stage=tuple({k: v for k, v in st.items() if k not in ("plan", "activation", "cold")} for st in stages),
        first_start=first_start, compile_cache=r.dep.compile_cache, interconnect=fabric, platform=r.dep.platform,
        mamba_ssm_cache_dtype=ssm_dtype if _has_ssm_state(spec) else None,
        moe_backend=MK.normalized(r.dep.moe_backend),
        speculative_config={"method": drafter.method, "num_speculative_tokens": drafter.tokens,
                            **({"model": drafter.model} if drafter.model else {})}
        if drafter.method else None,
        peak_process_bytes=base + budget + graphs_outside,
        encoder_profile=None if enc is None else {
            "modality": enc.modality, "items": enc.items, "budget_tokens": enc.budget_tokens,
            "item_tokens": enc.item_tokens, "patches": enc.patches, "tower_bytes": enc.tower_bytes,
            "cached_output_bytes": enc.output_bytes},
    )


LONG_LEN_ENV = "VLLM_ALLOW_LONG_MAX_MODEL_LEN"


def _ledger_line(stage: dict, r: Resolved, weights: int, n_torch: int, act: int) -> str | None:
    """The usage part of the line V1 prints after graph capture ("Free memory on device ... Actual usage is ..."),
    where it prints it by default (0.10.1-0.10.x and 0.26+), in its version's wording: weight, peak activation,
    non-torch and CUDA-graph memory apart up to 0.26, consumed memory in their place from 0.27."""
    if not usage_line_logged(r.profile) or r.dep.kv_cache_memory_bytes is not None:
        return None
    g = lambda b: f"{b / GiB:.2f}"  # noqa: E731
    graphs = stage["cudagraph_captured_bytes"]  # 0 under --enforce-eager
    if (consumed := _ledger_consumed(stage, r, weights, n_torch)) is not None:
        return (f"Actual usage is {g(consumed)} GiB for consumed memory (weights + non-torch), {g(act)} GiB for "
                f"peak activation, and {g(graphs)} GiB for CUDAGraph memory.")
    return (f"Actual usage is {g(weights)} GiB for weight, {g(act)} GiB for peak activation, {g(n_torch)} GiB for "
            f"non-torch memory, and {g(graphs)} GiB for CUDAGraph memory.")


def _kept_after_profile(stage: dict, r: Resolved) -> int:
    """What the profile run leaves allocated: the MoE kernels' shared workspace (V1 from 0.11) and the V2 runner's
    penalty state."""
    act: B.Activation = stage["activation"]
    return act.sampler_state + (act.moe_workspace if moe_workspace_persistent(r.profile) else 0)


def _ledger_consumed(stage: dict, r: Resolved, weights: int, n_torch: int) -> int | None:
    """From 0.27, the ledger's "consumed memory (weights + non-torch)": the free-memory drop, which holds the weights,
    non-torch memory and what the profile run keeps allocated. None where the version prints them apart."""
    if not r.profile.flag_from("ledger_activation_with_graphs"):
        return None
    return weights + n_torch + _kept_after_profile(stage, r)


def _ledger_activation(stage: dict, r: Resolved) -> int:
    """The "X GiB for peak activation" of vLLM's start-up ledger. Up to 0.26 it is the profile run's peak. From 0.27
    it is the transient part of that peak (what the profile run keeps allocated is counted as consumed memory
    instead) plus the CUDA-graph estimate vLLM subtracts."""
    if not r.profile.flag_from("ledger_activation_with_graphs"):
        return stage["activation_bytes"]
    graphs_in = stage["cudagraph_bytes"] if r.cudagraph_in_budget else 0
    return stage["activation_bytes"] - _kept_after_profile(stage, r) + graphs_in


def _blocks(available: int, plan: K.KVPlan | DSV4Plan) -> int:
    return max(0, available // plan.bytes_per_block) if plan.bytes_per_block else 0


def _engine_kv(stages: list[dict], ctx: K.KVContext, r: Resolved) -> tuple[dict, KVCacheReport | None]:
    """The stage that limits the engine (all stages share one block table: it gets the smallest block count)
    and the KV report vLLM prints for it."""
    lim = min(stages, key=lambda st: (st["num_blocks"] if st["plan"].bytes_per_block else math.inf,
                                      st["available_bytes"]))
    plan = lim["plan"]
    if not plan.bytes_per_block:
        return lim, None
    return lim, K.kv_report(plan, lim["num_blocks"], ctx, r.profile, r.kv_dtype, lim["bytes_per_token"])


def _first_start_warning(r: Resolved, fits: bool, kvr: KVCacheReport | None, first: dict | None) -> str | None:
    """Say what a first start on an empty compile cache gets, where it is a noticeable share (5% or more) of the
    restart's KV cache, or where it would not start at all."""
    if first is None or kvr is None:
        return None
    lost = first["cold_compile_bytes"] / GiB
    head = (f"a first start on an empty torch.compile cache (a new command, or a container without a kept "
            f"~/.cache/vllm) has ~{lost:.2f} GiB per GPU of compiler scratch counted as activation")
    if fits and not first["fits"]:
        return f"{head}, and would not start: {first['reason']}; a restart with the cache filled starts"
    if first["kv_cache_tokens"] < 0.95 * kvr.kv_cache_tokens:
        return (f"{head}: about {first['kv_cache_tokens']:,} tokens of KV cache ({first['max_concurrency']:.2f}x) "
                f"instead of {kvr.kv_cache_tokens:,}; restarts that find the cache filled get the figures above")
    return None


def long_len_refusal(spec: ModelSpec, dep: Deployment) -> str | None:
    """vLLM's config check: a max_model_len above the model's derived length stops start-up unless the env allows it."""
    lim = spec.max_len_limit
    L = dep.max_model_len
    if not L or lim is None or L <= lim.derived or dep.env_flag(LONG_LEN_ENV):
        return None
    if lim.model_max_length is not None and L <= lim.model_max_length:
        return None
    return (f"User-specified max_model_len ({L}) is greater than the derived max_model_len "
            f"({lim.key}={lim.derived} in the model's config.json): vLLM refuses to start; lower max_model_len "
            f"to {lim.derived} or set {LONG_LEN_ENV}=1")


@dataclass(frozen=True)
class Verdict:
    fits: bool
    reason: str | None
    fit_len: int | None  # the longest max_model_len that fits (None when no length does)
    failure: str | None = None  # one of report.FAILURE_KINDS
    # it runs out once the KV cache's size is settled (V0 allocating it, graph capture, the sampler warm-up): no
    # shorter context helps, a lower gpu_memory_utilization does
    after_kv: bool = False


def scheduler_refusal(spec: ModelSpec, r: Resolved) -> tuple[str, int | None] | None:
    """SchedulerConfig's argument checks, which stop start-up before any memory is touched: why, and the longest
    max_model_len they allow (None: no length helps)."""
    if r.mnbt < r.max_num_seqs:
        return (f"max_num_batched_tokens ({r.mnbt}) must be greater than or equal to max_num_seqs "
                f"({r.max_num_seqs}): vLLM refuses to start; raise max_num_batched_tokens or lower max_num_seqs",
                None)
    # Without chunked prefill a prompt is prefilled in one step.
    if r.mnbt < r.max_model_len and not chunked_prefill(spec, r.dep, r.profile, r.max_model_len):
        return (f"max_num_batched_tokens ({r.mnbt}) is smaller than max_model_len ({r.max_model_len}) without "
                "chunked prefill: vLLM refuses to start; raise max_num_batched_tokens or lower max_model_len",
                r.mnbt)
    return None


def _verdict(spec, r: Resolved, *args) -> Verdict:
    """Does vLLM start? The first failing check, phrased as vLLM would, and the longest length that fits. The
    model's config is checked before the scheduler's, and both before any memory is touched."""
    v = _memory_verdict(spec, r, *args)
    if (too_long := long_len_refusal(spec, r.dep)) is not None:
        derived = spec.max_len_limit.derived
        return Verdict(False, too_long, min(v.fit_len, derived) if v.fit_len else (derived if v.fits else None),
                       "max_model_len_refused", v.after_kv)
    if (refused := scheduler_refusal(spec, r)) is not None:
        why, longest = refused
        fit_len = None
        if longest is not None:
            fit_len = longest if v.fits else (min(v.fit_len, longest) if v.fit_len else None)
        return Verdict(False, why, fit_len, "refused", v.after_kv)
    return v


def _outside_limits(lim: ServingLimits, r: Resolved) -> str | None:
    """Why the model's own start-up assertions refuse this deployment (None: they pass)."""
    if lim.model_dtypes and r.dtype not in lim.model_dtypes:
        return f"{lim.who} asserts a {' or '.join(lim.model_dtypes)} model; this deployment runs {r.dtype}"
    if lim.kv_dtypes and r.kv_dtype not in lim.kv_dtypes:
        return (f"{lim.who} asserts a {' or '.join(x for x in lim.kv_dtypes if x != 'auto')} KV cache; drop "
                f"--kv-cache-dtype {r.kv_dtype}")
    if lim.capabilities and not any(lo <= r.cc < hi for lo, hi in lim.capabilities):
        where = ", ".join(f"{lo:.1f}" if hi - lo < 0.1 else f"{int(lo)}.x" for lo, hi in lim.capabilities)
        return f"{lim.who} runs on compute capability {where} only; this GPU is {r.cc:.1f}"
    return None


def _memory_verdict(spec, r: Resolved, stages, lim, plan, kvr, budget, base, n_torch, ctx, rows, qm) -> Verdict:
    p = r.profile
    T = r.total
    gib = lambda b: f"{b / GiB:.2f} GiB"  # noqa: E731
    if "dsv4" in spec.attention_kinds:
        if not r.kv_dtype.startswith("fp8"):
            return Verdict(False, "vLLM's DeepSeek-V4 attention supports only an fp8 KV cache (it asserts at "
                           "start-up): add --kv-cache-dtype fp8", None, "refused")
        if not (9.0 <= r.cc < 11.0 or (12.0 <= r.cc < 13.0 and p.flag_from("dsv4_sm12_fp8_ds_mla"))):
            return Verdict(False, f"vLLM {p.version}'s DeepSeek-V4 attention runs on FlashMLA's sparse kernels, built "
                           "for compute capability 9.x and 10.x (Hopper, datacenter Blackwell)"
                           + (", and from 0.24 on 12.x through FlashInfer's" if r.cc < 12.0 else "")
                           + f"; this GPU is {r.cc}", None, "refused")
    if spec.serving_limits is not None and (why := _outside_limits(spec.serving_limits, r)):
        return Verdict(False, why, None, "refused")
    if r.quant is not None and r.quant.modules is not None and (
            why := modelopt_mixed_refusal(p, r.quant.modules.uses)):
        return Verdict(False, why, None, "refused")
    need = quant_min_capability(p, r.quant.method) if r.quant else None
    if need is not None and r.cc < need:
        return Verdict(False, f"vLLM {p.version} refuses {r.quant.method} weights on this GPU (compute capability "
                       f"{r.cc:g}): its {r.quant.method} kernels need {need:g} or newer", None, "refused")
    if T - base < budget and r.dep.kv_cache_memory_bytes is None and p.engine == "v1" and p.at_least("0.9"):
        # checked when the worker starts (gpu_worker.py init_device), before the weights load
        return Verdict(False, f"Free memory on device ({gib(T - base)}/{gib(T)}) on startup is less than "
                       f"desired GPU memory utilization ({r.utilization}, {gib(budget)}): lower "
                       "gpu_memory_utilization", None, "budget_over_free")
    heaviest = max(stages, key=lambda st: st["weights_bytes"])
    if heaviest["weights_bytes"] > T - base:
        return Verdict(False, f"weights alone need {gib(heaviest['weights_bytes'])} per GPU, more than the "
                       f"{gib(T - base)} a {gib(T)} GPU has free: CUDA out of memory while loading", None,
                       "weights_oom")
    if heaviest["weights_bytes"] > budget:
        return Verdict(False, f"weights alone need {gib(heaviest['weights_bytes'])} per GPU, more than the "
                       f"{gib(budget)} budget (gpu_memory_utilization {r.utilization} x {gib(T)})", None,
                       "weights_over_budget")
    # 0.8's V1 measured all used memory (total - free), so its budget already holds the context and buffers:
    # the process never grows past the budget before CUDA graphs.
    absolute = p.formula == "v1_absolute_peak"
    # Earlier engines run out only when they allocate the KV cache, after checking its size (V0's
    # raise_if_cache_size_invalid, 0.8's check_enough_kv_cache_memory): a KV cache too small for one request is
    # what they report first. Like graph capture after it, the allocation does not depend on max_model_len, and a
    # lower utilization is the remedy. The profile run's activations are freed by then, but the one public V0
    # start-up near the edge (dev gt019, 0.98 on RTX 4090s) ran out where subtracting them says it fits by
    # 0.07 GiB, so the budget is compared whole.
    alloc = None
    if T - base < budget and r.dep.kv_cache_memory_bytes is None and not absolute:
        alloc = ("budget_over_free", f"CUDA out of memory allocating the KV cache: the budget ({r.utilization} x "
                 f"{gib(T)} = {gib(budget)}) plus the CUDA context and communication buffers (~{gib(base)}) exceed "
                 "the GPU (lower gpu_memory_utilization)")
    if lim["available_bytes"] <= 0 or not kvr:
        if not plan.bytes_per_block:
            return Verdict(True, None, None)
        worst = lim
        return Verdict(False, f"no memory left for the KV cache: weights {gib(worst['weights_bytes'])} + activation "
                       f"peak {gib(worst['activation_bytes'])} + non-torch {gib(n_torch)} exceed the "
                       f"{gib(budget)} budget", None, "no_kv_memory")
    null = p.flag_from("null_block_in_fit")
    avail = min(st["available_bytes"] for st in stages if st["plan"].bytes_per_block)
    upper = max(r.max_model_len, spec.max_model_len_limit)
    # V0's allocation, graph capture and the sampler warm-up do not depend on max_model_len: when one runs out,
    # no shorter context starts the engine, so no fitting length is offered.
    after = alloc or _after_kv_failure(spec, r, lim, base, budget, rows, qm)
    longest = K.max_fitting_len(plan, avail, ctx, p, upper, null)
    fit_len = None if after else longest
    if p.engine == "v0":
        cap = kvr.kv_cache_tokens
        if r.max_model_len > cap:
            return Verdict(False, f"The model's max seq len ({r.max_model_len}) is larger than the maximum number "
                           f"of tokens that can be stored in KV cache ({cap})"
                           + (f". A shorter context would not start either: {after[1]}" if after else ""),
                           None if after else min(cap, upper), "kv_too_small", after is not None)
    else:
        needed = K.needed_bytes(plan, r.max_model_len, ctx, p) + (plan.bytes_per_block if null else 0)
        if needed > avail:
            return Verdict(False, f"To serve at least one request with the model's max seq len ({r.max_model_len}), "
                           f"{gib(needed)} KV cache is needed, which is larger than the available KV cache memory "
                           f"({gib(avail)}); the estimated maximum model length is {longest}"
                           + (f". A shorter context would not start either: {after[1]}" if after else ""), fit_len,
                           "kv_too_small", after is not None)
    if after:
        return Verdict(False, after[1], None, after[0], True)
    return Verdict(True, None, max(fit_len, r.max_model_len) if fit_len else None)


def _after_kv_failure(spec: ModelSpec, r: Resolved, lim: dict, base: int, budget: int, rows: int,
                      qm: str | None) -> tuple[str, str] | None:
    """Why the V1 engine runs out of memory after the KV cache fills the budget (CUDA graphs captured outside it,
    then the sampler warm-up), as (failure kind, reason), or None. vLLM's remedy is a lower gpu_memory_utilization,
    which leaves more memory outside the budget."""
    p = r.profile
    if p.engine != "v1" or r.dep.kv_cache_memory_bytes is not None:
        return None
    gib = lambda b: f"{b / GiB:.2f} GiB"  # noqa: E731
    # 0.8's budget already holds the context, but capture itself grows memory outside torch there (a 0.8.5
    # TP=4 start on 4 x A10 held 6.2 GiB outside PyTorch when it ran out, QwenLM/Qwen3#1387): keep the margin.
    free = r.total - base - (budget - lim["activation_bytes"])
    graphs = 0 if r.cudagraph_in_budget else lim["cudagraph_bytes"]
    if graphs and free < graphs:
        return "cudagraph_oom", (f"CUDA out of memory capturing CUDA graphs: ~{gib(graphs)} needed, ~{gib(free)} "
                                 "left outside the budget (lower gpu_memory_utilization or use --enforce-eager)")
    if p.at_least("0.11"):
        warm = B.sampler_warmup(spec, p, rows, r.act_bytes, qm)
        if free - graphs < warm:
            return "sampler_warmup_oom", (f"CUDA out of memory warming up the sampler with {rows} dummy requests: "
                                          f"~{gib(warm)} needed, ~{gib(free - graphs)} left (lower max_num_seqs or "
                                          "gpu_memory_utilization)")
    return None


def _components(spec: ModelSpec, r: Resolved, stage: dict, n_torch: int, budget: int, stored: bool,
                cold: int = 0, comm: int = 0) -> tuple:
    p = r.profile
    by = stage["weights_by_kind"]
    w_note = "from the checkpoint's tensor headers" if stored else "computed from the config"
    if r.quant and r.quant.source == "assumed":
        w_note = f"computed for an assumed {r.quant.method} {r.quant.bits}-bit checkpoint"
    if r.quant and r.quant.modules is not None:
        count = Counter(r.quant.modules.algo_names().values())
        w_note += ("; ModelOpt mixed precision, " + ", ".join(f"{a} x{n}" for a, n in sorted(count.items()))
                   + " modules, the rest in " + r.dtype)
    exact_w = not spec.generic and spec.model_type not in ("gemma4",)
    act: B.Activation = stage["activation"]
    comps = [
        Component("weights", stage["weights_bytes"], exact_w,
                  w_note + " (" + ", ".join(f"{k} {v / GiB:.2f}" for k, v in by.items() if abs(v) >= 10 * MiB) + ")"),
        Component("activation_peak", stage["activation_bytes"], False,
                  f"profile run, {r.mnbt} tokens: max(forward {act.forward / GiB:.2f}"
                  + (f" + MoE kernel's transients {act.moe_transient / GiB:.2f} (CUTLASS NVFP4, computed)"
                     if act.moe_transient else "")
                  + f", sampler {act.sampler / GiB:.2f}) + "
                  f"{'shared workspace (MoE, sparse indexer)' if r.sparse_mla else 'MoE workspace'}"
                  f" {act.moe_workspace / GiB:.2f}"
                  + (f" + V2 runner sampler state {act.sampler_state / GiB:.2f}" if r.runner_v2 else "")
                  + (f" + V0 Mamba state cache {act.recurrent_cache / GiB:.2f}" if act.recurrent_cache else "")
                  + (f" + speculative drafter's buffers {act.drafter / GiB:.2f} (computed)" if act.drafter else "")
                  + (f"; the vision tower's pass before it {act.encoder / GiB:.2f} (from the model code)"
                     if act.encoder else "")
                  + (f" + cold torch.compile scratch {cold / GiB:.2f} (first start on an empty compile cache)"
                     if cold else "")
                  + "; calibrated"),
        Component("non_torch", n_torch, False, "NCCL, cuBLAS, allocator overhead; calibrated"
                  + (f"; with the model's multicast all-reduce workspace, {comm / MiB:.0f} MiB (computed)"
                     if comm else "")
                  + (f"; with ~{p.calib['unified_memory_host_gib']:g} GiB of the host's own start-up memory, which "
                     "vLLM counts on a GPU sharing the host's memory (fitted on GB10 logs from three hosts, 1.4-6.2 GiB; host-dependent)"
                     if unified_memory(p, r.cc) else "")
                  + ("; with the CUDA context and resident buffers, which 0.8's V1 engine counts here (it takes used "
                     "memory as total minus free)" if p.formula == "v1_absolute_peak" else "")),
        Component("cudagraph", stage["cudagraph_bytes"], False,
                  "CUDA graph pool"
                  + (f" for {stage['capture_sizes']} batch sizes" if stage["cudagraph_bytes"] else "")
                  + (f" and {stage['full_capture_sizes']} FULL decode graphs"
                     if stage["cudagraph_bytes"] and stage["full_capture_sizes"] else "")
                  + (", each with and without LoRA" if LR.graph_cases(r.dep, p) > 1 and stage["cudagraph_bytes"]
                     else "") + "; "
                  + ("inside the budget" if r.cudagraph_in_budget else
                     "outside the budget (captured after the KV cache)")
                  + (f"; the V2 model runner's estimate, which vLLM subtracts (the pool it then captures is about "
                     f"{stage['cudagraph_captured_bytes'] / GiB:.2f} GiB)"
                     if r.runner_v2 and r.cudagraph_in_budget else "")
                  + ("; vLLM's V2 model runner, which does not estimate graphs before sizing the KV cache: "
                     "the pool it captures"
                     if r.runner_v2 and not r.cudagraph_in_budget and p.cudagraph_subtracted else "")),
        Component("kv_cache", max(0, stage["available_bytes"]), False,
                  "what the budget leaves; block layout inside it is exact"),
    ]
    return tuple(comps)


# ----------------------------------------------------------------------------- helpers for the faces


def request_kv_bytes(spec: ModelSpec, dep: Deployment, seq_len: int) -> int:
    """Per-GPU KV bytes one request of seq_len tokens holds (windows respected, whole blocks)."""
    r = resolve(spec, replace(dep, max_model_len=max(seq_len, 1)))
    spec, _ = D.serving_spec(spec, r.dep, r.profile, r.pp)
    if r.mla_off:
        spec = MC.as_multi_head(spec, r.profile)
    ctx = _kv_context(r)
    ssm = _ssm_bytes(spec, r)
    best = 0
    for lo, hi in stage_layers(spec, r.pp, r.partition):
        plan = K.plan_for(spec, lo, hi, ctx, ssm, r.profile)
        best = max(best, K.needed_bytes(plan, seq_len, ctx, r.profile))
    return best


def min_gpu_memory(spec: ModelSpec, dep: Deployment, upper: int = 4096 * GiB) -> int | None:
    """The smallest CUDA-visible memory per GPU (to 1 MiB) with which this deployment starts; None if even
    `upper` does not suffice (or it fails for a reason memory does not change)."""
    def starts(total: int) -> bool:
        return estimate(spec, replace(dep, gpu_memory_bytes=total)).fits

    if not starts(upper):
        return None
    lo, hi = 0, upper // MiB  # in MiB: lo fails (or is 0), hi starts
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if starts(mid * MiB):
            hi = mid
        else:
            lo = mid
    return hi * MiB


def curve(spec: ModelSpec, dep: Deployment, lengths: list[int], concurrency: int) -> list[dict]:
    """Per-GPU memory needed for `concurrency` requests of each length, and vLLM's max concurrency."""
    out = []
    for L in lengths:
        rep = estimate(spec, replace(dep, max_model_len=L))
        kv = request_kv_bytes(spec, dep, L) * concurrency
        fixed = rep.weights_bytes + rep.activation_peak_bytes + rep.non_torch_bytes + (
            rep.cudagraph_bytes if rep.cudagraph_in_budget else 0)
        out.append({"max_model_len": L, "per_gpu_required_bytes": fixed + kv, "kv_bytes": kv,
                    "per_gpu_required_gib": round((fixed + kv) / GiB, 2), "budget_gib": round(rep.budget_bytes / GiB, 2),
                    "max_concurrency": rep.max_concurrency, "fits": rep.fits and rep.max_concurrency >= concurrency})
    return out


__all__ = ["estimate", "resolve", "request_kv_bytes", "curve", "min_gpu_memory", "cdiv"]
