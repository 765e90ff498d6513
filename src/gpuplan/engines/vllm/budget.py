"""The measured parts of vLLM's budget: profile-run activation peak, non-torch memory, CUDA graphs.

vLLM *measures* these at start-up; gpuplan models each with a mechanism (what runs in the profile
pass and its tensor shapes) scaled by constants calibrated on real logs. Every constant lives in
data/calibration.json with the logs it was fitted on and the versions it applies to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache

from ...datafiles import data_json
from ...model.spec import ModelSpec
from ...units import GiB, cdiv, round_up
from .encoder_profile import EncoderPlan
from .moe_kernels import CUTLASS_NVFP4
from .moe_kernels import DEFAULT as DEFAULT_MOE_KERNEL
from .profiles import (
    Profile,
    in_versions,
    model_runner_v2_copies_logits,
    moe_modular_kernel,
    moe_workspace_persistent,
    parse_version,
    profile_rules,
)
from .weights import q_lora_rank


@dataclass(frozen=True)
class Activation:
    forward: int
    sampler: int
    moe_workspace: int
    multimodal: int
    peak: int
    sampler_state: int = 0  # the V2 model runner's per-request penalty buffers, held through the profile
    recurrent_cache: int = 0  # V0: the Mamba / linear-attention state cache the model allocates in the profile run
    encoder: int = 0  # the vision tower's own peak on the profile's max-size items, before the language model runs
    drafter: int = 0  # speculative decoding's proposer buffers (drafter.py), held through the profile run
    moe_transient: int = 0  # what the MoE kernel allocates and frees inside a layer, beyond its kept workspace


def mxfp4_moe_kernel(spec: ModelSpec, cc: float) -> str:
    """Which fused-MoE kernel vLLM picks for MXFP4 experts (fused_moe/oracle/mxfp4.py, 0.20-0.22).

    gpt-oss walks FlashInfer TRT-LLM (10.x), OpenAI's Triton kernels (9.x-10.x), then Marlin; DeepSeek-V4
    has its own list, FlashInfer TRT-LLM MXFP8 or DeepGEMM on 10.x, else Marlin. Only Marlin draws on the
    shared workspace; the others size their scratch inside the kernel.
    """
    if "dsv4" in spec.attention_kinds:
        return "flashinfer" if 10.0 <= cc < 11.0 else "marlin"
    if 10.0 <= cc < 11.0:
        return "flashinfer"
    if 9.0 <= cc < 11.0:
        return "triton"
    return "flashinfer" if cc >= 12.0 else "marlin"


def _moe_shapes(spec: ModelSpec, lo: int, hi: int) -> set[tuple[int, int]]:
    return {(layer.mlp.moe_intermediate_size, layer.mlp.top_k) for layer in spec.layers[lo:hi]
            if layer.mlp.kind == "moe"}


def cutlass_nvfp4_moe(spec: ModelSpec, lo: int, hi: int, tokens: int, moe_tp: int, act_bytes: int,
                      profile: Profile) -> tuple[int, int]:
    """vLLM's CUTLASS NVFP4 experts (--moe-backend cutlass; fused_moe/cutlass_moe.py, 0.17 - 0.33), as (kept
    workspace, transient at the layer's peak) in bytes, read from the code rather than fitted.

    CutlassExpertsFp4.workspace_shapes: [M x top_k, max(2N, K)], which the [M, K] output shares, and [M x top_k, N],
    N being w13's rows (2 x the intermediate size: every MoE is taken as gated here, as in _moe_workspace; a
    non-gated one, Nemotron-H's relu2, holds I less a row). run_cutlass_moe_fp4 then permutes the input to expert
    order (shuffle_rows: a new [M x top_k, K]), permutes the second GEMM's output back (another) and weighs the top-k
    rows before summing them (a third, plus the [M, K] sum), all in the activation dtype and alive together; the FP4
    copies of the input (K/2 bytes a row) are freed before. Checked against harvest3_public h3-002 to h3-005
    (Gemma-4-26B-A4B NVFP4 on an RTX 5090 at 8192 and 16384 batched tokens)."""
    chunk = min(tokens, int(profile.calib.get("moe_chunk_tokens", 65536)))
    k = spec.hidden_size
    kept = transient = 0
    for intermediate, top_k in _moe_shapes(spec, lo, hi):
        n = 2 * cdiv(intermediate, moe_tp)
        rows = chunk * top_k
        kept = max(kept, (max(rows * max(2 * n, k), chunk * k) + rows * n) * act_bytes)
        transient = max(transient, (3 * rows * k + chunk * k) * act_bytes)
    return kept, transient


def _moe_workspace(spec: ModelSpec, lo: int, hi: int, tokens: int, moe_tp: int, ep: int, act_bytes: int,
                   quant_method: str | None, profile: Profile, cc: float = 9.0) -> int:
    """Fused-MoE modular-kernel workspaces (one shared buffer, kept allocated between layers in V1)."""
    marlin = False
    if quant_method == "mxfp4" or (spec.quant is not None and spec.quant.experts_format == "mxfp4"):
        if mxfp4_moe_kernel(spec, cc) != "marlin":
            return 0
        marlin = True
    shapes = _moe_shapes(spec, lo, hi)
    if not shapes:
        return 0
    best = 0
    chunk = min(tokens, int(profile.calib.get("moe_chunk_tokens", 65536)))
    modular = moe_modular_kernel(profile)
    for intermediate, top_k in shapes:
        n = cdiv(intermediate, moe_tp)
        k = spec.hidden_size
        if marlin:
            # MarlinExperts.workspace_shapes on the padded MXFP4 sizes (I to 128, H to 256):
            # (M*topk, max(N, K)) shared with the output, plus (M*topk*max(2N, K)).
            n, k = round_up(n, 128), round_up(k, 256)
            best = max(best, chunk * top_k * (max(n, k) + max(2 * n, k)) * act_bytes)
            continue
        if modular:  # TritonExperts.workspace_shapes, one buffer shared with the [tokens, K] output
            ws13 = max(chunk * top_k * max(n, k), tokens * k)
            ws2 = chunk * top_k * max(2 * n, k)
        else:  # fused_experts' caches: [M, topk, 2I] shared with [M, topk, K], and [M x topk, I]
            ws13 = chunk * top_k * max(2 * n, k)
            ws2 = chunk * top_k * n
        best = max(best, (ws13 + ws2) * act_bytes)
    if marlin:
        return int(best)  # shapes read from the source: exact, not scaled
    return int(best * profile.calib["moe_workspace_factor"])


def _hidden_factor(profile: Profile, *, pipeline: bool, act_bytes: int) -> float:
    """Hidden-width buffers alive at the forward peak, in units of tokens x hidden x dtype bytes. V1 measures
    more of them with pipeline parallelism (the stage also holds the hidden/residual it hands on) and in fp32
    (no FlashAttention); see calibration.json for the logs each was fitted on."""
    k = profile.calib["forward_hidden_factor"]
    if not isinstance(k, dict):
        return float(k)
    if pipeline:
        return float(k["pipeline"])
    return float(k["float32"] if act_bytes == 4 else k["default"])


@cache
def _v0_forward_rules() -> dict:
    return data_json("vllm_v0_forward.json")


def _v0_forward(spec: ModelSpec, lo: int, hi: int, tokens: int, tp: int, act_bytes: int, profile: Profile,
                quant_method: str | None, cc: float) -> int:
    """The V0 engine's eager forward peak, from the buffers each decoder layer holds (data/vllm_v0_forward.json), per
    token in units of elements: an MLP that keeps its gate_up output alive peaks at 3I + 4H (+ I for Marlin's a_tmp
    at down_proj), or 3I + 5H once the TP all-reduce allocates its output; llama.py's MLP, which frees gate_up,
    at the largest of 3I + 3H, I + 4H (+ I) and I + 5H. I is the MLP (or shared-expert) width on this rank; the
    attention block (q and kv outputs, the attention output, o_proj) is counted too, though it is never the peak
    for the models read."""
    rules = _v0_forward_rules()
    h = spec.hidden_size * spec.residual_streams
    marlin = (quant_method in ("awq", "gptq") and cc >= 8.0
              and not profile.at_least(rules["marlin_a_tmp_until"]))
    fresh_reduce = tp > 1 and profile.at_least(rules["new_allreduce_output_from"])
    frees = spec.architecture in rules["frees_gate_up"]
    peak = 0
    for layer in spec.layers[lo:hi]:
        m = layer.mlp
        i = cdiv(m.intermediate_size if m.kind == "dense" else m.shared_intermediate_size, tp)
        if i:
            if frees:
                mlp = max(3 * i + 3 * h, i + 4 * h + (i if marlin else 0), i + 5 * h if fresh_reduce else 0)
            else:
                mlp = max(3 * i + 4 * h + (i if marlin else 0), 3 * i + 5 * h if fresh_reduce else 0)
            peak = max(peak, mlp)
        a = layer.attention
        if a.num_heads and a.kind not in ("dsv4",):
            q = cdiv(a.num_heads, tp) * a.head_dim
            kv = max(1, a.num_kv_heads // tp) * a.head_dim
            peak = max(peak, 3 * h + 2 * q + 2 * kv + (h if fresh_reduce else 0) + (q if marlin else 0))
    return int(tokens * act_bytes * peak)


def v0_mla_context_rows(max_model_len: int, max_num_seqs: int, block_size: int) -> int:
    """Latent rows of V0's MLA context_chunk_workspace (attention/backends/mla/common.py, 0.8.3 lines 306-320: at
    least 8 full-length requests or 4 blocks per request, at most 128K rows)."""
    return min(max(8 * max_model_len, 4 * max_num_seqs * block_size), 128 * 1024)


def _v0_mla(spec: ModelSpec, lo: int, hi: int, tokens: int, tp: int, act_bytes: int, profile: Profile,
            moe: int, context_rows: int) -> tuple[int, int] | None:
    """V0's MLA prefill in the profile run, 0.8.x (data/vllm_v0_forward.json _mla_prefill): the stage's forward
    peak with its MoE caches, and the context workspace kept beside it (0 unless prefix caching or chunked
    prefill is on). None when the stage has no MLA layer or the release another layout."""
    rules = _v0_forward_rules()
    if not any(layer.attention.kind == "mla" for layer in spec.layers[lo:hi]):
        return None
    if not (profile.at_least(rules["mla_prefill_from"]) and not profile.at_least(rules["mla_prefill_until"])):
        return None
    h = spec.hidden_size
    fresh = h if tp > 1 and profile.at_least(rules["new_allreduce_output_from"]) else 0
    peak = workspace = 0
    for layer in spec.layers[lo:hi]:
        a, m = layer.attention, layer.mlp
        if a.kind == "mla":
            n = cdiv(a.num_heads, tp)
            dn, dr, dv, lat = a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim or a.qk_nope_head_dim, a.kv_lora_rank
            q = n * (dn + dr)
            # input, residual, output buffer; q_a and its norm; latent + rope, normed latent; q; kv_b out; k, v_pad
            held = 3 * h + 2 * q_lora_rank(layer) + (lat + dr) + lat + q + n * (dn + dv) + 2 * q
            tail = max(q + n * dv, n * dv + h + fresh)  # attention out + its v slice, or the slice + o_proj (+ reduce)
            fake = 0
            if context_rows:
                workspace = max(workspace, context_rows * (lat + dr) * act_bytes)
                fake = context_rows * n * (dn + dv) * act_bytes  # stand-in for kv_b_proj over the context rows
            peak = max(peak, tokens * act_bytes * (held + tail) + fake)
        if m.kind == "dense" or (m.kind == "moe" and m.shared_intermediate_size):
            i = cdiv(m.intermediate_size if m.kind == "dense" else m.shared_intermediate_size, tp)
            peak = max(peak, tokens * act_bytes * (3 * i + 4 * h + fresh))  # deepseek_v2.py keeps gate_up alive
        if m.kind == "moe":
            # input, residual, shared experts' output, routed output; router logits; fused_moe's per-call caches
            peak = max(peak, tokens * act_bytes * (4 * h + m.num_experts) + moe)
    return int(peak + workspace), int(workspace)


def _v0_inductor_flush(profile: Profile, lo: int, tp: int) -> int:
    """The L2-flush buffer of the first call of the compiled vocab-parallel embedding mask (data/vllm_v0_forward.json
    _inductor_l2_flush): a floor under the first stage's V0 peak at TP > 1."""
    rules = _v0_forward_rules()
    if lo > 0 or tp <= 1 or not profile.at_least(rules["inductor_l2_flush_from"]) \
            or profile.at_least(rules["inductor_l2_flush_until"]):
        return 0
    return int(rules["inductor_l2_flush_bytes"])


