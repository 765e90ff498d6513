"""Seed 002's API, as its users would ask it: `POST /estimate-gpu-memory`, `GET /known-architectures`, `GET /`."""

from __future__ import annotations

import copy

import pytest
from faces_support import needs_core
from fastapi.testclient import TestClient

from gpuplan.api.app import create_app
from gpuplan.api.schemas import SEED_EXAMPLE

SEED_RESPONSE_FIELDS = {
    "model_name",
    "model_params_memory_gb",
    "activation_memory_gb",
    "min_kv_cache_memory_gb",
    "max_kv_cache_memory_gb",
    "cuda_overhead_gb",
    "total_min_memory_gb",
    "total_max_memory_gb",
    "recommended_memory_gb",
    "warning",
    "components_breakdown",
    "architecture_used",
}
BREAKDOWN_FIELDS = {"model_params", "activation", "min_kv_cache", "max_kv_cache", "cuda_overhead"}
ARCH_FIELDS = {"num_layers", "hidden_size", "num_heads", "head_dim", "intermediate_size"}


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(allow_network=False))


def seed(**changes: object) -> dict:
    body = copy.deepcopy(SEED_EXAMPLE)
    body.update(changes)
    return body


def post(client: TestClient, body: dict) -> tuple[int, dict]:
    r = client.post("/estimate-gpu-memory", json=body)
    return r.status_code, r.json()


# ------------------------------------------------------------------------------ answers (need the core)


@needs_core
def test_the_seed_example_request_returns_every_documented_field(client: TestClient) -> None:
    status, body = post(client, SEED_EXAMPLE)
    assert status == 200, body
    assert SEED_RESPONSE_FIELDS <= body.keys()
    assert body["model_name"] == "meta-llama/Llama-2-7b"
    assert body["unit"] == "GiB"
    assert set(body["components_breakdown"]) == BREAKDOWN_FIELDS
    assert {k: body["architecture_used"][k] for k in ARCH_FIELDS} == SEED_EXAMPLE["architecture"]
    assert body["warning"] is None  # Llama-2-7B in fp16 fits one large GPU and is known exactly


@needs_core
def test_how_much_memory_does_llama_2_7b_need_at_2048_tokens_and_batch_32(client: TestClient) -> None:
    _, body = post(client, SEED_EXAMPLE)
    # 6.74B parameters x 2 bytes = 12.55 GiB: what vLLM logs as "Model loading took 12.55 GiB".
    assert 12.4 <= body["model_params_memory_gb"] <= 12.7
    # 32 layers x 2 (K,V) x 4096 x 2 bytes = 512 KiB per token; 32 x 2048 tokens = 32 GiB exactly.
    assert body["max_kv_cache_memory_gb"] == pytest.approx(32.0, abs=0.01)
    # One 16-token block per sequence: 32 x 16 x 512 KiB = 0.25 GiB.
    assert body["min_kv_cache_memory_gb"] == pytest.approx(0.25, abs=0.01)
    assert 0 < body["activation_memory_gb"] < 10
    assert 0 < body["cuda_overhead_gb"] < 5


@needs_core
def test_totals_add_up_and_recommendation_follows_utilization(client: TestClient) -> None:
    _, body = post(client, seed(gpu_memory_utilization=0.8))
    parts = body["components_breakdown"]
    base = parts["model_params"] + parts["activation"] + parts["cuda_overhead"]
    assert body["total_min_memory_gb"] == pytest.approx(base + parts["min_kv_cache"], abs=0.03)
    assert body["total_max_memory_gb"] == pytest.approx(base + parts["max_kv_cache"], abs=0.03)
    assert body["recommended_memory_gb"] == pytest.approx(body["total_max_memory_gb"] / 0.8, abs=0.03)
    assert body["components_breakdown"]["model_params"] == body["model_params_memory_gb"]


