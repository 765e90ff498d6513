"""Launch commands for one option: `vllm serve`, Python `LLM(...)`, SGLang and `docker run`.

Flags are emitted only where they change something: --kv-cache-dtype when not auto, --quantization only
for online methods (vLLM reads a pre-quantized checkpoint's format from its config), --max-num-seqs when
the planner raised it. tests/test_planner.py checks every flag and choice against vLLM's own list.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from .config import data
from .types import Commands

# How an assumed pre-quantized checkpoint is named in the command: the user must supply one.
_HF_CACHE = "@HF_CACHE@"  # placeholder swapped for the unquoted mount after quoting
_VLLM_CACHE = "@VLLM_CACHE@"
_CHECKPOINT_SUFFIX = {"awq": "AWQ-INT4", "gptq": "GPTQ-INT4", "int8": "W8A8-INT8"}


@dataclass(frozen=True)
class LaunchSpec:
    model: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    max_model_len: int
    gpu_memory_utilization: float
    kv_cache_dtype: str
    quantization_flag: str | None
    assumed_quantization: str | None  # the assumed checkpoint format (awq, gptq, int8), else None
    max_num_seqs: int | None  # None: vLLM's default
    max_num_batched_tokens: int  # the API server's value, pinned in LLM(...) whose default differs
    vllm_version: str
    pin_max_num_batched_tokens: bool = False  # emit it for `vllm serve` too (raised with max_num_seqs)
    env: tuple[tuple[str, str], ...] = ()
    # Every other vLLM option the estimate was made with, as (vLLM's argument name, value): see options_of.
    options: tuple[tuple[str, object], ...] = ()


def options_of(dep) -> tuple[tuple[str, object], ...]:
    """The deployment's vLLM options that are not vLLM's defaults (True/False: a boolean flag and its --no- form)."""
    out: list[tuple[str, object]] = []
    if dep.dtype != "auto":
        out.append(("dtype", dep.dtype))
    for name in ("enforce_eager", "enable_expert_parallel", "disable_hybrid_kv_cache_manager", "fully_sharded_loras",
                 "disable_custom_all_reduce"):
        if getattr(dep, name):
            out.append((name, True))
    for name in ("block_size", "kv_cache_memory_bytes", "max_cudagraph_capture_size", "enable_prefix_caching",
                 "enable_chunked_prefill"):
        if getattr(dep, name) is not None:
            out.append((name, getattr(dep, name)))
    if dep.data_parallel_size > 1:
        out.append(("data_parallel_size", dep.data_parallel_size))
    if dep.cpu_offload_gb:
        out.append(("cpu_offload_gb", dep.cpu_offload_gb))
    if dep.performance_mode != "balanced":
        out.append(("performance_mode", dep.performance_mode))
    if dep.mamba_ssm_cache_dtype != "auto":
        out.append(("mamba_ssm_cache_dtype", dep.mamba_ssm_cache_dtype))
    if dep.moe_backend != "auto":
        out.append(("moe_backend", dep.moe_backend))
    if dep.enable_lora:
        out.append(("enable_lora", True))
        out += [(name, getattr(dep, name)) for name, default in (("max_loras", 1), ("max_lora_rank", 16),
                                                                  ("lora_dtype", "auto"))
                if getattr(dep, name) != default]
    if dep.speculative_method:
        cfg: dict[str, object] = {"method": dep.speculative_method,
                                  "num_speculative_tokens": dep.num_speculative_tokens}
        if dep.speculative_model:
            cfg["model"] = dep.speculative_model
        out.append(("speculative_config", cfg))
    # the multimodal profiling options
    for name in ("limit_mm_per_prompt", "mm_processor_kwargs"):
        if getattr(dep, name):
            out.append((name, dict(getattr(dep, name))))
    for name in ("skip_mm_profiling", "language_model_only"):
        if getattr(dep, name):
            out.append((name, True))
    if dep.mm_encoder_tp_mode != "weights":
        out.append(("mm_encoder_tp_mode", dep.mm_encoder_tp_mode))
    return tuple(out)


def _cli(name: str, value: object) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if value is True:
        return [flag]
    if value is False:
        return ["--no-" + name.replace("_", "-")]
    return [flag, json.dumps(value) if isinstance(value, dict) else f"{value:g}" if isinstance(value, float)
            else str(value)]


def model_ref(spec: LaunchSpec) -> str:
    if spec.assumed_quantization:
        short = spec.model.rstrip("/").rsplit("/", 1)[-1]
        return f"/path/to/{short}-{_CHECKPOINT_SUFFIX.get(spec.assumed_quantization, spec.assumed_quantization)}"
    return spec.model


def vllm_args(spec: LaunchSpec) -> list[str]:
    """The engine flags shared by `vllm serve` and the docker image (the model excluded)."""
    args = ["--tensor-parallel-size", str(spec.tensor_parallel_size)]
    if spec.pipeline_parallel_size > 1:
        args += ["--pipeline-parallel-size", str(spec.pipeline_parallel_size)]
    args += ["--max-model-len", str(spec.max_model_len),
             "--gpu-memory-utilization", f"{spec.gpu_memory_utilization:g}"]
    if spec.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", spec.kv_cache_dtype]
    if spec.quantization_flag:
        args += ["--quantization", spec.quantization_flag]
    if spec.max_num_seqs is not None:
        args += ["--max-num-seqs", str(spec.max_num_seqs)]
    if spec.pin_max_num_batched_tokens:
        args += ["--max-num-batched-tokens", str(spec.max_num_batched_tokens)]
    for name, value in spec.options:
        args += _cli(name, value)
    return args


def _env_prefix(env: tuple[tuple[str, str], ...]) -> str:
    return "".join(f"{k}={shlex.quote(v)} " for k, v in env)


def vllm_command(spec: LaunchSpec) -> str:
    return _env_prefix(spec.env) + shlex.join(["vllm", "serve", model_ref(spec), *vllm_args(spec)])


def python_command(spec: LaunchSpec) -> str:
    kw = [f"model={model_ref(spec)!r}", f"tensor_parallel_size={spec.tensor_parallel_size}"]
    if spec.pipeline_parallel_size > 1:
        kw.append(f"pipeline_parallel_size={spec.pipeline_parallel_size}")
    kw += [f"max_model_len={spec.max_model_len}", f"gpu_memory_utilization={spec.gpu_memory_utilization:g}"]
    if spec.kv_cache_dtype != "auto":
        kw.append(f"kv_cache_dtype={spec.kv_cache_dtype!r}")
    if spec.quantization_flag:
        kw.append(f"quantization={spec.quantization_flag!r}")
    if spec.max_num_seqs is not None:
        kw.append(f"max_num_seqs={spec.max_num_seqs}")
    kw += [f"{name}={value!r}" for name, value in spec.options]
    # LLM() batches more tokens per step than the server by default; pin the server's value so the
    # memory gpuplan computed is the memory this call gets.
    kw.append(f"max_num_batched_tokens={spec.max_num_batched_tokens}")
    lines = ["import os"] if spec.env else []
    lines += [f"os.environ[{k!r}] = {v!r}" for k, v in spec.env]
    lines += ["from vllm import LLM", f"llm = LLM({', '.join(kw)})"]
    return "\n".join(lines)


def sglang_command(spec: LaunchSpec) -> str:
    sg = data()["sglang"]
    by_tp = sg["mem_fraction_static_by_tp"]
    tp = spec.tensor_parallel_size
    key = max((int(k) for k in by_tp if int(k) <= tp), default=1)
    args = ["python", "-m", "sglang.launch_server", "--model-path", model_ref(spec), "--tp", str(tp)]
    if spec.pipeline_parallel_size > 1:
        args += ["--pp-size", str(spec.pipeline_parallel_size)]
    args += ["--context-length", str(spec.max_model_len), "--mem-fraction-static", f"{by_tp[str(key)]:g}"]
    kv = sg["kv_cache_dtype"].get(spec.kv_cache_dtype)
    if kv:
        args += ["--kv-cache-dtype", kv]
    if spec.quantization_flag:
        args += ["--quantization", spec.quantization_flag]
    return _env_prefix(spec.env) + shlex.join(args)


def docker_command(spec: LaunchSpec) -> str:
    d = data()["docker"]
    tag = "v" + spec.vllm_version.lstrip("v")
    # The vLLM cache mount keeps torch.compile's artifacts, so a restarted container is a warm start.
    args = ["docker", "run", "--gpus", "all", "-p", "8000:8000", "--ipc=host", "-v", _HF_CACHE, "-v", _VLLM_CACHE,
            "-e", "HF_TOKEN"]
    for k, v in spec.env:
        args += ["-e", f"{k}={v}"]
    if spec.assumed_quantization:
        args += ["-v", "/path/to:/path/to"]
    args += [f"{d['image']}:{tag}", "--model", model_ref(spec), *vllm_args(spec)]
    # The cache mounts stay unquoted so the shell expands ~ to the user's home.
    return (shlex.join(args).replace(shlex.quote(_HF_CACHE), d["hf_cache"])
            .replace(shlex.quote(_VLLM_CACHE), d["vllm_cache"]))


def launch_commands(spec: LaunchSpec) -> Commands:
    return Commands(vllm=vllm_command(spec), python=python_command(spec), sglang=sglang_command(spec),
                    docker=docker_command(spec), env=spec.env)


# Methods vLLM applies online to an unquantized checkpoint: the only ones that need --quantization.
_ONLINE = {"fp8", "bitsandbytes", "experts_int8", "fp8_per_tensor", "fp8_per_block", "fp8_per_channel"}


def commands_for_report(model: str, report, dep) -> Commands:
    """Launch commands for exactly the deployment a MemoryReport describes (the form's, not a planner option)."""
    q = (dep.quantization or "").lower() or None
    online = q if q in _ONLINE else None
    assumed = q if (q and q not in _ONLINE and report.quantization and not _checkpoint_quantized(report)) else None
    spec = LaunchSpec(model=model, tensor_parallel_size=report.tensor_parallel_size,
                      pipeline_parallel_size=report.pipeline_parallel_size, max_model_len=report.max_model_len,
                      gpu_memory_utilization=report.gpu_memory_utilization,
                      kv_cache_dtype=report.kv.kv_cache_dtype if report.kv else "auto", quantization_flag=online,
                      assumed_quantization=assumed, max_num_seqs=dep.max_num_seqs,
                      max_num_batched_tokens=report.max_num_batched_tokens,
                      pin_max_num_batched_tokens=dep.max_num_batched_tokens is not None,
                      vllm_version=report.engine_version, env=tuple(dep.env), options=options_of(dep))
    return launch_commands(spec)


def _checkpoint_quantized(report) -> bool:
    # The engine warns when it sized an assumed (not real) checkpoint of another format.
    return not any("this checkpoint is not quantized" in w for w in report.warnings)
