"""Weights per GPU as vLLM allocates them ("Model loading took ..."), per pipeline stage.

Computed, not fitted: every tensor at its vLLM shape and dtype, sharded over tensor-parallel ranks
(vocabulary padded to 64, KV heads replicated when tp > kv heads, MoE experts split by TP or owned
whole under expert parallelism), plus the persistent buffers vLLM creates while loading (rotary
caches, MLA's absorbed matrices, token-sized buffers such as DeepSeek-V4's).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, replace
from functools import lru_cache

from ...errors import GpuplanError
from ...model.quant_config import text_module
from ...model.spec import Layer, ModelSpec, QuantConfig, Tensor
from ...quant.methods import expert_bytes, fp8_weights, linear_bytes, stored_bytes
from ...units import DTYPE_BYTES, cdiv, round_up
from . import humming

VOCAB_PAD = 64


@dataclass(frozen=True)
class Sharding:
    tp: int
    moe_tp: int  # inner-dimension split of experts (tp x dp without EP; 1 with EP)
    ep: int  # expert-parallel ranks (1 without EP)
    num_experts_pad: int = 0
    expert_min_shard: bool = False  # honour Tensor.min_shard (vLLM releases whose model code pads the experts)
    replicated_kinds: frozenset[str] = frozenset()  # split kinds kept whole on every rank (sequence-parallel MoE)
    # The GPU, for tensors with a Tensor.layout (humming.py refuses the GPUs whose layouts are not read)
    compute_capability: float | None = None
    sm_count: int | None = None


@dataclass(frozen=True)
class StageWeights:
    stage: int
    layers: tuple[int, int]  # [start, end)
    by_kind: tuple[tuple[str, int], ...]
    total: int


def pp_partition(num_layers: int, pp: int, sizes: tuple[int, ...] = ()) -> list[tuple[int, int]]:
    """vLLM's get_pp_indices: the remainder goes one layer each to stages pp-2, pp-3, ...; `sizes` is an explicit
    VLLM_PP_LAYER_PARTITION (layers per stage), checked by the caller."""
    if sizes:
        split = list(sizes)
    else:
        split = [num_layers // pp] * pp
        for i in range(num_layers % pp):
            split[pp - 2 - i if pp >= 2 else 0] += 1
    out, start = [], 0
    for s in split:
        out.append((start, start + s))
        start += s
    return out


def stage_layers(spec: ModelSpec, pp: int, sizes: tuple[int, ...] = ()) -> list[tuple[int, int]]:
    """Each stage's range of spec.layers: vLLM's split of its decoder layers (or `sizes`, a
    VLLM_PP_LAYER_PARTITION), with every layer that continues a decoder layer (spec.Layer.continues) kept on that
    layer's stage."""
    starts = [i for i, x in enumerate(spec.layers) if i == 0 or not x.continues] + [spec.num_layers]
    return [(starts[a], starts[b]) for a, b in pp_partition(len(starts) - 1, pp, sizes)]


