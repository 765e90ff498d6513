"""The per-GPU memory report: every number gpuplan shows comes from one of these."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .units import GiB


@dataclass(frozen=True)
class Component:
    """One slice of per-GPU memory. `exact` is False for calibrated or estimated figures."""

    name: str
    bytes: int
    exact: bool
    note: str = ""

    @property
    def gib(self) -> float:
        return round(self.bytes / GiB, 2)


@dataclass(frozen=True)
class KVGroup:
    kind: str  # full | sliding_window | chunked_local | mla | mamba
    num_layers: int  # layers of this kind on the stage (real, not padding)
    page_bytes: int  # bytes of one block of one layer
    block_size: int
    blocks_per_request: int


@dataclass(frozen=True)
class KVCacheReport:
    kv_cache_dtype: str
    block_size: int
    bytes_per_token: int  # per GPU, all layers of the most loaded stage, as if every layer held every token
    bytes_per_block: int
    num_groups: int
    group_size: int
    groups: tuple[KVGroup, ...]
    hybrid_manager: bool
    num_gpu_blocks: int
    kv_cache_tokens: int
    max_concurrency: float
    blocks_per_request: int
    max_model_len: int
    padding_layers: int = 0
    mamba_cache_mode: str = "none"  # hybrid models: vLLM's mamba_cache_mode (align / all when prefix caching is on)


# What stops a start-up: a model or kernel assertion; a max_model_len over the model's own limit; weights beyond the
# free memory, or beyond the budget; a budget beyond the free memory (V1 from 0.9 checks it before loading, V0 runs
# out allocating the cache); nothing left for the KV cache; a KV cache too small for one request of max_model_len;
# CUDA graph capture or the sampler warm-up out of memory once the cache is allocated.
FAILURE_KINDS = ("refused", "max_model_len_refused", "weights_oom", "weights_over_budget", "budget_over_free",
                 "no_kv_memory", "kv_too_small", "cudagraph_oom", "sampler_warmup_oom")


@dataclass(frozen=True)
class MemoryReport:
    model: str
    model_type: str
    engine: str
    engine_version: str
    profile: str  # version profile name
    gpu_name: str | None
    gpu_memory_bytes: int | None
    tensor_parallel_size: int
    pipeline_parallel_size: int
    num_gpus: int
    gpu_memory_utilization: float
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int
    dtype: str
    quantization: str | None
    # per GPU (the worker that limits the engine: min KV over stages)
    weights_bytes: int
    activation_peak_bytes: int
    non_torch_bytes: int
    cudagraph_bytes: int
    cudagraph_in_budget: bool
    budget_bytes: int
    available_kv_cache_bytes: int
    kv: KVCacheReport | None
    components: tuple[Component, ...]
    fits: bool
    reason: str | None
    max_model_len_fit: int | None  # the longest max_model_len that fits (None when nothing fits)
    total_params: int
    param_counts: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    per_stage: tuple[dict, ...] = ()
    # memory actually touched per GPU at steady state: baseline + budget (+ graphs when outside it)
    peak_process_bytes: int = 0
    # V1's multimodal encoder pass in the profile run, where the model code sizes it: modality, items, budget_tokens,
    # item_tokens, patches, tower_bytes, cached_output_bytes (modality "none" under --skip-mm-profiling).
    encoder_profile: dict | None = None
    # "warm" (a restart that finds torch.compile's cache filled) or "cold" (a first start on an empty one).
    compile_cache: str = "warm"
    # How the GPUs reach each other, as sized: the deployment's interconnect or the catalog's fabric.
    interconnect: str = "nvswitch"
    platform: str = "linux"
    mamba_ssm_cache_dtype: str | None = None  # the SSM state's dtype, for models with recurrent state
    moe_backend: str = "auto"  # --moe-backend as vLLM normalises it (moe_kernels.py says which are sized)
    # --speculative-config as sized ({"method", "num_speculative_tokens"}); None without a drafter.
    speculative_config: dict | None = None
    # Two figures vLLM prints that are not components: the pool the CUDA-graph capture takes ("Graph capturing
    # finished ..., took X GiB"; the ledger's "CUDAGraph memory"), and the ledger's "X GiB for peak activation",
    # which from 0.27 adds the graph estimate vLLM subtracts to the profile run's transient peak.
    cudagraph_captured_bytes: int = 0
    ledger_activation_bytes: int = 0
    # From 0.27 the ledger prints "X GiB for consumed memory (weights + non-torch)" instead of the two apart: the
    # weights, non-torch memory and what the profile run keeps allocated. None where the version prints them apart.
    ledger_consumed_bytes: int | None = None
    # The usage part of the line V1 prints after graph capture, in its version's wording, where it prints it at the
    # default log level (0.10.1-0.10.x, 0.26+); None elsewhere.
    ledger_line: str | None = None
    # Why it does not start, as one of FAILURE_KINDS (None when it fits); `fails_after_kv`: it runs out once the KV
    # cache's size is settled (V0 allocating it, CUDA graphs, the sampler warm-up), which a lower
    # gpu_memory_utilization eases and a shorter context does not.
    failure: str | None = None
    fails_after_kv: bool = False
    # For a warm estimate where vLLM charges a cold compile's scratch (0.24+): what the first start gets instead,
    # cold_compile_bytes, available_kv_cache_bytes, kv_cache_tokens, max_concurrency, num_gpu_blocks, fits, reason,
    # max_model_len_fit.
    first_start: dict | None = None

    @property
    def kv_cache_tokens(self) -> int:
        return self.kv.kv_cache_tokens if self.kv else 0

    @property
    def max_concurrency(self) -> float:
        return self.kv.max_concurrency if self.kv else 0.0

    @property
    def num_gpu_blocks(self) -> int:
        return self.kv.num_gpu_blocks if self.kv else 0

    def to_dict(self) -> dict:
        def g(b: int | None) -> float | None:
            return None if b is None else round(b / GiB, 2)

        comps = [
            {"name": c.name, "bytes": c.bytes, "gib": c.gib, "exact": c.exact, "note": c.note}
            for c in self.components
        ]
        return {
            "model": self.model,
            "model_type": self.model_type,
            "engine": self.engine,
            "engine_version": self.engine_version,
            "profile": self.profile,
            "unit": "GiB",
            "gpu": {"name": self.gpu_name, "memory_bytes": self.gpu_memory_bytes,
                    "memory_gib": g(self.gpu_memory_bytes)},
            "deployment": {
                "tensor_parallel_size": self.tensor_parallel_size,
                "pipeline_parallel_size": self.pipeline_parallel_size,
                "num_gpus": self.num_gpus,
                "gpu_memory_utilization": self.gpu_memory_utilization,
                "max_model_len": self.max_model_len,
                "max_num_seqs": self.max_num_seqs,
                "max_num_batched_tokens": self.max_num_batched_tokens,
                "dtype": self.dtype,
                "quantization": self.quantization,
                "kv_cache_dtype": self.kv.kv_cache_dtype if self.kv else None,
                "interconnect": self.interconnect,
                "platform": self.platform,
                "mamba_ssm_cache_dtype": self.mamba_ssm_cache_dtype,
                "moe_backend": self.moe_backend,
                "speculative_config": self.speculative_config,
            },
            "per_gpu": {
                "weights_bytes": self.weights_bytes,
                "weights_gib": g(self.weights_bytes),
                "activation_peak_gib": g(self.activation_peak_bytes),
                "non_torch_gib": g(self.non_torch_bytes),
                "cudagraph_gib": g(self.cudagraph_bytes),
                "cudagraph_in_budget": self.cudagraph_in_budget,
                "budget_gib": g(self.budget_bytes),
                "available_kv_cache_gib": g(self.available_kv_cache_bytes),
                "available_kv_cache_bytes": self.available_kv_cache_bytes,
                "peak_process_gib": g(self.peak_process_bytes),
            },
            # The figures vLLM's own start-up lines print, in their version's meaning.
            "vllm_log": {
                "model_loading_gib": g(self.weights_bytes),
                "consumed_memory_gib": g(self.ledger_consumed_bytes),
                "peak_activation_gib": g(self.ledger_activation_bytes),
                "cudagraph_memory_gib": g(self.cudagraph_captured_bytes),
                "ledger_line": self.ledger_line,
                "available_kv_cache_gib": g(self.available_kv_cache_bytes),
                "kv_cache_tokens": self.kv_cache_tokens,
                "max_concurrency": self.max_concurrency,
            },
            "components": comps,
            "kv_cache": None if self.kv is None else {**asdict(self.kv), "groups": [asdict(x) for x in self.kv.groups]},
            "kv_cache_tokens": self.kv_cache_tokens,
            "max_concurrency": self.max_concurrency,
            "num_gpu_blocks": self.num_gpu_blocks,
            "fits": self.fits,
            "reason": self.reason,
            "failure": self.failure,
            "max_model_len_fit": self.max_model_len_fit,
            "total_params": self.total_params,
            "param_counts": self.param_counts,
            "per_stage": list(self.per_stage),
            "encoder_profile": self.encoder_profile,
            "compile_cache": self.compile_cache,
            "first_start": None if self.first_start is None else {
                "cold_compile_gib": g(self.first_start["cold_compile_bytes"]),
                "available_kv_cache_gib": g(self.first_start["available_kv_cache_bytes"]),
                **{k: v for k, v in self.first_start.items()
                   if k not in ("cold_compile_bytes", "available_kv_cache_bytes")}},
            "warnings": list(self.warnings),
        }
