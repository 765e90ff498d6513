"""Units. Memory is reported in GiB (2**30 bytes), the unit vLLM logs."""

GiB = 1 << 30
MiB = 1 << 20


def gib(n_bytes: float) -> float:
    return n_bytes / GiB


def round_gib(n_bytes: float, digits: int = 2) -> float:
    return round(n_bytes / GiB, digits)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def round_up(a: int, b: int) -> int:
    return cdiv(a, b) * b


DTYPE_BYTES = {
    "float32": 4,
    "float": 4,
    "float16": 2,
    "half": 2,
    "bfloat16": 2,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "fp8_inc": 1,
    "int8": 1,
    "uint8": 1,
    "int32": 4,
}