def shard_numel(t: Tensor, sh: Sharding) -> int:
    """Elements of `t` held by one rank."""
    s = t.shape
    p = _parallel(t, sh)
    if p == "replicated":
        return t.numel
    if p == "column" or p == "head":
        return cdiv(s[0], sh.tp) * _rest(s, 1)
    if p == "row":
        return s[0] * cdiv(s[1], sh.tp) * _rest(s, 2) if len(s) > 1 else cdiv(s[0], sh.tp)
    if p == "kv":
        heads = t.heads or 1
        per_rank = max(1, heads // sh.tp)
        return (s[0] // heads) * per_rank * _rest(s, 1)
    if p == "vocab":
        return cdiv(round_up(s[0], VOCAB_PAD), sh.tp) * _rest(s, 1)
    if p in ("expert_col", "expert_row"):
        e = cdiv(s[0], sh.ep)
        if len(s) > 2:
            out_f, in_f = _expert_rank_dims(t, sh)
            return e * out_f * in_f * _rest(s, 3)
        return e * cdiv(s[1], sh.moe_tp)  # a per-expert vector (bias) split with the experts' inner dimension
    raise ValueError(f"unknown parallel kind {p!r}")


def _parallel(t: Tensor, sh: Sharding) -> str:
    if t.kind in sh.replicated_kinds or (t.split_if_tp_divides and t.split_if_tp_divides % sh.tp):
        return "replicated"
    return t.parallel


def _expert_rank_dims(t: Tensor, sh: Sharding) -> tuple[int, int]:
    """[out, in] of one expert's slice of a fused MoE weight on one rank: w13 [E, 2I, H] splits its rows, w2 [E, H, I]
    its columns over moe_tp; a Tensor.min_shard floor pads each partition's I (vLLM's kimi_k3 model, 0.27+)."""
    out_f, in_f = t.shape[1], t.shape[2]
    floor = t.min_shard if sh.expert_min_shard and sh.moe_tp > 1 else 0
    if t.parallel == "expert_col":
        return (2 * max(cdiv(out_f // 2, sh.moe_tp), floor) if floor else cdiv(out_f, sh.moe_tp)), in_f
    return out_f, max(cdiv(in_f, sh.moe_tp), floor)


def _rest(shape: tuple[int, ...], start: int) -> int:
    n = 1
    for d in shape[start:]:
        n *= d
    return n


def _norm_module(name: str) -> str:
    # Multimodal checkpoints name the text model "model.language_model.*" or "language_model.model.*"; an ignore
    # list may also say "language_model.*".
    name = text_module(name)
    return "model." + name[len("language_model."):] if name.startswith("language_model.") else name


def _ignored(name: str, ignore: tuple[str, ...]) -> bool:
    for raw in ignore:
        pat = raw if raw.startswith("re:") else _norm_module(raw)
        if "*" in pat and not pat.startswith("re:"):
            if fnmatch.fnmatchcase(name, pat) or fnmatch.fnmatchcase(name, pat + ".*"):
                return True
        elif pat.startswith("re:"):
            if re.match(pat[3:], name):
                return True
        elif name == pat or name.endswith("." + pat) or name.startswith(pat + ".") or pat.endswith("." + name):
            return True
    return False


TOWER_KINDS = ("vision", "projector")


def whole_towers(tensors: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The tensors with towers and projectors unsplit on every TP rank (--mm-encoder-tp-mode data)."""
    return tuple(replace(t, parallel="replicated") if t.kind in TOWER_KINDS else t for t in tensors)


def _quant_for(t: Tensor, q: QuantConfig | None, name: str) -> QuantConfig | None:
    """The quantization that applies to tensor `t`, or None when vLLM keeps it unquantized."""
    if q is None:
        return None
    if q.modules is not None:
        return _mixed_quant(t, q, name)
    if t.kind in ("embedding", "lm_head"):
        return q if (q.method == "gguf" or (q.lm_head_quantized and t.kind == "lm_head")) else None
    if not t.linear:
        return None
    if q.experts_only and t.kind != "experts":
        return None
    if q.only and not _under(name, q.only):
        return None
    if t.kind in TOWER_KINDS:
        # Only towers whose vLLM code passes the quant_config to these Linears, under the methods that quantize them
        # there (Tensor.tower_quant); every other tower stays in the model dtype.
        if q.method not in t.tower_quant or q.source == "assumed":
            # an assumed checkpoint format (no config to read its ignore list) is sized as the published
            # llm-compressor / AutoAWQ VLM checkpoints are made: the tower left in the model dtype
            return None
        return None if q.ignore and _tower_ignored(name, q.ignore) else q
    if q.ignore and _ignored(name, q.ignore):
        return None
    return q


def _mixed_quant(t: Tensor, q: QuantConfig, name: str) -> QuantConfig | None:
    """A mixed-precision checkpoint's format for tensor `t` (ModelOptMixedPrecisionConfig.get_quant_method): the
    module's own entry, or for a fused MoE module the first entry listed under it; a module with none, and every
    embedding, stays in the model dtype. The lm_head entry is dropped upstream where the release ignores it."""
    m = q.modules
    assert m is not None
    if t.kind == "embedding" or not (t.linear or t.kind == "lm_head"):
        return None
    if t.parallel in ("expert_col", "expert_row"):
        module = name.rsplit(".", 1)[0]  # "model.layers.3.mlp.experts.w13_weight" -> "...mlp.experts"
        found = m.exact(module) or m.under(module)
    elif t.kind in TOWER_KINDS:
        # vLLM renames the checkpoint's "model.visual.*" entries to its own "visual.*" (apply_vllm_mapper).
        found = (m.exact(name) or m.exact("model." + name)) if t.tower_quant else None
    else:
        found = m.exact(name) or m.under(name)
    return None if found is None or (q.ignore and _ignored(name, q.ignore)) else found


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    """Whether module `name` lies under one of a checkpoint's block prefixes (AutoRound's block_name_to_quantize:
    vLLM tests layer_name.startswith(prefix) after renaming the prefix as the model's weights are renamed;
    "thinker.model.layers" of a Qwen Omni checkpoint is its text model's "model.layers")."""
    for raw in prefixes:
        p = _norm_module(raw.removeprefix("thinker."))
        if name.startswith(p):
            return True
    return False


def _tower_ignored(name: str, ignore: tuple[str, ...]) -> bool:
    """A tower Linear's ignore match. `name` is vLLM's prefix ("visual.blocks.0.attn.qkv"); a checkpoint saved by
    newer transformers spells it "model.visual.blocks.0.attn.qkv", and vLLM renames such plain entries (and
    ModelOpt's "model.visual*" wildcards) through the model's hf_to_vllm_mapper, but leaves "re:" regexes as written
    (compressed-tensors' apply_vllm_mapper), so a regex must match vLLM's own spelling."""
    return _ignored(name, ignore) or _ignored("model." + name, tuple(p for p in ignore if not p.startswith("re:")))


def tensor_bytes(t: Tensor, sh: Sharding, q: QuantConfig | None, act_bytes: int, name: str,
                 mxfp4_pad: tuple[int, int] | None = None) -> int:
    """Bytes of tensor `t` on one rank."""
    if t.host:
        return 0  # host-resident (pinned CPU memory): no GPU bytes
    if t.layout:
        return _layout_bytes(t, sh)
    if t.stored:
        return stored_bytes(t.dtype or "bfloat16", shard_numel(t, sh))
    tq = _quant_for(t, q, name)
    dtype_bytes = DTYPE_BYTES.get(t.dtype or "", act_bytes)
    if tq is None or len(t.shape) < 2:
        return shard_numel(t, sh) * dtype_bytes
    if t.parallel in ("expert_col", "expert_row"):
        e = cdiv(t.shape[0], sh.ep)
        out_f, in_f = _expert_rank_dims(t, sh)
        pad = None
        if tq.experts_format == "mxfp4":
            tq = QuantConfig("mxfp4", bits=4, group_size=32, experts_only=True)
        if tq.method == "mxfp4" and mxfp4_pad:
            # w13 [E, 2I, H]: pad I and H; w2 [E, H, I]: pad H and I (backend-specific alignment).
            ip, hp = mxfp4_pad
            if t.parallel == "expert_col":
                out_f, in_f = 2 * round_up(out_f // 2, ip), round_up(in_f, hp)
            else:
                out_f, in_f = round_up(out_f, hp), round_up(in_f, ip)
        return expert_bytes(tq, e, out_f, in_f, act_bytes, mxfp4_pad=pad)
    out_f, in_f = t.shape[0], _rest(t.shape, 1)
    p = _parallel(t, sh)
    if p == "column":
        out_f = cdiv(out_f, sh.tp)
    elif p == "row":
        in_f = cdiv(in_f, sh.tp)
    elif p == "kv":
        heads = t.heads or 1
        out_f = (out_f // heads) * max(1, heads // sh.tp)
    elif p == "vocab" and tq.method != "gguf":
        # a quantized ParallelLMHead is created on its padded per-rank vocabulary, like an unquantized one
        # (a GGUF file's tensors take the file's own shape)
        out_f = cdiv(round_up(out_f, VOCAB_PAD), sh.tp)
    return linear_bytes(tq, out_f, in_f, act_bytes, in_full=_rest(t.shape, 1), row_parallel=p == "row")


def _layout_bytes(t: Tensor, sh: Sharding) -> int:
    """A tensor with a per-rank layout (humming.py): its per-rank shape after the usual TP / EP split, unpadded."""
    p = _parallel(t, sh)
    if p in ("expert_col", "expert_row"):
        if sh.ep > 1:
            raise GpuplanError("enable_expert_parallel", "Humming's expert-parallel path (grouped GEMM, expert maps) "
                               "is not read for this layout", accepted=["false"])
        rank_shape: tuple[int, ...] = (t.shape[0], *_expert_rank_dims(t, sh))
    else:
        out_f, in_f = t.shape[0], _rest(t.shape, 1)
        if p == "column":
            out_f = cdiv(out_f, sh.tp)
        elif p == "row":
            in_f = cdiv(in_f, sh.tp)
        elif p != "replicated":
            raise ValueError(f"layout {t.layout!r} with parallel kind {p!r}")
        rank_shape = (out_f, in_f)
    return humming.layout_bytes(t.layout, rank_shape, t.parallel, sh.compute_capability, sh.sm_count)


def _kv_b_proj(layer: Layer) -> Tensor | None:
    return next((t for t in layer.tensors if t.name.removesuffix(".weight").endswith("kv_b_proj")), None)


def q_lora_rank(layer: Layer) -> int:
    """An MLA layer's query LoRA rank (the width of its q_a_layernorm), 0 where queries are projected directly."""
    return next((t.shape[0] for t in layer.tensors if t.name.endswith("q_a_layernorm.weight")), 0)


def _kv_b_dequantized(layer: Layer, q: QuantConfig | None, index: int) -> bool:
    """Whether MLA's W_UK_T / W_UV are a new tensor: vLLM dequantizes a quantized kv_b_proj
    (get_and_maybe_dequant_weights); an unquantized one in the model dtype is only viewed (split, permuted)."""
    t = _kv_b_proj(layer)
    if t is None:
        return True  # kv_b_proj not named by this adapter: count the copy
    return _quant_for(t, q, _tensor_name(t, index)) is not None or t.dtype not in (None, "", "bfloat16")


def _matrix_absorption(layer: Layer, hidden: int, sh: Sharding, q: QuantConfig | None, act_bytes: int,
                       index: int, fp32_dequant: bool) -> int:
    """Bytes vLLM 0.7.1-0.7.3's MLA backend adds to one layer's weights (attention/backends/mla/utils.py
    process_weights_after_loading, VLLM_MLA_PERFORM_MATRIX_ABSORPTION on by default): W_QR, the rope columns of
    q_proj in the model dtype; kv_b_proj dequantized (kept by the W_UK / W_UV views; an unquantized one is only
    viewed), in float32 where 0.7.1-0.7.2 dequantize FP8 through scaled_dequantize, else in the model dtype; and the
    products W_Q_UK [q_in, heads x latent] and W_UV_O [heads x latent, hidden], requantized to FP8 with the
    checkpoint's block shape when the weights are FP8, else in the model dtype. q_proj, kv_b_proj and o_proj stay
    loaded for prefill."""
    a = layer.attention
    n = cdiv(a.num_heads, sh.tp)
    lat, dr = a.kv_lora_rank, a.qk_rope_head_dim
    q_in = q_lora_rank(layer) or hidden
    kv_b = _kv_b_proj(layer)
    kv_q = _quant_for(kv_b, q, _tensor_name(kv_b, index)) if kv_b is not None else None
    total = q_in * n * dr * act_bytes  # W_QR
    if kv_q is not None:
        deq = 4 if fp32_dequant and fp8_weights(kv_q) else act_bytes
        total += lat * n * (a.qk_nope_head_dim + (a.v_head_dim or 0)) * deq
    for rows, cols in ((q_in, n * lat), (n * lat, hidden)):  # W_Q_UK, W_UV_O
        if fp8_weights(kv_q):
            # per-tensor / per-channel scales are a few KiB and left out; block scales are float32 per block
            br, bc = kv_q.weight_block or (rows, cols)
            total += rows * cols + cdiv(rows, br) * cdiv(cols, bc) * 4
        else:
            total += rows * cols * act_bytes
    return total


def _needs_per_layer_names(q: QuantConfig | None) -> bool:
    if q is None:
        return False
    return q.modules is not None or any(re.search(r"layers\.\d", p) or p.startswith("re:") or "*" in p
                                        for p in q.ignore + q.only)


def _built(t: Tensor, at_least) -> bool:
    """Whether the release `at_least` tests builds `t` (Tensor.since / Tensor.until)."""
    return not (t.until and at_least(t.until)) and not (t.since and not at_least(t.since))


def _tensor_name(t: Tensor, index: int) -> str:
    return t.name.replace("{i}", str(index)).removesuffix(".weight")


def experts_quant(spec: ModelSpec, q: QuantConfig | None) -> QuantConfig | None:
    """The quantization of the first MoE layer's routed experts as vLLM loads them (None: the model dtype)."""
    for index, layer in enumerate(spec.layers):
        for t in layer.tensors:
            if t.kind == "experts":
                return _quant_for(t, q, _tensor_name(t, index))
    return None


@lru_cache(maxsize=4096)
def _layer_bytes(layer: Layer, sh: Sharding, q: QuantConfig | None, act_bytes: int, index: int,
                 mxfp4_pad: tuple[int, int] | None, at_least=lambda version: True) -> tuple[tuple[str, int], ...]:
    by: dict[str, int] = {}
    for t in layer.tensors:
        if not _built(t, at_least):
            continue
        name = _tensor_name(t, index)
        by[t.kind] = by.get(t.kind, 0) + tensor_bytes(t, sh, q, act_bytes, name, mxfp4_pad)
    return tuple(by.items())


def input_embedding_bytes(spec: ModelSpec, sh: Sharding, q: QuantConfig | None, act_bytes: int) -> int:
    """Per GPU, the token-embedding shard the first pipeline stage holds (0 for a model without one)."""
    t = next((t for t in spec.embedding if t.kind == "embedding"), None)
    return tensor_bytes(t, sh, q, act_bytes, t.name.removesuffix(".weight")) if t is not None else 0


def stage_weights(spec: ModelSpec, sh: Sharding, q: QuantConfig | None, act_bytes: int, pp: int, *,
                  mla_absorbed: bool, mla_matrix_absorption: str = "", mxfp4_pad: tuple[int, int] | None = None,
                  stored: tuple[Tensor, ...] | None = None, mnbt: int = 0,
                  cpu_offload_bytes: int = 0, at_least=lambda version: True,
                  towers: str = "first", partition: tuple[int, ...] = ()) -> list[StageWeights]:
    """Per-stage weight bytes on one rank of each stage (GPU-resident: less what --cpu-offload-gb moves out).
    `mla_absorbed`: 0.8+'s W_UK_T / W_UV copy of a quantized kv_b_proj; `mla_matrix_absorption`: 0.7.1-0.7.3's
    absorbed products ("fp32_dequant": 0.7.1-0.7.2, "dequant": 0.7.3, "": neither). `towers`: the stages holding
    vision/audio towers and projectors: "first", "every" or "none" (towers.py)."""
    parts = stage_layers(spec, pp, partition)
    per_layer_names = _needs_per_layer_names(q)
    out = []
    for s, (lo, hi) in enumerate(parts):
        by: dict[str, int] = {}

        def add(kind: str, n: int, by: dict[str, int] = by) -> None:
            by[kind] = by.get(kind, 0) + n

        first, last = s == 0, s == len(parts) - 1
        # Layers are shared objects: size each distinct one once, unless names matter (per-layer ignores).
        groups: dict[int, list] = {}
        for i in range(lo, hi):
            layer = spec.layers[i]
            key = i if per_layer_names else id(layer)
            if key in groups:
                groups[key][1] += 1
            else:
                groups[key] = [layer, 1, i if per_layer_names else -1]
        for layer, count, index in groups.values():
            for kind, n in _layer_bytes(layer, sh, q, act_bytes, index, mxfp4_pad, at_least):
                add(kind, n * count)
            a = layer.attention
            # a cache-recipe layer (DeepSeek-V4.1) has no kv_b_proj: its adapter lists every attention tensor
            if mla_absorbed and a.kind == "mla" and not a.recipe and _kv_b_dequantized(layer, q, index):
                # W_UK_T / W_UV: kv_b_proj dequantized to bf16 and kept beside the original.
                add("mla_absorbed", count * cdiv(a.num_heads, sh.tp) * (a.qk_nope_head_dim + (a.v_head_dim or 0))
                    * a.kv_lora_rank * 2)
            if mla_matrix_absorption and a.kind == "mla" and not a.recipe:
                add("mla_absorbed", count * _matrix_absorption(layer, spec.hidden_size, sh, q, act_bytes, index,
                                                               mla_matrix_absorption == "fp32_dequant"))
        if first:
            for t in spec.embedding:
                add(t.kind, tensor_bytes(t, sh, q, act_bytes, t.name.removesuffix(".weight")))
        for t in spec.extra:
            if t.kind in TOWER_KINDS:
                # Vision towers and projectors are sharded as their adapters say (most are tensor-parallel
                # lumps; positions, norms and small projectors can be replicated).
                if _holds_towers(towers, first):  # quantized where Tensor.tower_quant says vLLM quantizes it
                    add(t.kind, tensor_bytes(t, sh, q, act_bytes, t.name.removesuffix(".weight")))
            elif (_on_stage(t.on_layers, lo, hi) if t.on_layers else first):  # no on_layers: the first stage
                add(t.kind, t.numel * DTYPE_BYTES.get(t.dtype or "", act_bytes))
        if last:
            for t in spec.head:
                if t.kind == "lm_head" and spec.tie_word_embeddings and first:
                    continue  # the LM head is the embedding tensor
                if not _built(t, at_least):
                    continue
                add(t.kind, tensor_bytes(t, sh, q, act_bytes, t.name.removesuffix(".weight")))
        seen = set()
        for r in spec.rope_caches:
            if r.tower and not _holds_towers(towers, first):
                continue
            if r.layers and not _on_stage(r.layers, lo, hi):
                continue  # built by layers that this stage does not hold
            positions = r.cached_positions(at_least)
            key = (positions, r.rotary_dim, r.dtype, r.theta)
            if key not in seen:
                seen.add(key)
                add("rope_cache", positions * r.rotary_dim * DTYPE_BYTES.get(r.dtype or "", act_bytes))
        for buf in spec.token_buffers:
            if buf.with_tower_from and at_least(buf.with_tower_from) and not _holds_towers(towers, first):
                continue
            if buf.layers and not _on_stage(buf.layers, lo, hi):
                continue  # allocated inside layers that this stage does not hold
            if last or not buf.last_stage_only:
                width = buf.width * cdiv(buf.tp_units, sh.tp) if buf.tp_units else buf.width
                add("buffers", mnbt * width * DTYPE_BYTES.get(buf.dtype or "", act_bytes))
        out.append(StageWeights(s, (lo, hi), tuple(by.items()), sum(by.values())))
    if stored is not None:
        out = _stored_stages(spec, stored, sh, pp_partition(spec.num_decoder_layers, pp, partition), out, act_bytes,
                             towers)
    if cpu_offload_bytes > 0:
        out = [_offload(spec, w, sh, q, act_bytes, mxfp4_pad, cpu_offload_bytes) for w in out]
    return out


_PACKED = ((re.compile(r"\.(q|k|v)_proj(?=$|\.)"), ".qkv_proj"), (re.compile(r"\.(gate|up)_proj(?=$|\.)"), ".gate_up_proj"))


def _vllm_param(name: str) -> str:
    """The vLLM parameter an HF tensor lands in (q/k/v and gate/up are packed into one)."""
    for pat, repl in _PACKED:
        name = pat.sub(repl, name)
    return name


def offloaded_bytes(spec: ModelSpec, lo: int, hi: int, sh: Sharding, q: QuantConfig | None, act_bytes: int,
                    mxfp4_pad: tuple[int, int] | None, cap: int) -> int:
    """What --cpu-offload-gb moves to CPU memory on one rank: vLLM's offloader walks the decoder layers in order
    and moves whole parameters until the running total reaches the cap (so it overshoots by at most one)."""
    done = 0
    for i in range(lo, hi):
        params: dict[str, int] = {}
        for t in spec.layers[i].tensors:
            name = _tensor_name(t, i)
            key = _vllm_param(name)
            params[key] = params.get(key, 0) + tensor_bytes(t, sh, q, act_bytes, name, mxfp4_pad)
        for n in params.values():
            if done >= cap:
                return done
            done += n
    return done


def _offload(spec: ModelSpec, w: StageWeights, sh: Sharding, q: QuantConfig | None, act_bytes: int,
             mxfp4_pad: tuple[int, int] | None, cap: int) -> StageWeights:
    moved = offloaded_bytes(spec, w.layers[0], w.layers[1], sh, q, act_bytes, mxfp4_pad, cap)
    if not moved:
        return w
    return StageWeights(w.stage, w.layers, w.by_kind + (("cpu_offload", -moved),), w.total - moved)


_FLOAT = ("float32", "float16", "bfloat16")


def _stored_tensor_bytes(t: Tensor, sh: Sharding, act_bytes: int) -> int:
    """Checkpoint tensors as vLLM holds them: parameters in float formats are cast to the serving dtype;
    packed integers, fp8 weights, scales and zero points stay as stored."""
    n = shard_numel(t, sh)
    dtype = t.dtype or "bfloat16"
    if dtype in _FLOAT and t.name.endswith((".weight", ".bias")) and "scale" not in t.name:
        return n * act_bytes
    return stored_bytes(dtype, n)


def _holds_towers(towers: str, first: bool) -> bool:
    return towers == "every" or (towers == "first" and first)


def _on_stage(layers: tuple[int, ...], lo: int, hi: int) -> bool:
    """Whether the stage holding spec.layers[lo:hi] holds one of `layers`."""
    return any(lo <= i < hi for i in layers)


def _stored_stages(spec: ModelSpec, stored: tuple[Tensor, ...], sh: Sharding, parts: list[tuple[int, int]],
                   computed: list[StageWeights], act_bytes: int, towers: str = "first") -> list[StageWeights]:
    """Exact bytes from the checkpoint's own tensors, keeping the computed runtime buffers (rope, MLA). `parts`
    are decoder-layer ranges: the checkpoint numbers its layers as vLLM's decoder layers."""
    layer_re = re.compile(r"(?:layers|blk|h|blocks)\.(\d+)\.")
    out = []
    for s, (lo, hi) in enumerate(parts):
        by: dict[str, int] = {}
        for k, v in computed[s].by_kind:
            if k in ("rope_cache", "mla_absorbed", "buffers"):
                by[k] = v
        first, last = s == 0, s == len(parts) - 1
        for t in stored:
            if t.kind in TOWER_KINDS:  # a tower's own layer numbers say nothing about pipeline stages
                if _holds_towers(towers, first):
                    by[t.kind] = by.get(t.kind, 0) + _stored_tensor_bytes(t, sh, act_bytes)
                continue
            m = layer_re.search(t.name)
            if m:
                i = int(m.group(1))
                if not lo <= i < hi:
                    continue
            elif t.kind == "lm_head":
                if not last:
                    continue
            elif not first:
                continue
            by[t.kind] = by.get(t.kind, 0) + _stored_tensor_bytes(t, sh, act_bytes)
        out.append(StageWeights(s, computed[s].layers, tuple(by.items()), sum(by.values())))
    return out
