"""How the GPUs reach each other, where the card's catalog entry does not say it: an A100 80GB is an NVSwitch
board in the catalog, but pods without peer access and GPUs on different nodes are common, and vLLM then charges
NCCL's buffers as on PCIe (gap_versions_public gvd-005 to gvd-008, whose logs say why custom all-reduce is off)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

import gpuplan
from gpuplan.api.app import create_app
from gpuplan.cli import main
from gpuplan.validation import deployment_of

QWEN = "Qwen/Qwen2.5-7B-Instruct"


def _run(**kw) -> gpuplan.MemoryReport:
    return gpuplan.estimate(QWEN, gpu="A100 80GB", tensor_parallel_size=2, vllm_version="0.10.1.1", **kw)


def test_two_a100s_without_peer_access_keep_about_a_gib_more_kv_than_on_an_nvswitch_board() -> None:
    board, pod = _run(), _run(interconnect="pcie_no_p2p")
    assert board.to_dict()["deployment"]["interconnect"] == "nvswitch"  # the catalog's A100 SXM4 80GB
    assert pod.to_dict()["deployment"]["interconnect"] == "pcie_no_p2p"
    gained = (pod.available_kv_cache_bytes - board.available_kv_cache_bytes) / 2**30
    assert 0.9 < gained < 1.2  # the NVSwitch TP figure (1.38 GiB) against PCIe's (0.30), both calibrated


def test_one_gpu_has_no_interconnect_to_charge() -> None:
    one = gpuplan.estimate(QWEN, gpu="A100 80GB", vllm_version="0.10.1.1")
    assert one.available_kv_cache_bytes == gpuplan.estimate(
        QWEN, gpu="A100 80GB", vllm_version="0.10.1.1", interconnect="pcie").available_kv_cache_bytes


def test_an_unknown_interconnect_is_refused_naming_the_accepted_values(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", QWEN, "--gpu", "A100 80GB", "-tp", "2", "--interconnect", "nvlink"])
    code, err = exit_info.value.code, capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: interconnect: ") and "pcie_no_p2p" in err


def test_the_api_takes_it_and_refuses_a_bad_one_naming_the_field() -> None:
    client = TestClient(create_app(allow_network=False))
    ok = client.post("/v1/estimate", json={"model": QWEN, "gpu": "A100 80GB", "tensor_parallel_size": 2,
                                           "interconnect": "pcie"})
    assert ok.status_code == 200 and ok.json()["deployment"]["interconnect"] == "pcie"
    bad = client.post("/v1/estimate", json={"model": QWEN, "gpu": "A100 80GB", "interconnect": "ethernet"})
    assert bad.status_code == 400 and bad.json()["field"] == "interconnect"
    assert "pcie_no_p2p" in bad.json()["accepted"]


@pytest.mark.parametrize(("line", "fabric"), [
    ("WARNING [custom_all_reduce.py:147] Custom allreduce is disabled because your platform lacks GPU P2P capability "
     "or P2P test failed.", "pcie_no_p2p"),
    ("WARNING [custom_all_reduce.py:85] Custom allreduce is disabled because this process group spans across nodes.",
     "pcie_no_p2p"),
    ("Custom allreduce is disabled because it's not supported on more than two PCIe-only GPUs.", "pcie"),
    ("Model loading took 7.12 GiB", None),
])
def test_validate_reads_the_interconnect_from_why_custom_all_reduce_is_off(line: str, fabric: str | None) -> None:
    assert deployment_of({"deployment": {"tensor_parallel_size": 2}, "evidence": line}).interconnect == fabric


def test_disable_custom_all_reduce_from_the_cli_the_api_and_a_records_command_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The flag costs the graphs NCCL's memory, goes into the launch command, and validate reads it as vLLM
    prints it (a contradictory log, like vLLM's hint to set it, is not guessed)."""
    args = ["estimate", QWEN, "--gpu", "H100", "-tp", "2", "--json"]
    main(args)
    custom = json.loads(capsys.readouterr().out)
    main([*args, "--disable-custom-all-reduce"])
    nccl = json.loads(capsys.readouterr().out)
    assert nccl["per_gpu"]["cudagraph_gib"] > custom["per_gpu"]["cudagraph_gib"]
    client = TestClient(create_app(allow_network=False))
    body = {"model": QWEN, "gpu": "H100", "tensor_parallel_size": 2}
    a = client.post("/v1/estimate", json=body).json()
    b = client.post("/v1/estimate", json={**body, "disable_custom_all_reduce": True}).json()
    assert b["per_gpu"]["available_kv_cache_gib"] < a["per_gpu"]["available_kv_cache_gib"]
    assert "--disable-custom-all-reduce" in b["commands"]["vllm"]
    assert "--disable-custom-all-reduce" not in a["commands"]["vllm"]
    said = "non-default args: {'tensor_parallel_size': 2, 'disable_custom_all_reduce': True}"
    hint = ("disable_custom_all_reduce=False ... Custom allreduce is disabled because your platform lacks GPU P2P "
            "capability or P2P test failed. To silence this warning, specify disable_custom_all_reduce=True explicitly.")
    assert deployment_of({"deployment": {}, "evidence": said}).disable_custom_all_reduce
    assert not deployment_of({"deployment": {}, "evidence": hint}).disable_custom_all_reduce
