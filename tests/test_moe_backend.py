"""--moe-backend (vLLM 0.17+): which fused-MoE kernels a start-up runs. gpuplan takes every value the release takes,
sizes vLLM's CUTLASS NVFP4 experts from their code (moe_kernels.py, budget.cutlass_nvfp4_moe) and refuses what vLLM
refuses at start-up (the kernel off Blackwell, or with expert parallelism before 0.32)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

import gpuplan
from gpuplan.api.app import create_app
from gpuplan.cli import main
from gpuplan.engines.vllm import moe_kernels
from gpuplan.engines.vllm.profiles import get_profile
from gpuplan.validation import deployment_of

GEMMA = "google/gemma-4-26B-A4B"  # 128 experts, top-8, 704 wide, hidden 2816
# As the 99sono RTX 5090 runs were started (harvest3_public h3-003): an NVFP4 checkpoint, 2 sequences, 16k batches.
KW = dict(gpu="RTX 5090", quantization="modelopt_fp4", max_model_len=32768, max_num_seqs=2,
          max_num_batched_tokens=16384, vllm_version="0.19.1")


def test_cutlass_nvfp4_experts_cost_1_8_gib_more_than_the_default_kernel_at_16k_tokens() -> None:
    """CutlassExpertsFp4 keeps [16384 x 8, 2816] + [16384 x 8, 1408] (1.03 GiB) and, at its peak, the permuted input,
    the permuted output and their weighted copy ([16384 x 8, 2816] each) plus the [16384, 2816] sum (2.15 GiB);
    the default (Triton) workspace is 2 x [16384 x 8, 2816] (1.38 GiB): 1.80 GiB less KV cache on the RTX 5090."""
    auto = gpuplan.estimate(GEMMA, **KW)
    cutlass = gpuplan.estimate(GEMMA, **KW, moe_backend="cutlass")
    rows, k = 16384 * 8, 2816
    assert (rows * k + rows * 1408) * 2 == 1_107_296_256
    assert (3 * rows * k + 16384 * k) * 2 == 2_306_867_200
    grown = cutlass.activation_peak_bytes - auto.activation_peak_bytes
    assert grown == 1_107_296_256 + 2_306_867_200 - 2 * rows * k * 2
    assert cutlass.available_kv_cache_bytes == auto.available_kv_cache_bytes - grown
    assert "CUTLASS NVFP4" in next(c.note for c in cutlass.components if c.name == "activation_peak")
    assert cutlass.to_dict()["deployment"]["moe_backend"] == "cutlass"


def test_the_kernel_is_sized_only_for_nvfp4_experts_and_moe_models() -> None:
    bf16 = gpuplan.estimate(GEMMA, **{**KW, "quantization": None, "gpu": "H200"}, moe_backend="cutlass")
    assert bf16.activation_peak_bytes == gpuplan.estimate(GEMMA, **{**KW, "quantization": None,
                                                                    "gpu": "H200"}).activation_peak_bytes
    assert any("--moe-backend cutlass" in w and "not modelled" in w for w in bf16.warnings)
    dense = gpuplan.estimate("Qwen/Qwen3-8B", gpu="H100", vllm_version="0.19.1", moe_backend="triton")
    assert any("has no MoE layers" in w for w in dense.warnings)


@pytest.mark.parametrize(("kw", "accepted"), [
    ({"moe_backend": "cutlas"}, "flashinfer_cutlass"),  # a typo: the release's list
    ({"moe_backend": "cutlass", "vllm_version": "0.16.0"}, "a vllm_version of 0.17.0 or later"),
    ({"moe_backend": "humming", "vllm_version": "0.20.0"}, "triton"),  # humming came in 0.21
    ({"moe_backend": "cutlass", "gpu": "H100"}, "a Blackwell GPU (B200, B300, GB200, RTX 50xx, RTX PRO 6000)"),
    ({"moe_backend": "cutlass", "gpu": "B200", "tensor_parallel_size": 2, "enable_expert_parallel": True},
     "a vllm_version of 0.32.0 or later"),
])
def test_what_vllm_refuses_is_refused_naming_the_field(kw: dict, accepted: str) -> None:
    with pytest.raises(gpuplan.GpuplanError) as e:
        gpuplan.estimate(GEMMA, **{**KW, **kw})
    assert e.value.field == "moe_backend" and accepted in e.value.accepted


def test_expert_parallelism_takes_the_cutlass_kernel_from_0_32() -> None:
    r = gpuplan.estimate(GEMMA, **{**KW, "gpu": "B200", "tensor_parallel_size": 2, "enable_expert_parallel": True,
                                   "vllm_version": "0.32.0"}, moe_backend="CUTLASS")
    assert r.fits and r.to_dict()["deployment"]["moe_backend"] == "cutlass"


def test_every_release_from_0_17_lists_its_own_backends() -> None:
    assert moe_kernels.choices(get_profile("0.16.0")) == ()
    assert "cutlass" in moe_kernels.choices(get_profile("0.17.0")) and "humming" not in moe_kernels.choices(
        get_profile("0.20.2"))
    assert "humming" in moe_kernels.choices(get_profile("0.21.0"))
    assert "rdna3" in moe_kernels.choices(get_profile("0.33.0"))


def test_cli_takes_it_and_refuses_a_bad_value_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["estimate", GEMMA, "--gpu", "RTX 5090", "--quantization", "modelopt_fp4", "--max-model-len", "32768",
            "--max-num-seqs", "2", "--max-num-batched-tokens", "16384", "--vllm-version", "0.19.1", "--json"]
    main(args)
    auto = json.loads(capsys.readouterr().out)
    main([*args, "--moe-backend", "cutlass"])
    cutlass = json.loads(capsys.readouterr().out)
    assert cutlass["kv_cache_tokens"] < auto["kv_cache_tokens"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args[:-1], "--moe-backend", "fastest"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: moe_backend: ") and "flashinfer_cutlass" in err


def test_the_api_takes_it_puts_it_in_the_launch_command_and_refuses_a_bad_one() -> None:
    client = TestClient(create_app(allow_network=False))
    body = {"model": GEMMA, "gpu": "RTX 5090", "quantization": "modelopt_fp4", "max_model_len": 32768,
            "max_num_seqs": 2, "max_num_batched_tokens": 16384, "vllm_version": "0.19.1"}
    ok = client.post("/v1/estimate", json={**body, "moe_backend": "cutlass"})
    assert ok.status_code == 200 and ok.json()["deployment"]["moe_backend"] == "cutlass"
    assert "--moe-backend cutlass" in ok.json()["commands"]["vllm"]
    assert "--moe-backend" not in client.post("/v1/estimate", json=body).json()["commands"]["vllm"]
    for bad in ("cutlas", "../../etc", "x" * 80):
        r = client.post("/v1/estimate", json={**body, "moe_backend": bad})
        assert r.status_code in (400, 422) and "moe_backend" in json.dumps(r.json())


@pytest.mark.parametrize("evidence", ["non-default args: {'model': 'x', 'moe_backend': 'cutlass'}",
                                      "vllm serve x --moe-backend cutlass", "vllm serve x --moe_backend=cutlass"])
def test_validate_reads_it_from_a_records_command_line(evidence: str) -> None:
    assert deployment_of({"deployment": {}, "evidence": evidence}).moe_backend == "cutlass"
    assert deployment_of({"deployment": {}, "evidence": "vllm serve x"}).moe_backend == "auto"

