"""GPU names as people write them in logs and reports resolve to the catalog card they mean."""

from __future__ import annotations

import pytest

from gpuplan.errors import GpuplanError
from gpuplan.gpus import find_gpu


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
