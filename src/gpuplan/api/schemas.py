"""Request and response models of the REST API (pydantic at the edge; the core stays plain dataclasses).

Value lists are checked by validators that raise a `PydanticCustomError` carrying `accepted`, so the
400 answer can list the valid values; the same lists go into the OpenAPI schema as `enum`s so clients
(and the schema-driven tests) see them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..datafiles import data_json
from ..deployment import Deployment, speculative_fields
from ..engines.vllm.drafter import SIZED_METHODS as SPEC_METHODS
from ..engines.vllm.drafter import normalized_method
from ..errors import GpuplanError
from ..report import FAILURE_KINDS

GIB_NOTE = "in GiB (2^30 bytes, the unit vLLM logs), per GPU"

# Seed 002: weight dtypes it documents, plus "auto" (the checkpoint's own dtype, as vLLM's --dtype auto).
SEED_DTYPES = ("float32", "float16", "bfloat16", "int8", "int4", "auto")
# KV cache dtypes the seed route accepts: the seed's dtypes vLLM can hold a KV cache in, plus vLLM's names.
SEED_KV_DTYPES = ("float32", "float16", "bfloat16", "int8", "auto", "fp8", "fp8_e4m3", "fp8_e5m2")
# Seed aliases first, then vLLM --quantization method names. "none" is the explicit "no quantization".
QUANT_ALIASES = ("Q4", "Q8")
QUANT_METHODS = (
    "awq",
    "awq_marlin",
    "gptq",
    "gptq_marlin",
    "fp8",
    "fbgemm_fp8",
    "bitsandbytes",
    "compressed-tensors",
    "mxfp4",
    "modelopt",
    "modelopt_fp4",
    "gguf",
    "experts_int8",
    "moe_wna16",
    "inc",
)
SEED_QUANTIZATIONS = QUANT_ALIASES + QUANT_METHODS + ("none",)

# /v1 takes vLLM's own names.
V1_DTYPES = ("auto", "bfloat16", "float16", "float32", "half", "float")
V1_KV_DTYPES = ("auto", "bfloat16", "float16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_ds_mla")
V1_QUANTIZATIONS = QUANT_METHODS


def _plan_quantizations() -> tuple[str, ...]:
    # The planner also takes its own format names ("int8": an assumed W8A8 checkpoint) and spellings of
    # "unquantized" ("bf16", "none"), from its data file.
    planner = data_json("planner.json")
    own = [q["key"] for q in planner["quantizations"] if q["key"]]
    return tuple(dict.fromkeys((*QUANT_METHODS, *own, *planner["quantization_aliases"])))


V1_PLAN_QUANTIZATIONS = _plan_quantizations()

# Bounds keep absurd input from turning into absurd work; they are far beyond any real deployment.
MAX_SEQ = 1 << 27  # 134M tokens (Llama 4 Scout advertises 10M)
MAX_SEQS = 1 << 20
MAX_CURVE_POINTS = 64
MAX_GPUS = 1024
MM_MODALITIES = ("image", "video", "audio")
MM_PROCESSOR_KEYS = ("max_pixels",)


def _one_of(value: str | None, accepted: tuple[str, ...], *, case_insensitive: bool = False) -> str | None:
    if value is None:
        return None
    if case_insensitive:
        for a in accepted:
            if a.lower() == value.lower():
                return a
    elif value in accepted:
        return value
    raise PydanticCustomError(
        "unsupported_value",
        "unsupported value '{value}'; accepted: {shown}",
        {"value": value, "shown": ", ".join(accepted), "accepted": list(accepted)},
    )


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer: a message naming the field, the field, and the valid values when a list exists."""

    detail: str
    field: str | None = None
    accepted: list[str] | None = None


# ----------------------------------------------------------------------------------------- seed 002


