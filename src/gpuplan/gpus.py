"""The GPU catalog, read once from gpuplan/data/gpus.json.

memory_bytes is the CUDA-visible total (torch.cuda.mem_get_info()[1]) because that, not the marketing
size, is what vLLM multiplies by gpu_memory_utilization. Each figure carries where it came from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .datafiles import data_json
from .errors import GpuplanError

__all__ = ["GPU", "list_gpus", "find_gpu", "card_of_memory", "resolve_gpu_memory", "normalize_gpu_name",
           "size_ambiguity"]

GIB = 1 << 30


# The GPU assumed when a request names none: the common cloud H100 80GB (reports say so).
DEFAULT_GPU = "H100"
DEFAULT_GPU_NOTE = "no GPU given: assumed one H100 80GB (79.19 GiB CUDA-visible); name yours with --gpu / gpu"


@dataclass(frozen=True)
class GPU:
    name: str
    aliases: tuple[str, ...]
    vendor: str
    memory_bytes: int
    memory_source: str
    bandwidth_gbps: float | None
    bf16_tflops: float | None
    fp8_tflops: float | None
    fp8_support: bool
    compute_capability: float | None
    price_usd_per_hour: float | None
    price_source: str
    price_date: str | None
    note: str = ""
    fabric: str = "pcie"  # nvswitch | pcie: decides NCCL's multi-GPU buffers
    sm_count: int | None = None  # streaming multiprocessors: the CUDA context grows with them
    # GPUs sharing the host's memory: the free memory a typical host leaves at start-up, which vLLM checks the
    # budget against (it reads free memory from the host there)
    host_free_gib: float | None = None

    @property
    def resident_threads(self) -> int | None:
        """Threads the GPU keeps resident at once (SMs x the architecture's maximum per SM): the CUDA driver
        reserves local memory for each, so the context every process pays for grows with this figure."""
        per_sm = _threads_per_sm(self.compute_capability)
        return self.sm_count * per_sm if self.sm_count and per_sm else None

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GIB

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GPU:
        return cls(
            name=data["name"],
            aliases=tuple(data.get("aliases", ())),
            vendor=data["vendor"],
            fabric=data.get("fabric", "pcie"),
            sm_count=data.get("sm_count"),
            host_free_gib=data.get("host_free_gib"),
            memory_bytes=int(data["memory_bytes"]),
            memory_source=data["memory_source"],
            bandwidth_gbps=data.get("bandwidth_gbps"),
            bf16_tflops=data.get("bf16_tflops"),
            fp8_tflops=data.get("fp8_tflops"),
            fp8_support=bool(data.get("fp8_support", False)),
            compute_capability=data.get("compute_capability"),
            price_usd_per_hour=data.get("price_usd_per_hour"),
            price_source=data.get("price_source", ""),
            price_date=data.get("price_date"),
            note=data.get("note", ""),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "vendor": self.vendor,
            "memory_bytes": self.memory_bytes,
            "memory_gib": round(self.memory_gib, 2),
            "memory_source": self.memory_source,
            "bandwidth_gbps": self.bandwidth_gbps,
            "bf16_tflops": self.bf16_tflops,
            "fp8_tflops": self.fp8_tflops,
            "fp8_support": self.fp8_support,
            "compute_capability": self.compute_capability,
            "sm_count": self.sm_count,
            "host_free_gib": self.host_free_gib,
            "price_usd_per_hour": self.price_usd_per_hour,
            "price_source": self.price_source,
            "price_date": self.price_date,
            "note": self.note,
        }


@lru_cache(maxsize=1)
def _threads_table() -> dict[str, int]:
    return {k: v for k, v in data_json("gpus.json")["max_threads_per_sm"].items() if not k.startswith("_")}


def _threads_per_sm(cc: float | None) -> int | None:
    return None if cc is None else _threads_table().get(f"{cc:.1f}")


# Brand words people add or leave out ("NVIDIA GeForce RTX 4090" vs "RTX 4090" vs "Tesla T4").
_BRAND_WORDS = re.compile(r"\b(nvidia|geforce|amd|instinct|tesla|intel)\b")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize_gpu_name(name: str) -> str:
    """Key for loose matching: lower case, brand words dropped, only letters and digits kept."""
    return _NON_ALNUM.sub("", _BRAND_WORDS.sub("", name.lower()))


@lru_cache(maxsize=1)
def _load() -> tuple[tuple[GPU, ...], dict[str, GPU]]:
    raw = data_json("gpus.json")
    # A cloud instance family is one more name for its GPU: it pins the memory size a bare "A100" leaves open.
    families: dict[str, list[str]] = {}
    for inst in raw.get("cloud_instances", ()):
        families.setdefault(inst["gpu"], []).append(inst["family"])
    gpus = tuple(GPU.from_dict({**d, "aliases": [*d.get("aliases", ()), *families.get(d["name"], ())]})
                 for d in raw["gpus"])
    index: dict[str, GPU] = {}
    for gpu in gpus:
        for name in (gpu.name, *gpu.aliases):
            index.setdefault(normalize_gpu_name(name), gpu)
    return gpus, index


def list_gpus() -> list[GPU]:
    """All catalog GPUs, in data-file order (vendor and generation grouped)."""
    return list(_load()[0])


def _tokens(name: str) -> list[str]:
    return [t for t in _NON_ALNUM.split(_BRAND_WORDS.sub(" ", name.lower())) if t]


def _contains(tokens: list[str], part: list[str]) -> bool:
    n = len(part)
    return any(tokens[i:i + n] == part for i in range(len(tokens) - n + 1))


@lru_cache(maxsize=512)
def _within(name: str) -> GPU | None:
    """The GPU whose longest name or alias appears as whole words inside a longer description, as logs and
    reports write them ("RTX 5090 (32,607 MiB)", "2x NVIDIA A10G 24GB", "H100 NVL, driver 550"); None when
    nothing appears or two different GPUs tie for the longest match."""
    tokens = _tokens(name)
    best: list[tuple[int, GPU]] = []
    for gpu in _load()[0]:
        for alias in (gpu.name, *gpu.aliases):
            part = _tokens(alias)
            if part and _contains(tokens, part):
                best.append((len("".join(part)), gpu))
    if not best:
        return None
    top = max(n for n, _ in best)
    winners = {g.name for n, g in best if n == top}
    if len(winners) != 1:
        return None
    return _sized(next(g for n, g in best if n == top), name)


_SIZE = re.compile(r"\b(\d{2,3})\s*gi?b?\b")


def _sized(gpu: GPU, name: str) -> GPU:
    """A memory size in the description ("A100 40G", "Tesla V100-PCIE-32GB") picks the sibling of that size."""
    m = _SIZE.search(name.lower())
    if not m or f"{m.group(1)}gb" in _tokens(gpu.name):
        return gpu
    model = next((t for t in _tokens(gpu.name) if any(c.isdigit() for c in t)), None)
    for other in _load()[0]:
        toks = _tokens(other.name)
        if model in toks and f"{m.group(1)}gb" in toks:
            return other
    return gpu


# Words that name a board's form factor, not its memory: "A100 SXM4" is still either A100.
_FORM_WORDS = frozenset({"sxm", "sxm2", "sxm4", "sxm5", "pcie", "hbm2", "hbm2e", "hbm3"})


def _family(gpu_name: str) -> tuple[str | None, str | None]:
    """(model word, size word) of a catalog name: ("a100", "40gb") for "NVIDIA A100 SXM4 40GB"."""
    tokens = _tokens(gpu_name)
    model = next((t for t in tokens if any(c.isdigit() for c in t) and not t.endswith("gb")), None)
    size = next((t for t in tokens if re.fullmatch(r"\d+gb", t)), None)
    rest = set(tokens) - _FORM_WORDS - {model, size}
    return (model, size) if not rest else (None, None)


@lru_cache(maxsize=256)
def size_ambiguity(name: str) -> str | None:
    """A warning when `name` picks a GPU sold in several memory sizes without saying which ("A100", "V100")."""
    gpu = find_gpu(name)
    model, own_size = _family(gpu.name)
    # A size, an instance family or any other word in the name already decided which card it is.
    if model is None or set(_tokens(name)) - _FORM_WORDS - {model}:
        return None
    sizes = sorted({size for g in _load()[0] for m, size in [_family(g.name)] if m == model and size},
                   key=lambda s: int(s[:-2]))
    if len(sizes) < 2:
        return None
    other = next(s for s in sizes if s != own_size).upper()
    return (f"{name!r} comes as {' and '.join(s.upper() for s in sizes)}; assumed {gpu.name}. "
            f"Name the size (e.g. '{name} {other}') if yours differs.")


def find_gpu(name: str) -> GPU:
    """The GPU for a name or alias, matched loosely; unknown names raise GpuplanError(field="gpu")."""
    gpus, index = _load()
    gpu = index.get(normalize_gpu_name(name or "")) or _within(name or "")
    if gpu is None:
        raise GpuplanError(
            field="gpu",
            message=f"unknown GPU {name!r}; use one of the accepted names, or give gpu_memory_gib",
            accepted=[g.name for g in gpus],
        )
    return gpu


@lru_cache(maxsize=256)
def card_of_memory(memory_bytes: int | None) -> GPU | None:
    """An unnamed card told by its CUDA-visible total alone, as vLLM and nvidia-smi print it (to 0.01 GiB): the
    catalog card of that total, where every card of that total has the same compute capability and interconnect
    (23.58 GiB is an RTX 3090, 23.57 an RTX A5000, 178.36 a B200); None otherwise (a round 80 or 24 matches no
    card's exact total)."""
    if not memory_bytes:
        return None
    gib = memory_bytes / GIB
    found = [g for g in _load()[0] if g.compute_capability and abs(g.memory_bytes / GIB - gib) <= 0.005]
    if not found or len({(g.compute_capability, g.fabric) for g in found}) > 1:
        return None
    return found[0]


def wsl_memory_bytes(gpu: GPU) -> int:
    """The CUDA-visible total of `gpu` under WSL2: Windows' driver reports the whole board (an RTX 4090's 24,563 MiB
    and an RTX 4060's 8,187 MiB in torch prints on Windows, 23.99 GiB on a WSL2 vLLM log, against 23.52 and 7.62 GiB
    on Linux), so the board's size in whole GiB, less the few MiB those prints show missing."""
    return math.ceil(gpu.memory_bytes / GIB) * GIB - 8 * 2**20


def visible_memory_bytes(gpu: GPU, platform: str = "linux") -> int:
    """What CUDA reports as `gpu`'s total on `platform` ("linux" or "wsl")."""
    return wsl_memory_bytes(gpu) if platform == "wsl" else gpu.memory_bytes


def resolve_gpu_memory(
    gpu: str | None, gpu_memory_gib: float | None, platform: str = "linux"
) -> tuple[str | None, int | None, float | None]:
    """(GPU name, CUDA-visible total bytes, compute capability) for the request.

    gpu alone: the catalog figures (under `platform` "wsl", the whole board, as Windows reports it). gpu_memory_gib alone: an anonymous card of that size (name and
    compute capability unknown here; the engine recognises a catalog card's exact total, card_of_memory). Both: the named GPU with the stated memory, for cards whose driver or
    MIG slice shows a different total. Neither: (None, None, None); the caller decides what that means.
    """
    memory: int | None = None
    if gpu_memory_gib is not None:
        try:
            value = float(gpu_memory_gib)
        except (TypeError, ValueError) as exc:
            raise GpuplanError(
                field="gpu_memory_gib", message=f"must be a number, got {gpu_memory_gib!r}"
            ) from exc
        if not math.isfinite(value) or value <= 0:
            raise GpuplanError(
                field="gpu_memory_gib", message=f"must be a positive number of GiB, got {gpu_memory_gib!r}"
            )
        memory = round(value * GIB)
    if gpu is None or not str(gpu).strip():
        return None, memory, None
    found = find_gpu(gpu)
    if memory is None:
        memory = visible_memory_bytes(found, platform)
    return found.name, memory, found.compute_capability
