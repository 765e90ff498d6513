"""The planner's results: frozen data with to_dict() for the faces (JSON keys are the public contract)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..units import GiB


def _gib(b: int | None) -> float | None:
    return None if b is None else round(b / GiB, 2)


@dataclass(frozen=True)
class Commands:
    vllm: str
    python: str
    sglang: str
    docker: str
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Throughput:
    """Roofline estimates, never measurements (label says so)."""

    decode_tokens_per_s: float | None  # all requests together, at `batch` concurrent requests
    decode_tokens_per_s_per_request: float | None
    prefill_tokens_per_s: float | None
    batch: int
    label: str


@dataclass(frozen=True)
class Option:
    """One deployment the engine was run on, with its verdict and what it costs."""

    gpu: str
    num_gpus: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    quantization: str | None  # Deployment.quantization passed to the engine (None: the checkpoint as stored)
    quantization_label: str
    assumed_checkpoint: bool
    kv_cache_dtype: str
    env: tuple[tuple[str, str], ...]
    fits: bool
    reason: str | None
    launch_max_model_len: int  # the --max-model-len of the commands
    max_model_len: int | None  # longest context one request can have (engine's max_model_len_fit)
    max_concurrency: float  # at launch_max_model_len
    max_num_seqs: int
    kv_cache_tokens: int
    weights_bytes: int
    activation_bytes: int
    non_torch_bytes: int
    cudagraph_bytes: int
    kv_cache_bytes: int
    gpu_memory_bytes: int
    gpu_memory_utilization: float
    vllm_version: str
    throughput: Throughput
    cost_per_hour_usd: float | None
    cost_per_1m_output_tokens_usd: float | None
    price_source: str
    commands: Commands
    warnings: tuple[str, ...] = ()
    # The longest context a first start on an empty torch.compile cache fits, where it is shorter than a
    # restart's (vLLM 0.24+ on cards whose profile run does not hide the compile spike); None where equal.
    first_start_max_model_len: int | None = None

    def to_dict(self) -> dict:
        t = self.throughput
        return {
            "gpu": self.gpu,
            "num_gpus": self.num_gpus,
            "tensor_parallel_size": self.tensor_parallel_size,
            "pipeline_parallel_size": self.pipeline_parallel_size,
            "quantization": self.quantization,
            "quantization_label": self.quantization_label,
            "assumed_checkpoint": self.assumed_checkpoint,
            "kv_cache_dtype": self.kv_cache_dtype,
            "env": dict(self.env),
            "fits": self.fits,
            "reason": self.reason,
            "launch_max_model_len": self.launch_max_model_len,
            "max_model_len": self.max_model_len,
            "first_start_max_model_len": self.first_start_max_model_len,
            "max_concurrency": self.max_concurrency,
            "max_num_seqs": self.max_num_seqs,
            "kv_cache_tokens": self.kv_cache_tokens,
            "per_gpu": {
                "memory_gib": _gib(self.gpu_memory_bytes),
                "gpu_memory_utilization": self.gpu_memory_utilization,
                "weights_gib": _gib(self.weights_bytes),
                "activation_gib": _gib(self.activation_bytes),
                "non_torch_gib": _gib(self.non_torch_bytes),
                "cudagraph_gib": _gib(self.cudagraph_bytes),
                "kv_cache_gib": _gib(self.kv_cache_bytes),
            },
            "vllm_version": self.vllm_version,
            "decode_tokens_per_s": t.decode_tokens_per_s,
            "decode_tokens_per_s_per_request": t.decode_tokens_per_s_per_request,
            "prefill_tokens_per_s": t.prefill_tokens_per_s,
            "throughput_batch": t.batch,
            "throughput_label": t.label,
            "cost_per_hour_usd": self.cost_per_hour_usd,
            "cost_per_1m_output_tokens_usd": self.cost_per_1m_output_tokens_usd,
            "price_source": self.price_source,
            "vllm_command": self.commands.vllm,
            "python_command": self.commands.python,
            "sglang_command": self.commands.sglang,
            "docker_command": self.commands.docker,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class Nearest:
    change: str  # what differs from the requested deployment, in words
    option: Option

    def to_dict(self) -> dict:
        return {"change": self.change, **self.option.to_dict()}


@dataclass(frozen=True)
class Requested:
    option: Option
    nearest: tuple[Nearest, ...]

    @property
    def fits(self) -> bool:
        return self.option.fits

    def to_dict(self) -> dict:
        return {**self.option.to_dict(), "nearest": [n.to_dict() for n in self.nearest]}


@dataclass(frozen=True)
class PlanResult:
    model: str
    vllm_version: str
    max_model_len: int | None  # the target asked for (None: the model's own maximum)
    concurrency: int
    options: tuple[Option, ...]  # ranked: fitting first, fewest GPUs, cheapest, longest context
    requested: Requested | None = None
    skipped: tuple[str, ...] = ()  # combinations not run, and why (no kernel for this GPU, no valid split)
    notes: tuple[str, ...] = field(default=())

    @property
    def best(self) -> Option | None:
        return next((o for o in self.options if o.fits), None)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "vllm_version": self.vllm_version,
            "max_model_len": self.max_model_len,
            "concurrency": self.concurrency,
            "options": [o.to_dict() for o in self.options],
            "requested": None if self.requested is None else self.requested.to_dict(),
            "skipped": list(self.skipped),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class ContextRow:
    gpu: str
    num_gpus: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    quantization_label: str
    kv_cache_dtype: str
    env: tuple[tuple[str, str], ...]
    hybrid_manager: bool | None
    max_model_len: int | None  # longest context one request can have; None: vLLM does not start
    kv_cache_tokens: int
    concurrency: tuple[tuple[int, float | None], ...]  # (length, max concurrency; None: does not start)
    reason: str | None

    def to_dict(self) -> dict:
        return {
            "gpu": self.gpu, "num_gpus": self.num_gpus, "tensor_parallel_size": self.tensor_parallel_size,
            "pipeline_parallel_size": self.pipeline_parallel_size, "quantization": self.quantization_label,
            "kv_cache_dtype": self.kv_cache_dtype, "env": dict(self.env), "hybrid_manager": self.hybrid_manager,
            "max_model_len": self.max_model_len, "kv_cache_tokens": self.kv_cache_tokens,
            "concurrency": {str(length): c for length, c in self.concurrency}, "reason": self.reason,
        }


@dataclass(frozen=True)
class ContextTable:
    model: str
    vllm_version: str
    lengths: tuple[int, ...]
    rows: tuple[ContextRow, ...]
    skipped: tuple[str, ...] = ()  # combinations the model itself refuses (a GPU, a KV dtype), and why

    def to_dict(self) -> dict:
        return {"model": self.model, "vllm_version": self.vllm_version, "lengths": list(self.lengths),
                "rows": [r.to_dict() for r in self.rows], "skipped": list(self.skipped)}


@dataclass(frozen=True)
class GpuTimeCost:
    gpu: str
    num_gpus: int
    hours: float
    price_usd_per_gpu_hour: float | None
    price_source: str
    price_date: str | None
    cost_per_hour_usd: float | None
    total_usd: float | None
    note: str = ""

    def to_dict(self) -> dict:
        return {"gpu": self.gpu, "num_gpus": self.num_gpus, "hours": self.hours,
                "price_usd_per_gpu_hour": self.price_usd_per_gpu_hour, "price_source": self.price_source,
                "price_date": self.price_date, "cost_per_hour_usd": self.cost_per_hour_usd,
                "total_usd": self.total_usd, "note": self.note}