class Architecture(BaseModel):
    """Seed 002's `architecture` object: overrides the dims of the model (or of the estimated one)."""

    model_config = ConfigDict(extra="forbid")

    num_layers: Annotated[int | None, Field(gt=0, le=4096, description="transformer layers")] = None
    hidden_size: Annotated[int | None, Field(gt=0, le=1 << 18, description="hidden dimension")] = None
    num_heads: Annotated[int | None, Field(gt=0, le=4096, description="attention (query) heads")] = None
    head_dim: Annotated[int | None, Field(gt=0, le=4096, description="dimension per attention head")] = None
    intermediate_size: Annotated[int | None, Field(gt=0, le=1 << 21, description="feed-forward size")] = None
    num_kv_heads: Annotated[
        int | None, Field(gt=0, le=4096, description="extra: KV heads (GQA); defaults to num_heads when estimated")
    ] = None

    @model_validator(mode="after")
    def _consistent(self) -> Architecture:
        # The seed's estimation derives head_dim = hidden_size / num_heads, so a mismatch means the
        # object describes two different models; refuse instead of silently picking one.
        if self.hidden_size and self.num_heads:
            if self.hidden_size % self.num_heads:
                raise PydanticCustomError(
                    "inconsistent_architecture",
                    "hidden_size ({h}) is not divisible by num_heads ({n})",
                    {"h": self.hidden_size, "n": self.num_heads, "field": "architecture.hidden_size"},
                )
            if self.head_dim and self.head_dim * self.num_heads != self.hidden_size:
                raise PydanticCustomError(
                    "inconsistent_architecture",
                    "head_dim ({d}) x num_heads ({n}) = {p} differs from hidden_size ({h})",
                    {"d": self.head_dim, "n": self.num_heads, "p": self.head_dim * self.num_heads,
                     "h": self.hidden_size, "field": "architecture.head_dim"},
                )
        if self.num_heads and self.num_kv_heads and self.num_heads % self.num_kv_heads:
            raise PydanticCustomError(
                "inconsistent_architecture",
                "num_heads ({n}) is not a multiple of num_kv_heads ({k})",
                {"n": self.num_heads, "k": self.num_kv_heads, "field": "architecture.num_kv_heads"},
            )
        return self

    def given(self) -> dict[str, int]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


SEED_EXAMPLE: dict[str, Any] = {
    "model_name": "meta-llama/Llama-2-7b",
    "max_seq_len": 2048,
    "dtype": "float16",
    "max_batch_size": 32,
    "gpu_memory_utilization": 0.9,
    "quantization": None,
    "params_billions": None,
    "architecture": {
        "num_layers": 32,
        "hidden_size": 4096,
        "num_heads": 32,
        "head_dim": 128,
        "intermediate_size": 11008,
    },
}


