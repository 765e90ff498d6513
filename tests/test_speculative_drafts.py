"""Speculative decoding with a separate draft checkpoint (model/adapters_eagle.py, engines/vllm/drafter.py): an
EAGLE-3 head or a small draft model named by --speculative-config's "model", read like the target's config.

The EAGLE-3 config here (tests/fixtures/drafts/) is the stand-in that speculative_public.jsonl's hse-001 uses for
yuhuili/EAGLE3-LLaMA3.1-Instruct-8B: one Llama-3.1-8B-shaped layer and a 32,000-token draft vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import gpuplan
from gpuplan.api.app import create_app
from gpuplan.cli import main
from gpuplan.errors import GpuplanError
from gpuplan.units import GiB

HEAD = str(Path(__file__).parent / "fixtures" / "drafts" / "eagle3-llama-3.1-8b-standin")
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
KW = dict(gpu="H200", vllm_version="0.16", max_model_len=131072)


def test_an_eagle3_head_adds_its_layer_fc_and_draft_vocab_head_but_shares_the_embedding() -> None:
    base = gpuplan.estimate(LLAMA, **KW)
    head = gpuplan.estimate(LLAMA, speculative_config={"method": "eagle3", "model": HEAD,
                                                        "num_speculative_tokens": 3}, **KW)
    # qkv over [embedding, hidden] 8192 -> 6144, o 4096^2, the gated MLP, fc 3 x 4096 -> 4096, lm_head 32000 x 4096,
    # in bf16, plus four norms and the int64 draft-to-target map
    params = 8192 * 6144 + 4096 * 4096 + 3 * 4096 * 14336 + 3 * 4096 * 4096 + 32000 * 4096
    added = head.weights_bytes - base.weights_bytes
    assert 2 * params <= added <= 2 * params + 2 * 4 * 4096 + 8 * 32064 + 2 * 64 * 4096
    assert added / GiB == pytest.approx(0.79, abs=0.01)  # hse-001 logs 15.78 against 14.99 GiB
    # one more full-attention layer of the target's shape in every block
    assert head.kv.bytes_per_token == base.kv.bytes_per_token * 33 // 32
    assert head.speculative_config == {"method": "eagle3", "num_speculative_tokens": 3, "model": HEAD}


def test_the_v1_profile_rejection_sample_costs_the_same_for_one_or_six_draft_tokens() -> None:
    one, six = (gpuplan.estimate(LLAMA, speculative_config={"method": "eagle3", "model": HEAD,
                                                             "num_speculative_tokens": n}, **KW) for n in (1, 6))
    assert one.available_kv_cache_bytes == six.available_kv_cache_bytes


def test_on_the_v2_runner_an_eagle3_head_costs_its_weights_and_buffers_but_no_rejection_sample() -> None:
    kw = dict(KW, vllm_version="0.29")
    base = gpuplan.estimate(LLAMA, **kw)
    head = gpuplan.estimate(LLAMA, speculative_config={"method": "eagle3", "model": HEAD}, **kw)
    buffers = base.max_num_batched_tokens * (4 + 8 + 4 + 2 * 4096 * 2)
    assert head.activation_peak_bytes - base.activation_peak_bytes == buffers


def test_a_draft_model_loads_whole_beside_the_target() -> None:
    """Llama-3.2-1B drafting for Llama-3.1-8B: its 16 layers and tied embedding load and cache beside the target's."""
    kw = dict(gpu="H100", vllm_version="0.19", max_model_len=8192)
    base = gpuplan.estimate(LLAMA, **kw)
    draft = gpuplan.estimate("meta-llama/Llama-3.2-1B", **kw)
    both = gpuplan.estimate(LLAMA, speculative_config={"method": "draft_model", "model": "meta-llama/Llama-3.2-1B"},
                            **kw)
    assert both.weights_bytes - base.weights_bytes == pytest.approx(draft.weights_bytes, rel=0.01)
    assert both.kv.bytes_per_token == base.kv.bytes_per_token + draft.kv.bytes_per_token


def test_a_draft_model_with_another_vocabulary_size_is_refused_as_vllm_refuses_it() -> None:
    """Qwen2.5-0.5B's config says 151,936 tokens, Qwen2.5-7B's 152,064: vLLM's verify_equal_vocab_size_if_draft_model
    raises at start-up."""
    with pytest.raises(GpuplanError) as e:
        gpuplan.estimate("Qwen/Qwen2.5-7B", gpu="H100", speculative_config={"method": "draft_model",
                                                                            "model": "Qwen/Qwen2.5-0.5B"})
    assert e.value.field == "speculative_config.model" and "vocabulary" in e.value.message


def test_cli_reads_the_draft_checkpoint_from_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    main(["estimate", LLAMA, "--gpu", "H200", "--vllm-version", "0.16", "--json", "--speculative-config",
          json.dumps({"method": "eagle3", "model": HEAD, "num_speculative_tokens": 3})])
    out = json.loads(capsys.readouterr().out)
    assert out["deployment"]["speculative_config"]["model"] == HEAD
    assert out["per_gpu"]["weights_gib"] == pytest.approx(15.78, abs=0.02)


def test_cli_names_an_unknown_draft_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", LLAMA, "--gpu", "H200", "--speculative-config",
              json.dumps({"method": "eagle3", "model": "no such draft"})])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "speculative_config.model" in err


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(allow_network=False))


def test_api_sizes_a_catalog_draft_model(client: TestClient) -> None:
    body = {"model": LLAMA, "gpu": "H100", "max_model_len": 8192, "speculative_config": {
        "method": "draft_model", "model": "meta-llama/Llama-3.2-1B", "num_speculative_tokens": 4}}
    r = client.post("/v1/estimate", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["deployment"]["speculative_config"]["model"] == "meta-llama/Llama-3.2-1B"


def test_api_never_reads_a_draft_from_a_path_it_was_not_allowed(client: TestClient) -> None:
    body = {"model": LLAMA, "gpu": "H200", "speculative_config": {"method": "eagle3", "model": HEAD}}
    r = client.post("/v1/estimate", json=body)
    assert r.status_code in (400, 422) and "speculative_config.model" in r.text