@needs_core
def test_q4_and_q8_shrink_the_weights(client: TestClient) -> None:
    full = post(client, seed())[1]["model_params_memory_gb"]
    q8 = post(client, seed(quantization="Q8"))[1]
    q4 = post(client, seed(quantization="Q4"))[1]
    assert q4["model_params_memory_gb"] < q8["model_params_memory_gb"] < full
    assert q8["model_params_memory_gb"] == pytest.approx(full / 2, rel=0.1)
    assert q4["model_params_memory_gb"] == pytest.approx(full / 4, rel=0.25)  # scales and zeros cost a little
    assert any("Q4" in n for n in q4["notes"]) and any("Q8" in n for n in q8["notes"])


@needs_core
def test_dtype_int4_means_the_same_as_q4(client: TestClient) -> None:
    a = post(client, seed(quantization="Q4"))[1]
    b = post(client, seed(dtype="int4"))[1]
    assert a["model_params_memory_gb"] == b["model_params_memory_gb"]


@needs_core
def test_an_fp8_kv_cache_halves_the_kv_memory(client: TestClient) -> None:
    fp16 = post(client, seed())[1]
    fp8 = post(client, seed(kv_cache_dtype="fp8"))[1]
    assert fp8["max_kv_cache_memory_gb"] == pytest.approx(fp16["max_kv_cache_memory_gb"] / 2, abs=0.02)


@needs_core
def test_kv_grows_with_batch_and_sequence_length(client: TestClient) -> None:
    small = post(client, seed(max_batch_size=8, max_seq_len=1024))[1]
    big = post(client, seed(max_batch_size=16, max_seq_len=2048))[1]
    assert big["max_kv_cache_memory_gb"] == pytest.approx(4 * small["max_kv_cache_memory_gb"], rel=0.01)


@needs_core
def test_a_model_not_in_the_catalog_is_estimated_from_the_size_in_its_name(client: TestClient) -> None:
    status, body = post(client, {"model_name": "acme/unheard-of-chat-13b", "max_seq_len": 4096})
    assert status == 200, body
    assert body["warning"] and "estimated" in body["warning"]
    assert body["exact"]["architecture"] is False
    assert body["architecture_source"] == "estimated"
    assert 20 < body["model_params_memory_gb"] < 30  # ~13B x 2 bytes


@needs_core
def test_params_billions_sizes_an_unknown_model(client: TestClient) -> None:
    status, body = post(client, {"model_name": "acme/mystery", "max_seq_len": 2048, "params_billions": 7})
    assert status == 200, body
    assert 11 < body["model_params_memory_gb"] < 15
    assert "estimated" in body["warning"]


@needs_core
def test_the_architecture_object_overrides_the_estimate(client: TestClient) -> None:
    arch = {"num_layers": 40, "hidden_size": 5120, "num_heads": 40, "head_dim": 128, "intermediate_size": 13824}
    status, body = post(client, {"model_name": "acme/custom-13b", "max_seq_len": 2048, "architecture": arch})
    assert status == 200, body
    assert {k: body["architecture_used"][k] for k in ARCH_FIELDS} == arch


@needs_core
def test_a_model_too_large_for_any_single_gpu_gets_a_warning(client: TestClient) -> None:
    status, body = post(client, {"model_name": "acme/giant-1000b", "max_seq_len": 2048})
    assert status == 200, body
    assert "does not fit" in body["warning"]
    assert body["fits"] is False


@needs_core
def test_an_unknown_model_without_a_size_is_refused_naming_model_name(client: TestClient) -> None:
    status, body = post(client, {"model_name": "acme/mystery", "max_seq_len": 2048})
    assert status == 400
    assert body["field"] == "model_name"
    assert "params_billions" in body["detail"]


@needs_core
def test_an_unknown_gpu_lists_the_gpus_it_knows(client: TestClient) -> None:
    status, body = post(client, seed(gpu="TPU-v5"))
    assert status == 400
    assert body["field"] == "gpu"
    assert body["accepted"]


@needs_core
def test_known_architectures_lists_estimated_entries_as_estimated(client: TestClient) -> None:
    r = client.get("/known-architectures")
    assert r.status_code == 200
    models = r.json()["models"]
    assert models and r.json()["count"] == len(models)
    for m in models:
        assert m["status"] == ("exact" if m["exact"] else "estimated"), m["id"]
        assert m["id"] and "family" in m and "source" in m
        assert m["architecture"] is not None, m.get("error")
        assert ARCH_FIELDS | {"num_kv_heads", "vocab", "model_type", "attention_kinds"} <= m["architecture"].keys()
    assert any(not m["exact"] for m in models), "the seed's closed models (GPT-4, Claude, ...) are estimated"
    assert any(m["exact"] for m in models)


