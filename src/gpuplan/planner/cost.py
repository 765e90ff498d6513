"""What GPU time costs: catalog prices (with their source and date), overridable per GPU."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..errors import GpuplanError
from ..gpus import GPU, find_gpu
from .types import GpuTimeCost


def normalize_prices(prices: Mapping[str, float] | None) -> dict[str, float]:
    """{"H100": 2.5} -> {"NVIDIA H100 SXM5 80GB": 2.5}: user spellings keyed by the catalog name."""
    out: dict[str, float] = {}
    for name, value in (prices or {}).items():
        try:
            usd = float(value)
        except (TypeError, ValueError) as exc:
            raise GpuplanError("prices", f"price for {name!r} must be a number of USD per GPU-hour") from exc
        if not math.isfinite(usd) or usd < 0:
            raise GpuplanError("prices", f"price for {name!r} must be a non-negative number, got {value!r}")
        out[find_gpu(name).name] = usd
    return out


def price_of(gpu: GPU, prices: Mapping[str, float]) -> tuple[float | None, str, str | None]:
    """(USD per GPU-hour, where it came from, date) — the user's price wins over the catalog's."""
    if gpu.name in prices:
        return prices[gpu.name], "given by the user", None
    if gpu.price_usd_per_hour is None:
        return None, "no price in the GPU catalog; pass one (prices={'GPU': usd_per_hour})", None
    return gpu.price_usd_per_hour, gpu.price_source, gpu.price_date


def gpu_time_cost(gpu: str, num_gpus: int, hours: float, price: float | None = None) -> GpuTimeCost:
    """Hardware cost of `num_gpus` x `gpu` for `hours` (e.g. a fine-tuning run), from the catalog price
    unless `price` (USD per GPU-hour) is given. Rental price only: no storage, egress or data work."""
    if num_gpus < 1:
        raise GpuplanError("num_gpus", f"must be >= 1, got {num_gpus}")
    if not math.isfinite(hours) or hours < 0:
        raise GpuplanError("hours", f"must be a non-negative number, got {hours}")
    g = find_gpu(gpu)
    usd, source, date = price_of(g, normalize_prices({g.name: price}) if price is not None else {})
    if usd is None:
        return GpuTimeCost(g.name, num_gpus, hours, None, source, None, None, None,
                           note="unknown price: give one to compute the cost")
    per_hour = round(usd * num_gpus, 4)
    return GpuTimeCost(g.name, num_gpus, hours, usd, source, date, per_hour, round(per_hour * hours, 2),
                       note="GPU rental only (no storage, egress, data preparation or failed runs)")
