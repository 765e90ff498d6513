"""GPU catalog: spellings, CUDA-visible totals, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gpuplan.errors import GpuplanError
from gpuplan.gpus import GIB, find_gpu, list_gpus, normalize_gpu_name, resolve_gpu_memory

SHARED_GPUS = Path("/work/shared/data/gpus.json")


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("H100", "NVIDIA H100 SXM5 80GB"),
        ("H100-80GB", "NVIDIA H100 SXM5 80GB"),
        ("H100 SXM", "NVIDIA H100 SXM5 80GB"),
        ("h100-sxm5-80gb", "NVIDIA H100 SXM5 80GB"),
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM5 80GB"),
        ("h100 pcie", "NVIDIA H100 PCIe 80GB"),
        ("H100 NVL", "NVIDIA H100 NVL 94GB"),
        ("H200", "NVIDIA H200 141GB"),
        ("A100-80GB", "NVIDIA A100 SXM4 80GB"),
        ("A100 80GB", "NVIDIA A100 SXM4 80GB"),
        ("a100-sxm4-80gb", "NVIDIA A100 SXM4 80GB"),
        ("A100", "NVIDIA A100 SXM4 80GB"),
        ("A100 40GB", "NVIDIA A100 SXM4 40GB"),
        ("L40S", "NVIDIA L40S 48GB"),
        ("l40", "NVIDIA L40 48GB"),
        ("L4", "NVIDIA L4 24GB"),
        ("A10G", "NVIDIA A10G 24GB"),
        ("A10", "NVIDIA A10 24GB"),
        ("Tesla T4", "NVIDIA T4 16GB"),
        ("RTX3090", "NVIDIA GeForce RTX 3090"),
        ("RTX 3090", "NVIDIA GeForce RTX 3090"),
        ("3090", "NVIDIA GeForce RTX 3090"),
        ("rtx 3090 ti", "NVIDIA GeForce RTX 3090 Ti"),
        ("4090", "NVIDIA GeForce RTX 4090"),
        ("NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090"),
        ("A6000", "NVIDIA RTX A6000"),
        ("A5000", "NVIDIA RTX A5000"),
        ("A4000", "NVIDIA RTX A4000"),
        ("A40", "NVIDIA A40 48GB"),
        ("H20", "NVIDIA H20 96GB"),
        ("B200", "NVIDIA B200 180GB"),
        ("GH200", "NVIDIA GH200 96GB"),
        ("MI300X", "AMD Instinct MI300X"),
        ("AMD Instinct MI300X", "AMD Instinct MI300X"),
    ],
)
def test_spellings_resolve(spelling: str, name: str) -> None:
    assert find_gpu(spelling).name == name


def test_cuda_visible_totals_match_vllm_logs() -> None:
    assert find_gpu("H100").memory_bytes == 85_029_158_912
    assert round(find_gpu("H100").memory_gib, 2) == 79.19
    assert find_gpu("H200").memory_bytes == 150_121_545_728
    assert round(find_gpu("H200").memory_gib, 2) == 139.81
    assert round(find_gpu("A100").memory_gib, 2) == 79.15
    assert round(find_gpu("RTX 3090").memory_gib, 2) == 23.58
    assert round(find_gpu("B200").memory_gib, 2) == 178.36


def test_unknown_gpu_lists_accepted_names() -> None:
    with pytest.raises(GpuplanError) as err:
        find_gpu("Voodoo 5 6000")
    assert err.value.field == "gpu"
    assert "NVIDIA H100 SXM5 80GB" in err.value.accepted
    assert len(err.value.accepted) == len(list_gpus())


def test_names_and_aliases_are_unambiguous() -> None:
    owner: dict[str, str] = {}
    for gpu in list_gpus():
        for name in (gpu.name, *gpu.aliases):
            key = normalize_gpu_name(name)
            assert owner.setdefault(key, gpu.name) == gpu.name, f"{name!r} names two GPUs"


def test_every_gpu_is_sourced_and_plausible() -> None:
    for gpu in list_gpus():
        assert gpu.memory_source.startswith(("logged by vLLM/torch:", "derived from nvidia-smi")), gpu.name
        assert 8 * GIB < gpu.memory_bytes < 300 * GIB, gpu.name
        assert gpu.price_source, gpu.name
        if gpu.price_usd_per_hour is not None:
            assert gpu.price_usd_per_hour > 0, gpu.name
            assert "on-demand" in gpu.price_source.lower() or "price" in gpu.price_source.lower(), gpu.name
        if gpu.vendor == "nvidia":
            assert gpu.compute_capability is not None, gpu.name
        if gpu.fp8_tflops is not None:
            assert gpu.fp8_support, gpu.name


@pytest.mark.skipif(not SHARED_GPUS.exists(), reason="shared reference data not present")
def test_covers_every_gpu_in_shared_data() -> None:
    shared = json.loads(SHARED_GPUS.read_text())["gpus"]
    for row in shared:
        # The shared names carry form-factor words ("(AWS g5)", "(HGX B200)"); the leading model is enough.
        key = row["name"].split("(")[0].strip()
        assert find_gpu(key), key


def test_resolve_gpu_memory() -> None:
    assert resolve_gpu_memory("H100", None) == ("NVIDIA H100 SXM5 80GB", 85_029_158_912, 9.0)
    assert resolve_gpu_memory(None, 24) == (None, 24 * GIB, None)
    name, total, cc = resolve_gpu_memory("A100", 39.5)
    assert (name, total, cc) == ("NVIDIA A100 SXM4 80GB", round(39.5 * GIB), 8.0)
    assert resolve_gpu_memory(None, None) == (None, None, None)


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, "lots"])
def test_resolve_gpu_memory_rejects_bad_sizes(bad) -> None:
    with pytest.raises(GpuplanError) as err:
        resolve_gpu_memory(None, bad)
    assert err.value.field == "gpu_memory_gib"


def test_resolve_unknown_gpu_raises() -> None:
    with pytest.raises(GpuplanError):
        resolve_gpu_memory("not-a-gpu", None)
