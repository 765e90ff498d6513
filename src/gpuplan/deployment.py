"""A deployment: where and how a model is served. Plain frozen data; the faces validate input into it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# vLLM 0.17+ --performance-mode
PERFORMANCE_MODES = ("balanced", "throughput", "interactivity")


@dataclass(frozen=True)
class Deployment:
    """vLLM-style serving options. None means "vLLM's default for this version, GPU and entry point"."""

    gpu_name: str | None = None
    # CUDA-visible total per GPU in bytes (what torch.cuda.mem_get_info reports). Required to size KV.
    gpu_memory_bytes: int | None = None
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
    enable_expert_parallel: bool = False
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    dtype: str = "auto"
    kv_cache_dtype: str = "auto"
    quantization: str | None = None
    enforce_eager: bool = False
    block_size: int | None = None
    api_server: bool = True
    vllm_version: str | None = None
    kv_cache_memory_bytes: int | None = None
    # vLLM 0.11.1+: the largest batch captured as a CUDA graph (None: min(2 x max_num_seqs, 512)).
    max_cudagraph_capture_size: int | None = None
    # None: the version's default (and VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE for <=0.12).
    disable_hybrid_kv_cache_manager: bool | None = None
    enable_prefix_caching: bool | None = None
    # None: vLLM's default (V1 always chunks; V0 only above 32K tokens, and not for every model).
    enable_chunked_prefill: bool | None = None
    # --enable-lora: max_loras adapter slots of max_lora_rank beside every linear layer (vLLM's names and defaults).
    enable_lora: bool = False
    max_loras: int = 1
    max_lora_rank: int = 16
    lora_dtype: str = "auto"
    fully_sharded_loras: bool = False
    cpu_offload_gb: float = 0.0
    # GPU compute capability (e.g. 9.0 for Hopper); None: from the GPU catalog or assume Hopper.
    compute_capability: float | None = None
    # Multimodal profiling knobs, as vLLM names them: limit_mm_per_prompt (modality -> count; 0 turns the modality
    # off), mm_processor_kwargs (max_pixels: the largest image a Qwen-VL processor accepts), skip_mm_profiling.
    limit_mm_per_prompt: tuple[tuple[str, int], ...] = field(default=())
    mm_processor_kwargs: tuple[tuple[str, int], ...] = field(default=())
    skip_mm_profiling: bool = False
    # vLLM 0.17+: every modality off, as limit_mm_per_prompt 0 for each (towers unbuilt where the class allows).
    language_model_only: bool = False
    # vLLM 0.10.2+: "data" keeps whole towers on every TP rank (where the model class supports it).
    mm_encoder_tp_mode: str = "weights"
    # vLLM 0.17+: "balanced" (default), "throughput" (doubles the defaulted batch limits) or "interactivity"
    # (captures every batch size up to 32 as a CUDA graph).
    performance_mode: str = "balanced"
    # "warm": a restart that finds torch.compile's cache filled; "cold": a first start on an empty cache (a new
    # command, or a container without a kept ~/.cache/vllm), whose compiler scratch vLLM charges as activation.
    compile_cache: str = "warm"
    # How the GPUs of one model replica reach each other: "nvswitch" (an NVLink switch board), "pcie" (peer access
    # over PCIe) or "pcie_no_p2p" (no peer access: GeForce cards, pods without it, GPUs on different nodes).
    # None: the GPU catalog's fabric for the card.
    interconnect: str | None = None
    # --disable-custom-all-reduce: the tensor-parallel all-reduces run on NCCL, in CUDA graphs too.
    disable_custom_all_reduce: bool = False
    # --moe-backend (vLLM 0.17+): the fused-MoE kernel family; "auto" lets vLLM pick (engines/vllm/moe_kernels.py).
    moe_backend: str = "auto"
    # --mamba-ssm-cache-dtype (vLLM 0.10.1+): the SSM state's dtype in Mamba / linear-attention layers; "auto"
    # leaves it to the model's config hook, else the model dtype.
    mamba_ssm_cache_dtype: str = "auto"
    # "linux", or "wsl": vLLM under WSL2 on Windows (Docker Desktop included), where CUDA reports a card's full
    # memory rather than what a Linux driver leaves, and GPUs get no peer access.
    platform: str = "linux"
    # --speculative-config's method and num_speculative_tokens (engines/vllm/drafter.py); None: no drafter.
    speculative_method: str | None = None
    num_speculative_tokens: int = 0
    # A separate draft checkpoint (EAGLE, EAGLE-3, draft_model): speculative_config's "model" as given, and the
    # config.json the face resolved it to (resolve.with_draft). The core reads the config; it never fetches one.
    speculative_model: str | None = None
    speculative_draft_config: Mapping[str, Any] | None = field(default=None, hash=False)
    env: tuple[tuple[str, str], ...] = field(default=())

    def with_(self, **changes) -> Deployment:
        return replace(self, **changes)

    def env_value(self, key: str) -> str | None:
        for k, v in self.env:
            if k == key:
                return v
        return None

    def env_flag(self, key: str) -> bool | None:
        """A boolean vLLM environment variable as vLLM's envs.py reads it: "1" or "true" (or another non-zero
        integer) turns it on, anything else off; None when it is not set, so that vLLM's default applies."""
        v = self.env_value(key)
        if v is None:
            return None
        v = v.strip().lower()
        return v == "true" or (v.lstrip("-").isdigit() and int(v) != 0)


def speculative_fields(cfg: Mapping[str, Any] | None,
                       draft_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """vLLM's --speculative-config read into Deployment's fields. num_speculative_tokens defaults to 1; before vLLM
    named methods, the draft `model` said it ("[ngram]" for prompt lookup, else a separate draft model).
    `draft_config`: the config.json that `model` names, where the method drafts with a separate checkpoint."""
    if not cfg:
        return {"speculative_method": None, "num_speculative_tokens": 0, "speculative_model": None,
                "speculative_draft_config": None}
    model = str(cfg.get("model") or "") or None
    prompt_lookup = model in ("[ngram]", "ngram")  # not a checkpoint: n-gram's name before methods had names
    method = cfg.get("method")
    if not method:
        method = "ngram" if prompt_lookup else "draft_model" if model else None
    return {"speculative_method": str(method) if method else None,
            "num_speculative_tokens": int(cfg.get("num_speculative_tokens") or 1),
            "speculative_model": None if prompt_lookup else model,
            "speculative_draft_config": dict(draft_config) if draft_config else None}

