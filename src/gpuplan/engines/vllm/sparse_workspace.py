"""GPU memory the sparse-MLA path (DeepSeek-V3.2, GLM-5: configs with ``index_topk``) adds at start-up, per release.

Read from the vLLM wheels 0.11.0 - 0.33.0 (NVIDIA path). Three kinds of memory, charged to different ledger lines:

Shared workspace (``v1/worker/workspace.py``, 0.13 on). The worker creates one ``WorkspaceManager`` before it builds
the model runner. Every ``get_simultaneous(*(shape, dtype))`` call carves views out of ONE uint8 tensor per ubatch
(one slot without DBO): each request is rounded up to 256 bytes and the total must fit; if it does not, the manager
drops its own reference, empties the cache and allocates a tensor of exactly the new total. Nothing shrinks it; it is
locked after CUDA-graph capture. So the buffer ends at the LARGEST single request, not the sum of the callers. A
caller that keeps views into an old buffer keeps that old storage alive after a resize: FlashMLA-sparse does so
from 0.13 to 0.30 (its ``q_concat_buffer`` / ``prefill_bf16_workspace`` attributes); from 0.31 it reserves without
keeping views ("Reserve capacity without retaining views").
Callers on this path and when they ask:
* FlashMLA-sparse's impl ``__init__`` (``v1/attention/backends/mla/flashmla_sparse.py``), i.e. while the model is
  built: counted in "Model loading took". 0.13 - 0.17: only with an ``fp8_ds_mla`` cache, the bf16 prefill gather
  workspace [5 x max_model_len, 576]. 0.18 on: also ``q_concat`` [max_num_batched_tokens, heads, 576] bf16 (heads
  per rank; padded up to the prefill padding when the cache is not quantized from 0.29: 128 on SM10x, 64 elsewhere;
  64 everywhere from 0.32). 0.31 on with ``fp8_ds_mla``: three more prefill buffers [mnbt, pad(heads), 576],
  [mnbt, pad(heads), kv_lora_rank], [mnbt, heads, kv_lora_rank]. From 0.32 the gather workspace has
  ``sparse_mla_prefill_workspace_factor`` x max_model_len rows (default 5 up to 256K tokens, else 2;
  ``config/vllm.py``) instead of 5 x max_model_len.
* The indexer's profile branch (``model_executor/layers/sparse_attn_indexer.py``, before 0.15 inside
  ``models/deepseek_v2.py``): in the profile run ``attn_metadata`` is not a dict and the op reserves its K-gather
  workspace: [T, index_head_dim] fp8 + [T, 4] uint8 (132 bytes a row at head dim 128), plus the 1 MiB radix top-k
  workspace from 0.20. T = ``get_max_prefill_buffer_size`` (``v1/attention/backends/mla/indexer.py``):
  2 x max_model_len in 0.11 - 0.12, 40 x max_model_len in 0.13 - 0.31, (576*2 // 132) x factor = 8 x factor x
  max_model_len from 0.32 (40 at factor 5, 16 at factor 2). Counted in the profile's peak activation.
* The fused-MoE modular kernel (``model_executor/layers/fused_moe/modular_kernel.py``, 0.13 on): its
  max(workspace13, fused_out) + workspace2 request, during the profile run (what budget.py ``_moe_workspace`` sizes).
* Not in this path's profile: FlashInfer's sparse MLA keeps a process-global int8 workspace
  (``VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE``, 128 MiB in 0.17 - 0.23, 394 MiB later) allocated at the first attention
  forward that has metadata; the profile run has none, so it lands in warm-up / CUDA-graph capture, not here.

Profile-run transients (freed when the indexer op returns, so they sit on the forward's peak only):
* 0.11 - 0.12: no workspace manager; the fake op allocates [T, 132] uint8 and ``.contiguous()`` copies of its fp8
  [T, 128] and fp32 [T, 1] slices, all alive until it returns: 264 bytes a row, T = 2 x max_model_len.
* 0.19 on: a dummy ``VLLM_SPARSE_INDEXER_MAX_LOGITS_MB`` (512) MiB uint8 tensor for the logits peak.
* 0.32 on: with TP > 1, no DCP/PCP and a mixed CUDA-graph mode that is not FULL (the default FULL_AND_PIECEWISE
  qualifies), the prefill row-shard exchange's worst case: 2 x mnbt x index_topk x 4 bytes (``_reserve_row_shard``).

Load-time buffers of the model (``models/deepseek_v2.py``; 0.33's ``models/deepseek_v32/nvidia/model.py``):
* every release: ``topk_indices_buffer`` [max_num_batched_tokens, index_topk] int32;
* 0.30 on: ``SparseMLAIndexGroupBuilder`` (``v1/attention/backends/mla/index_group.py``) gives each
  index-producing layer (one with its own indexer) a [rows + 1, index_topk] int32 physical-index buffer and a
  [rows + 1] int32 count, rows = min(max_num_batched_tokens, max_num_seqs x (1 + num_speculative_tokens)).
"""

