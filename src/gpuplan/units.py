"""Units. Memory is reported in GiB (2**30 bytes), the unit vLLM logs."""

from collections.abc import Callable

GiB = 1 << 30
MiB = 1 << 20


def gib(n_bytes: float) -> float:
    return n_bytes / GiB


def round_gib(n_bytes: float, digits: int = 2) -> float:
    return round(n_bytes / GiB, digits)


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def largest_within(need: Callable[[int], int], budget: int, upper: int) -> int:
    """The largest n in [0, upper] whose need(n) fits the budget (need grows with n): vLLM's longest
    max_model_len that fits, found by bisection as its _estimate_max_model_len does."""
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if need(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


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
    "int64": 8,
}
