"""--mamba-ssm-cache-dtype: the SSM state's dtype in Mamba and linear-attention layers, as vLLM's CacheConfig takes
it (auto, float32 from 0.10.1, float16 from 0.13, bfloat16 from 0.22). vLLM's config hooks only fill in "auto", so
an explicit value wins over the checkpoint's own (Nemotron-H's model cards pass float32; a bf16 state halves the
page and doubles the blocks a GPU holds)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

import gpuplan
from gpuplan.api.app import create_app
from gpuplan.cli import main
from gpuplan.validation import deployment_of

SUPER = "nemotron-3-super"  # config: mamba_ssm_cache_dtype float32
KW = dict(gpu="H200", tensor_parallel_size=2, max_model_len=32768, enable_prefix_caching=False)


def _mamba_page(**kw) -> int:
    r = gpuplan.estimate(SUPER, **{**KW, **kw})
    return next(g.page_bytes for g in r.kv.groups if g.kind == "mamba")


def test_a_bf16_ssm_state_halves_super_s_float32_state_page() -> None:
    """Per layer at TP=2: conv 3 x (8,192 + 2 x 8 x 128) / 2 x 2 B = 30,720 B beside the SSM state 64 heads x 64 x
    128 (4 B by the config: 2,097,152 B; 2 B asked: 1,048,576 B); pages are whole 16-token attention blocks of 2 KV
    heads / 2 x 128 x 2 x 2 B = 512 B a token."""
    def page(state: int) -> int:
        return -(-state // (16 * 512)) * 16 * 512

    assert _mamba_page(vllm_version="0.33") == _mamba_page(vllm_version="0.33", mamba_ssm_cache_dtype="auto") \
        == _mamba_page(vllm_version="0.33", mamba_ssm_cache_dtype="float32") == page(30_720 + 2_097_152)
    assert _mamba_page(vllm_version="0.33", mamba_ssm_cache_dtype="bfloat16") == page(30_720 + 1_048_576)
    assert _mamba_page(vllm_version="0.13", mamba_ssm_cache_dtype="float16") == page(30_720 + 1_048_576)


def test_before_0_13_float32_must_be_asked_for_because_no_hook_reads_the_config() -> None:
    assert _mamba_page(vllm_version="0.12") < _mamba_page(vllm_version="0.12", mamba_ssm_cache_dtype="float32")


@pytest.mark.parametrize(("version", "dtype"), [("0.21", "bfloat16"), ("0.12", "float16"), ("0.10.0", "float32")])
def test_a_dtype_the_release_lacks_is_refused_naming_what_it_takes(version: str, dtype: str) -> None:
    with pytest.raises(gpuplan.GpuplanError) as e:
        gpuplan.estimate(SUPER, **{**KW, "vllm_version": version, "mamba_ssm_cache_dtype": dtype})
    assert e.value.field == "mamba_ssm_cache_dtype" and dtype not in e.value.accepted and "auto" in e.value.accepted


def test_cli_takes_it_and_says_which_dtype_the_state_got(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["estimate", SUPER, "--gpu", "H200", "-tp", "2", "--max-model-len", "32768", "--json"]
    main(args)
    auto = json.loads(capsys.readouterr().out)
    main([*args, "--mamba-ssm-cache-dtype", "bfloat16"])
    bf16 = json.loads(capsys.readouterr().out)
    assert bf16["kv_cache_tokens"] > auto["kv_cache_tokens"]
    assert (auto["deployment"]["mamba_ssm_cache_dtype"], bf16["deployment"]["mamba_ssm_cache_dtype"]) == \
        ("float32", "bfloat16")


def test_cli_refuses_an_unknown_dtype_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", SUPER, "--gpu", "H200", "-tp", "2", "--mamba-ssm-cache-dtype", "fp8"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: mamba_ssm_cache_dtype: ") and "bfloat16" in err


def test_the_api_takes_it_and_refuses_a_bad_one_naming_the_field() -> None:
    client = TestClient(create_app(allow_network=False))
    body = {"model": SUPER, "gpu": "H200", "tensor_parallel_size": 2, "max_model_len": 32768}
    ok = client.post("/v1/estimate", json={**body, "mamba_ssm_cache_dtype": "bfloat16"})
    assert ok.status_code == 200 and ok.json()["deployment"]["mamba_ssm_cache_dtype"] == "bfloat16"
    assert "--mamba-ssm-cache-dtype bfloat16" in ok.json()["commands"]["vllm"]
    assert "mamba-ssm-cache-dtype" not in client.post("/v1/estimate", json=body).json()["commands"]["vllm"]
    bad = client.post("/v1/estimate", json={**body, "mamba_ssm_cache_dtype": "int8"})
    assert bad.status_code in (400, 422) and "mamba_ssm_cache_dtype" in json.dumps(bad.json())


@pytest.mark.parametrize("evidence", ["vllm serve nvidia/NVIDIA-Nemotron-Nano-9B-v2 --mamba_ssm_cache_dtype float32",
                                      "non-default args: {'model': 'x', 'mamba_ssm_cache_dtype': 'float32'}",
                                      "vllm serve x --mamba-ssm-cache-dtype=float32"])
def test_validate_reads_it_from_a_records_command_line_in_any_spelling(evidence: str) -> None:
    assert deployment_of({"deployment": {}, "evidence": evidence}).mamba_ssm_cache_dtype == "float32"
    assert deployment_of({"deployment": {}, "evidence": "vllm serve x"}).mamba_ssm_cache_dtype == "auto"


K3 = dict(gpu="H200", tensor_parallel_size=8, max_model_len=32768, enable_prefix_caching=False,
          kv_cache_memory_bytes=20 * 2**30)


def _k3(version: str, dtype: str = "auto") -> gpuplan.MemoryReport:
    return gpuplan.estimate("moonshotai/Kimi-K3", **K3, vllm_version=version, mamba_ssm_cache_dtype=dtype)


def test_kimi_k3_s_kda_state_follows_the_flag_from_0_30_and_a_bf16_state_doubles_its_blocks() -> None:
    """KimiK3DeltaAttention passes the flag to kda_state_dtype from 0.30. At TP=8 a KDA layer holds 12 of 96 heads x
    128 x 128 (786,432 B in fp32, 393,216 B in bf16) and a 3 x 4,608 bf16 conv window (27,648 B); the MLA layers'
    block grows to the first multiple of 64 tokens (1,152 B a token) whose page holds that: 768, or 384 in bf16."""
    auto, bf16 = _k3("0.30"), _k3("0.30", "bfloat16")
    assert [(g.kind, g.page_bytes, g.block_size) for g in auto.kv.groups] == [
        ("mamba", 884_736, 768), ("mla", 884_736, 768)]
    assert 786_432 + 27_648 <= 884_736 and 393_216 + 27_648 <= 442_368 < 786_432 + 27_648
    assert [(g.kind, g.page_bytes, g.block_size) for g in bf16.kv.groups] == [
        ("mamba", 442_368, 384), ("mla", 442_368, 384)]
    assert bf16.num_gpu_blocks == 2 * auto.num_gpu_blocks
    assert bf16.to_dict()["deployment"]["mamba_ssm_cache_dtype"] == "bfloat16"
    assert _k3("0.30", "float32").kv.bytes_per_block == auto.kv.bytes_per_block


def test_before_0_30_kimi_k3_keeps_an_fp32_kda_state_and_says_the_flag_is_ignored() -> None:
    r = _k3("0.29", "bfloat16")
    assert r.kv.bytes_per_block == _k3("0.29").kv.bytes_per_block
    assert any("whatever --mamba-ssm-cache-dtype says" in w and "0.30" in w for w in r.warnings)
    assert r.to_dict()["deployment"]["mamba_ssm_cache_dtype"] == "float32"


def test_kda_refuses_a_float16_state_naming_what_it_takes() -> None:
    with pytest.raises(gpuplan.GpuplanError) as e:
        _k3("0.33", "float16")
    assert e.value.field == "mamba_ssm_cache_dtype" and e.value.accepted == ["auto", "float32", "bfloat16"]


def test_kimi_linear_s_kda_layer_never_reads_the_flag() -> None:
    """Kimi-Linear's KimiGatedDeltaNetAttention calls kda_state_dtype without it, in every release."""
    kw = dict(gpu="H200", max_model_len=32768, enable_prefix_caching=False, vllm_version="0.33")
    auto = gpuplan.estimate("moonshotai/Kimi-Linear-48B-A3B-Instruct", **kw)
    bf16 = gpuplan.estimate("moonshotai/Kimi-Linear-48B-A3B-Instruct", **kw, mamba_ssm_cache_dtype="bfloat16")
    assert bf16.kv.bytes_per_block == auto.kv.bytes_per_block and bf16.num_gpu_blocks == auto.num_gpu_blocks
    assert any("float32 whatever --mamba-ssm-cache-dtype says" in w for w in bf16.warnings)
    assert not any("--mamba-ssm-cache-dtype" in w for w in auto.warnings)
