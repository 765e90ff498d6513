"""Per-rank bytes of the layouts vLLM 0.33 gives MX-quantized weights on Hopper (SM 9.0), where the Humming kernels
(humming-kernels 0.1.19) rank ahead of Marlin (vLLM model_executor/layers/quantization/utils/humming/priority.py:
_HUMMING_PREFERRED_CAPABILITIES = {90}; prioritize_humming moves Humming ahead of Marlin in every kernel list).

What Humming allocates, as read in vLLM 0.33 and the humming package:
- every Humming layer pads its per-rank output rows to a multiple of 256 and its per-rank input columns to a multiple
  of 128 (utils/humming/linear.py:141-142 for dense linears, utils/humming/moe.py:411-412 for fused experts), and the
  weight and its group scales take the padded shape (humming/transform.py check_and_pad_tensors with the shapes of
  schema/humming.py get_tensors_attrs: weight [N, K x bits / 32] int32, group scale [N, K / group] one byte (e8m0));
- MXFP8 weights with MXFP8 activations (8-bit x 8-bit) keep one byte per weight and one e8m0 byte per 32 weights; no
  secondary scale (config/config.py: use_fused_e8m0_scale needs fp4 weights, use_int_weight_scale int activations);
- MXFP4 experts run with fp8 activations take the fused-e8m0 path (config/config.py use_fused_e8m0_scale: fp8
  activations, fp4 weights, e8m0 group scales, no native mxf8f6f4 MMA on SM90), which adds a per-tensor secondary
  scale, one fp32 per expert per matrix (transform.py process_fused_e8m0_scale);
- before Humming sees them, the experts' per-rank intermediate size is rounded up to 64
  (fused_moe/oracle/mxfp4.py mxfp4_round_up_hidden_size_and_intermediate_size, the final `else` branch that the
  Humming backend falls to);
- a batched (bmm) MXFP8 linear, DeepSeek-V4.x's wo_a, is re-selected after loading from [DeepGEMM bmm, emulation]
  (kernels/linear/__init__.py init_mxfp8_linear_kernel; modelopt.py ModelOptLinearMethod.process_weights_after_loading):
  DeepGEMM's MXFP8 bmm requires Blackwell (kernels/linear/mxfp8/deep_gemm.py is_supported), so on Hopper the
  emulation kernel dequantizes the weight to bf16 at load (VLLM_MXFP8_EMULATION_DEQUANT_AT_LOAD, on by default) and
  keeps the e8m0 scale beside it (kernels/linear/mxfp8/emulation.py process_weights_after_loading).

On Blackwell (compute capability 10.x: B200, GB200, B300; vLLM's is_device_capability_family(100)) the same layouts
are served by other kernels, sized by `blackwell_layout_bytes`:
- dense MXFP8 linears: FlashInfer's CuTe-DSL or CUTLASS mm_mxfp8, the first two entries of _POSSIBLE_MXFP8_KERNELS
  on CUDA (kernels/linear/__init__.py; prioritize_humming leaves the order alone off SM90). Both keep the fp8 weight
  unpadded (the CuTe-DSL one as a transposed view) and replace the [N, K/32] e8m0 scale by swizzle_mxfp8_scale's
  F8_128x4 layout (quantization/utils/mxfp8_utils.py:14-35): rows padded to 128, scale columns to 4. Both refuse
  N < 128, K < 128 or K % 32 (mxfp8/flashinfer.py _check_mm_mxfp8_shape); Marlin would follow, not read here;
- the batched wo_a: DeepGEMM's MXFP8 bmm (mxfp8/deep_gemm.py, Blackwell only) keeps the fp8 weight [g, r, k] and
  turns the e8m0 scale into DeepGEMM's packed UE8M0 layout (fp8_utils.py deepgemm_post_process_fp8_weight_block ->
  transform_sf_into_required_layout; DeepGEMM's get_mn_major_tma_aligned_packed_ue8m0_tensor: int32
  [g, r, cdiv(k/32, 4)] with r aligned to 4): r x k + r x cdiv(k / 32, 4) x 4 bytes a group, no bf16 copy;
- MXFP4 experts with MXFP8 activations: FLASHINFER_TRTLLM_MXFP4_MXFP8 heads _get_priority_backends
  (fused_moe/oracle/mxfp4.py:452); DeepSeek's sqrtsoftplus routing is not a monolithic TRT-LLM routing method, so
  TrtLlmMxfp4ExpertsModular runs it. mxfp4_round_up_hidden_size_and_intermediate_size's TRT-LLM branch rounds the
  per-rank intermediate up to 128 and the hidden size up to 256; the shuffled weights and interleaved scales keep
  the [E, 2I, H/2] / [E, 2I, H/32] and [E, H, I/2] / [E, H, I/32] shapes (convert_weight_to_mxfp4_moe_kernel_format);
  no secondary scale, no lock buffer. With a swiglu_limit the experts object holds gemm1_clamp_limit, fp32
  [local experts] (experts/trtllm_mxfp4_moe.py:83-89), layout "trtllm_clamp_limit" (nothing on Hopper).

Other GPUs (Ampere has no fp8 activations; SM 12.x takes b12x) are refused: `require_modelled`.
"""