def _forward(spec: ModelSpec, lo: int, hi: int, tokens: int, tp: int, act_bytes: int, profile: Profile,
             pipeline: bool = False, cc: float = 9.0) -> int:
    """Eager forward peak at `tokens` tokens: the widest MLP intermediate plus hidden-state buffers."""
    k = _hidden_factor(profile, pipeline=pipeline, act_bytes=act_bytes)
    widest = attn = 0
    for layer in spec.layers[lo:hi]:
        m = layer.mlp
        inter = m.intermediate_size if m.kind == "dense" else m.shared_intermediate_size
        widest = max(widest, cdiv(inter, tp))
        a = layer.attention
        if a.kind == "dsv4":
            # DeepSeek-V4 attention (vllm/models/deepseek_v4/attention.py): the profile run holds q at the local
            # head count, q padded to the kernel's head count and the output buffer at that count: FlashMLA's 64 or
            # 128, FlashInfer's SM120 kernels' 16, 32, 64 or 128 (nvidia/flashinfer_sparse.py, 0.24+).
            local = cdiv(a.num_heads, tp)
            sizes = (16, 32, 64, 128) if 12.0 <= cc < 13.0 else (64, 128)
            padded = next((n for n in sizes if local <= n), 128)
            attn = max(attn, (local + 2 * padded) * a.head_dim)
        elif a.num_heads:
            qkv = cdiv(a.num_heads, tp) * a.head_dim + 2 * max(1, a.num_kv_heads // tp) * a.head_dim
            widest = max(widest, qkv // 3)
    # The hidden-state buffers carry the whole residual: hc_mult streams wide for hyper-connection models.
    return int(tokens * act_bytes * (max(3 * widest, attn) + k * spec.hidden_size * spec.residual_streams))


def v0_state_slots(profile: Profile, max_num_seqs: int, enforce_eager: bool) -> int:
    """Requests the V0 engine's Mamba cache holds a state for, as each release's models/jamba.py and
    mamba_cache.py size it: up to 0.6.4, max_num_seqs padded to a CUDA-graph batch size; 0.6.5 - 0.7.2,
    8192 + 2 when eager, else that padded size capped at the largest graph (256); from 0.7.3
    (MambaCacheManager) max_num_seqs, padded unless eager."""
    def pad(n: int) -> int:
        return n if n <= 2 else 4 if n <= 4 else round_up(n, 8)

    if not profile.at_least("0.6.5"):
        return pad(max_num_seqs)
    if not profile.at_least("0.7.3"):
        return 8192 + 2 if enforce_eager else min(pad(max_num_seqs), 256)
    return max_num_seqs if enforce_eager else pad(max_num_seqs)


def v0_recurrent_cache(spec: ModelSpec, lo: int, hi: int, tp: int, act_bytes: int, slots: int) -> int:
    """V0 keeps Mamba / linear-attention states outside the paged KV cache: one preallocated tensor per state
    (layers x slots x shape, in the model dtype) that the profile run creates and that stays allocated, so
    vLLM measures it as part of the peak."""
    return slots * act_bytes * sum(st.rank_numel(tp) for layer in spec.layers[lo:hi] for st in layer.attention.state)


def activation(spec: ModelSpec, lo: int, hi: int, *, last_stage: bool, tokens: int, sampler_rows: int, tp: int,
               moe_tp: int, ep: int, act_bytes: int, quant_method: str | None, profile: Profile,
               cc: float = 9.0, pipeline: bool = False, runner_v2: bool = False,
               max_num_reqs: int = 0, v0_state_slots: int = 0, encoder: EncoderPlan | None = None,
               v0_mla_context_rows: int = 0, sparse_transient: int = 0,
               sparse_workspace: Callable[[int], int] | None = None, flashinfer_sampler: bool = False,
               rejection_sampler: bool = False, moe_kernel: str = DEFAULT_MOE_KERNEL) -> Activation:
    """The profile run's peak on one pipeline stage. `v0_mla_context_rows`: V0's MLA context workspace rows
    (v0_mla_context_rows; 0 when neither prefix caching nor chunked prefill is on). Sparse MLA (sparse_workspace.py):
    `sparse_transient`, what the indexer holds only while it runs; `sparse_workspace`, the shared workspace's growth
    in the profile run given the MoE kernel's request (the two share one buffer, so it replaces that request).
    `flashinfer_sampler`: the dummy batch is sampled by FlashInfer (profiles.flashinfer_sampler).
    `rejection_sampler`: speculative decoding on the V1 runner, whose profile run also verifies one dummy draft token
    per request (see below)."""
    if profile.engine == "v0":
        fwd = _v0_forward(spec, lo, hi, tokens, tp, act_bytes, profile, quant_method, cc)
    else:
        fwd = _forward(spec, lo, hi, tokens, tp, act_bytes, profile, pipeline, cc)
    moe_transient = 0
    if moe_kernel == CUTLASS_NVFP4:
        moe, moe_transient = cutlass_nvfp4_moe(spec, lo, hi, tokens, moe_tp, act_bytes, profile)
    else:
        moe = _moe_workspace(spec, lo, hi, tokens, moe_tp, ep, act_bytes, quant_method, profile, cc)
    kept = 0
    if profile.engine == "v0" and (mla := _v0_mla(spec, lo, hi, tokens, tp, act_bytes, profile, moe,
                                                  v0_mla_context_rows)) is not None:
        fwd, kept = mla
        moe = 0  # the MoE layers' peaks above already hold fused_moe's caches
    sampler = state = 0
    if last_stage:
        # The V2 runner samples from the logits, plus one float32 copy of them up to 0.27 (sample/sampler.py): a
        # computed figure. The V1 samplers' transient peaks are calibrated.
        if runner_v2:
            c = act_bytes + (4 if model_runner_v2_copies_logits(profile) else 0)
        elif flashinfer_sampler:
            # the model-dtype logits, the sampler's float32 copy, FlashInfer's float32 top-k-masked copy and its
            # float32 softmax (flashinfer sampling.py top_k_top_p_sampling_from_logits): computed, not fitted
            c = act_bytes + 12
        else:
            c = profile.calib["sampler_bytes_per_logit"][profile.sampler]
        if rejection_sampler and not runner_v2:
            # gpu_model_runner.py _dummy_sampler_run (0.11-0.33, V1): with a speculative config it runs the rejection
            # sampler on [2 x rows, vocab] random logits (one draft token per request, whatever
            # num_speculative_tokens), which holds 12 more bytes per logit (16-bit logits; float32 log-probs, target
            # logits and their clone) than the plain sample at its peak: computed from the code, not fitted. The V2
            # runner's dummy sample runs no rejection.
            c += 12
        sampler = int(c * sampler_rows * spec.vocab_size
                      + profile.calib["sampler_hidden_copies"] * tokens * spec.hidden_size * act_bytes)
        if runner_v2:
            # sample/penalties.py: output_bin_counts [max_num_reqs, vocab] and prompt_bin_mask
            # [max_num_reqs, vocab/32], both int32, allocated before the profile run.
            state = max_num_reqs * 4 * (spec.vocab_size + cdiv(spec.vocab_size, 32))
    if quant_method == "awq" and profile.flags.get("awq_split_k_workspace"):
        # vLLM <=0.2.x ran every AWQ GEMM through awq_gemm, whose output is an [8, M, N] fp16 split-k buffer;
        # in the profile run M is the whole dummy batch.
        widest = 0
        for layer in spec.layers[lo:hi]:
            m = layer.mlp
            n = cdiv(2 * m.intermediate_size, tp) if m.kind == "dense" else cdiv(m.moe_intermediate_size, moe_tp)
            widest = max(widest, n)
        fwd += 8 * tokens * widest * 2
    mm = tower = 0
    if spec.multimodal and lo == 0:  # the encoder runs on the first pipeline stage only
        # The calibrated factor holds the encoder cache at its usual size (the budget is max_num_batched_tokens) plus
        # the dummy batch's input embeddings; a tower whose profile items are sized from the source (encoder) puts
        # its actual cached outputs in place of the first part.
        k = profile.calib["multimodal_factor"]
        per_token = tokens * spec.hidden_size * act_bytes
        if encoder is None:
            mm = int(k * per_token + spec.multimodal.profile_buffer_bytes)
        else:
            mm = int((k - 1) * per_token + encoder.output_bytes + spec.multimodal.profile_buffer_bytes)
            tower = encoder.peak_bytes
    recurrent = v0_recurrent_cache(spec, lo, hi, tp, act_bytes, v0_state_slots) if v0_state_slots else 0
    # The tower runs first and frees its activations; the language model's pass then runs beside its outputs.
    # V0 and V1 up to 0.10 free a MoE layer's workspace (allocated per call) before the sampler runs; from 0.11
    # V1 keeps it in shared buffers beside both (as the dev 0.19 records show).
    if sparse_workspace is not None:
        moe = sparse_workspace(moe)
    # A MoE kernel's transients are counted on top of the forward's buffers: the layer's residual and branch outputs
    # stay alive around the kernel (a custom op that Inductor cannot fuse into).
    if profile.engine == "v0":
        text = max(fwd + moe, sampler + kept)
    elif moe_workspace_persistent(profile):
        text = max(fwd + sparse_transient + moe_transient, sampler) + moe
    else:
        text = max(fwd + sparse_transient + moe + moe_transient, sampler)
    floor = 0
    if profile.engine == "v0":
        if lo > 0:
            # a later pipeline stage keeps the dead zero hidden_states its dummy run received (_pipeline_dead_hidden)
            text += tokens * spec.hidden_size * spec.residual_streams * act_bytes
        flush = _v0_inductor_flush(profile, lo, tp)
        floor = flush + kept if flush else 0
    peak = max(text + mm, tower, floor) + state + recurrent
    return Activation(fwd, sampler, moe, mm, peak, state, recurrent, tower, moe_transient=moe_transient)


def non_torch(profile: Profile, tp: int, pp: int, fabric: str = "nvswitch") -> int:
    """`fabric`: "nvswitch", "pcie", or "pcie_no_p2p" (PCIe cards without peer access)."""
    c = profile.calib["non_torch_gib"]
    for later in profile.calib.get("non_torch_gib_from", []):  # a profile spanning releases that measured less
        if profile.at_least(later["from"]):
            c = {**c, **{k: v for k, v in later.items() if not k.startswith("_") and k != "from"}}
    if tp > 1:
        # NCCL's NVLS/symmetric-memory buffers exist on NVSwitch boards only; without peer access between the
        # cards (GeForce) NCCL stages its transfers through host memory and vLLM's custom all-reduce stays off.
        key = "tensor_parallel" if fabric == "nvswitch" else "tensor_parallel_pcie"
        if fabric == "pcie_no_p2p" and "tensor_parallel_pcie_no_p2p" in c:
            key = "tensor_parallel_pcie_no_p2p"
    elif pp > 1:
        key = "pipeline_parallel"
    else:
        key = "single"
    return int(c[key] * GiB)


def baseline(profile: Profile, tp: int, pp: int, fabric: str = "nvswitch", resident_threads: int | None = None) -> int:
    """Memory in use before the budget snapshot (CUDA context; NCCL from 0.11): outside the budget. NCCL sets up
    more on NVSwitch boards than between PCIe cards. The context grows with the threads the GPU keeps resident
    (the driver reserves local memory for each); a card whose SM count the catalog lacks gets the H100 figure."""
    c = profile.calib["baseline_gib"]
    ctx = c.get("cuda_context")
    if ctx and resident_threads:
        context = ctx["fixed_gib"] * GiB + ctx["per_resident_thread_kib"] * 1024 * resident_threads
        if tp * pp == 1:
            return int(context)
        return int(context + c["nccl_gib"]["nvswitch" if fabric == "nvswitch" else "pcie"] * GiB)
    if tp * pp == 1:
        return int(c["single"] * GiB)
    return int(c.get("multi_gpu_pcie" if fabric != "nvswitch" else "multi_gpu", c["multi_gpu"]) * GiB)


@dataclass(frozen=True)
class GraphShape:
    """What besides the batch limits sets the CUDA-graph capture sizes: a uniform decode step's tokens
    (1 + num_speculative_tokens with a drafter), the GPU's compute capability, which model runner captures, and
    --performance-mode interactivity."""

    decode_query_len: int = 1
    cc: float | None = None
    runner_v2: bool = False
    interactivity: bool = False
    lora_cases: int = 1  # each size captured with and without LoRA adapters (2) under --enable-lora, 0.11.1+
    full_decode: bool = True  # False: vLLM keeps PIECEWISE graphs only (full_decode_graphs)


PLAIN = GraphShape()


def capture_sizes(profile: Profile, max_num_seqs: int, mnbt: int, max_capture: int | None = None,
                  shape: GraphShape = PLAIN) -> int:
    """Number of CUDA graph batch sizes vLLM captures (config/vllm.py _set_cudagraph_sizes); `max_capture` is the
    user's max_cudagraph_capture_size (0.11.1+), which replaces the default ceiling."""
    rule = profile.cudagraph_sizes
    if rule == "v0":
        top = min(max_num_seqs, 256)
        sizes = [1, 2, 4] + list(range(8, top + 8, 8))
        return len([s for s in sizes if s <= max(top, 1) or s == sizes[-1]])
    if rule == "v1_0.8":
        return len([s for s in [1, 2, 4] + list(range(8, 513, 8)) if s <= mnbt])
    if rule == "v1_0.9":
        top = min(max_capture, mnbt) if max_capture else min(2 * max_num_seqs, 512, mnbt)
        return len([s for s in [1, 2, 4] + list(range(8, top + 1, 8)) if s <= top])
    return len(capture_size_list(profile, max_num_seqs, mnbt, max_capture, shape))


def _strided(top: int, fine: bool = False) -> list[int]:
    """1, 2, 4 (every size to 32 when `fine`), then steps of 8 to 248 and of 16 from 256, up to `top`."""
    small = list(range(1, min(top, 32) + 1)) if fine else [1, 2, 4]
    return sorted({s for s in small + list(range(8, 256, 8)) + list(range(256, top + 1, 16)) if s <= top})


def capture_size_list(profile: Profile, max_num_seqs: int, mnbt: int, max_capture: int | None = None,
                      shape: GraphShape = PLAIN) -> list[int]:
    """The CUDA-graph capture sizes of the 0.11+ rule (the PIECEWISE graphs), per release and model runner."""
    return list(_capture_sizes(profile.version_tuple, max_num_seqs, mnbt, max_capture, shape))


@lru_cache(maxsize=4096)
def _capture_sizes(vt: tuple[int, ...], max_num_seqs: int, mnbt: int, max_capture: int | None,
                   shape: GraphShape) -> tuple[int, ...]:
    rules = profile_rules("cudagraph_capture")

    def at_least(version: str) -> bool:
        return vt >= parse_version(version)

    qlen = shape.decode_query_len if at_least(rules["decode_query_len_from"]) else 1
    default_top = 1024 if (shape.cc is not None and 10.0 <= shape.cc < 11.0
                           and at_least(rules["blackwell_ceiling_from"])) else 512
    ceiling = max_capture or min(2 * max_num_seqs * qlen, default_top)
    top = min(mnbt, ceiling)
    sizes = set(_strided(top, shape.interactivity))
    if at_least(rules["append_mnbt_from"]) and mnbt <= top:
        sizes.add(mnbt)
    if not max_capture and at_least(rules["uniform_decode_sizes_from"]):
        if qlen > 1:
            reqs = min(max_num_seqs, default_top)
            counts = {n for n in (1, 2, 4) if n <= reqs} | set(range(8, min(reqs + 1, 256), 8)) | set(
                range(256, reqs + 1, 16)) | {reqs}
            decode = {n * qlen for n in counts if n * qlen <= ceiling}
        else:
            decode = {max_num_seqs} if max_num_seqs <= ceiling else set()
        sizes |= {x for x in decode if x <= mnbt}
    step = shape.decode_query_len
    if step > 1 and _rounds_to_decode_step(vt, rules, shape):
        largest = max(sizes)
        sizes = {up for x in sizes if (up := round_up(x, step)) <= largest} or ({step} if step <= largest else set())
    return tuple(sorted(sizes))


def _rounds_to_decode_step(vt: tuple[int, ...], rules: dict, shape: GraphShape) -> bool:
    """Whether the model runner rounds the capture sizes to the drafter's decode step (vllm_profiles.json
    cudagraph_capture: the V1 runner where FULL decode graphs are kept, the V2 runner in 0.21-0.25)."""
    if shape.runner_v2:
        return in_versions(vt, rules["v2_runner_rounds_to_decode_len"]) or (
            shape.full_decode and in_versions(vt, rules["v2_runner_rounds_with_full_decode"]))
    return shape.full_decode and in_versions(vt, rules["v1_runner_rounds_to_decode_len"])


def full_capture_sizes(profile: Profile, max_num_seqs: int, mnbt: int, max_capture: int | None = None,
                       shape: GraphShape = PLAIN) -> int:
    """Number of FULL (decode) CUDA graphs beside the PIECEWISE ones. From 0.11 vLLM's default cudagraph_mode is
    FULL_AND_PIECEWISE: v1/cudagraph_dispatcher.py initialize_cudagraph_keys captures a FULL graph for every capture
    size from uniform_decode_query_len to uniform_decode_query_len x max_num_seqs (1 and max_num_seqs without
    speculative decoding), so 256 sequences give PIECEWISE=51, FULL=35 and 8 give PIECEWISE=5, FULL=4 ("Profiling
    CUDA graph memory" lines). Earlier rules capture PIECEWISE graphs only (0.9-0.10) or decode graphs only (V0,
    V1 0.8): none counted here."""
    if profile.cudagraph_sizes != "v1_0.11" or not shape.full_decode:
        return 0
    q = shape.decode_query_len
    return len([s for s in capture_size_list(profile, max_num_seqs, mnbt, max_capture, shape)
                if q <= s <= q * max_num_seqs])


def _attention_head_dims(spec: ModelSpec, lo: int, hi: int) -> set[int]:
    return {layer.attention.head_dim for layer in spec.layers[lo:hi]
            if layer.attention.num_heads and layer.attention.kind in ("full", "sliding_window", "chunked_local")}


def attention_backend(spec: ModelSpec, lo: int, hi: int, cc: float | None, kv_dtype: str) -> str | None:
    """The backend vLLM's CUDA platform gives the stage's standard attention layers (platforms/cuda.py
    _get_backend_priorities, the same order in 0.11.1-0.33): FlashInfer first on compute capability 10.x, FlashAttention first elsewhere,
    which cannot hold an fp8 KV cache off Hopper, so vLLM falls to FlashInfer there; layers that mix head sizes
    (Gemma-4) are forced onto Triton attention. None where the stage has latent (MLA) or no standard attention
    layers, or the GPU is not known."""
    if cc is None or any(layer.attention.kind == "mla" for layer in spec.layers[lo:hi]):
        return None
    dims = _attention_head_dims(spec, lo, hi)
    if not dims:
        return None
    if len(dims) > 1:
        return "triton"
    if 10.0 <= cc < 11.0 or (kv_dtype.startswith("fp8") and not 9.0 <= cc < 10.0):
        return "flashinfer"
    return "flash_attn"


def _cc_in(cc: float, family: str) -> bool:
    """`family` "9.0" is that capability exactly; "10" the whole 10.x family."""
    return abs(cc - float(family)) < 1e-6 if "." in family else int(cc) == int(family)


def full_decode_graphs(spec: ModelSpec, lo: int, hi: int, profile: Profile, cc: float | None, kv_dtype: str,
                       decode_query_len: int) -> bool:
    """Whether vLLM captures FULL decode graphs beside the PIECEWISE ones. With a drafter every attention backend must
    take uniform multi-token decode batches, which FlashInfer's does only where its TRT-LLM / XQA kernels run
    (vllm_profiles.json flashinfer_spec_decode_graphs); elsewhere vLLM falls back to PIECEWISE graphs alone."""
    if decode_query_len <= 1 or cc is None or attention_backend(spec, lo, hi, cc, kv_dtype) != "flashinfer":
        return True
    for rule in profile_rules("flashinfer_spec_decode_graphs")["rules"]:
        if in_versions(profile.version_tuple, rule["versions"]):
            if not any(_cc_in(cc, f) for f in rule["uniform_batch"]):
                return False
            if any(_cc_in(cc, f) for f in rule.get("xqa", ())):
                return all(16 <= d <= 256 and d % 16 == 0 for d in _attention_head_dims(spec, lo, hi))
            return True
    return True


def _flashinfer_workspace(spec: ModelSpec, lo: int, hi: int, profile: Profile, cc: float | None,
                          kv_dtype: str) -> int:
    """The attention backend's workspace that vLLM's CUDA-graph profiler counts in its first capture.

    gpu_model_runner.py profile_cudagraph_memory (0.19-0.33) builds a minimal KV cache, and with it fresh attention
    metadata builders, then measures free memory around the first (largest) capture: a workspace the backend
    allocates on first use lands in that sample. FlashInfer's builder allocates VLLM_FLASHINFER_WORKSPACE_BUFFER_SIZE
    (394 MiB, envs.py 0.19-0.33) lazily, as does the sparse FlashInfer MLA backend (a module-level buffer of the same
    size) and the dense FlashInfer MLA one (128 MiB); the backend is attention_backend's. Counted only where the
    profile's vLLM sizes the KV cache on the estimate (0.20+)."""
    if cc is None or not profile.cudagraph_subtracted:
        return 0
    layers = spec.layers[lo:hi]
    if any(layer.attention.kind == "mla" for layer in layers):
        if not 10.0 <= cc < 11.0:
            return 0
        sparse = any(layer.attention.sparse for layer in layers)
        return (394 if sparse else 128) * 1024 * 1024
    return 394 * 1024 * 1024 if attention_backend(spec, lo, hi, cc, kv_dtype) == "flashinfer" else 0


def cudagraph(spec: ModelSpec, lo: int, hi: int, profile: Profile, *, tp: int, max_num_seqs: int, mnbt: int,
              enforce_eager: bool, runner_v2: str | None = None, max_capture: int | None = None,
              cc: float | None = None, kv_dtype: str = "auto", nccl_in_graphs: bool = False,
              shape: GraphShape = PLAIN) -> int:
    """CUDA graph pool: a fixed part plus per-layer buffers that grow with hidden width, shrink with TP,
    and scale with the number of graphs captured, PIECEWISE and FULL (fitted on the logged captures, see
    calibration.json). From 0.20 this is what vLLM's profiler estimates and subtracts before sizing the KV cache:
    its first capture at the largest size plus (n - 1) times the next one's, per mode (gpu_model_runner.py
    profile_cudagraph_memory), which on the public 0.19-0.26 estimates tracks the 0.19 pool per graph, plus the
    attention backend's workspace that the first capture allocates (`cc` and `kv_dtype` pick the backend).
    For vLLM's V2 model runner, `runner_v2` picks its share of that: "estimate", what its profiler estimates
    and vLLM subtracts (0.29+); "actual", the pool it captures after the KV cache before 0.29 (from 0.29,
    runner_v2_captured_share of the estimate).
    `nccl_in_graphs`: the tensor-parallel all-reduces are NCCL's (vLLM's custom all-reduce is off), and every
    collective NCCL captures keeps its own device memory for the graph's lifetime (nccl_graph_bytes)."""
    if enforce_eager:
        return 0
    c = profile.calib["cudagraph"]
    n_graphs = capture_sizes(profile, max_num_seqs, mnbt, max_capture, shape)
    n_full = full_capture_sizes(profile, max_num_seqs, mnbt, max_capture, shape)
    reference = c["reference_graphs"]
    if "reference_full_graphs" in c and profile.cudagraph_sizes == "v1_0.11":
        # FULL graphs counted beside the PIECEWISE ones (FULL_AND_PIECEWISE, 0.11+), as in the 0.19 fit
        n_graphs += n_full
        reference += c["reference_full_graphs"]
    n_graphs *= shape.lora_cases
    scale = c.get("scale", 1.0) * n_graphs / reference
    layers = hi - lo
    moe_layers = sum(1 for layer in spec.layers[lo:hi] if layer.mlp.kind == "moe")
    mla_layers = sum(1 for layer in spec.layers[lo:hi] if layer.attention.kind == "mla")
    per_layer = (c["per_layer_gib"] + c["per_layer_per_4096_hidden_gib"] * spec.hidden_size / 4096) * layers
    base = c["base_gib"] * (scale if c.get("base_scales_with_graphs") else 1.0)
    per_layer += c.get("per_mla_layer_gib", 0.0) * mla_layers
    gib = base + scale * (per_layer * tp ** -c["tp_exponent"] + c["per_moe_layer_gib"] * moe_layers)
    nccl = nccl_graph_bytes(profile, lo, hi, max_num_seqs=max_num_seqs, mnbt=mnbt, max_capture=max_capture,
                            shape=shape) if nccl_in_graphs and tp > 1 else 0
    pool = int(max(gib, 0.05) * GiB) + nccl
    if runner_v2:
        # the V2 runner's share of the same pool; its fit leaves the backend's workspace out
        key = {"estimate": "cudagraph_runner_v2_scale", "actual": "cudagraph_runner_v2_actual_scale"}[runner_v2]
        return int(profile.calib[key] * pool)
    # Only a FULL graph's capture builds attention metadata, and with it the backend's lazy workspace: PIECEWISE
    # pieces leave attention outside the graph (hsm-004 / hsm-010: one PIECEWISE graph, 0.05 GiB with FlashInfer).
    return pool + (_flashinfer_workspace(spec, lo, hi, profile, cc, kv_dtype) if n_full else 0)


def runner_v2_captured_share(profile: Profile) -> float:
    """What the V2 runner captures as a share of the estimate it has vLLM subtract (0.29+)."""
    c = profile.calib
    return c["cudagraph_runner_v2_profiled_actual_scale"] / c["cudagraph_runner_v2_scale"]


def nccl_graph_bytes(profile: Profile, lo: int, hi: int, *, max_num_seqs: int, mnbt: int,
                     max_capture: int | None, shape: GraphShape = PLAIN) -> int:
    """Device memory NCCL keeps for the tensor-parallel all-reduces captured in CUDA graphs: two per decoder layer
    (attention output, MLP or MoE output) and the vocabulary-parallel embedding's on the first stage, in every
    graph captured (PIECEWISE pieces and FULL graphs alike). The bytes per captured collective are calibrated."""
    n_graphs = (capture_sizes(profile, max_num_seqs, mnbt, max_capture, shape)
                + full_capture_sizes(profile, max_num_seqs, mnbt, max_capture, shape)) * shape.lora_cases
    collectives = 2 * (hi - lo) + (1 if lo == 0 else 0)
    return int(profile.calib["nccl_graph_bytes_per_collective"] * n_graphs * collectives)


def sampler_warmup(spec: ModelSpec, profile: Profile, rows: int, act_bytes: int, quant_method: str | None) -> int:
    """Memory the sampler warm-up (after KV allocation and graph capture) needs."""
    c = profile.calib["warmup_bytes_per_logit"]
    extra = profile.calib["warmup_mxfp4_extra_bytes_per_logit"] if quant_method == "mxfp4" else 0.0
    return int((c + extra) * rows * spec.vocab_size)