class SeedEstimateRequest(BaseModel):
    """`POST /estimate-gpu-memory` body, field names exactly as seed 002 (plus optional extras)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SEED_EXAMPLE]})

    model_name: Annotated[str, Field(min_length=1, max_length=256, description="catalog name or HF id")]
    max_seq_len: Annotated[int, Field(gt=0, le=MAX_SEQ, description="longest sequence (prompt + output) per request")]
    dtype: Annotated[str, Field(description="weight dtype", json_schema_extra={"enum": list(SEED_DTYPES)})] = "float16"
    kv_cache_dtype: Annotated[
        str | None,
        Field(description="KV cache dtype; default: same as dtype", json_schema_extra={"enum": list(SEED_KV_DTYPES)}),
    ] = None
    max_batch_size: Annotated[int, Field(gt=0, le=MAX_SEQS, description="concurrent sequences (vLLM max_num_seqs)")] = 32
    max_model_len: Annotated[int | None, Field(gt=0, le=MAX_SEQ, description="vLLM max_model_len; default: max_seq_len")] = None
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1, description="fraction of the GPU vLLM may use")] = 0.9
    quantization: Annotated[
        str | None,
        Field(description="Q4 (4-bit AWQ-style, group 128), Q8 (8-bit fp8), a vLLM method name, or absent",
              json_schema_extra={"enum": list(SEED_QUANTIZATIONS)}),
    ] = None
    params_billions: Annotated[
        float | None, Field(gt=0, le=100_000, description="parameter count in billions, for models not in the catalog")
    ] = None
    architecture: Architecture | None = None
    # Extras (not in the seed) that make the answer more exact.
    num_kv_heads: Annotated[int | None, Field(gt=0, le=4096, description="extra: KV heads (GQA)")] = None
    gpu: Annotated[str | None, Field(max_length=64, description="extra: GPU catalog name, e.g. H100")] = None
    tensor_parallel_size: Annotated[int, Field(ge=1, le=MAX_GPUS, description="extra: vLLM tensor_parallel_size")] = 1
    vllm_version: Annotated[str | None, Field(max_length=32, description="extra: vLLM version, e.g. 0.11.0")] = None

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str) -> str:
        return _one_of(v, SEED_DTYPES) or "float16"

    @field_validator("kv_cache_dtype")
    @classmethod
    def _kv(cls, v: str | None) -> str | None:
        return _one_of(v, SEED_KV_DTYPES)

    @field_validator("quantization")
    @classmethod
    def _quant(cls, v: str | None) -> str | None:
        return _one_of(v, SEED_QUANTIZATIONS, case_insensitive=True)

    @model_validator(mode="after")
    def _lengths(self) -> SeedEstimateRequest:
        if self.max_model_len is not None and self.max_seq_len > self.max_model_len:
            raise PydanticCustomError(
                "seq_longer_than_model_len",
                "max_seq_len ({s}) is longer than max_model_len ({m}); vLLM rejects such requests",
                {"s": self.max_seq_len, "m": self.max_model_len, "field": "max_seq_len"},
            )
        return self


def _gib(description: str) -> Any:
    return Field(description=f"{description}, {GIB_NOTE}")


class ComponentsBreakdown(BaseModel):
    model_params: float = _gib("model weights")
    activation: float = _gib("activation peak of vLLM's profile run")
    min_kv_cache: float = _gib("KV cache with one PagedAttention block per sequence")
    max_kv_cache: float = _gib("KV cache with every sequence at max_seq_len")
    cuda_overhead: float = _gib("non-torch memory (CUDA context, NCCL, cuBLAS workspaces) + CUDA graphs")


class ArchitectureUsed(BaseModel):
    model_config = ConfigDict(extra="allow")

    num_layers: int
    hidden_size: int
    num_heads: int
    head_dim: int
    intermediate_size: int


class SeedEstimateResponse(BaseModel):
    """Seed 002's response fields (names kept; values in GiB), plus extras that say how exact they are."""

    model_config = ConfigDict(extra="allow")

    model_name: str
    model_params_memory_gb: float = _gib("model weights as vLLM allocates them")
    activation_memory_gb: float = _gib("activation peak of vLLM's profile run")
    min_kv_cache_memory_gb: float = _gib("KV cache when every sequence holds one PagedAttention block")
    max_kv_cache_memory_gb: float = _gib("KV cache when max_batch_size sequences each hold max_seq_len tokens")
    cuda_overhead_gb: float = _gib(
        "CUDA overhead: non-torch memory (CUDA context, NCCL buffers, cuBLAS/cuDNN workspaces) plus CUDA graphs"
    )
    total_min_memory_gb: float = _gib("weights + activation + min KV + CUDA overhead")
    total_max_memory_gb: float = _gib("weights + activation + max KV + CUDA overhead")
    recommended_memory_gb: float = _gib("total_max_memory_gb / gpu_memory_utilization")
    warning: str | None = Field(description="set when the model cannot fit the largest GPU, or the architecture is estimated")
    components_breakdown: ComponentsBreakdown
    architecture_used: ArchitectureUsed
    unit: str = Field(default="GiB", description="unit of every *_gb field: GiB (2^30 bytes)")


# ---------------------------------------------------------------------------------------------- /v1


