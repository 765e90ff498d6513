"""GPU catalog: spellings, CUDA-visible totals, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gpuplan.errors import GpuplanError
from gpuplan.gpus import GIB, card_of_memory, find_gpu, list_gpus, normalize_gpu_name, resolve_gpu_memory

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
        assert 6 * GIB < gpu.memory_bytes < 300 * GIB, gpu.name  # 8 GB cards show 7.6-7.7 GiB
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


def test_an_unnamed_card_is_told_by_its_exact_visible_total() -> None:
    """vLLM logs 'total_gpu_memory (23.58GiB)' without naming the card: that exact total is an RTX 3090's, so
    an estimate for it gets a PCIe card's NCCL buffers and Ampere's kernels, not an H100's. A round 24 GiB names
    no card, and stays the anonymous card it was."""
    assert card_of_memory(round(23.58 * GIB)).name == "NVIDIA GeForce RTX 3090"
    assert card_of_memory(round(178.36 * GIB)).name == "NVIDIA B200 180GB"
    assert card_of_memory(round(24 * GIB)) is None
    assert card_of_memory(None) is None


def test_llama_8b_at_tp2_on_two_unnamed_3090_sized_cards_uses_pcie_buffers() -> None:
    from gpuplan.catalog import find_model
    from gpuplan.deployment import Deployment
    from gpuplan.engines.vllm.estimate import estimate
    from gpuplan.model.adapters import build_spec

    spec = build_spec(find_model("meta-llama/Llama-3.1-8B").hf_config, "meta-llama/Llama-3.1-8B")

    def run(gib: float):
        return estimate(spec, Deployment(gpu_memory_bytes=round(gib * GIB), tensor_parallel_size=2,
                                         max_model_len=4096))

    told, anonymous = run(23.58), run(24.0)
    assert any("taken to be the NVIDIA GeForce RTX 3090" in w for w in told.warnings)
    assert not any("taken to be" in w for w in anonymous.warnings)
    assert told.non_torch_bytes < anonymous.non_torch_bytes  # no NVSwitch buffers on a PCIe card


def test_the_turing_and_laptop_cards_of_two_public_v0_logs_are_in_the_catalog() -> None:
    """v0a-004 (RTX 2060 12GB, 12.00 GiB) and v0a-008 (RTX 4070 Laptop GPU 8GB, 7.65 GiB): vLLM's own totals."""
    turing = find_gpu("NVIDIA GeForce RTX 2060 12GB")
    assert round(turing.memory_gib, 2) == 12.00 and turing.compute_capability == 7.5
    laptop = find_gpu("NVIDIA GeForce RTX 4070 Laptop GPU 8GB")
    assert round(laptop.memory_gib, 2) == 7.65 and laptop.compute_capability == 8.9
    assert find_gpu("RTX 4070").name == "NVIDIA GeForce RTX 4070"  # the desktop card (12 GB), not the laptop part


@pytest.mark.parametrize(
    ("spelling", "name", "gib", "sm_count"),
    [
        ("RTX 4090D", "NVIDIA GeForce RTX 4090 D", 23.55, 114),
        ("RTX 4090 D", "NVIDIA GeForce RTX 4090 D", 23.55, 114),
        ("NVIDIA GeForce RTX 4090 D", "NVIDIA GeForce RTX 4090 D", 23.55, 114),
        ("RTX 3070", "NVIDIA GeForce RTX 3070", 7.63, 46),
        ("NVIDIA GeForce RTX 3070", "NVIDIA GeForce RTX 3070", 7.63, 46),
        ("RTX 3070 Ti", "NVIDIA GeForce RTX 3070 Ti", 7.66, 48),
        ("RTX 3060 Ti", "NVIDIA GeForce RTX 3060 Ti", 7.65, 38),
        ("RTX 4060", "NVIDIA GeForce RTX 4060", 7.62, 24),
        ("RTX4060", "NVIDIA GeForce RTX 4060", 7.62, 24),
        ("RTX 4060 Ti 8GB", "NVIDIA GeForce RTX 4060 Ti 8GB", 7.62, 34),
        ("NVIDIA GeForce RTX 4060 Ti", "NVIDIA GeForce RTX 4060 Ti 8GB", 7.62, 34),  # not the 24-SM RTX 4060
        ("RTX 4060 Ti 16GB", "NVIDIA GeForce RTX 4060 Ti 16GB", 15.60, 34),
        ("RTX 4070", "NVIDIA GeForce RTX 4070", 11.57, 46),
        ("RTX 4070 SUPER", "NVIDIA GeForce RTX 4070 SUPER", 11.57, 56),
        ("RTX 4070 Ti", "NVIDIA GeForce RTX 4070 Ti", 11.73, 60),
        ("RTX 2080", "NVIDIA GeForce RTX 2080", 7.60, 46),
        ("RTX 2080 SUPER", "NVIDIA GeForce RTX 2080 SUPER", 7.78, 48),
        ("RTX 2080 Ti", "NVIDIA GeForce RTX 2080 Ti", 10.57, 68),
        ("RTX 2070", "NVIDIA GeForce RTX 2070", 7.60, 36),
        ("RTX 5060", "NVIDIA GeForce RTX 5060", 7.52, 30),
        ("RTX 5060 Ti", "NVIDIA GeForce RTX 5060 Ti 8GB", 7.52, 36),  # not the 30-SM RTX 5060
        ("RTX 5060 Ti 8GB", "NVIDIA GeForce RTX 5060 Ti 8GB", 7.52, 36),
        ("RTX 5060 Ti 16GB", "NVIDIA GeForce RTX 5060 Ti 16GB", 15.49, 36),
        ("RTX A2000 12GB", "NVIDIA RTX A2000 12GB", 11.74, 26),
        ("NVIDIA RTX 4000 Ada Generation", "NVIDIA RTX 4000 Ada", 19.54, 48),
        ("RTX 5000 Ada", "NVIDIA RTX 5000 Ada", 31.54, 100),
        ("Jetson AGX Orin", "NVIDIA Jetson AGX Orin 64GB", 61.37, 16),
        ("Jetson AGX Orin 32GB", "NVIDIA Jetson AGX Orin 32GB", 29.90, 14),
    ],
)
def test_consumer_workstation_and_jetson_cards_of_user_reports_resolve_to_their_cuda_visible_total(
    spelling: str, name: str, gib: float, sm_count: int
) -> None:
    """Spellings from vLLM user reports that were unknown (or, for "RTX 4090 D", silently the 128-SM RTX 4090): each
    resolves to its own card, with the Linux CUDA-visible total and SM count the catalog cites for it."""
    gpu = find_gpu(spelling)
    assert gpu.name == name
    assert round(gpu.memory_gib, 2) == gib
    assert gpu.sm_count == sm_count
