"""The Python API: resolve a model reference and a GPU name, run the engine. No arithmetic here."""

from __future__ import annotations

from .deployment import Deployment, speculative_fields
from .model.spec import ModelSpec
from .report import MemoryReport


def load_model(ref: str | dict | ModelSpec, *, allow_network: bool = True) -> ModelSpec:
    """A ModelSpec from a catalog name, HF id, local dir, config.json path, .gguf path, or a config dict."""
    from .resolve import resolve_model

    return resolve_model(ref, allow_network=allow_network)


def with_gpu(dep: Deployment, gpu: str | None, gpu_memory_gib: float | None) -> tuple[Deployment, str | None]:
    """`dep` on the named GPU (or memory size); on gpus.DEFAULT_GPU when neither is given and `dep` has no
    memory yet. The note says what was assumed: the default GPU, or one size of a GPU sold in several."""
    from .gpus import DEFAULT_GPU, DEFAULT_GPU_NOTE, resolve_gpu_memory, size_ambiguity

    note = None
    if gpu is None and gpu_memory_gib is None and not dep.gpu_memory_bytes:
        gpu, note = DEFAULT_GPU, DEFAULT_GPU_NOTE
    if gpu is None and gpu_memory_gib is None:
        return dep, None
    name, total, cc = resolve_gpu_memory(gpu, gpu_memory_gib, dep.platform)
    if note is None and gpu is not None and gpu_memory_gib is None:
        note = size_ambiguity(gpu)
    return dep.with_(gpu_name=name, gpu_memory_bytes=total, compute_capability=dep.compute_capability or cc), note


def estimate(model: str | dict | ModelSpec, *, gpu: str | None = None, gpu_memory_gib: float | None = None,
             deployment: Deployment | None = None, allow_network: bool = True, **options) -> MemoryReport:
    """Per-GPU memory report for `model` served by vLLM.

    `options` are Deployment fields with vLLM's names (tensor_parallel_size, max_model_len,
    kv_cache_dtype, quantization, vllm_version, speculative_config={"method": "mtp", ...}, ...). `gpu` is a catalog name ("H100", "A100-80GB");
    with no GPU at all, gpus.DEFAULT_GPU is assumed and the report's warnings say so. A speculative_config whose
    method drafts with a separate checkpoint ({"method": "eagle3", "model": ...}) has that checkpoint's config.json
    read like the model's (`allow_network`: whether the Hub may be asked).
    """
    from dataclasses import replace

    from .engines.vllm.estimate import estimate as engine_estimate

    spec = model if isinstance(model, ModelSpec) else load_model(model)
    dep = deployment or Deployment()
    for key in ("limit_mm_per_prompt", "mm_processor_kwargs", "env"):  # vLLM takes these as dicts
        if isinstance(options.get(key), dict):
            options[key] = tuple(sorted(options[key].items()))
    if "speculative_config" in options:  # as vLLM takes it: {"method": "mtp", "num_speculative_tokens": 2}
        options.update(speculative_fields(options.pop("speculative_config")))
    if options:
        dep = dep.with_(**options)
    dep, note = with_gpu(dep, gpu, gpu_memory_gib)
    from .resolve import with_draft

    report = engine_estimate(spec, with_draft(dep, allow_network))
    return replace(report, warnings=(note,) + report.warnings) if note else report
