"""The /v1 API: vLLM's option names in, `MemoryReport.to_dict()` out."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from faces_support import needs_core, planner_present
from fastapi.testclient import TestClient

from gpuplan.api.app import create_app
from gpuplan.api.schemas import DeploymentFields
from gpuplan.deployment import Deployment

MODEL = "meta-llama/Llama-3.1-8B"


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(allow_network=False))


def test_the_request_takes_every_deployment_field_by_its_vllm_name() -> None:
    dep_fields = {f.name for f in dataclasses.fields(Deployment)} - {"gpu_name", "gpu_memory_bytes"}
    # vLLM takes the drafter as one JSON option, --speculative-config {"method", "num_speculative_tokens", "model"}
    drafter = {"speculative_method", "num_speculative_tokens", "speculative_model", "speculative_draft_config"}
    assert dep_fields - drafter <= set(DeploymentFields.model_fields)
    assert "speculative_config" in DeploymentFields.model_fields
    built = DeploymentFields(tensor_parallel_size=2, max_model_len=8192, kv_cache_dtype="fp8",
                             env={"VLLM_ATTENTION_BACKEND": "FLASHINFER"}).deployment()
    assert built.tensor_parallel_size == 2 and built.max_model_len == 8192 and built.kv_cache_dtype == "fp8"
    assert built.env == (("VLLM_ATTENTION_BACKEND", "FLASHINFER"),)


# ------------------------------------------------------------------------------ answers (need the core)


@needs_core
def test_estimate_returns_the_per_gpu_report(client: TestClient) -> None:
    r = client.post("/v1/estimate", json={"model": MODEL, "gpu": "H100", "max_model_len": 8192})
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["unit"] == "GiB"
    assert body["gpu"]["name"]
    assert {"weights_bytes", "weights_gib", "activation_peak_gib", "non_torch_gib", "cudagraph_gib",
            "available_kv_cache_gib"} <= body["per_gpu"].keys()
    assert body["kv_cache_tokens"] > 0 and body["max_concurrency"] > 0 and body["num_gpu_blocks"] > 0
    assert body["fits"] is True and body["deployment"]["max_model_len"] == 8192


@needs_core
def test_tensor_parallel_halves_the_weights_per_gpu(client: TestClient) -> None:
    one = client.post("/v1/estimate", json={"model": MODEL, "gpu": "H100"}).json()
    two = client.post("/v1/estimate", json={"model": MODEL, "gpu": "H100", "tensor_parallel_size": 2}).json()
    assert two["per_gpu"]["weights_bytes"] < 0.6 * one["per_gpu"]["weights_bytes"]


@needs_core
def test_a_config_object_can_stand_in_for_a_model_name(client: TestClient) -> None:
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048,
        "intermediate_size": 5632, "num_attention_heads": 32, "num_hidden_layers": 22,
        "num_key_value_heads": 4, "vocab_size": 32000, "max_position_embeddings": 2048,
        "torch_dtype": "bfloat16", "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
    }
    r = client.post("/v1/estimate", json={"model": config, "gpu": "H100"})
    assert r.status_code == 200, r.json()


@needs_core
def test_a_bert_config_is_a_400_saying_it_is_an_encoder(client: TestClient) -> None:
    bert = {"architectures": ["BertForMaskedLM"], "model_type": "bert", "hidden_size": 768,
            "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "vocab_size": 30522}
    r = client.post("/v1/estimate", json={"model": bert, "gpu": "H100"})
    assert r.status_code == 400
    assert "is an encoder" in json.dumps(r.json())


@needs_core
def test_curve_gives_one_point_per_length(client: TestClient) -> None:
    lengths = [4096, 32768, 131072]
    r = client.post("/v1/curve", json={"model": MODEL, "gpu": "H100", "lengths": lengths, "concurrency": 4})
    assert r.status_code == 200, r.json()
    points = r.json()["points"]
    assert [p["max_model_len"] for p in points] == lengths
    assert all({"per_gpu_required_bytes", "kv_bytes", "max_concurrency", "fits"} <= p.keys() for p in points)
    assert points[0]["kv_bytes"] < points[1]["kv_bytes"] < points[2]["kv_bytes"]


@needs_core
def test_catalog_listings(client: TestClient) -> None:
    models = client.get("/v1/models").json()
    assert models["count"] == len(models["models"]) > 0
    assert {"id", "family", "exact", "total_params"} <= models["models"][0].keys()
    gpus = client.get("/v1/gpus").json()
    assert gpus["unit"] == "GiB" and gpus["count"] > 0
    h100 = [g for g in gpus["gpus"] if "H100 SXM" in g["name"].upper()]
    assert h100 and 78 < h100[0]["memory_gib"] < 81  # CUDA-visible, not the marketing 80 GB


@needs_core
def test_an_unknown_gpu_is_a_400_listing_known_gpus(client: TestClient) -> None:
    r = client.post("/v1/estimate", json={"model": MODEL, "gpu": "RTX 9999"})
    assert r.status_code == 400
    assert r.json()["field"] == "gpu" and r.json()["accepted"]


@needs_core
def test_an_unknown_model_is_a_400_naming_model(client: TestClient) -> None:
    r = client.post("/v1/estimate", json={"model": "acme/does-not-exist-anywhere"})
    assert r.status_code == 400 and r.json()["field"] == "model"


@pytest.mark.skipif(not planner_present(), reason="planner not merged yet")
@needs_core
def test_plan_answers_when_the_planner_is_present(client: TestClient) -> None:
    r = client.post("/v1/plan", json={"model": MODEL, "gpus": ["H100"], "max_gpus": 2, "prices": {"H100": 2.0}})
    assert r.status_code == 200, r.json()


# ---------------------------------------------------------------------- input errors (run without the core)

BAD = [
    ("tensor_parallel_size", "/v1/estimate", {"tensor_parallel_size": 0}),
    ("pipeline_parallel_size", "/v1/estimate", {"pipeline_parallel_size": 0}),
    ("gpu_memory_utilization", "/v1/estimate", {"gpu_memory_utilization": 0}),
    ("gpu_memory_utilization", "/v1/estimate", {"gpu_memory_utilization": 1.01}),
    ("max_model_len", "/v1/estimate", {"max_model_len": 0}),
    ("max_num_seqs", "/v1/estimate", {"max_num_seqs": -1}),
    ("kv_cache_dtype", "/v1/estimate", {"kv_cache_dtype": "int8"}),
    ("dtype", "/v1/estimate", {"dtype": "int4"}),
    ("quantization", "/v1/estimate", {"quantization": "Q4"}),
    ("block_size", "/v1/estimate", {"block_size": 7}),
    ("vllm_version", "/v1/estimate", {"vllm_version": "latest; rm -rf /"}),
    ("gpu_memory_gib", "/v1/estimate", {"gpu": "H100", "gpu_memory_gib": 80}),
    ("model", "/v1/estimate", {"model": "/etc/passwd"}),
    ("model", "/v1/estimate", {"model": "http://169.254.169.254/latest"}),
    ("model", "/v1/estimate", {"model": 42}),
    ("max_model_len", "/v1/estimate", {"max_model_len": 2.5}),
    ("max_cudagraph_capture_size", "/v1/estimate", {"max_cudagraph_capture_size": 0}),
    ("max_cudagraph_capture_size", "/v1/estimate", {"max_cudagraph_capture_size": 64, "vllm_version": "0.10.2"}),
    ("lengths", "/v1/curve", {"lengths": []}),
    ("lengths", "/v1/curve", {"lengths": list(range(1, 66))}),
    ("lengths[1]", "/v1/curve", {"lengths": [1024, 0]}),
    ("concurrency", "/v1/curve", {"lengths": [1024], "concurrency": 0}),
    ("num_gpus", "/v1/plan", {"num_gpus": 16, "max_gpus": 8}),
    ("max_gpus", "/v1/plan", {"max_gpus": 0}),
    ("prices.H100", "/v1/plan", {"prices": {"H100": -1}}),
]


@pytest.mark.parametrize(("field", "route", "changes"), BAD, ids=[f"{r}:{f}:{c}" for f, r, c in BAD])
def test_bad_input_is_a_400_naming_the_field(client: TestClient, field: str, route: str, changes: dict) -> None:
    body = {"model": MODEL, "gpu": "H100", **changes}
    if route == "/v1/curve":
        body.setdefault("lengths", [4096])
    if route == "/v1/plan":
        body.pop("gpu")
    r = client.post(route, json=body)
    assert r.status_code == 400, r.json()
    assert set(r.json()) == {"detail", "field", "accepted"}
    assert r.json()["field"] == field


def test_kv_cache_dtype_errors_list_vllm_choices(client: TestClient) -> None:
    r = client.post("/v1/estimate", json={"model": MODEL, "kv_cache_dtype": "int8"})
    assert "fp8_e4m3" in r.json()["accepted"]


@pytest.mark.skipif(planner_present(), reason="the planner is merged")
def test_plan_says_501_while_the_planner_is_absent(client: TestClient) -> None:
    r = client.post("/v1/plan", json={"model": MODEL})
    assert r.status_code == 501
    assert "planner" in r.json()["detail"]


def test_local_checkpoints_are_read_only_inside_operator_allowed_dirs(monkeypatch) -> None:
    from pathlib import Path

    from gpuplan.api.app import create_app

    fixtures = Path(__file__).parent / "fixtures" / "hub"
    c = TestClient(create_app(allow_network=False))
    body = {"model": str(fixtures / "tiny-llama"), "gpu": "H100", "max_model_len": 128}
    refused = c.post("/v1/estimate", json=body)
    assert refused.status_code == 400 and refused.json()["field"] == "model"
    monkeypatch.setenv("GPUPLAN_MODEL_DIRS", str(fixtures))
    for ref in ("tiny-llama", "tiny-llama/config.json", "gguf/tiny-llama-q8_0.gguf"):
        ok = c.post("/v1/estimate", json={**body, "model": str(fixtures / ref)})
        assert ok.status_code == 200, ok.text
    escape = c.post("/v1/estimate", json={**body, "model": str(fixtures / "tiny-llama" / ".." / ".." / "..")})
    assert escape.status_code == 400


def test_a_name_too_long_for_the_filesystem_is_a_400_not_a_500(client: TestClient) -> None:
    r = client.post("/v1/estimate", json={"model": "0" * 256, "gpu": "H100"})
    assert r.status_code == 400 and r.json()["field"] == "model"


@needs_core
def test_the_multimodal_profiling_options_go_in_by_vllm_name(client: TestClient) -> None:
    cfg = json.loads((Path(__file__).parent / "fixtures" / "vllm_logs" / "configs"
                      / "Qwen__Qwen2.5-VL-7B-Instruct.json").read_text())
    full = client.post("/v1/estimate", json={"model": cfg, "gpu": "H100"})
    images = client.post("/v1/estimate", json={"model": cfg, "gpu": "H100", "limit_mm_per_prompt": {"video": 0}})
    assert full.status_code == images.status_code == 200
    assert images.json()["per_gpu"]["activation_peak_gib"] < full.json()["per_gpu"]["activation_peak_gib"] - 10
    bad = client.post("/v1/estimate", json={"model": cfg, "gpu": "H100", "limit_mm_per_prompt": {"vid": 0}})
    assert bad.status_code in (400, 422) and "image, video, audio" in json.dumps(bad.json())