# ---------------------------------------------------------------------- input errors (run without the core)

BAD_INPUTS = [
    ("max_seq_len", {"max_seq_len": 0}),
    ("max_seq_len", {"max_seq_len": -1}),
    ("max_seq_len", {"max_seq_len": "long"}),
    ("max_batch_size", {"max_batch_size": 0}),
    ("max_batch_size", {"max_batch_size": -4}),
    ("gpu_memory_utilization", {"gpu_memory_utilization": 0}),
    ("gpu_memory_utilization", {"gpu_memory_utilization": 1.2}),
    ("dtype", {"dtype": "float8"}),
    ("kv_cache_dtype", {"kv_cache_dtype": "int4"}),
    ("quantization", {"quantization": "Q3"}),
    ("max_model_len", {"max_model_len": 0}),
    ("max_seq_len", {"max_seq_len": 4096, "max_model_len": 2048}),
    ("architecture.hidden_size", {"architecture": {"hidden_size": 4096, "num_heads": 30}}),
    ("architecture.head_dim", {"architecture": {"hidden_size": 4096, "num_heads": 32, "head_dim": 64}}),
    ("architecture.num_layers", {"architecture": {"num_layers": 0}}),
    ("architecture.intermediate_size", {"architecture": {"intermediate_size": -1}}),
    ("architecture.colour", {"architecture": {"colour": "blue"}}),
    ("params_billions", {"params_billions": 0}),
    ("tensor_parallel_size", {"tensor_parallel_size": 0}),
    ("unknown_field", {"unknown_field": 1}),
    ("model_name", {"model_name": ""}),
    ("model_name", {"model_name": "/etc/passwd"}),
    ("model_name", {"model_name": "https://example.com/config.json"}),
    ("model_name", {"model_name": "../../secrets"}),
    ("quantization", {"dtype": "int4", "quantization": "Q8"}),
    ("kv_cache_dtype", {"dtype": "float16", "kv_cache_dtype": "float32"}),
]


@pytest.mark.parametrize(("field", "changes"), BAD_INPUTS, ids=[f"{f}:{c}" for f, c in BAD_INPUTS])
def test_bad_input_is_a_400_naming_the_field(client: TestClient, field: str, changes: dict) -> None:
    status, body = post(client, seed(**changes))
    assert status == 400, body
    assert set(body) == {"detail", "field", "accepted"}
    assert body["field"] == field
    assert field.split(".")[-1] in body["detail"]


@pytest.mark.parametrize("missing", ["model_name", "max_seq_len"])
def test_required_fields_are_named_when_missing(client: TestClient, missing: str) -> None:
    body = seed()
    del body[missing]
    status, answer = post(client, body)
    assert status == 400
    assert answer["field"] == missing


@pytest.mark.parametrize(("field", "value", "one_accepted"), [
    ("dtype", "fp64", "bfloat16"),
    ("quantization", "Q2", "Q4"),
    ("kv_cache_dtype", "int4", "fp8"),
])
def test_unsupported_values_list_the_accepted_ones(client: TestClient, field: str, value: str, one_accepted: str) -> None:
    status, body = post(client, seed(**{field: value}))
    assert status == 400
    assert one_accepted in body["accepted"]
    assert one_accepted in body["detail"]


def test_quantization_aliases_are_case_insensitive_and_real_method_names_pass_validation() -> None:
    from gpuplan.api.schemas import SeedEstimateRequest

    assert SeedEstimateRequest(**seed(quantization="q4")).quantization == "Q4"
    for method in ("awq", "gptq", "fp8", "bitsandbytes", "compressed-tensors", "mxfp4"):
        assert SeedEstimateRequest(**seed(quantization=method)).quantization == method


