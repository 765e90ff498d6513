"""vLLM under WSL2 on Windows (Docker Desktop runs it there too): Windows' driver reports a card's whole board to
CUDA, so vLLM's budget (gpu_memory_utilization x total) is larger than on Linux, and GPUs have no peer access.
A Qwen2.5-3B bitsandbytes start on an RTX 4060 under WSL2 logged 3.75 GiB of KV (gap_versions_public gvc-006):
8.3% above what the Linux total gives, 0.3% with the board's."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import gpuplan
from gpuplan.api.app import create_app
from gpuplan.cli import main
from gpuplan.units import GiB
from gpuplan.validation import deployment_of

QWEN = "Qwen/Qwen2.5-7B-Instruct"


def test_an_rtx_4090_under_wsl2_shows_its_whole_24_gib_board() -> None:
    linux = gpuplan.estimate(QWEN, gpu="RTX 4090", max_model_len=8192)
    wsl = gpuplan.estimate(QWEN, gpu="RTX 4090", max_model_len=8192, platform="wsl")
    assert round(linux.gpu_memory_bytes / GiB, 2) == 23.52
    assert round(wsl.gpu_memory_bytes / GiB, 2) == 23.99  # a WSL2 log's total, and Windows' torch print (24,563 MiB)
    gained = (wsl.available_kv_cache_bytes - linux.available_kv_cache_bytes) / GiB
    assert gained == pytest.approx(0.9 * (wsl.gpu_memory_bytes - linux.gpu_memory_bytes) / GiB, abs=0.01)
    assert any("WSL2" in w for w in wsl.warnings)
    assert wsl.to_dict()["deployment"]["platform"] == "wsl"


def test_two_3090s_under_docker_desktop_have_no_peer_access() -> None:
    wsl = gpuplan.estimate(QWEN, gpu="RTX 3090", tensor_parallel_size=2, platform="wsl")
    assert wsl.to_dict()["deployment"]["interconnect"] == "pcie_no_p2p"


def test_a_stated_memory_size_wins_over_the_board() -> None:
    r = gpuplan.estimate(QWEN, gpu="RTX 4090", gpu_memory_gib=23.0, platform="wsl")
    assert r.gpu_memory_bytes == 23 * GiB


def test_an_unknown_platform_is_refused_naming_the_accepted_values(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", QWEN, "--gpu", "RTX 4090", "--platform", "windows"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: platform: ") and "wsl" in err
    bad = TestClient(create_app(allow_network=False)).post(
        "/v1/estimate", json={"model": QWEN, "gpu": "RTX 4090", "platform": "macos"})
    assert bad.status_code == 400 and bad.json()["field"] == "platform"


@pytest.mark.parametrize(("record", "platform"), [
    ({"evidence": "WARNING [interface.py:525] Using 'pin_memory=False' as WSL is detected."}, "wsl"),
    ({"evidence": "RTX 5070 Ti + WSL2 k3s single node + vLLM v0.23.0"}, "wsl"),
    ({"evidence": "Model loading took 2.07 GiB", "deployment": {"gpu_name": "RTX 4060 (Windows WSL2 + Minikube)"}},
     "wsl"),
    ({"evidence": "Model loading took 2.07 GiB"}, "linux"),
])
def test_validate_reads_wsl_from_the_record(record: dict, platform: str) -> None:
    assert deployment_of({"deployment": {}, **record}).platform == platform


def test_the_seed_users_two_3090s_under_docker_desktop_are_planned_as_wsl_shows_them() -> None:
    """Seed 001 runs vLLM in Docker Desktop on Windows with two RTX 3090s: the planner sizes each card as WSL2
    shows it, and every option agrees with the same deployment estimated directly."""
    from gpuplan.planner import context_table, plan

    result = plan(QWEN, gpus=["RTX 3090"], num_gpus=2, max_model_len=16384, platform="wsl")
    option = result.options[0]
    assert round(option.gpu_memory_bytes / GiB, 2) == 23.99  # the whole 24 GiB board, less a few MiB
    direct = gpuplan.estimate(QWEN, gpu="RTX 3090", tensor_parallel_size=option.tensor_parallel_size,
                              pipeline_parallel_size=option.pipeline_parallel_size, quantization=option.quantization,
                              kv_cache_dtype=option.kv_cache_dtype, max_model_len=option.launch_max_model_len,
                              platform="wsl")
    assert option.kv_cache_tokens == direct.kv_cache_tokens
    linux = context_table(QWEN, gpus=["RTX 3090"], counts=[2], kv_dtypes=["auto"])
    wsl = context_table(QWEN, gpus=["RTX 3090"], counts=[2], kv_dtypes=["auto"], platform="wsl")
    assert wsl.rows[0].kv_cache_tokens > linux.rows[0].kv_cache_tokens
    with pytest.raises(gpuplan.GpuplanError) as e:
        plan(QWEN, gpus=["RTX 3090"], platform="windows")
    assert e.value.field == "platform"
