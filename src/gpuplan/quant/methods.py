"""How each quantization method stores one linear layer on one GPU (bytes), as vLLM's create_weights does.

Sizes follow ../shared/reference/vllm-memory-model.md §5; every figure here is computed, not fitted.
"""

from __future__ import annotations

from ..model.spec import QuantConfig
from ..units import cdiv, round_up

# GGML block types: (bytes per block, elements per block).
GGML_TYPES: dict[str, tuple[int, int]] = {
    "F32": (4, 1), "F16": (2, 1), "BF16": (2, 1), "F64": (8, 1), "I8": (1, 1), "I16": (2, 1), "I32": (4, 1),
    "Q4_0": (18, 32), "Q4_1": (20, 32), "Q5_0": (22, 32), "Q5_1": (24, 32), "Q8_0": (34, 32), "Q8_1": (36, 32),
    "Q2_K": (84, 256), "Q3_K": (110, 256), "Q4_K": (144, 256), "Q5_K": (176, 256), "Q6_K": (210, 256),
    "Q8_K": (292, 256), "IQ2_XXS": (66, 256), "IQ2_XS": (74, 256), "IQ2_S": (82, 256), "IQ3_XXS": (98, 256),
    "IQ3_S": (110, 256), "IQ1_S": (50, 256), "IQ1_M": (56, 256), "IQ4_NL": (18, 32), "IQ4_XS": (136, 256),
    "TQ1_0": (54, 256), "TQ2_0": (66, 256), "MXFP4": (17, 32),
}

STORED_DTYPE_BYTES: dict[str, float] = {
    "float32": 4, "float16": 2, "bfloat16": 2, "fp8": 1, "float8_e4m3fn": 1, "float8_e5m2": 1, "int8": 1,
    "uint8": 1, "int32": 4, "int64": 8, "int16": 2, "bool": 1, "F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1,
    "I32": 4, "I64": 8, "F8_E4M3": 1, "F8_E5M2": 1, "F64": 8, "float64": 8, "E8M0": 1, "F8_E8M0": 1,
}


def stored_bytes(dtype: str, numel: int) -> int:
    """Bytes of `numel` elements stored as `dtype` (a torch/safetensors dtype name or a GGML type)."""
    if dtype in GGML_TYPES:
        bb, be = GGML_TYPES[dtype]
        return cdiv(numel, be) * bb
    try:
        return int(numel * STORED_DTYPE_BYTES[dtype])
    except KeyError as exc:
        raise ValueError(f"unknown stored dtype {dtype!r}") from exc


def fp8_weights(q: QuantConfig | None) -> bool:
    """FP8 weights: the fp8 method, or compressed-tensors' W8A8-FP8 scheme."""
    return q is not None and (q.method == "fp8" or q.scheme == "w8a8_fp8")


# Methods a user can ask for with --quantization on an unquantized checkpoint (vLLM quantizes online).
ONLINE_METHODS = {"fp8", "bitsandbytes", "experts_int8", "fp8_per_tensor", "fp8_per_block", "fp8_per_channel"}

# Shorthand users type -> an assumed checkpoint format (planner / seed API "Q4", "Q8").
ASSUMED_FORMATS: dict[str, QuantConfig] = {
    "awq": QuantConfig("awq", bits=4, group_size=128, symmetric=False, source="assumed"),
    "awq_marlin": QuantConfig("awq", bits=4, group_size=128, symmetric=False, source="assumed"),
    "gptq": QuantConfig("gptq", bits=4, group_size=128, source="assumed"),
    "gptq_marlin": QuantConfig("gptq", bits=4, group_size=128, source="assumed"),
    "gptq-int8": QuantConfig("gptq", bits=8, group_size=128, source="assumed"),
    "fp8": QuantConfig("fp8", bits=8, source="online"),
    "fp8_per_tensor": QuantConfig("fp8", bits=8, source="online"),
    "fp8_per_block": QuantConfig("fp8", bits=8, weight_block=(128, 128), source="online"),
    "fp8_per_channel": QuantConfig("compressed-tensors", bits=8, scheme="w8a8_fp8", source="online"),
    "int8": QuantConfig("compressed-tensors", bits=8, scheme="w8a8_int8", source="assumed"),
    "w8a8": QuantConfig("compressed-tensors", bits=8, scheme="w8a8_int8", source="assumed"),
    "w4a16": QuantConfig("compressed-tensors", bits=4, group_size=128, scheme="w4a16", source="assumed"),
    "bitsandbytes": QuantConfig("bitsandbytes", bits=4, group_size=64, symmetric=True, source="online"),
    "bitsandbytes-8bit": QuantConfig("bitsandbytes", bits=8, source="online"),
    "nvfp4": QuantConfig("nvfp4", bits=4, group_size=16, scheme="nvfp4", source="assumed"),
    "modelopt_fp4": QuantConfig("nvfp4", bits=4, group_size=16, scheme="nvfp4", source="assumed"),
    "mxfp4": QuantConfig("mxfp4", bits=4, group_size=32, experts_only=True, source="assumed"),
    "experts_int8": QuantConfig("int8", bits=8, source="online"),
}

KNOWN_METHODS = sorted(set(ASSUMED_FORMATS) | {"compressed-tensors", "gguf", "modelopt", "awq_marlin"})