def test_seed_aliases_map_to_vllm_methods_and_keep_kv_in_the_model_dtype() -> None:
    from gpuplan.api.schemas import SeedEstimateRequest
    from gpuplan.api.service import seed_options

    opts, notes = seed_options(SeedEstimateRequest(**seed(quantization="Q4")))
    assert opts["quantization"] == "awq" and opts["kv_cache_dtype"] == "auto"
    assert opts["max_model_len"] == 2048 and opts["max_num_seqs"] == 32
    opts, _ = seed_options(SeedEstimateRequest(**seed(dtype="int8")))
    assert opts["quantization"] == "fp8"
    opts, _ = seed_options(SeedEstimateRequest(**seed(kv_cache_dtype="int8")))
    assert opts["kv_cache_dtype"] == "fp8"
    opts, _ = seed_options(SeedEstimateRequest(**seed(dtype="bfloat16", kv_cache_dtype="float16")))
    assert opts["dtype"] == "bfloat16" and opts["kv_cache_dtype"] == "float16"


def test_invalid_json_and_oversized_bodies_are_refused_cleanly(client: TestClient) -> None:
    r = client.post("/estimate-gpu-memory", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["field"] == "body"
    r = client.post("/estimate-gpu-memory", content=b" " * 400_000, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_root_says_what_the_api_is_with_an_example(client: TestClient) -> None:
    body = client.get("/").json()
    assert body["unit"] == "GiB"
    assert "POST /estimate-gpu-memory" in body["endpoints"]
    assert "GET /known-architectures" in body["endpoints"]
    assert body["example_requests"]["POST /estimate-gpu-memory"] == SEED_EXAMPLE
    assert body["web_page"] == "/ui/" and body["docs"] == "/docs"


def test_openapi_states_gib_on_every_gb_field(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    gb_fields = [
        (name, prop, spec)
        for name, schema in schemas.items()
        for prop, spec in schema.get("properties", {}).items()
        if prop.endswith("_gb")
    ]
    assert len(gb_fields) >= 9
    for name, prop, spec in gb_fields:
        assert "GiB" in spec.get("description", ""), f"{name}.{prop}"


def test_the_web_page_lives_under_ui(client: TestClient) -> None:
    r = client.get("/ui", follow_redirects=False)
    assert r.status_code in (307, 308) and r.headers["location"].endswith("/ui/")
    assert client.get("/ui/").status_code in (200, 404)  # 404 only until the page is installed


def test_a_bug_is_a_clean_500_without_internals(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpuplan.api import service

    def broken(*_: object, **__: object) -> dict:
        raise RuntimeError("secret internal state")

    monkeypatch.setattr(service, "seed_estimate", broken)
    c = TestClient(create_app(allow_network=False), raise_server_exceptions=False)
    r = c.post("/estimate-gpu-memory", json=SEED_EXAMPLE)
    assert r.status_code == 500
    assert "secret" not in r.text and r.json()["detail"].startswith("internal error")


@needs_core
def test_an_architecture_that_differs_from_the_known_model_is_used_and_flagged(client: TestClient) -> None:
    arch = {**SEED_EXAMPLE["architecture"], "num_layers": 16}
    status, body = post(client, seed(architecture=arch))
    assert status == 200, body
    assert body["architecture_used"]["num_layers"] == 16
    assert body["exact"]["architecture"] is False and "overridden" in body["warning"]
    full = post(client, seed())[1]
    assert body["max_kv_cache_memory_gb"] == pytest.approx(full["max_kv_cache_memory_gb"] / 2, abs=0.02)


@needs_core
def test_min_kv_is_one_block_in_every_group_for_a_sliding_window_model(client: TestClient) -> None:
    import gpuplan

    status, body = post(client, {"model_name": "google/gemma-3-27b-it", "max_seq_len": 4096, "max_batch_size": 2,
                                 "dtype": "bfloat16", "gpu": "H100"})
    assert status == 200
    r = gpuplan.estimate("google/gemma-3-27b-it", gpu="H100", max_model_len=4096, max_num_seqs=2)
    per_seq = r.kv.bytes_per_block * r.kv.num_groups  # 7 groups x 10 layers x 128 KiB
    assert body["min_kv_cache_memory_gb"] == round(2 * per_seq / 2**30, 2)
