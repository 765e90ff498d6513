"""The Python API: resolve a model reference and a GPU name, run the engine. No arithmetic here."""

from __future__ import annotations

from .deployment import Deployment
from .model.spec import ModelSpec
from .report import MemoryReport


def load_model(ref: str | dict | ModelSpec, *, allow_network: bool = True) -> ModelSpec:
    """A ModelSpec from a catalog name, HF id, local dir, config.json path, .gguf path, or a config dict."""
    from .resolve import resolve_model

    return resolve_model(ref, allow_network=allow_network)


def estimate(model: str | dict | ModelSpec, *, gpu: str | None = None, gpu_memory_gib: float | None = None,
             deployment: Deployment | None = None, **options) -> MemoryReport:
    """Per-GPU memory report for `model` served by vLLM.

    `options` are Deployment fields with vLLM's names (tensor_parallel_size, max_model_len,
    kv_cache_dtype, quantization, vllm_version, ...). `gpu` is a catalog name ("H100", "A100-80GB").
    """
    from dataclasses import replace

    from .engines.vllm.estimate import estimate as engine_estimate
    from .gpus import DEFAULT_GPU, DEFAULT_GPU_NOTE, resolve_gpu_memory

    spec = model if isinstance(model, ModelSpec) else load_model(model)
    dep = deployment or Deployment()
    if options:
        dep = dep.with_(**options)
    defaulted = gpu is None and gpu_memory_gib is None and not dep.gpu_memory_bytes
    if defaulted:
        gpu = DEFAULT_GPU
    if gpu is not None or gpu_memory_gib is not None:
        name, total, cc = resolve_gpu_memory(gpu, gpu_memory_gib)
        dep = dep.with_(gpu_name=name, gpu_memory_bytes=total, compute_capability=dep.compute_capability or cc)
    report = engine_estimate(spec, dep)
    return replace(report, warnings=(DEFAULT_GPU_NOTE,) + report.warnings) if defaulted else report