from __future__ import annotations

from ...errors import GpuplanError
from ...units import cdiv, round_up

PAD_N = 256  # utils/humming/linear.py:141, utils/humming/moe.py:411 (pad_n_to_multiple)
PAD_K = 128  # utils/humming/linear.py:142, utils/humming/moe.py:412 (pad_k_to_multiple)
MX_GROUP = 32  # MXFP8 / MXFP4 scale group (one e8m0 byte per 32 weights)
MXFP4_INTERMEDIATE_ALIGN = 64  # fused_moe/oracle/mxfp4.py, mxfp4_round_up_... final else branch


def require_hopper(compute_capability: float | None, what: str = "this model") -> None:
    """Refuse every GPU but SM 9.0: Humming's padded layouts are the only ones read."""
    if compute_capability is None or round(float(compute_capability) * 10) != 90:
        raise GpuplanError(
            "gpu", f"{what}: vLLM 0.33 picks different MXFP8 / MXFP4 kernels on compute capability "
            f"{compute_capability} (Blackwell: FlashInfer / TRT-LLM / DeepGEMM; SM 12.x: b12x) whose weight layouts "
            "gpuplan has not read; only Hopper (SM 9.0, Humming) is modelled", accepted=["H100", "H800", "H200", "H20", "GH200"])


def padded(n: int, k: int) -> tuple[int, int]:
    """A Humming layer's per-rank [rows, columns] after padding."""
    return round_up(n, PAD_N), round_up(k, PAD_K)


