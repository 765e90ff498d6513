"""Communication workspaces a model allocates outside torch while it loads, which vLLM's profiler counts as non-torch
memory (the free-memory drop that torch's allocator does not explain) and so takes from the KV cache budget.

Beam (vLLM 0.33, models/beam/nvidia/allreduce.py, BeamAllReduceWorkspace): BeamModel fuses each tensor-parallel
all-reduce with the sandwich norms and, where it can, gives those kernels a FlashInfer multicast buffer
(McastGPUBuffer, driver memory, not torch's). It does so only when every condition holds: a TP group of 2, 4 or 8,
a bfloat16 model, hidden_size a multiple of 1024 within [1024, 8192], a compute capability 9.x or 10.x GPU, and
NVLink multicast (an NVSwitch system; a PCIe GPU has none). Each rank then holds three Lamport buffers of

    max(min(T, 3200 KiB // (W x hidden x 2)) x W x hidden x 2,  2 x cdiv(T, W) x W x hidden x 2)  bytes (32-aligned)

with W the TP size and T = max(max_num_batched_tokens, max_num_seqs): the one-shot staging of small batches or the
two-shot staging of the largest one. The driver rounds a multicast allocation to its granularity (2 MiB assumed
here, which the figure's size makes immaterial), so the result is an estimate to a few MiB.
"""

from __future__ import annotations

from ...model.spec import ModelSpec
from ...units import MiB, cdiv, round_up

LAMPORT_BUFFERS = 3
SMALL_BATCH_BYTES = 3200 * 1024
MULTICAST_GRANULARITY = 2 * MiB  # assumed: CU_MULTICAST_GRANULARITY_RECOMMENDED is not documented per GPU


def workspace_bytes(spec: ModelSpec, *, tp: int, mnbt: int, max_num_seqs: int, cc: float, fabric: str,
                    dtype: str) -> int:
    """Bytes per GPU of the model's out-of-torch communication workspace (0: none is built)."""
    if spec.comm_workspace != "beam_lamport":
        return 0
    h = spec.hidden_size
    if (tp not in (2, 4, 8) or dtype != "bfloat16" or h % 1024 or not 1024 <= h <= 8192
            or int(cc) not in (9, 10) or fabric != "nvswitch"):
        return 0
    tokens = max(mnbt, max_num_seqs)
    row = tp * h * 2  # one token's bf16 payload staged across the ranks
    one_shot = min(tokens, SMALL_BATCH_BYTES // row) * row
    two_shot = 2 * cdiv(tokens, tp) * row
    buffer = round_up(max(one_shot, two_shot), 32)
    return round_up(LAMPORT_BUFFERS * buffer, MULTICAST_GRANULARITY)