from __future__ import annotations

from ...errors import GpuplanError
from ...model.spec import ModelSpec
from .profiles import parse_version

MIB = 1024 * 1024
ALIGN = 256  # WorkspaceManager.get_simultaneous rounds every view up to 256 bytes
RADIX_TOPK_BYTES = MIB  # RADIX_TOPK_WORKSPACE_SIZE, 0.20 on
LOGITS_DUMMY_BYTES = 512 * MIB  # VLLM_SPARSE_INDEXER_MAX_LOGITS_MB default, 0.19 on
MLA_ROW = 576  # kv_lora_rank 512 + rope 64: the width of the bf16 rows FlashMLA-sparse gathers
FIRST = "0.11"


def _at_least(version: str, v: str) -> bool:
    return parse_version(version) >= parse_version(v)


def _check(version: str) -> None:
    if not _at_least(version, FIRST):
        raise GpuplanError("vllm_version", f"vLLM {version} has no sparse MLA (DeepSeek-V3.2 arrived in 0.11)",
                           accepted=[f">={FIRST}"])


def _round(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def has_workspace_manager(version: str) -> bool:
    """vllm/v1/worker/workspace.py exists from 0.13."""
    return _at_least(version, "0.13")


def prefill_workspace_factor(version: str, max_model_len: int, factor: int | None = None) -> int:
    """FlashMLA-sparse's prefill gather rows per max_model_len: 5 up to 0.31; from 0.32
    ``sparse_mla_prefill_workspace_factor``, defaulting to 5 at max_model_len <= 256K and 2 above."""
    if not _at_least(version, "0.32"):
        return 5
    if factor is not None:
        return factor
    return 5 if max_model_len <= 256 * 1024 else 2


def indexer_rows(version: str, max_model_len: int, factor: int | None = None) -> int:
    """T of the indexer's K-gather workspace (get_max_prefill_buffer_size)."""
    _check(version)
    if not _at_least(version, "0.13"):
        return 2 * max_model_len
    if not _at_least(version, "0.32"):
        return 40 * max_model_len
    return max_model_len * (MLA_ROW * 2 // 132) * prefill_workspace_factor(version, max_model_len, factor)


def indexer_workspace_request(version: str, *, max_model_len: int, index_head_dim: int = 128,
                              factor: int | None = None, pcp_and_dcp: bool = False) -> int:
    """Bytes the indexer asks of the shared workspace in the profile run (0 before 0.13: no manager)."""
    if not has_workspace_manager(version):
        return 0
    t = indexer_rows(version, max_model_len, factor)
    specs = [t * index_head_dim, t * 4]
    if _at_least(version, "0.20"):
        specs.append(RADIX_TOPK_BYTES)
    if pcp_and_dcp and _at_least(version, "0.30"):
        specs += [t * index_head_dim, t * 4] * 2  # all-gather destination + de-interleaved copy
    return sum(_round(s) for s in specs)


def flashmla_init_request(version: str, *, heads_per_rank: int, mnbt: int, max_model_len: int, kv_dtype: str,
                          cc: float, kv_lora_rank: int = 512, factor: int | None = None) -> int:
    """Bytes FlashMLA-sparse's impl reserves from the shared workspace while the model is built (one reservation
    for all layers: each asks the same). kv_dtype is the dtype the backend ends up with (sparse_mla.kv_cache_dtype)."""
    if not has_workspace_manager(version):
        return 0
    ds_mla = kv_dtype == "fp8_ds_mla"
    quantized = kv_dtype.startswith("fp8")
    specs: list[int] = []
    if _at_least(version, "0.18"):
        heads = heads_per_rank
        if _at_least(version, "0.29"):
            padding = 64 if _at_least(version, "0.32") or not 10 <= cc < 11 else 128
            if not quantized:
                heads = -(-heads_per_rank // padding) * padding
        specs.append(mnbt * heads * MLA_ROW * 2)
    if ds_mla:
        specs.append(prefill_workspace_factor(version, max_model_len, factor) * max_model_len * MLA_ROW * 2)
        if _at_least(version, "0.31"):
            padding = 64 if _at_least(version, "0.32") or not 10 <= cc < 11 else 128
            padded = -(-heads_per_rank // padding) * padding
            specs += [mnbt * padded * MLA_ROW * 2, mnbt * padded * kv_lora_rank * 2,
                      mnbt * heads_per_rank * kv_lora_rank * 2]
    return sum(_round(s) for s in specs)


def flashmla_keeps_views(version: str) -> bool:
    """0.13 - 0.30: FlashMLA-sparse keeps views of its reservation, so a later resize cannot free it."""
    return has_workspace_manager(version) and not _at_least(version, "0.31")


def topk_indices_buffer_bytes(*, mnbt: int, index_topk: int) -> int:
    return mnbt * index_topk * 4


def index_group_bytes(version: str, *, index_layers: int, mnbt: int, max_num_seqs: int, index_topk: int,
                      num_speculative_tokens: int = 0) -> int:
    """0.30 on: per index-producing layer on this stage, [rows + 1, index_topk] + [rows + 1] int32."""
    if not _at_least(version, "0.30"):
        return 0
    rows = min(mnbt, max_num_seqs * (1 + num_speculative_tokens))
    return index_layers * ((rows + 1) * index_topk * 4 + (rows + 1) * 4)


def load_bytes(version: str, *, backend: str, heads_per_rank: int, index_layers: int, index_topk: int, mnbt: int,
               max_num_seqs: int, max_model_len: int, kv_dtype: str, cc: float, kv_lora_rank: int = 512,
               num_speculative_tokens: int = 0, factor: int | None = None) -> int:
    """What the sparse path adds to "Model loading took" per GPU: the top-k buffer, the index groups (0.30 on) and
    FlashMLA-sparse's workspace reservation (backend FLASHMLA_SPARSE only)."""
    _check(version)
    total = topk_indices_buffer_bytes(mnbt=mnbt, index_topk=index_topk)
    total += index_group_bytes(version, index_layers=index_layers, mnbt=mnbt, max_num_seqs=max_num_seqs,
                               index_topk=index_topk, num_speculative_tokens=num_speculative_tokens)
    if backend == "FLASHMLA_SPARSE":
        total += flashmla_init_request(version, heads_per_rank=heads_per_rank, mnbt=mnbt,
                                       max_model_len=max_model_len, kv_dtype=kv_dtype, cc=cc,
                                       kv_lora_rank=kv_lora_rank, factor=factor)
    return total


def profile_workspace_bytes(version: str, *, backend: str, load_reservation: int, moe_request: int,
                            max_model_len: int, index_head_dim: int = 128, factor: int | None = None) -> int:
    """Growth of the shared workspace during the profile run, which stays allocated (peak activation).

    ``load_reservation`` is flashmla_init_request (0 on other backends); ``moe_request`` the modular-kernel MoE
    workspace (budget.py _moe_workspace, 0 where the MoE is not a modular kernel). The buffer ends at the largest
    request; the profile pays the difference, or all of it when FlashMLA-sparse's kept views pin the old buffer."""
    if not has_workspace_manager(version):
        return moe_request  # before 0.13 the MoE kernel sized its own buffers; the indexer reserved none
    largest = max(indexer_workspace_request(version, max_model_len=max_model_len, index_head_dim=index_head_dim,
                                            factor=factor), moe_request)
    if largest <= load_reservation:
        return 0
    if backend == "FLASHMLA_SPARSE" and load_reservation and flashmla_keeps_views(version):
        return largest
    return largest - load_reservation


def profile_transient_bytes(version: str, *, max_model_len: int, mnbt: int, index_topk: int, tp: int,
                            cudagraph_mixed_full: bool = False, dcp: int = 1, pcp: int = 1,
                            index_head_dim: int = 128) -> int:
    """Bytes the indexer op holds only while it runs in the profile run (on top of the forward's live tensors)."""
    _check(version)
    if not has_workspace_manager(version):
        return indexer_rows(version, max_model_len) * (2 * index_head_dim + 8)
    total = LOGITS_DUMMY_BYTES if _at_least(version, "0.19") else 0
    if _at_least(version, "0.32") and tp > 1 and dcp == 1 and pcp == 1 and not cudagraph_mixed_full:
        total += 2 * mnbt * index_topk * 4
    return total


def index_layers(spec: ModelSpec, lo: int = 0, hi: int | None = None) -> int:
    """Index-producing layers on a pipeline stage: sparse MLA layers that build their own indexer (the adapter gives
    the layers that reuse another's top-k indices indexer_head_dim 0)."""
    return sum(1 for layer in spec.layers[lo:hi]
               if layer.attention.kind == "mla" and layer.attention.sparse and layer.attention.indexer_head_dim)
