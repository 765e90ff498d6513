"""What the REST routes (and the CLI) do, without any web framework: resolve, call the core, reshape.

No memory arithmetic lives here. Every number comes from `gpuplan.estimate`, `request_kv_bytes` or
`curve`; this module only picks which engine figure answers which seed-002 field and sums the
components the seed defines as sums (total = weights + activation + KV + overhead).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..deployment import Deployment, speculative_fields
from ..errors import GpuplanError, ModelNotFound
from ..model.spec import ModelSpec
from ..report import MemoryReport
from ..units import GiB
from .schemas import DeploymentFields, SeedEstimateRequest, V1CurveRequest, V1PlanRequest

# Seed 002's aliases, mapped onto what vLLM would actually run. Q4: a 4-bit AWQ checkpoint (group 128,
# the common AutoAWQ setting); Q8: vLLM's fp8 weights (online `--quantization fp8`, 1 byte/param), the
# 8-bit path vLLM serves without a special checkpoint.
QUANT_ALIAS_TO_METHOD = {"Q4": "awq", "Q8": "fp8"}
QUANT_NOTES = {
    "Q4": "Q4 = 4-bit weights, AWQ-style (group size 128, fp16 scales and zeros); vLLM --quantization awq",
    "Q8": "Q8 = 8-bit weights (fp8, per-tensor scales); vLLM --quantization fp8",
}
# dtype int8 / int4 in the seed name weight formats; they mean the same as Q8 / Q4.
DTYPE_TO_ALIAS = {"int8": "Q8", "int4": "Q4"}
FLOAT_DTYPES = ("float32", "float16", "bfloat16")

# What a model reference may look like when it comes over HTTP: a catalog name or an HF id with an
# optional @revision. Anything path- or URL-like is refused so that a caller can neither make the
# server read its own files nor fetch an address of the caller's choosing.
_HF_REF = re.compile(r"[A-Za-z0-9][\w.+\- ()]*(/[\w.+\-()]+)?(@[\w.\-/]+)?")
_ARCH_TO_HF = {
    "num_layers": "num_hidden_layers",
    "hidden_size": "hidden_size",
    "num_heads": "num_attention_heads",
    "head_dim": "head_dim",
    "intermediate_size": "intermediate_size",
    "num_kv_heads": "num_key_value_heads",
}


def network_allowed_by_env() -> bool:
    """The server and CLI honour huggingface_hub's own offline switch (and ours)."""
    for var in ("HF_HUB_OFFLINE", "GPUPLAN_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    return True


def is_union_tag(part: str) -> bool:
    """pydantic names union branches in error locations ("str", "constrained-str", "dict[str,any]")."""
    return "[" in part or part.startswith(("constrained-", "function-")) or part in (
        "str", "int", "float", "bool", "dict", "list", "none", "json-or-python")


def _allowed_local(ref: str) -> str | None:
    """A path inside a directory the operator allowed with GPUPLAN_MODEL_DIRS (os.pathsep-separated), else None.

    Paths are resolved (symlinks, ..) before the check, so nothing outside those roots is ever read."""
    roots = [r for r in os.environ.get("GPUPLAN_MODEL_DIRS", "").split(os.pathsep) if r.strip()]
    if not roots or "://" in ref:
        return None
    try:
        real = os.path.realpath(ref)
    except (OSError, ValueError):
        return None
    for root in roots:
        base = os.path.realpath(root)
        if (real == base or real.startswith(base.rstrip(os.sep) + os.sep)) and os.path.exists(real):
            return real
    return None


def check_remote_ref(ref: str, field_name: str) -> str:
    ref = ref.strip()
    local = _allowed_local(ref)
    if local is not None:
        return local
    bad = (
        "://" in ref
        or ref.startswith(("/", ".", "~", "\\"))
        or ".." in ref
        or "\\" in ref
        or ref.lower().endswith((".json", ".gguf", ".safetensors"))
        or not _HF_REF.fullmatch(ref)
    )
    if bad or os.path.exists(ref):
        raise GpuplanError(
            field_name,
            f"{ref[:80]!r} is not a catalog name or a Hugging Face id (org/name[@revision]); "
            "URLs are never fetched, and file paths are read only inside the directories the operator lists "
            "in GPUPLAN_MODEL_DIRS",
        )
    return ref


def resolves_offline(model: Any) -> bool:
    """True when the model reference needs no I/O: a config object, or a catalog name."""
    if isinstance(model, dict):
        return True
    if not isinstance(model, str):
        return False
    from ..catalog import find_model

    return find_model(model.strip()) is not None


@lru_cache(maxsize=512)
def _load_ref(ref: str, allow_network: bool) -> ModelSpec:
    # ModelSpec is frozen, so one resolution can serve every request for the same model.
    from .. import load_model

    return load_model(ref, allow_network=allow_network)


@lru_cache(maxsize=256)
def _load_config_json(config_json: str) -> ModelSpec:
    from .. import load_model

    return load_model(json.loads(config_json), allow_network=False)


def load_config_dict(config: dict[str, Any], field_name: str) -> ModelSpec:
    """A spec from a caller's config.json object. Malformed configs are the caller's error, not ours."""
    try:
        return _load_config_json(json.dumps(config, sort_keys=True))
    except GpuplanError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as exc:
        raise GpuplanError(field_name, f"the config object could not be interpreted ({type(exc).__name__}: {exc})") from exc


def load_model_ref(ref: str | dict[str, Any], field_name: str, allow_network: bool) -> ModelSpec:
    if isinstance(ref, dict):
        return load_config_dict(ref, field_name)
    try:
        return _load_ref(check_remote_ref(ref, field_name), allow_network)
    except GpuplanError as exc:
        raise _renamed(exc, field_name) from exc


def _renamed(exc: GpuplanError, field_name: str) -> GpuplanError:
    """The core calls the model reference "model"; the seed route calls it "model_name"."""
    if exc.field in ("model", "ref", "model_ref") and exc.field != field_name:
        return type(exc)(field_name, exc.message, exc.accepted)
    return exc


# ------------------------------------------------------------------------------------------ GPUs


@lru_cache(maxsize=1)
def largest_gpu_name() -> str:
    """The largest NVIDIA GPU in the catalog: the default when none is given (vLLM's main platform)."""
    from ..gpus import list_gpus

    gpus = list_gpus()
    nvidia = [g for g in gpus if str(g.vendor).lower() == "nvidia"] or list(gpus)
    return max(nvidia, key=lambda g: g.memory_bytes).name


def deployment_on_gpu(dep: Deployment, gpu: str | None, gpu_memory_gib: float | None) -> Deployment:
    """Attach the GPU to a deployment exactly as `gpuplan.estimate` does (default: gpus.DEFAULT_GPU)."""
    from ..api_python import with_gpu

    return with_gpu(dep, gpu, gpu_memory_gib)[0]


def resolved_deployment(dep: Deployment, report: MemoryReport) -> Deployment:
    """The deployment with the values the engine settled on (defaults filled), for `request_kv_bytes`."""
    changes: dict[str, Any] = {
        "tensor_parallel_size": report.tensor_parallel_size,
        "pipeline_parallel_size": report.pipeline_parallel_size,
        "gpu_memory_utilization": report.gpu_memory_utilization,
        "max_model_len": report.max_model_len,
        "max_num_seqs": report.max_num_seqs,
        "max_num_batched_tokens": report.max_num_batched_tokens,
        "dtype": report.dtype,
        "quantization": report.quantization,
    }
    if report.engine_version:
        changes["vllm_version"] = report.engine_version
    if report.kv is not None:
        changes.update(
            kv_cache_dtype=report.kv.kv_cache_dtype,
            block_size=report.kv.block_size,
            disable_hybrid_kv_cache_manager=not report.kv.hybrid_manager,
        )
    return dep.with_(**changes)


# ----------------------------------------------------------------------------------- seed route


@dataclass
class SeedModel:
    spec: ModelSpec
    source: str  # catalog | hub | estimated, "+architecture" when the request changed dims
    exact: bool
    notes: list[str] = field(default_factory=list)


def _spec_dims(spec: ModelSpec) -> dict[str, int]:
    return {
        "num_layers": spec.num_layers,
        "hidden_size": spec.hidden_size,
        "num_heads": spec.num_attention_heads,
        "head_dim": spec.head_dim,
        "intermediate_size": spec.intermediate_size,
        "num_kv_heads": spec.num_kv_heads,
    }


def _with_dims(config: dict[str, Any], dims: dict[str, int]) -> dict[str, Any]:
    """Overwrite HF config keys with the request's architecture (text_config for multimodal configs)."""
    config = copy.deepcopy(config)
    target = config
    if isinstance(config.get("text_config"), dict) and "hidden_size" not in config:
        target = config["text_config"]
    for key, value in dims.items():
        target[_ARCH_TO_HF[key]] = value
    # New query heads with the old KV-head count may not group (heads % kv_heads != 0); the seed's
    # method knows no GQA, so fall back to one KV head per query head (MHA) rather than a broken config.
    if "num_heads" in dims and "num_kv_heads" not in dims:
        kv_heads = target.get("num_key_value_heads")
        if not isinstance(kv_heads, int) or kv_heads <= 0 or dims["num_heads"] % kv_heads:
            target["num_key_value_heads"] = dims["num_heads"]
    # A changed width or head count makes a stored head_dim stale; let the adapter derive it instead.
    if "head_dim" not in dims and ({"hidden_size", "num_heads"} & dims.keys()):
        target.pop("head_dim", None)
    return config


def _base_config(name: str, allow_network: bool) -> tuple[dict[str, Any], str] | None:
    from ..catalog import find_model

    entry = find_model(name)
    if entry is not None:
        return entry.hf_config, "catalog"
    if not allow_network:
        return None
    from ..hub import load_reference

    return load_reference(name, allow_network=True).config, "hub"


def resolve_seed_model(req: SeedEstimateRequest, allow_network: bool) -> SeedModel:
    name = check_remote_ref(req.model_name, "model_name")
    from ..arch_estimate import config_from_params, params_from_name
    from ..catalog import find_model

    dims = req.architecture.given() if req.architecture else {}
    if req.num_kv_heads is not None:
        if dims.get("num_kv_heads", req.num_kv_heads) != req.num_kv_heads:
            raise GpuplanError("num_kv_heads", "differs from architecture.num_kv_heads")
        dims["num_kv_heads"] = req.num_kv_heads

    known: ModelSpec | None = None
    lookup_error: GpuplanError | None = None
    try:
        known = _load_ref(name, allow_network)
    except GpuplanError as exc:  # not found, gated, unsupported config: estimation may still answer
        lookup_error = exc

    if known is not None:
        entry = find_model(name)
        source = "catalog" if entry is not None else "hub"
        exact = entry.exact if entry is not None else True
        notes: list[str] = []
        if entry is not None and not entry.exact:
            notes.append(f"catalog entry is estimated: {entry.params_source}")
        if req.params_billions is not None:
            notes.append("params_billions ignored: the model's architecture is known")
        changed = {k: v for k, v in dims.items() if _spec_dims(known)[k] != v}
        if not changed:
            return SeedModel(known, source, exact, notes)
        base = _base_config(name, allow_network)
        if base is None:  # cannot happen for catalog hits; keeps offline hub hits honest
            raise GpuplanError("architecture", "cannot apply architecture overrides to this model offline")
        config, source = base
        spec = load_config_dict({**_with_dims(config, changed), "_name_or_path": name}, "architecture")
        notes.append("architecture overridden by the request: " + ", ".join(f"{k}={v}" for k, v in changed.items()))
        return SeedModel(spec, source + "+architecture", False, notes)

    params = req.params_billions * 1e9 if req.params_billions is not None else params_from_name(name)
    if params is None:
        if lookup_error is not None and not isinstance(lookup_error, ModelNotFound):
            raise _renamed(lookup_error, "model_name")
        where = "the catalog or the Hugging Face Hub" if allow_network else "the catalog (Hub lookups are off)"
        why = f" ({lookup_error.message})" if lookup_error is not None else ""
        raise GpuplanError(
            "model_name",
            f"unknown model {name!r}: not found in {where}{why}; give params_billions or a name with the size "
            "(e.g. 'my-model-7b')",
        )
    config = config_from_params(params, name)
    if dims:
        config = _with_dims(config, dims)
    spec = load_config_dict({**config, "_name_or_path": name}, "architecture")
    notes = [f"architecture estimated from {params / 1e9:.4g}B parameters (seed 002 method)"]
    if dims:
        notes.append("dimensions from the request: " + ", ".join(f"{k}={v}" for k, v in dims.items()))
    if lookup_error is not None and not isinstance(lookup_error, ModelNotFound):
        notes.append(f"exact lookup failed: {lookup_error}")
    return SeedModel(spec, "estimated", False, notes)


def seed_options(req: SeedEstimateRequest) -> tuple[dict[str, Any], list[str]]:
    """Seed fields -> Deployment fields with vLLM's names, and the notes that explain the mapping."""
    notes: list[str] = []
    quant_in = req.quantization
    alias = quant_in if quant_in in QUANT_ALIAS_TO_METHOD else None
    method = None if quant_in in (None, "none") else QUANT_ALIAS_TO_METHOD.get(quant_in, quant_in)
    dtype = req.dtype
    if dtype in DTYPE_TO_ALIAS:
        implied = DTYPE_TO_ALIAS[dtype]
        if method is not None and method != QUANT_ALIAS_TO_METHOD[implied]:
            raise GpuplanError(
                "quantization",
                f"dtype {dtype} already means {implied} weights ({QUANT_ALIAS_TO_METHOD[implied]}); "
                f"it conflicts with quantization {quant_in}",
                accepted=[implied, QUANT_ALIAS_TO_METHOD[implied]],
            )
        alias, method = implied, QUANT_ALIAS_TO_METHOD[implied]
        notes.append(f"dtype {dtype} is a weight format: served as {implied}, activations in the checkpoint dtype")
        dtype = "auto"
    if alias:
        notes.append(QUANT_NOTES[alias])

    kv_in = req.kv_cache_dtype
    if kv_in is None:
        # "same as dtype": for float dtypes that is vLLM's kv_cache_dtype=auto; int8/int4 weights keep
        # the KV cache in the activation dtype, as vLLM does for weight-only quantized checkpoints.
        kv = "auto"
    elif kv_in in FLOAT_DTYPES:
        if kv_in == req.dtype or (kv_in == "float16" and dtype == "auto" and req.dtype in DTYPE_TO_ALIAS):
            kv = "auto"
        elif kv_in == "float32":
            raise GpuplanError("kv_cache_dtype", "a float32 KV cache needs dtype float32 (vLLM stores KV in the "
                               "model dtype or a smaller one)", accepted=["float16", "bfloat16", "fp8", "auto"])
        else:
            kv = kv_in
    elif kv_in == "int8":
        kv = "fp8"
        notes.append("kv_cache_dtype int8 served as fp8 (1 byte per element; vLLM has no int8 KV cache)")
    else:
        kv = kv_in

    options: dict[str, Any] = {
        "dtype": dtype,
        "kv_cache_dtype": kv,
        "quantization": method,
        "max_model_len": req.max_model_len or req.max_seq_len,
        "max_num_seqs": req.max_batch_size,
        "gpu_memory_utilization": req.gpu_memory_utilization,
        "tensor_parallel_size": req.tensor_parallel_size,
    }
    if req.vllm_version:
        options["vllm_version"] = req.vllm_version
    return options, notes


def _gib(n_bytes: float) -> float:
    return round(n_bytes / GiB, 2)


def _exact(report: MemoryReport, *keywords: str) -> bool | None:
    hits = [c for c in report.components if any(k in c.name.lower() for k in keywords)]
    return all(c.exact for c in hits) if hits else None


def seed_estimate(req: SeedEstimateRequest, allow_network: bool) -> dict[str, Any]:
    # Input checks that need no model come first, so bad requests are refused cheaply.
    options, notes = seed_options(req)
    model = resolve_seed_model(req, allow_network)
    spec = model.spec
    from .. import estimate
    from ..engines.vllm.kv import request_kv_bytes

    dep = deployment_on_gpu(Deployment(**options), req.gpu, None)
    report = estimate(spec, deployment=dep)
    resolved = resolved_deployment(dep, report)

    per_seq_full = request_kv_bytes(spec, resolved, req.max_seq_len)
    # One block per sequence in every KV group (hybrid models keep one group per layer kind and slice).
    one_block = (report.kv.bytes_per_block * report.kv.num_groups if report.kv is not None
                 else request_kv_bytes(spec, resolved, 1))
    weights = report.weights_bytes
    activation = report.activation_peak_bytes
    overhead = report.non_torch_bytes + report.cudagraph_bytes
    min_kv = one_block * req.max_batch_size
    max_kv = per_seq_full * req.max_batch_size
    total_min = weights + activation + min_kv + overhead
    total_max = weights + activation + max_kv + overhead

    warnings: list[str] = []
    largest = largest_gpu_name()
    if report.gpu_name == largest:
        fits_largest, why = report.fits, report.reason
    else:
        on_largest = estimate(spec, deployment=deployment_on_gpu(Deployment(**options), largest, None))
        fits_largest, why = on_largest.fits, on_largest.reason
        if not report.fits:
            warnings.append(f"does not fit {report.gpu_name}: {report.reason}")
    if not fits_largest:
        tp = req.tensor_parallel_size
        warnings.append(
            f"the model does not fit one {largest} (the largest GPU in the catalog)"
            + (f" at tensor_parallel_size={tp}" if tp > 1 else "")
            + f": {why}; consider quantization (Q4/Q8) or a larger tensor_parallel_size"
        )
    if not model.exact:
        # The notes already say how it was estimated (from N parameters, overridden dims, ...).
        what = "; ".join(model.notes) or "architecture estimated"
        warnings.append(f"{what}; figures are approximate")

    arch_exact = model.exact
    breakdown = {
        "model_params": _gib(weights),
        "activation": _gib(activation),
        "min_kv_cache": _gib(min_kv),
        "max_kv_cache": _gib(max_kv),
        "cuda_overhead": _gib(overhead),
    }
    return {
        "model_name": req.model_name,
        "model_params_memory_gb": breakdown["model_params"],
        "activation_memory_gb": breakdown["activation"],
        "min_kv_cache_memory_gb": breakdown["min_kv_cache"],
        "max_kv_cache_memory_gb": breakdown["max_kv_cache"],
        "cuda_overhead_gb": breakdown["cuda_overhead"],
        "total_min_memory_gb": _gib(total_min),
        "total_max_memory_gb": _gib(total_max),
        "recommended_memory_gb": _gib(total_max / req.gpu_memory_utilization),
        "warning": " | ".join(warnings) if warnings else None,
        "components_breakdown": breakdown,
        "architecture_used": {k: v for k, v in _spec_dims(spec).items()},
        # Extras beyond seed 002.
        "unit": "GiB",
        "exact": {
            "architecture": arch_exact,
            "model_params": arch_exact and bool(_exact(report, "weight")),
            "activation": arch_exact and bool(_exact(report, "activation")),
            "kv_cache": arch_exact and bool(_exact(report, "kv")),
            "cuda_overhead": arch_exact and bool(_exact(report, "non_torch", "non-torch", "cuda", "graph")),
        },
        "architecture_source": model.source,
        "gpu": {"name": report.gpu_name, "memory_gib": None if report.gpu_memory_bytes is None
                else _gib(report.gpu_memory_bytes)},
        "tensor_parallel_size": report.tensor_parallel_size,
        "quantization_used": report.quantization,
        "kv_cache_dtype_used": report.kv.kv_cache_dtype if report.kv else options["kv_cache_dtype"],
        "vllm_version": report.engine_version,
        "kv_cache_tokens": report.kv_cache_tokens,
        "max_concurrency": report.max_concurrency,
        "fits": report.fits,
        "reason": report.reason,
        "max_model_len_fit": report.max_model_len_fit,
        "notes": model.notes + notes + list(report.warnings),
    }


# ------------------------------------------------------------------------------ catalog listings


@lru_cache(maxsize=1)
def known_architectures() -> dict[str, Any]:
    """Every catalog entry with its architecture; computed once (the catalog is data read at start-up)."""
    from ..catalog import list_models

    models = []
    for entry in list_models():
        item: dict[str, Any] = {
            "id": entry.id,
            "family": entry.family,
            "aliases": list(entry.aliases),
            "total_params": entry.total_params,
            "exact": entry.exact,
            "status": "exact" if entry.exact else "estimated",
            "source": entry.params_source,
            "note": entry.note,
        }
        try:
            spec = _load_ref(entry.id, False)
        except GpuplanError as exc:  # one broken entry must not hide the others
            item["architecture"] = None
            item["error"] = str(exc)
        else:
            item["architecture"] = {
                **_spec_dims(spec),
                "vocab": spec.vocab_size,
                "model_type": spec.model_type,
                "attention_kinds": dict(spec.attention_kinds),
                "moe": spec.is_moe,
            }
            if item["total_params"] is None:
                item["total_params"] = spec.total_params
        models.append(item)
    return {"count": len(models), "models": models}


def models_listing(filter_text: str | None = None) -> list[dict[str, Any]]:
    from ..catalog import list_models

    out = []
    needle = (filter_text or "").lower()
    for e in list_models():
        if needle and needle not in e.id.lower() and not any(needle in a.lower() for a in e.aliases) \
                and needle not in (e.family or "").lower():
            continue
        out.append({"id": e.id, "aliases": list(e.aliases), "family": e.family, "exact": e.exact,
                    "total_params": e.total_params, "params_source": e.params_source, "note": e.note})
    return out


def gpus_listing() -> list[dict[str, Any]]:
    from ..gpus import list_gpus

    out = []
    for g in list_gpus():
        d = dataclasses.asdict(g) if dataclasses.is_dataclass(g) else dict(vars(g))
        d["aliases"] = list(d.get("aliases") or ())
        d["memory_gib"] = _gib(g.memory_bytes)
        out.append(d)
    return out


# ---------------------------------------------------------------------------------------- /v1


def v1_deployment(req: DeploymentFields) -> Deployment:
    return deployment_on_gpu(req.deployment(), req.gpu, req.gpu_memory_gib)


def v1_estimate(req: DeploymentFields, model: str | dict[str, Any], allow_network: bool) -> dict[str, Any]:
    from .. import estimate
    from ..gpus import resolve_gpu_memory

    # Cheap checks first (the reference's shape, the GPU), then the possibly slow model resolution.
    if isinstance(model, str):
        check_remote_ref(model, "model")
    resolve_gpu_memory(req.gpu, req.gpu_memory_gib)
    dep = req.deployment()
    if dep.speculative_model:  # speculative_fields leaves n-gram's pseudo-model names out
        check_remote_ref(dep.speculative_model, "speculative_config.model")  # a draft is read like the model
    spec = load_model_ref(model, "model", allow_network)
    report = estimate(spec, gpu=req.gpu, gpu_memory_gib=req.gpu_memory_gib, deployment=dep,
                      allow_network=allow_network)
    out = report.to_dict()
    from ..planner.commands import commands_for_report

    ref = model if isinstance(model, str) else spec.name
    out["commands"] = to_jsonable(commands_for_report(ref, report, dep))
    return out


def v1_curve(req: V1CurveRequest, allow_network: bool) -> dict[str, Any]:
    from ..engines.vllm.estimate import curve

    if isinstance(req.model, str):
        check_remote_ref(req.model, "model")
    dep = v1_deployment(req)
    spec = load_model_ref(req.model, "model", allow_network)
    return {"points": curve(spec, dep, list(req.lengths), req.concurrency)}


class PlannerMissing(RuntimeError):
    """The planner module is not installed in this build."""


def to_jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(x) for x in obj]
    return obj