def linear_bytes(q: QuantConfig | None, out_f: int, in_f: int, act_bytes: int, *, in_full: int | None = None,
                 row_parallel: bool = False) -> int:
    """Bytes of one linear weight [out_f, in_f] (per-rank shape) under quantization `q`."""
    n = out_f * in_f
    if q is None:
        return n * act_bytes
    m = q.method
    if q.fp8_marlin:  # set only on FP8 formats (estimate._fp8_marlin)
        # marlin_utils_fp8.py: the FP8 bytes are repacked as they are, and the scales become one row per
        # weight block along K (one row without blocks) of output width, in the model dtype.
        rows = cdiv(in_f, q.weight_block[1]) if q.weight_block else 1
        return n + rows * out_f * act_bytes
    if m == "fp8":
        if q.weight_block:
            bn, bk = q.weight_block
            return n + 4 * cdiv(out_f, bn) * cdiv(in_f, bk)
        return n + 8  # fp8 weight + fp32 weight_scale and input_scale
    if m in ("int8", "experts_int8"):
        return n + 4 * out_f
    if m == "compressed-tensors":
        s = q.scheme
        if s in ("w8a8_int8", "w8a8_fp8"):
            if q.weight_block:
                bn, bk = q.weight_block
                return n + 4 * cdiv(out_f, bn) * cdiv(in_f, bk)
            return n + 4 * out_f  # channel-wise fp32 scales
        if s == "nvfp4":
            return _nvfp4(out_f, in_f)
        if s == "mxfp4":  # packed E2M1 pairs + one uint8 E8M0 scale per 32 values, as the checkpoint stores them
            return out_f * in_f // 2 + out_f * cdiv(in_f, 32)
        return _wna16(q, out_f, in_f, act_bytes, in_full, row_parallel)
    if m == "nvfp4":
        return _nvfp4(out_f, in_f)
    if m == "mxfp8":  # ModelOpt MXFP8: e4m3 weights and a uint8 E8M0 scale per 32 values along K
        return n + out_f * cdiv(in_f, 32)
    if m == "awq":
        g = q.group_size or in_f
        groups = cdiv(in_f, g)
        packed = n * q.bits // 8
        zeros = groups * out_f * q.bits // 8
        scales = groups * out_f * 2
        return packed + zeros + scales
    if m == "gptq":
        return _gptq(q, out_f, in_f, act_bytes, in_full, row_parallel)
    if m == "bitsandbytes":
        if q.bits == 8:
            return n + 4 * out_f
        blocks = cdiv(n, 64)
        if q.symmetric:  # double quantization: uint8 absmax + fp32 second-level per 256 blocks
            return n // 2 + blocks + 4 * cdiv(blocks, 256) + 64
        return n // 2 + 4 * blocks
    if m == "mxfp4":
        return n * act_bytes  # only experts are MXFP4; other linears stay in the activation dtype
    if m == "gguf":
        # Without a file we assume Q4_K-sized blocks for every linear (labelled an estimate upstream).
        return stored_bytes("Q4_K", n)
    raise ValueError(f"unknown quantization method {m!r}")


def _nvfp4(out_f: int, in_f: int) -> int:
    # uint8 packed pairs + fp8 scale per 16 values, scales swizzled to a 128x4 tile; fp32 global scales.
    scale_rows, scale_cols = round_up(out_f, 128), round_up(cdiv(in_f, 16), 4)
    return out_f * in_f // 2 + scale_rows * scale_cols + 8


def _wna16(q: QuantConfig, out_f: int, in_f: int, act_bytes: int, in_full: int | None, row: bool) -> int:
    g = q.group_size or in_f
    scale_in = (in_full or in_f) if (row and q.desc_act) else in_f
    packed = out_f * in_f * q.bits // 8
    scales = cdiv(scale_in, g) * out_f * act_bytes
    zeros = 0 if q.symmetric else cdiv(scale_in, g) * out_f * q.bits // 8
    return packed + scales + zeros


def _gptq(q: QuantConfig, out_f: int, in_f: int, act_bytes: int, in_full: int | None, row: bool) -> int:
    g = q.group_size or in_f
    scale_in = (in_full or in_f) if (row and q.desc_act) else in_f
    packed = out_f * in_f * q.bits // 8
    scales = cdiv(scale_in, g) * out_f * 2
    if q.symmetric and q.bits in (4, 8):
        # GPTQ-Marlin: qzeros replaced by an empty tensor; g_idx + sort indices only with act-order.
        return packed + scales + (8 * in_f if q.desc_act else 0)
    zeros = cdiv(scale_in, g) * out_f * q.bits // 8
    return packed + scales + zeros + 4 * in_f


def expert_bytes(q: QuantConfig | None, experts: int, out_f: int, in_f: int, act_bytes: int, *,
                 mxfp4_pad: tuple[int, int] | None = None) -> int:
    """Bytes of a fused MoE weight [E, out, in] (per-rank)."""
    if q is not None and q.method == "mxfp4":
        o, i = out_f, in_f
        if mxfp4_pad:
            o, i = round_up(o, mxfp4_pad[0]), round_up(i, mxfp4_pad[1])
        return experts * (o * i // 2 + o * cdiv(i, 32))
    return experts * linear_bytes(q, out_f, in_f, act_bytes)
