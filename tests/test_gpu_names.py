"""GPU names as people write them in logs and reports resolve to the catalog card they mean."""

from __future__ import annotations

import pytest

from gpuplan.errors import GpuplanError
from gpuplan.gpus import find_gpu, size_ambiguity


@pytest.mark.parametrize(("written", "card"), [
    ("RTX 5090 (32,607 MiB)", "NVIDIA GeForce RTX 5090"),
    ("NVIDIA A10G 24GB (23,028 MiB)", "NVIDIA A10G 24GB"),
    ("NVIDIA L40S (46068 MiB)", "NVIDIA L40S 48GB"),
    ("8 x H100 80GB HBM3", "NVIDIA H100 SXM5 80GB"),
    ("GH200 (96 GB)", "NVIDIA GH200 96GB"),
    ("A10 (24GB)", "NVIDIA A10 24GB"),
])
def test_a_card_described_with_counts_and_sizes_is_still_found(written: str, card: str) -> None:
    assert find_gpu(written).name == card


def test_the_longest_matching_name_wins_so_an_h100_nvl_is_not_an_h100_sxm() -> None:
    assert find_gpu("2x H100 NVL (PCIe)").name == "NVIDIA H100 NVL 94GB"
    assert find_gpu("A10G node").name == "NVIDIA A10G 24GB"  # not the A10, though "a10" is a prefix of "a10g"


def test_a_stated_memory_size_picks_the_sibling_of_that_size() -> None:
    assert find_gpu("A100 40G").name == "NVIDIA A100 SXM4 40GB"
    assert find_gpu("Tesla V100-PCIE-32GB").name == "NVIDIA V100 SXM2 32GB"
    assert find_gpu("V100").name == "NVIDIA V100 SXM2 16GB"


def test_words_that_name_no_catalog_card_are_still_refused() -> None:
    with pytest.raises(GpuplanError) as err:
        find_gpu("AMD Strix Halo iGPU (unified memory)")
    assert err.value.field == "gpu"


@pytest.mark.parametrize(("instance", "card"), [
    ("p4d.24xlarge", "NVIDIA A100 SXM4 40GB"),
    ("p4de.24xlarge", "NVIDIA A100 SXM4 80GB"),
    ("p3dn.24xlarge", "NVIDIA V100 SXM2 32GB"),
    ("g6e.12xlarge", "NVIDIA L40S 48GB"),
    ("a2-highgpu-1g", "NVIDIA A100 SXM4 40GB"),  # not the A2, though "a2" is a word of it
    ("A100 (GCE a2-ultragpu-8g)", "NVIDIA A100 SXM4 80GB"),
    ("a3-ultragpu-8g", "NVIDIA H200 141GB"),
    ("Standard_NC24ads_A100_v4", "NVIDIA A100 PCIe 80GB"),
    ("Standard_ND96asr_v4", "NVIDIA A100 SXM4 40GB"),
])
def test_a_cloud_instance_type_names_its_gpu_and_memory_size(instance: str, card: str) -> None:
    assert find_gpu(instance).name == card


def test_an_a100_without_a_size_is_estimated_on_80gb_and_the_report_says_40gb_exists() -> None:
    import gpuplan

    report = gpuplan.estimate("meta-llama/Llama-3.1-8B-Instruct", gpu="A100")
    assert report.gpu_name == "NVIDIA A100 SXM4 80GB"
    assert any("40GB and 80GB" in w and "'A100 40GB'" in w for w in report.warnings)


def test_a_name_that_pins_the_size_carries_no_size_warning() -> None:
    for name in ("A100 40GB", "p4d.24xlarge", "H100", "RTX 4090"):
        assert size_ambiguity(name) is None, name
    assert "32GB" in (size_ambiguity("Tesla V100") or "")
