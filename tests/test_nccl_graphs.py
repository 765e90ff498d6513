"""When vLLM's custom all-reduce is off, the tensor-parallel all-reduces its CUDA graphs capture are NCCL's, and
each captured collective keeps device memory for the graph's lifetime (calibration.json
nccl_graph_bytes_per_collective, fitted on public start-ups found after the graph pool was fitted)."""

from __future__ import annotations

import pytest

import gpuplan.engines.vllm.estimate as E
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm import budget as B
from gpuplan.engines.vllm.profiles import get_profile
from gpuplan.units import GiB


@pytest.mark.parametrize(("gpu", "tp", "nccl"), [
    ("L40S", 4, True),        # "not supported on more than two PCIe-only GPUs"
    ("L40S", 2, False),       # two PCIe cards with peer access keep the custom all-reduce
    ("RTX 4090", 2, True),    # GeForce drivers give no peer access, so the P2P test fails
    ("H100", 8, False),       # NVSwitch: custom all-reduce
    ("H100", 3, True),        # a TP size the custom all-reduce does not support
    ("H100", 1, False),       # nothing to reduce
    ("MI300X", 8, False),     # ROCm has its own all-reduce paths
])
def test_which_deployments_capture_nccls_all_reduce_in_their_graphs(gpu: str, tp: int, nccl: bool) -> None:
    from gpuplan.gpus import find_gpu

    card = find_gpu(gpu)
    dep = Deployment(gpu_name=card.name, gpu_memory_bytes=card.memory_bytes)
    assert E._nccl_in_graphs(dep, tp, E._fabric(dep)) is nccl


def test_qwen2_5_72b_on_four_l40s_captures_13846_nccl_all_reduces_on_vllm_0_19() -> None:
    """0.19 with 256 sequences captures 51 PIECEWISE and 35 FULL graphs; each holds 2 all-reduces per layer (80
    layers) and the embedding's: 86 x 161 = 13,846 collectives, 1.39 GiB at 107,800 bytes each (the log:
    2.62 GiB of graphs against the pool's 1.23, harvest_code hc-001)."""
    p = get_profile("0.19.0")
    n = B.nccl_graph_bytes(p, 0, 80, max_num_seqs=256, mnbt=2048, max_capture=None)
    assert n == 13_846 * p.calib["nccl_graph_bytes_per_collective"]
    assert round(n / GiB, 2) == 1.39
    # a later pipeline stage has no embedding all-reduce
    assert B.nccl_graph_bytes(p, 40, 80, max_num_seqs=256, mnbt=2048, max_capture=None) == 86 * 80 * 107_800


def test_four_pcie_gpus_lose_the_captured_collectives_from_the_kv_cache_once_vllm_budgets_graphs(monkeypatch) -> None:
    """From 0.20 vLLM subtracts its CUDA-graph estimate before sizing the KV cache, and the estimate captures the
    NCCL collectives too; on 0.19 the graphs are captured after the KV cache and the KV figure does not move."""
    def run(version: str, nccl: bool):
        monkeypatch.setattr(E, "_nccl_in_graphs", lambda dep, tp, fabric: nccl)
        return estimate_on("Qwen/Qwen3-32B", gpu="L40S", tensor_parallel_size=4, max_model_len=8192,
                           vllm_version=version)

    on, off = run("0.21.0", True), run("0.21.0", False)
    assert on.cudagraph_bytes > off.cudagraph_bytes
    assert off.available_kv_cache_bytes - on.available_kv_cache_bytes == on.cudagraph_bytes - off.cudagraph_bytes
    on, off = run("0.19.0", True), run("0.19.0", False)
    assert on.cudagraph_bytes > off.cudagraph_bytes
    assert on.available_kv_cache_bytes == off.available_kv_cache_bytes


def test_two_rtx_4090s_at_tp2_keep_almost_no_non_torch_memory() -> None:
    """GeForce cards have no peer access: vLLM's custom all-reduce stays off and NCCL stages through host memory.
    The 0.28 ledgers of Qwen3-32B-AWQ on two RTX 4090s (heldout_public ghs-001/002, compile_cache_public
    cc-018/019) print consumed memory 0.08-0.12 GiB above the weights, 0.03 of it the V2 sampler's penalty state;
    a peer-capable PCIe pair (two RTX A6000 on 0.30: 0.41) keeps more."""
    import json
    from pathlib import Path

    from gpuplan.validation import predict

    path = Path(__file__).parent / "fixtures" / "vllm_logs" / "heldout_public.jsonl"
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["id"] in ("ghs-001", "ghs-002"):
            got = predict(rec)
            assert got["non_torch_gib"] == pytest.approx(0.07, abs=0.01)
            assert got["available_kv_cache_gib"] == pytest.approx(rec["logged"]["available_kv_cache_gib"], rel=0.01)
    geforce = estimate_on("Qwen/Qwen3-32B", gpu="RTX 4090", tensor_parallel_size=2, vllm_version="0.28.0",
                          quantization="awq", max_model_len=8192)
    workstation = estimate_on("Qwen/Qwen3-32B", gpu="RTX A6000", tensor_parallel_size=2, vllm_version="0.28.0",
                              quantization="awq", max_model_len=8192)
    assert geforce.non_torch_bytes < workstation.non_torch_bytes - 0.2 * GiB


def test_disable_custom_all_reduce_on_h100s_captures_nccls_all_reduces_in_the_graphs() -> None:
    """--disable-custom-all-reduce: NCCL reduces even over NVSwitch, so every captured graph keeps its collectives
    (0.30: Llama-3.1-8B at TP=2 captures 51 PIECEWISE + 51 FULL graphs of 2 x 32 + 1 all-reduces, and the V2
    runner's estimate, which sizes the KV cache, takes its share of the pool, 0.57). At TP=1 nothing changes."""
    kw = dict(gpu="H100", tensor_parallel_size=2, vllm_version="0.30.0", max_model_len=9216)
    custom = estimate_on("meta-llama/Llama-3.1-8B-Instruct", **kw)
    nccl = estimate_on("meta-llama/Llama-3.1-8B-Instruct", disable_custom_all_reduce=True, **kw)
    per = get_profile("0.30.0").calib["nccl_graph_bytes_per_collective"]
    grown = {c.name: c.bytes for c in nccl.components}["cudagraph"] - {c.name: c.bytes for c in custom.components}[
        "cudagraph"]
    assert grown == pytest.approx(0.57 * 102 * 65 * per, rel=0.01)
    assert nccl.available_kv_cache_bytes < custom.available_kv_cache_bytes
    single = dict(kw, tensor_parallel_size=1)
    assert estimate_on("meta-llama/Llama-3.1-8B-Instruct", disable_custom_all_reduce=True, **single
                       ).available_kv_cache_bytes == estimate_on("meta-llama/Llama-3.1-8B-Instruct", **single
                                                                 ).available_kv_cache_bytes
