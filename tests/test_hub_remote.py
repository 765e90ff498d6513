"""Hub loading, replayed offline from recorded exchanges at huggingface_hub's own HTTP client.

huggingface_hub (>= 1.0) sends every request through one shared httpx(2) Client built by a factory it
lets us replace (`set_client_factory`). The tests install a Client whose transport answers from
tests/fixtures/hub/recorded/ and fails the test on any request it has no recording for, so nothing
can reach the network. The HF cache and token are redirected to a temporary folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")
hf_constants = pytest.importorskip("huggingface_hub.constants")
hf_http = pytest.importorskip("huggingface_hub.utils._http")
try:
    import httpx2 as httpx
except ImportError:  # older huggingface_hub releases use httpx
    import httpx  # type: ignore[no-redef]

from gpuplan.errors import GpuplanError, ModelNotFound  # noqa: E402
from gpuplan.hub import (  # noqa: E402
    ConfigMissing,
    GatedModel,
    NetworkUnavailable,
    RevisionNotFound,
    load_reference,
    map_checkpoint,
)
from gpuplan.hub.local import read_safetensors_header  # noqa: E402

REC = Path(__file__).parent / "fixtures" / "hub" / "recorded"
RECORDING = json.loads((REC / "tiny-llama.json").read_text())
ERRORS = json.loads((REC / "errors.json").read_text())
REPO = RECORDING["repo_id"]

Handler = Callable[[Any], Any]


def recorded_handler(request: Any) -> Any:
    url = str(request.url)
    for ex in RECORDING["exchanges"]:
        if ex["method"] != request.method:
            continue
        if "url" in ex and ex["url"] != url:
            continue
        if "path" in ex and ex["path"] != request.url.path:
            continue
        if "range" in ex and ex["range"] != request.headers.get("range"):
            continue
        body = (REC / ex["body"]).read_bytes() if "body" in ex and request.method == "GET" else b""
        return httpx.Response(ex["status"], headers=ex["headers"], content=body)
    pytest.fail(f"unrecorded request: {request.method} {url} range={request.headers.get('range')}")


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[[Handler], list[str]]]:
    """Install a replaying client; returns a function that sets the handler and gives the request log."""
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "stored_tokens"), raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    log: list[str] = []
    state: dict[str, Handler] = {"handler": recorded_handler}

    def transport(request: Any) -> Any:
        if request.url.path == "/api/agent-harnesses":
            # huggingface_hub's own user-agent housekeeping (it swallows failures); not ours to record.
            return httpx.Response(404)
        log.append(f"{request.method} {request.url}")
        return state["handler"](request)

    # Same client as huggingface_hub's default factory (its request hook enforces HF_HUB_OFFLINE),
    # with the replaying transport in place of the network.
    hook = hf_http.hf_request_event_hook
    huggingface_hub.set_client_factory(lambda: httpx.Client(
        transport=httpx.MockTransport(transport), follow_redirects=True, event_hooks={"request": [hook]}))

    def use(handler: Handler) -> list[str]:
        state["handler"] = handler
        return log

    yield use
    huggingface_hub.set_client_factory(hf_http.default_client_factory)


def answer(name: str) -> Handler:
    spec = ERRORS[name]
    return lambda request: httpx.Response(spec["status"], headers=spec["headers"])


def test_recorded_repo_gives_config_and_exact_tensors(hub: Callable[[Handler], list[str]]) -> None:
    log = hub(recorded_handler)
    info = load_reference(REPO)
    assert info.source == "hub"
    assert info.config["model_type"] == "llama" and info.config["num_key_value_heads"] == 2
    assert info.config["generation_config"]["temperature"] == 0.6
    assert info.revision == RECORDING["commit"]
    local = read_safetensors_header(Path(__file__).parent / "fixtures/hub/tiny-llama/model.safetensors")
    assert info.tensors is not None
    assert {(t.name, t.dtype, t.shape, t.nbytes) for t in info.tensors} == \
        {(t.name, t.dtype, t.shape, t.nbytes) for t in local}
    assert any(line.startswith("GET https://cdn-lfs.hf.co/") for line in log)  # header via range request
    mapped = map_checkpoint(info)
    assert len(mapped.tensors) == 21 and len(mapped.skipped) == 2


def test_revision_is_parsed_and_requested(hub: Callable[[Handler], list[str]]) -> None:
    log = hub(answer("revision_not_found"))
    with pytest.raises(RevisionNotFound) as e:
        load_reference(f"{REPO}@v1.0")
    assert e.value.field == "model"
    assert "/resolve/v1.0/config.json" in log[0]


@pytest.mark.parametrize("case", ["repo_not_found", "not_found_404"])
def test_missing_repo_is_model_not_found(hub: Callable[[Handler], list[str]], case: str) -> None:
    hub(answer(case))
    with pytest.raises(ModelNotFound) as e:
        load_reference("nobody/no-such-model")
    assert e.value.field == "model"
    assert not isinstance(e.value, RevisionNotFound)


@pytest.mark.parametrize("case", ["gated_anonymous", "gated_no_access"])
def test_gated_repo_tells_user_to_set_hf_token(hub: Callable[[Handler], list[str]], case: str) -> None:
    hub(answer(case))
    with pytest.raises(GatedModel) as e:
        load_reference("meta-llama/Llama-3.1-8B")
    assert e.value.field == "model"
    assert "HF_TOKEN" in e.value.message and "access" in e.value.message


def test_plain_403_is_an_access_error(hub: Callable[[Handler], list[str]]) -> None:
    hub(lambda request: httpx.Response(403, headers={"x-error-message": "Forbidden"}))
    with pytest.raises(GatedModel, match="HF_TOKEN"):
        load_reference("some/private-model")


def test_repo_without_config_is_distinct(hub: Callable[[Handler], list[str]]) -> None:
    hub(answer("no_config"))
    with pytest.raises(ConfigMissing) as e:
        load_reference("someone/a-dataset-like-repo")
    assert e.value.field == "model" and "config.json" in e.value.message


def test_connection_error_is_network_unavailable(hub: Callable[[Handler], list[str]]) -> None:
    def refuse(request: Any) -> Any:
        raise httpx.ConnectError("connection refused", request=request)

    hub(refuse)
    with pytest.raises(NetworkUnavailable) as e:
        load_reference(REPO)
    assert e.value.field == "model"


def test_timeout_is_network_unavailable(hub: Callable[[Handler], list[str]]) -> None:
    def slow(request: Any) -> Any:
        raise httpx.ReadTimeout("timed out", request=request)

    hub(slow)
    with pytest.raises(NetworkUnavailable):
        load_reference(REPO)


def test_offline_mode_with_empty_cache(hub: Callable[[Handler], list[str]],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    log = hub(recorded_handler)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(NetworkUnavailable, match="HF_HUB_OFFLINE"):
        load_reference(REPO)
    assert log == []


def test_cache_serves_offline_and_allow_network_false(hub: Callable[[Handler], list[str]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    log = hub(recorded_handler)
    load_reference(REPO)  # fills the temporary HF cache
    n = len(log)
    info = load_reference(REPO, allow_network=False)
    assert len(log) == n  # no request at all
    assert info.config["hidden_size"] == 16 and info.tensors is None
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    info = load_reference(REPO)
    assert info.config["hidden_size"] == 16 and info.tensors is None
    assert any("HF_HUB_OFFLINE" in note and "local HF cache" in note for note in info.notes)
    assert len(log) == n


def test_hub_down_falls_back_to_cache_fast(hub: Callable[[Handler], list[str]]) -> None:
    hub(recorded_handler)
    load_reference(REPO)

    def refuse(request: Any) -> Any:
        raise httpx.ConnectError("connection refused", request=request)

    log = hub(refuse)
    n = len(log)
    info = load_reference(REPO)
    assert info.config["hidden_size"] == 16 and info.tensors is None
    assert len(log) == n + 1  # one probe, no retries


def test_allow_network_false_with_empty_cache(hub: Callable[[Handler], list[str]]) -> None:
    log = hub(recorded_handler)
    with pytest.raises(NetworkUnavailable):
        load_reference(REPO, allow_network=False)
    assert log == []


@pytest.mark.parametrize("ref", ["https://huggingface.co/meta-llama/Llama-3.1-8B", "http://evil/x/y",
                                 "meta-llama/../../etc", "a/b/c"])
def test_bad_ids_never_reach_the_hub(hub: Callable[[Handler], list[str]], ref: str) -> None:
    log = hub(recorded_handler)
    with pytest.raises(GpuplanError) as e:
        load_reference(ref)
    assert e.value.field == "model"
    assert log == []


# ---- through the engine and the faces ----------------------------------------------------------------


def test_weights_of_a_replayed_hub_repo_are_its_tensor_bytes(hub: Callable[[Handler], list[str]]) -> None:
    import gpuplan

    hub(recorded_handler)
    info = load_reference(REPO)
    mapped = map_checkpoint(info)
    spec = gpuplan.load_model(REPO)
    assert spec.source == "hub" and spec.checkpoint
    r = gpuplan.estimate(spec, gpu="H100", max_model_len=64)
    loaded = sum(t.nbytes for t in info.tensors if t.name not in {s.name for s in mapped.skipped})
    pad = (-spec.vocab_size % 64) * spec.hidden_size * 2 * (1 if spec.tie_word_embeddings else 2)
    rope = sum(c.positions * c.rotary_dim * 2 for c in spec.rope_caches)
    assert r.weights_bytes == loaded + pad + rope


@pytest.mark.parametrize(("case", "words"), [("repo_not_found", "not found"), ("gated_anonymous", "HF_TOKEN"),
                                             ("no_config", "config.json")])
def test_cli_and_api_say_which_hub_failure_it_was(hub: Callable[[Handler], list[str]], monkeypatch, capsys,
                                                  case, words):
    from fastapi.testclient import TestClient

    from gpuplan.api.app import create_app
    from gpuplan.cli import main

    monkeypatch.delenv("GPUPLAN_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub(answer(case))
    with pytest.raises(SystemExit) as exit_:
        main(["estimate", "someone/unknown-model-xyz", "--gpu", "H100"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and words.lower() in err.lower()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    body = TestClient(create_app(allow_network=True)).post(
        "/v1/estimate", json={"model": "someone/unknown-model-xyz", "gpu": "H100"})
    assert body.status_code == 400 and body.json()["field"] == "model"
    assert words.lower() in body.json()["detail"].lower()


def test_unreachable_hub_falls_back_to_the_catalog_and_says_so(hub: Callable[[Handler], list[str]]) -> None:
    import gpuplan

    def refuse(request: Any) -> Any:
        raise httpx.ConnectError("connection refused", request=request)

    hub(refuse)
    spec = gpuplan.load_model("someone-else/Llama-3.1-8B")
    assert spec.name == "meta-llama/Llama-3.1-8B"
    assert any("using the catalog" in n for n in spec.notes)


def test_a_repo_with_only_a_mistral_params_json_is_read_as_vllm_reads_it(
        hub: Callable[[Handler], list[str]]) -> None:
    """Mistral Large 3 ships params.json and no config.json; vLLM then reads params.json, and so does gpuplan."""
    params = json.loads((Path(__file__).parent / "fixtures/oracle/families/mla.json").read_text())[
        "models"]["mistralai/Mistral-Large-3-675B-Instruct-2512"]["params_json"]
    body = json.dumps(params).encode()

    def handler(request: Any) -> Any:
        if request.url.path.endswith("/params.json"):
            headers = {"content-length": str(len(body)), "etag": '"p1"', "x-repo-commit": "a" * 40,
                       "content-type": "text/plain; charset=utf-8"}
            return httpx.Response(200, headers=headers, content=body if request.method == "GET" else b"")
        return answer("no_config")(request)

    log = hub(handler)
    info = load_reference("mistralai/Mistral-Large-3-675B-Instruct-2512")
    assert info.config["model_type"] == "deepseek_v3" and info.config["n_routed_experts"] == 128
    assert info.tensors is None and any("params.json" in n for n in info.notes)
    assert any(line.endswith("/params.json") for line in log)
