"""What a checkpoint holds, as read from headers only: its config and each stored tensor's dtype and size."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any

# safetensors header dtype -> the name used everywhere else in gpuplan. FP8-E4M3 becomes "fp8" because
# that is what vLLM calls the format it loads; the other float8 variants keep distinct names so that
# nobody mistakes them for it.
SAFETENSORS_DTYPES: dict[str, str] = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "uint16",
    "I16": "int16",
    "F16": "float16",
    "BF16": "bfloat16",
    "U32": "uint32",
    "I32": "int32",
    "F32": "float32",
    "U64": "uint64",
    "I64": "int64",
    "F64": "float64",
    "F8_E4M3": "fp8",
    "F8_E5M2": "fp8_e5m2",
    "F8_E8M0": "float8_e8m0fnu",
    "F4": "float4_e2m1",
}

# Bits per element of each normalised dtype (bits, not bytes: safetensors' F4 counts 4-bit elements).
DTYPE_BITS: dict[str, int] = {
    "bool": 8,
    "uint8": 8,
    "int8": 8,
    "uint16": 16,
    "int16": 16,
    "float16": 16,
    "bfloat16": 16,
    "uint32": 32,
    "int32": 32,
    "float32": 32,
    "uint64": 64,
    "int64": 64,
    "float64": 64,
    "fp8": 8,
    "fp8_e5m2": 8,
    "float8_e8m0fnu": 8,
    "float4_e2m1": 4,
}

# Aliases people (and torch) write for the same dtypes.
_ALIASES: dict[str, str] = {
    "float8_e4m3fn": "fp8",
    "float8_e4m3": "fp8",
    "f8_e4m3fn": "fp8",
    "float8_e5m2": "fp8_e5m2",
    "half": "float16",
    "float": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
    "fp32": "float32",
}


def normalize_dtype(dtype: str) -> str:
    """'BF16' / 'torch.bfloat16' / 'bf16' -> 'bfloat16'; 'F8_E4M3' / 'float8_e4m3fn' -> 'fp8'.

    Unknown names pass through unchanged (GGUF types such as 'Q4_K' are handled by the GGUF reader).
    """
    text = dtype.strip()
    if text in SAFETENSORS_DTYPES:
        return SAFETENSORS_DTYPES[text]
    low = text.lower().removeprefix("torch.")
    if low in DTYPE_BITS:
        return low
    return _ALIASES.get(low, text)


def ggml_block(type_name: str) -> tuple[int, int] | None:
    """(elements per block, bytes per block) of a GGML type name such as 'Q8_0', or None if unknown."""
    try:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    except ImportError:  # pragma: no cover - gguf is a hard dependency; keep the error local anyway
        return None
    try:
        qtype = GGMLQuantizationType[type_name]
    except KeyError:
        return None
    return GGML_QUANT_SIZES[qtype]


def dtype_nbytes(dtype: str, shape: tuple[int, ...]) -> int | None:
    """Exact bytes of a tensor of `shape` stored as `dtype` (torch-style or GGML name), None if unknown."""
    n = prod(shape)
    norm = normalize_dtype(dtype)
    if norm in DTYPE_BITS:
        bits = n * DTYPE_BITS[norm]
        return bits // 8 if bits % 8 == 0 else None
    block = ggml_block(dtype)
    if block is None:
        return None
    per_block, block_bytes = block
    if n % per_block:
        return None
    return n // per_block * block_bytes


@dataclass(frozen=True)
class CheckpointTensor:
    name: str
    dtype: str  # normalised torch-style name, or the GGML type name for GGUF
    shape: tuple[int, ...]  # as stored (packed int32 shapes for AWQ/GPTQ); logical order for GGUF
    nbytes: int  # exact stored bytes (safetensors data_offsets span, or GGML blocks)


@dataclass(frozen=True)
class CheckpointInfo:
    ref: str
    source: str  # "hub" | "local" | "gguf" | "config"
    config: dict[str, Any]
    tensors: tuple[CheckpointTensor, ...] | None = None  # None: config only, weights unknown
    revision: str | None = None  # resolved commit when known, else the requested revision
    notes: tuple[str, ...] = field(default=())
    quantization_config: dict[str, Any] | None = None
    gguf_arch: str | None = None

    @property
    def total_bytes(self) -> int | None:
        if self.tensors is None:
            return None
        return sum(t.nbytes for t in self.tensors)