def mxfp8_linear_bytes(n: int, k: int) -> int:
    """One rank's MXFP8 linear through Humming: n output rows, k input columns on this rank (after TP split).
    Weight n' x k' bytes (fp8) + scales n' x k'/32 bytes (e8m0)."""
    np_, kp = padded(n, k)
    return np_ * kp + np_ * (kp // MX_GROUP)


def mxfp8_emulated_bytes(n: int, k: int, act_bytes: int = 2) -> int:
    """One rank's MXFP8 linear on the emulation kernel (Hopper's wo_a): the weight dequantized to the model dtype
    (n x k x 2 for bf16) plus the e8m0 scale kept at [n, k/32]; no padding."""
    return n * k * act_bytes + n * (k // MX_GROUP)


def mxfp4_expert_intermediate(intermediate_per_rank: int) -> int:
    """The experts' per-rank intermediate size after the MXFP4 round-up (to 64) for the Humming backend."""
    return round_up(intermediate_per_rank, MXFP4_INTERMEDIATE_ALIGN)


def mxfp4_w4a8_matrix_bytes(n: int, k: int) -> int:
    """One expert's matrix [n, k] as Humming holds MXFP4 weights run with fp8 activations: n' x k'/2 bytes of
    packed e2m1, n' x k'/32 e8m0 scales, one fp32 secondary scale."""
    np_, kp = padded(n, k)
    return np_ * kp // 2 + np_ * (kp // MX_GROUP) + 4


def mxfp4_w4a8_expert_bytes(hidden: int, intermediate_per_rank: int, gated: bool = True) -> int:
    """One expert's w13 [2I, H] (gated) or w1 [I, H] plus w2 [H, I] on one rank, I rounded up to 64 first."""
    i = mxfp4_expert_intermediate(intermediate_per_rank)
    return mxfp4_w4a8_matrix_bytes((2 if gated else 1) * i, hidden) + mxfp4_w4a8_matrix_bytes(hidden, i)


LOCK_INTS_PER_SM = 8  # vllm/utils/humming.py create_humming_locks: int32 [num_compute_units x 8]


def locks_bytes(sm_count: int | None) -> int:
    """The int32 lock buffer every Humming layer allocates when its weights are processed (one per dense linear,
    in kernels/linear/mxfp8/humming.py process_weights_after_loading; one per fused-MoE experts object, in
    fused_moe/experts/fused_humming_moe.py HummingExpertsBase.__init__): SMs x 8 x 4 bytes."""
    if not sm_count:
        raise GpuplanError("gpu", "Humming allocates a lock buffer sized by the GPU's SM count, which gpuplan does "
                           "not know for this GPU; name a catalog GPU", accepted=["H100", "H200", "H800", "H20"])
    return sm_count * LOCK_INTS_PER_SM * 4


# Tensor.layout values this module sizes (weights.py tensor_bytes hands them here with the per-rank shape). The
# names say what Hopper runs; on Blackwell the same tensors take the kernels of `blackwell_layout_bytes`.
LAYOUTS = ("humming_mxfp8", "mxfp8_emulated", "humming_mxfp4_w4a8", "trtllm_clamp_limit")

# ----------------------------------------------------------------------------- Blackwell (compute capability 10.x)

SF_TILE_ROWS = 128  # swizzle_mxfp8_scale: F8_128x4, rows padded to 128 ...
SF_TILE_COLS = 4  # ... and scale columns (one per 32 weights) to 4
MM_MXFP8_MIN = 128  # _check_mm_mxfp8_shape: N >= 128 and K >= 128
TRTLLM_INTERMEDIATE_ALIGN = 128  # mxfp4_round_up_hidden_size_and_intermediate_size, TRTLLM_BACKENDS branch
TRTLLM_HIDDEN_ALIGN = 256
BLACKWELL_GPUS = ["B200", "GB200", "B300"]


def is_blackwell(compute_capability: float | None) -> bool:
    """vLLM's is_device_capability_family(100): compute capability 10.x (B200 / GB200 10.0, B300 / GB300 10.3)."""
    return compute_capability is not None and 100 <= round(float(compute_capability) * 10) < 110


def require_modelled(compute_capability: float | None, what: str = "this model") -> None:
    """Refuse the GPUs whose MXFP8 / MXFP4 kernels are not read: all but Hopper (SM 9.0) and Blackwell (SM 10.x)."""
    if is_blackwell(compute_capability):
        return
    if compute_capability is None or round(float(compute_capability) * 10) != 90:
        raise GpuplanError(
            "gpu", f"{what}: vLLM 0.33 picks different MXFP8 / MXFP4 kernels on compute capability "
            f"{compute_capability} (SM 12.x: b12x; Ampere has no fp8 activations) whose weight layouts gpuplan has "
            "not read; Hopper (SM 9.0, Humming) and Blackwell (SM 10.x, FlashInfer / TRT-LLM / DeepGEMM) are modelled",
            accepted=["H100", "H800", "H200", "H20", "GH200", *BLACKWELL_GPUS])


def flashinfer_mxfp8_linear_bytes(n: int, k: int) -> int:
    """One rank's dense MXFP8 linear through FlashInfer's mm_mxfp8 (CuTe-DSL or CUTLASS, the same bytes): the fp8
    weight n x k unpadded plus the F8_128x4-swizzled e8m0 scale, round_up(n, 128) x round_up(k / 32, 4) bytes."""
    if n < MM_MXFP8_MIN or k < MM_MXFP8_MIN or k % MX_GROUP:
        raise GpuplanError(
            "tensor_parallel_size",
            f"an MXFP8 linear of {n} x {k} per rank: FlashInfer's mm_mxfp8 needs N, K >= 128 and K % 32 == 0, and "
            "the kernel vLLM 0.33 falls back to on Blackwell (Marlin) is not read", accepted=["1", "2", "4", "8"])
    return n * k + round_up(n, SF_TILE_ROWS) * round_up(k // MX_GROUP, SF_TILE_COLS)


def deepgemm_mxfp8_bmm_bytes(n: int, k: int, rows_per_group: int = 0) -> int:
    """One rank's batched MXFP8 linear (wo_a) through DeepGEMM's bmm: the fp8 weight n x k, and the scale packed four
    e8m0 to an int32 in DeepGEMM's MN-major TMA-aligned layout, [groups, align(r, 4), cdiv(k / 32, 4)] int32.
    `rows_per_group` r (n = groups x r); 0 takes r as a multiple of 4, when the alignment adds nothing."""
    r = rows_per_group or n
    if n % r:
        raise ValueError(f"{n} rows do not split into groups of {r}")
    return n * k + (n // r) * round_up(r, 4) * 4 * cdiv(k // MX_GROUP, 4)


def trtllm_mxfp4_expert_dims(hidden: int, intermediate_per_rank: int) -> tuple[int, int]:
    """(hidden, intermediate) after the TRT-LLM round-up: hidden to 256, the per-rank intermediate to 128."""
    return round_up(hidden, TRTLLM_HIDDEN_ALIGN), round_up(intermediate_per_rank, TRTLLM_INTERMEDIATE_ALIGN)


def trtllm_mxfp4_matrix_bytes(n: int, k: int) -> int:
    """One expert's [n, k] MXFP4 matrix in TRT-LLM's shuffled layout: n x k/2 bytes of e2m1 and n x k/32 e8m0 scales
    (interleaved in place: shapes already multiples of the 128 x 4 scale tile after the round-up)."""
    return n * k // 2 + n * (k // MX_GROUP)


def trtllm_mxfp4_expert_bytes(hidden: int, intermediate_per_rank: int, gated: bool = True) -> int:
    """One expert's w13 [2I, H] (gated) plus w2 [H, I] on one rank, H and I rounded up first."""
    h, i = trtllm_mxfp4_expert_dims(hidden, intermediate_per_rank)
    return trtllm_mxfp4_matrix_bytes((2 if gated else 1) * i, h) + trtllm_mxfp4_matrix_bytes(h, i)


def blackwell_layout_bytes(layout: str, rank_shape: tuple[int, ...], parallel: str) -> int:
    """One rank's bytes of a layout-tagged tensor on Blackwell (see the module docstring)."""
    if layout == "humming_mxfp8":
        n, k = rank_shape
        return flashinfer_mxfp8_linear_bytes(n, k)
    if layout == "mxfp8_emulated":  # wo_a (the adapter checks o_lora_rank % 4 == 0, so r needs no alignment)
        n, k = rank_shape
        return deepgemm_mxfp8_bmm_bytes(n, k)
    if layout == "humming_mxfp4_w4a8":
        e, n, k = rank_shape
        if parallel == "expert_col":  # w13 [E, 2I, H]
            h, i = trtllm_mxfp4_expert_dims(k, n // 2)
            return e * trtllm_mxfp4_matrix_bytes(2 * i, h)
        h, i = trtllm_mxfp4_expert_dims(n, k)  # w2 [E, H, I]
        return e * trtllm_mxfp4_matrix_bytes(h, i)
    if layout == "trtllm_clamp_limit":  # fp32 [local experts]
        return 4 * rank_shape[0]
    raise ValueError(f"unknown layout {layout!r}; known: {LAYOUTS}")


def layout_bytes(layout: str, rank_shape: tuple[int, ...], parallel: str, compute_capability: float | None,
                 sm_count: int | None) -> int:
    """One rank's bytes of a tensor whose layout vLLM 0.33 builds on Hopper: `rank_shape` is [n, k] for a linear
    after the TP split, [experts, n, k] for a fused-MoE weight (experts on this rank, n and k after the TP split,
    unpadded). Dense Humming linears and the w13 half of fused experts carry the layer's lock buffer. Blackwell
    takes `blackwell_layout_bytes`."""
    require_modelled(compute_capability, "an MXFP8 / MXFP4 layer")
    if is_blackwell(compute_capability):
        return blackwell_layout_bytes(layout, rank_shape, parallel)
    if layout == "humming_mxfp8":
        n, k = rank_shape
        return mxfp8_linear_bytes(n, k) + locks_bytes(sm_count)
    if layout == "mxfp8_emulated":
        n, k = rank_shape
        return mxfp8_emulated_bytes(n, k)
    if layout == "humming_mxfp4_w4a8":
        e, n, k = rank_shape
        if parallel == "expert_col":  # w13 [E, 2I, H]: I rounded up to 64 first, then padded
            i = mxfp4_expert_intermediate(n // 2)
            return e * mxfp4_w4a8_matrix_bytes(2 * i, k) + locks_bytes(sm_count)
        return e * mxfp4_w4a8_matrix_bytes(n, mxfp4_expert_intermediate(k))  # w2 [E, H, I]
    if layout == "trtllm_clamp_limit":
        return 0  # Humming's experts keep no clamp tensor
    raise ValueError(f"unknown layout {layout!r}; known: {LAYOUTS}")