def get_planner() -> Any:
    try:
        from ..planner import plan
    except ImportError as exc:
        raise PlannerMissing(f"the planner is not available in this build ({exc})") from exc
    return plan


def plan_kwargs(req: V1PlanRequest) -> dict[str, Any]:
    # Unset fields keep the planner's own defaults.
    kw = {
        "gpus": req.gpus,
        "num_gpus": req.num_gpus,
        "max_gpus": req.max_gpus,
        "quantization": req.quantization,
        "kv_cache_dtype": req.kv_cache_dtype,
        "max_model_len": req.max_model_len,
        "concurrency": req.concurrency,
        "vllm_version": req.vllm_version,
        "prices": dict(req.prices),
        "gpu_memory_utilization": req.gpu_memory_utilization,
        "env": dict(req.env) or None,
        "platform": req.platform,
        "lora": (req.max_loras, req.max_lora_rank) if req.enable_lora else None,
        "speculative_config": req.speculative_config.model_dump(exclude_none=True) if req.speculative_config else None,
    }
    return {k: v for k, v in kw.items() if v is not None}


def v1_plan(req: V1PlanRequest, allow_network: bool) -> Any:
    if isinstance(req.model, str):
        check_remote_ref(req.model, "model")
    sc = req.speculative_config
    if sc and (draft := speculative_fields(sc.model_dump(exclude_none=True))["speculative_model"]):
        check_remote_ref(draft, "speculative_config.model")  # a draft is read like the model
    plan = get_planner()
    spec = load_model_ref(req.model, "model", allow_network)
    return to_jsonable(plan(spec, **plan_kwargs(req), allow_network=allow_network))
