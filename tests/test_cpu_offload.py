"""--cpu-offload-gb: weights vLLM keeps in CPU memory (its UVA offloader), as the CLI, Python API and /v1 see it.

vLLM's offloader walks the decoder layers in order and moves whole parameters (qkv_proj, o_proj, gate_up_proj,
down_proj, ...) until the running total reaches the cap, so it moves at least the cap and at most one parameter
more. Embeddings and the LM head stay on the GPU.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from typer.testing import CliRunner

import gpuplan
from gpuplan.api.app import create_app
from gpuplan.cli import app
from gpuplan.units import GiB, MiB

MODEL = "meta-llama/Llama-3.1-8B"
# One Llama-3.1-8B decoder layer in bf16, as vLLM's parameters: qkv 48 MiB, o 32, gate_up 224, down 112 (+ norms).
QKV, O_PROJ, GATE_UP, DOWN = 48 * MiB, 32 * MiB, 224 * MiB, 112 * MiB
NORMS = 2 * 4096 * 2
LAYER = QKV + O_PROJ + GATE_UP + DOWN + NORMS


def _l4(**kw) -> gpuplan.MemoryReport:
    return gpuplan.estimate(MODEL, gpu="L4", max_model_len=8192, **kw)


def test_offloading_6_gib_moves_14_layers_and_three_parameters_of_the_15th():
    moved = _l4().weights_bytes - _l4(cpu_offload_gb=6).weights_bytes
    # 14 whole layers are 5.69 GiB; then qkv, o, gate_up (still under 6 GiB) and down_proj crosses the cap.
    assert moved == 14 * LAYER + QKV + O_PROJ + GATE_UP + DOWN
    assert 6 * GiB <= moved < 6 * GiB + GATE_UP


def test_the_offloaded_weights_leave_that_much_more_room_for_the_kv_cache():
    base, off = _l4(), _l4(cpu_offload_gb=4)
    assert off.available_kv_cache_bytes - base.available_kv_cache_bytes == base.weights_bytes - off.weights_bytes
    assert any("cpu-offload-gb" in w for w in off.warnings)


def test_llama_8b_at_64k_does_not_fit_a_24_gib_card_but_does_with_8_gib_offloaded():
    plain = gpuplan.estimate(MODEL, gpu_memory_gib=24, max_model_len=65536)
    offloaded = gpuplan.estimate(MODEL, gpu_memory_gib=24, max_model_len=65536, cpu_offload_gb=8)
    assert not plain.fits and offloaded.fits


def test_offloading_more_than_the_decoder_layers_hold_moves_all_of_them_and_no_more():
    every_layer = 32 * LAYER
    moved = _l4().weights_bytes - _l4(cpu_offload_gb=100).weights_bytes
    assert moved == every_layer  # embeddings and the LM head stay on the GPU


def test_the_cli_takes_cpu_offload_gb():
    # (a negative value is in test_cli.py's bad-input table: one line naming cpu_offload_gb, exit 2)
    ok = CliRunner().invoke(app, ["estimate", MODEL, "--gpu", "L4", "--max-model-len", "8192", "--cpu-offload-gb", "6"])
    assert ok.exit_code == 0, ok.output
    assert "cpu_offload -6.09" in ok.output


def test_the_v1_api_applies_cpu_offload_gb_and_rejects_a_negative_one():
    client = TestClient(create_app(allow_network=False))
    body = {"model": MODEL, "gpu": "L4", "max_model_len": 8192}
    plain = client.post("/v1/estimate", json=body).json()
    off = client.post("/v1/estimate", json={**body, "cpu_offload_gb": 6}).json()
    assert off["per_gpu"]["weights_bytes"] < plain["per_gpu"]["weights_bytes"] - 6 * GiB + 1
    bad = client.post("/v1/estimate", json={**body, "cpu_offload_gb": -1})
    assert bad.status_code in (400, 422)
    assert "cpu_offload_gb" in bad.text