class SpeculativeConfig(BaseModel):
    """vLLM's --speculative-config as gpuplan sizes it. Other keys vLLM takes (prompt_lookup_max, enforce_eager, ...)
    are accepted and change no memory figure."""

    model_config = ConfigDict(extra="allow")

    method: Annotated[str, Field(max_length=32, json_schema_extra={"enum": list(SPEC_METHODS)},
                                 description="mtp (the checkpoint's own MTP modules, any of vLLM's *_mtp names), "
                                             "eagle, eagle3 or draft_model (a separate draft checkpoint, named by "
                                             "model), ngram or suffix")]
    num_speculative_tokens: Annotated[int, Field(ge=1, le=64)] = 1
    model: Annotated[str | None, Field(max_length=256, description="the draft checkpoint for eagle, eagle3 and "
                                       "draft_model: a catalog name or a Hugging Face id, read like the model")] = None

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        v = v.strip().lower()
        try:
            normalized_method(v)  # the core's verdict on the method, raised here as the request's 4xx
        except GpuplanError as e:
            raise PydanticCustomError("unsupported_value", "{message}; accepted: {shown}",
                                      {"message": e.message, "shown": ", ".join(e.accepted or ()),
                                       "accepted": e.accepted}) from None
        return v


class DeploymentFields(BaseModel):
    """Deployment options with vLLM's names (exactly gpuplan.deployment.Deployment's fields)."""

    model_config = ConfigDict(extra="forbid")

    gpu: Annotated[str | None, Field(max_length=64, description="GPU catalog name, e.g. H100, A100-80GB")] = None
    gpu_memory_gib: Annotated[
        float | None, Field(gt=0, le=4096, description="CUDA-visible memory per GPU in GiB, instead of a GPU name")
    ] = None
    tensor_parallel_size: Annotated[int, Field(ge=1, le=MAX_GPUS)] = 1
    pipeline_parallel_size: Annotated[int, Field(ge=1, le=MAX_GPUS)] = 1
    data_parallel_size: Annotated[int, Field(ge=1, le=MAX_GPUS)] = 1
    enable_expert_parallel: bool = False
    gpu_memory_utilization: Annotated[float | None, Field(gt=0, le=1)] = None
    max_model_len: Annotated[int | None, Field(gt=0, le=MAX_SEQ)] = None
    max_num_seqs: Annotated[int | None, Field(gt=0, le=MAX_SEQS)] = None
    max_num_batched_tokens: Annotated[int | None, Field(gt=0, le=MAX_SEQ)] = None
    dtype: Annotated[str, Field(json_schema_extra={"enum": list(V1_DTYPES)})] = "auto"
    kv_cache_dtype: Annotated[str, Field(json_schema_extra={"enum": list(V1_KV_DTYPES)})] = "auto"
    quantization: Annotated[str | None, Field(json_schema_extra={"enum": list(V1_QUANTIZATIONS)})] = None
    enforce_eager: bool = False
    block_size: Annotated[int | None, Field(json_schema_extra={"enum": [1, 8, 16, 32, 64, 128, 256]})] = None
    api_server: bool = Field(default=True, description="True: `vllm serve`; False: offline LLM()")
    vllm_version: Annotated[str | None, Field(max_length=32, pattern=r"^\d+\.\d+(\.\d+)?[\w.+-]*$")] = None
    kv_cache_memory_bytes: Annotated[int | None, Field(gt=0, le=1 << 45)] = None
    max_cudagraph_capture_size: Annotated[int | None, Field(
        ge=1, le=MAX_SEQ, description="largest batch vLLM captures as a CUDA graph (0.11.1+); unset: min(2 x "
                                      "max_num_seqs, 512)")] = None
    disable_hybrid_kv_cache_manager: bool | None = None
    enable_prefix_caching: bool | None = None
    enable_chunked_prefill: bool | None = Field(
        default=None, description="unset: vLLM's default (V1 always chunks; V0 only above 32K tokens)")
    enable_lora: bool = Field(default=False, description="LoRA adapter slots beside every linear layer (vLLM 0.3+)")
    max_loras: Annotated[int, Field(ge=1, le=1024, description="adapters served at once (GPU slots)")] = 1
    max_lora_rank: Annotated[int, Field(json_schema_extra={"enum": [1, 8, 16, 32, 64, 128, 256, 320, 512]})] = 16
    lora_dtype: Literal["auto", "float16", "bfloat16"] = "auto"
    fully_sharded_loras: bool = False
    cpu_offload_gb: Annotated[
        float, Field(ge=0, le=1 << 14, description="GiB of weights per GPU offloaded to CPU memory (vLLM's name)")
    ] = 0.0
    compute_capability: Annotated[float | None, Field(ge=1, le=20)] = None
    limit_mm_per_prompt: Annotated[
        dict[str, Annotated[int, Field(ge=0, le=999)]],
        Field(max_length=3, description="items per prompt by modality (image, video, audio); 0 turns one off"),
    ] = Field(default_factory=dict)
    mm_processor_kwargs: Annotated[
        dict[str, Annotated[int, Field(gt=0, le=1 << 40)]],
        Field(max_length=1, description="the processor options that size vLLM's encoder profile: max_pixels"),
    ] = Field(default_factory=dict)
    skip_mm_profiling: bool = False
    language_model_only: bool = Field(
        default=False, description="vLLM 0.17+: every modality off; vLLM then builds no vision/audio tower weights")
    mm_encoder_tp_mode: Literal["weights", "data"] = Field(
        default="weights", description="vLLM 0.10.2+: data keeps whole vision towers on every TP rank (where the "
                                       "model supports it), each rank taking a share of the images")
    performance_mode: Literal["balanced", "throughput", "interactivity"] = Field(
        default="balanced", description="vLLM 0.17+: throughput doubles the defaulted max_num_seqs and "
                                        "max_num_batched_tokens; interactivity captures every batch size up to 32")
    compile_cache: Literal["warm", "cold"] = Field(
        default="warm", description="warm: a restart that finds torch.compile's cache filled (~/.cache/vllm kept); "
                                    "cold: a first start on an empty cache, whose compiler scratch vLLM 0.24+ "
                                    "charges as activation")
    disable_custom_all_reduce: bool = Field(
        default=False, description="vLLM's --disable-custom-all-reduce: NCCL all-reduces, whose CUDA graphs keep "
                                   "device memory of their own")
    moe_backend: str = Field(
        default="auto", pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,47}$",
        description="vLLM 0.17+'s --moe-backend: the fused-MoE kernels (auto: vLLM's pick). cutlass with NVFP4 "
                    "experts is sized from vLLM's CUTLASS FP4 kernel; the release's other values are accepted and "
                    "sized as the default kernel")
    mamba_ssm_cache_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        default="auto", description="vLLM's --mamba-ssm-cache-dtype: the SSM state's dtype in Mamba and "
                                    "linear-attention layers (auto: the model's config hook, else the model dtype)")
    interconnect: Literal["nvswitch", "pcie", "pcie_no_p2p"] | None = Field(
        default=None, description="how the GPUs reach each other, where the card's catalog entry does not say it: "
                                  "nvswitch (NVLink switch board), pcie (peer access over PCIe), pcie_no_p2p (no peer "
                                  "access: GeForce cards, pods without it, GPUs on different nodes); null: the catalog's")
    platform: Literal["linux", "wsl"] = Field(
        default="linux", description="wsl: vLLM under WSL2 on Windows (Docker Desktop included), where a named GPU "
                                     "shows its whole board memory and GPUs have no peer access")
    speculative_config: SpeculativeConfig | None = Field(
        default=None, description='speculative decoding, as vLLM\'s --speculative-config: {"method": "mtp", '
                                  '"num_speculative_tokens": 2} loads and caches the checkpoint\'s MTP modules')
    env: Annotated[dict[str, Annotated[str, Field(max_length=256)]], Field(max_length=16)] = Field(
        default_factory=dict, description="vLLM environment variables that change its accounting"
    )

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str) -> str:
        return _one_of(v, V1_DTYPES) or "auto"

    @field_validator("kv_cache_dtype")
    @classmethod
    def _kv(cls, v: str) -> str:
        return _one_of(v, V1_KV_DTYPES) or "auto"

    @field_validator("quantization")
    @classmethod
    def _quant(cls, v: str | None) -> str | None:
        return _one_of(v, V1_QUANTIZATIONS)

    @field_validator("limit_mm_per_prompt", "mm_processor_kwargs")
    @classmethod
    def _mm_keys(cls, v: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        accepted = MM_MODALITIES if info.field_name == "limit_mm_per_prompt" else MM_PROCESSOR_KEYS
        if any(key not in accepted for key in v):
            raise PydanticCustomError(
                "unsupported_value", "{field} accepts the keys {accepted}",
                {"field": info.field_name, "accepted": ", ".join(accepted)},
            )
        return v

    @field_validator("block_size")
    @classmethod
    def _block(cls, v: int | None) -> int | None:
        if v is not None and v not in (1, 8, 16, 32, 64, 128, 256):
            raise PydanticCustomError(
                "unsupported_value", "block_size must be one of 1, 8, 16, 32, 64, 128, 256",
                {"accepted": ["1", "8", "16", "32", "64", "128", "256"]},
            )
        return v

    @model_validator(mode="after")
    def _one_gpu(self) -> DeploymentFields:
        if self.gpu is not None and self.gpu_memory_gib is not None:
            raise PydanticCustomError(
                "gpu_twice", "give either gpu or gpu_memory_gib, not both", {"field": "gpu_memory_gib"}
            )
        return self

    def deployment(self) -> Deployment:
        """The core's Deployment; the GPU is resolved by the core (gpuplan.gpus), not here."""
        own = set(DeploymentFields.model_fields) - {"gpu", "gpu_memory_gib", "env", "limit_mm_per_prompt",
                                                    "mm_processor_kwargs", "speculative_config"}
        fields = self.model_dump(include=own)
        sc = self.speculative_config
        return Deployment(**fields, env=tuple(sorted(self.env.items())),
                          **speculative_fields(sc.model_dump() if sc else None),
                          limit_mm_per_prompt=tuple(sorted(self.limit_mm_per_prompt.items())),
                          mm_processor_kwargs=tuple(sorted(self.mm_processor_kwargs.items())))


ModelRef = Annotated[
    Annotated[str, Field(min_length=1, max_length=256)] | dict[str, Any],
    Field(description="catalog name or HF id (optionally @revision), or an HF config.json object"),
]


class V1EstimateRequest(DeploymentFields):
    model: ModelRef


class V1CurveRequest(DeploymentFields):
    model: ModelRef
    lengths: Annotated[
        list[Annotated[int, Field(gt=0, le=MAX_SEQ)]],
        Field(min_length=1, max_length=MAX_CURVE_POINTS, description="max_model_len values to evaluate"),
    ]
    concurrency: Annotated[int, Field(ge=1, le=MAX_SEQS, description="sequences that must fit at each length")] = 1


class V1PlanRequest(BaseModel):
    """What the planner searches: GPUs x counts x quantization x KV dtype, for one model."""

    model_config = ConfigDict(extra="forbid")

    model: ModelRef
    gpus: Annotated[list[Annotated[str, Field(max_length=64)]] | None, Field(max_length=64)] = None
    num_gpus: Annotated[int | None, Field(ge=1, le=MAX_GPUS, description="exactly this many GPUs")] = None
    max_gpus: Annotated[int, Field(ge=1, le=MAX_GPUS, description="search up to this many GPUs")] = 8
    quantization: Annotated[str | None, Field(json_schema_extra={"enum": list(V1_PLAN_QUANTIZATIONS)})] = None
    kv_cache_dtype: Annotated[str | None, Field(json_schema_extra={"enum": list(V1_KV_DTYPES)})] = None
    max_model_len: Annotated[int | None, Field(gt=0, le=MAX_SEQ)] = None
    concurrency: Annotated[int | None, Field(ge=1, le=MAX_SEQS)] = None
    vllm_version: Annotated[str | None, Field(max_length=32, pattern=r"^\d+\.\d+(\.\d+)?[\w.+-]*$")] = None
    gpu_memory_utilization: Annotated[float | None, Field(gt=0, le=1)] = None
    env: Annotated[
        dict[Annotated[str, Field(max_length=80, pattern=r"^VLLM_[A-Z0-9_]+$")], Annotated[str, Field(max_length=16)]],
        Field(max_length=8, description="vLLM environment variables, e.g. VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE"),
    ] = Field(default_factory=dict)
    prices: Annotated[
        dict[str, Annotated[float, Field(ge=0, le=10_000)]],
        Field(max_length=64, description="USD per GPU-hour by GPU name, overriding the catalog"),
    ] = Field(default_factory=dict)
    platform: Literal["linux", "wsl"] = Field(
        default="linux", description="wsl: vLLM under WSL2 on Windows, where every card shows its whole board")
    enable_lora: bool = Field(default=False, description="every option serves LoRA adapters (--enable-lora)")
    max_loras: Annotated[int, Field(ge=1, le=1024, description="adapters served at once (GPU slots)")] = 1
    max_lora_rank: Annotated[int, Field(json_schema_extra={"enum": [1, 8, 16, 32, 64, 128, 256, 320, 512]})] = 16
    speculative_config: SpeculativeConfig | None = Field(default=None, description="every option runs this drafter")

    @field_validator("quantization")
    @classmethod
    def _quant(cls, v: str | None) -> str | None:
        return _one_of(v, V1_PLAN_QUANTIZATIONS)

    @field_validator("kv_cache_dtype")
    @classmethod
    def _kv(cls, v: str | None) -> str | None:
        return _one_of(v, V1_KV_DTYPES)

    @model_validator(mode="after")
    def _counts(self) -> V1PlanRequest:
        if self.num_gpus is not None and self.num_gpus > self.max_gpus:
            raise PydanticCustomError(
                "num_gpus_over_max", "num_gpus ({n}) is above max_gpus ({m})",
                {"n": self.num_gpus, "m": self.max_gpus, "field": "num_gpus"},
            )
        return self


class V1EstimateResponse(BaseModel):
    """`MemoryReport.to_dict()`: per-GPU figures; every *_gib field is GiB (2^30 bytes)."""

    model_config = ConfigDict(extra="allow")

    model: str
    unit: str = Field(description="GiB (2^30 bytes)")
    gpu: dict[str, Any] = Field(description="name, memory_bytes, memory_gib (GiB, CUDA-visible)")
    deployment: dict[str, Any]
    per_gpu: dict[str, Any] = Field(
        description="weights_gib, activation_peak_gib, non_torch_gib, cudagraph_gib, budget_gib, "
        "available_kv_cache_gib, peak_process_gib: all GiB per GPU"
    )
    components: list[dict[str, Any]] = Field(description="per component: bytes, gib (GiB), exact")
    vllm_log: dict[str, Any] = Field(
        description="what vLLM's start-up lines print, in that version's meaning: model_loading_gib, "
        "consumed_memory_gib (0.27+: weights + non-torch + what the profile run keeps; null before), "
        "peak_activation_gib (the ledger's; from 0.27 it includes the CUDA-graph estimate), cudagraph_memory_gib "
        "(the pool the capture takes), available_kv_cache_gib, kv_cache_tokens, max_concurrency")
    kv_cache_tokens: int
    max_concurrency: float
    num_gpu_blocks: int
    fits: bool
    reason: str | None = None
    failure: str | None = Field(None, description="why it does not start, as a kind: " + ", ".join(FAILURE_KINDS))


class V1CurveResponse(BaseModel):
    points: list[dict[str, Any]] = Field(
        description="per length: max_model_len, per_gpu_required_bytes, kv_bytes, max_concurrency, fits (bytes, not GiB)"
    )
