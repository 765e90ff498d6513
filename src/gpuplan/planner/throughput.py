"""Roofline throughput estimates. Labelled estimates: memory is the engine's, speed is not measured."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..gpus import GPU
from ..model.spec import ModelSpec
from .config import data
from .types import Throughput

# Parameters a text token does not touch (the vision tower runs on images only).
_NOT_PER_TOKEN = ("vision", "projector", "mtp", "total")


@dataclass(frozen=True)
class ActiveParams:
    """Parameters one text token reads: routed experts count top_k / num_experts, a looped decoder's layers as
    often as it runs them (so `active` can exceed `total`)."""

    total: int
    active: int

    @property
    def fraction(self) -> float:
        return self.active / self.total if self.total else 1.0


def active_params(spec: ModelSpec) -> ActiveParams:
    """Parameters read per token: decoder-layer weights as many times as a looped decoder runs them."""
    counts = spec.param_counts()
    moe = next((layer.mlp for layer in spec.layers if layer.mlp.kind == "moe" and layer.mlp.num_experts), None)
    share = moe.top_k / moe.num_experts if moe else 1.0
    in_layers: dict[str, int] = {}
    for layer in spec.layers:
        for t in layer.tensors:
            if t.in_checkpoint:
                in_layers[t.kind] = in_layers.get(t.kind, 0) + t.numel
    active = 0.0
    for kind, n in counts.items():
        if kind in _NOT_PER_TOKEN or kind == "embedding":  # an embedding lookup reads one row
            continue
        reads = (n - in_layers.get(kind, 0)) + in_layers.get(kind, 0) * spec.layer_runs
        active += reads * share if kind == "experts" else reads
    return ActiveParams(total=counts["total"], active=int(active))


def estimate_throughput(gpu: GPU, *, num_gpus: int, pp: int, weights_bytes: int, kv_request_bytes: int,
                        batch: int, params: ActiveParams, fp8_compute: bool) -> Throughput:
    """Decode: each step every GPU reads its active weights once and the KV of every running request;
    prefill: 2 FLOPs per active parameter per token. Pipeline stages run one after another for a token."""
    c = data()["throughput"]
    flops = (gpu.fp8_tflops if fp8_compute and gpu.fp8_tflops else gpu.bf16_tflops) or None
    compute_cap = None
    prefill = None
    if flops and params.active:
        compute_cap = flops * 1e12 * num_gpus * c["prefill_flops_efficiency"] / (2 * params.active)
        prefill = round(compute_cap, 1)
    if not gpu.bandwidth_gbps or batch < 1:
        return Throughput(None, None, prefill, batch, c["label"])
    bw = gpu.bandwidth_gbps * 1e9 * c["decode_bandwidth_efficiency"]
    weights_read = weights_bytes * params.fraction

    def step(b: int) -> float:  # seconds per decode step of one pipeline stage
        return (weights_read + b * kv_request_bytes) / bw

    single = 1.0 / (pp * step(1))
    # Pipeline: the batch is cut into pp micro-batches; each token still passes every stage in turn.
    total = batch / (pp * step(max(1, math.ceil(batch / pp))))
    if compute_cap is not None:
        total = min(total, compute_cap)
    return Throughput(round(total, 1), round(min(single, total), 1), prefill, batch, c["label"])


def cost_per_1m_tokens(cost_per_hour: float | None, tokens_per_s: float | None) -> float | None:
    if cost_per_hour is None or not tokens_per_s or not math.isfinite(tokens_per_s):
        return None
    return round(cost_per_hour / (tokens_per_s * 3600) * 1e6, 4)
