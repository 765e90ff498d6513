"""Checkpoint tensors -> `gpuplan.model.spec.Tensor`, classified and sharded the way vLLM loads them.

Classification is data, not code: `PREFIX_KINDS` says which component a tensor belongs to (vision tower,
projector, MTP head) and `ROLE_RULES` says what it is inside a layer (q/k/v, MLP, experts, norm, ...)
and so how vLLM's parallel layers split it (see reference/vllm-memory-model.md §4). Both tables cover
HF names and llama.cpp's GGUF names. First match wins, so order matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..model.spec import Tensor
from .checkpoint import CheckpointInfo, CheckpointTensor, dtype_nbytes

if TYPE_CHECKING:
    from ..model.spec import ModelSpec

# Marks a rule whose tensors vLLM never loads (buffers saved by old exporters).
SKIP = "skip"

# (regex on the full name, kind, parallel)
ROLE_RULES: tuple[tuple[str, str, str], ...] = (
    # Buffers, not parameters: vLLM recomputes them and its weight loaders drop them.
    (r"(^|\.)rotary_emb\.inv_freq$", "other", SKIP),
    (r"(^|\.)attn\.(masked_)?bias$", "other", SKIP),  # GPT-2's causal-mask buffers
    # Embeddings and head: VocabParallelEmbedding / ParallelLMHead.
    (r"(^|\.)(embed_tokens|wte|word_embeddings|tok_embeddings)\.weight$", "embedding", "vocab"),
    (r"^token_embd\.weight$", "embedding", "vocab"),
    (r"(^|\.)(wpe|embed_positions|position_embeddings)\.weight$", "embedding", "replicated"),
    (r"(^|\.)(lm_head|embed_out)\.weight$", "lm_head", "vocab"),
    (r"^output\.weight$", "lm_head", "vocab"),
    # Norms (RMSNorm / LayerNorm weights and biases) are whole on every rank.
    (r"(^|\.)(\w*norm\w*|ln_f|ln_\d+)\.(weight|bias)$", "norm", "replicated"),
    # MoE routers: ReplicatedLinear in vLLM's MoE blocks.
    (r"\.(mlp|block_sparse_moe|feed_forward|moe)\.(gate|router)\.(weight|bias|e_score_correction_bias)$",
     "router", "replicated"),
    (r"\.ffn_gate_inp\.weight$", "router", "replicated"),
    (r"\.exp_probs_b(\.bias)?$", "router", "replicated"),
    (r"\.shared_expert_gate\.weight$", "shared_experts", "replicated"),
    # Experts, one tensor per expert (Mixtral w1/w2/w3, Qwen/DeepSeek gate/up/down).
    (r"\.experts\.\d+\.(w1|w3|gate_proj|up_proj|gate_up_proj)\.", "experts", "expert_col"),
    (r"\.experts\.\d+\.(w2|down_proj)\.", "experts", "expert_row"),
    # Experts already fused to [E, ...] (Llama 4, gpt-oss *_blocks/_scales/_bias, GGUF *_exps).
    (r"\.experts\.(w13|w1|w3|gate_up_proj|gate_proj|up_proj)\w*(\.\w+)?$", "experts", "expert_col"),
    (r"\.experts\.(w2|down_proj)\w*(\.\w+)?$", "experts", "expert_row"),
    (r"\.ffn_(gate|up|gate_up)_exps\.", "experts", "expert_col"),
    (r"\.ffn_down_exps\.", "experts", "expert_row"),
    # Shared experts: a dense MLP beside the routed ones.
    (r"\.(shared_experts?|shared_mlp)\.(gate_proj|up_proj|gate_up_proj|w1|w3)\.", "shared_experts", "column"),
    (r"\.(shared_experts?|shared_mlp)\.(down_proj|w2)\.", "shared_experts", "row"),
    (r"\.ffn_(gate|up)_shexp\.", "shared_experts", "column"),
    (r"\.ffn_down_shexp\.", "shared_experts", "row"),
    # MLA: the down-projections are ReplicatedLinear, the up-projections column-parallel.
    (r"\.(q_a_proj|kv_a_proj_with_mqa)\.", "attention", "replicated"),
    (r"\.attn_(q_a|kv_a_mqa)\.", "attention", "replicated"),
    (r"\.(q_b_proj|kv_b_proj)\.", "attention", "column"),
    (r"\.attn_(q_b|kv_b|k_b|v_b)\.", "attention", "column"),
    # Attention projections.
    (r"\.(qkv_proj|query_key_value|c_attn|Wqkv|W_pack|wqkv)\.", "attention", "column"),
    (r"\.attn_qkv\.", "attention", "column"),
    # HRM-Text's fused gate/q/k/v and output gate; IQuest-Coder Loop's per-layer loop-mixing gates (split by head).
    (r"\.gqkv_proj\.", "attention", "column"),
    (r"\.self_attn\.gate_proj\.", "attention", "column"),
    (r"\.gate_projections\.\d+\.", "attention", "column"),
    (r"\.(q_proj|query|wq)\.", "attention", "column"),
    (r"\.attn_q\.", "attention", "column"),
    (r"\.(k_proj|v_proj|key|value|wk|wv)\.", "attention", "kv"),
    (r"\.attn_(k|v)\.", "attention", "kv"),
    (r"\.(self_attn|attention|attn)\.(o_proj|out_proj|dense|c_proj|wo)\.", "attention", "row"),
    (r"\.(o_proj|out_proj)\.", "attention", "row"),
    (r"\.attn_output\.", "attention", "row"),
    (r"\.(self_attn|attn)\.sinks$", "attention", "head"),
    (r"\.attn_sinks(\.weight)?$", "attention", "head"),
    # Dense MLP: gate/up column-parallel (MergedColumnParallelLinear), down row-parallel.
    (r"\.(gate_proj|up_proj|gate_up_proj|fc1|c_fc|dense_h_to_4h|w1|w3|fc_in)\.", "mlp", "column"),
    (r"\.ffn_(gate|up)\.", "mlp", "column"),
    (r"\.(down_proj|fc2|dense_4h_to_h|w2|fc_out)\.", "mlp", "row"),
    (r"\.mlp\.c_proj\.", "mlp", "row"),
    (r"\.ffn_down\.", "mlp", "row"),
)

# (regex on the full name, kind) for components outside the decoder stack; overrides the role's kind.
PREFIX_KINDS: tuple[tuple[str, str], ...] = (
    (r"^(model\.)?(vision_tower|vision_model|visual|vision_encoder|image_encoder|vision|audio_tower|"
     r"audio_model|audio_encoder)\.", "vision"),
    (r"^(model\.)?(multi_modal_projector|mm_projector|connector|vision_projection|embed_vision|"
     r"embed_audio)\.", "projector"),
    (r"^(model\.)?(mtp|mtp_layers)\.", "mtp"),
)

_ROLE_RULES = tuple((re.compile(rx), kind, par) for rx, kind, par in ROLE_RULES)
_PREFIX_KINDS = tuple((re.compile(rx), kind) for rx, kind in PREFIX_KINDS)
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|blk|layer)\.(\d+)\.")
# The main matrix of a linear layer (as opposed to its bias, scales, zero points, g_idx).
_MATRIX_SUFFIX = re.compile(r"\.(weight|qweight|weight_packed)$|_blocks$|\.experts\.\w+$")
_LINEAR_KINDS = frozenset({"attention", "mlp", "experts", "shared_experts", "vision", "projector", "mtp"})


@dataclass(frozen=True)
class TensorMapping:
    """The tensors vLLM loads, the ones it skips (kept for the record), and notes for the report."""

    tensors: tuple[Tensor, ...]
    skipped: tuple[Tensor, ...] = ()
    notes: tuple[str, ...] = field(default=())


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    # Multimodal configs nest the language model's settings; the decoder's head counts live there.
    for key in ("text_config", "language_config", "llm_config"):
        sub = config.get(key)
        if isinstance(sub, dict):
            merged = dict(config)
            merged.update(sub)
            return merged
    return config


def _first_int(config: dict[str, Any], *keys: str) -> int:
    for k in keys:
        v = config.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return 0


def layer_index(name: str) -> int | None:
    """Decoder layer number in a tensor name ("model.layers.12.mlp..." -> 12, GGUF "blk.3..." -> 3)."""
    m = _LAYER.search(name)
    return int(m.group(1)) if m else None


def classify(name: str) -> tuple[str, str]:
    """(kind, parallel) for a tensor name by the tables above; ("other", "replicated") if none matches."""
    for rx, kind, par in _ROLE_RULES:
        if rx.search(name):
            return kind, par
    return "other", "replicated"


def _component(name: str) -> str | None:
    for rx, kind in _PREFIX_KINDS:
        if rx.search(name):
            return kind
    return None


def _refine_parallel(name: str, parallel: str, shape: tuple[int, ...]) -> str:
    """Parts of a sharded layer that vLLM keeps whole: per-tensor scalars, row-layer biases and scales."""
    numel = 1
    for d in shape:
        numel *= d
    if parallel in ("column", "row", "kv", "head") and numel == 1:
        return "replicated"  # per-tensor scales (FP8 weight_scale / input_scale): one value per rank
    if parallel == "row":
        if name.endswith(".bias"):
            return "replicated"  # added once after the all-reduce, so every rank holds it whole
        if not name.endswith("g_idx") and (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            return "replicated"  # per-output-channel scales of a row layer: outputs are not split
    return parallel


def _to_tensor(t: CheckpointTensor, kind: str, parallel: str, kv_heads: int) -> Tensor:
    heads = 0
    if parallel == "kv":
        if kv_heads and kind == "attention":
            heads = kv_heads
        else:
            parallel = "column"  # head count unknown (e.g. vision towers): split like q
    linear = kind in _LINEAR_KINDS and len(t.shape) >= 2 and bool(_MATRIX_SUFFIX.search(t.name))
    return Tensor(name=t.name, kind=kind, shape=t.shape, parallel=parallel, linear=linear, heads=heads,
                  dtype=t.dtype, stored=True)


def map_checkpoint(info: CheckpointInfo, spec: ModelSpec | None = None) -> TensorMapping:
    """Classify every stored tensor; split out the ones vLLM does not load, with a note for each group."""
    if not info.tensors:
        return TensorMapping((), (), ("no tensor headers: weights come from the config",))
    config = _text_config(info.config)
    kv_heads = (spec.num_kv_heads if spec is not None else 0) or _first_int(
        config, "num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num",
        "num_attention_heads", "n_head")
    n_layers = (spec.num_layers if spec is not None else 0) or _first_int(config, "num_hidden_layers",
                                                                          "n_layer", "num_layers")
    tied_flag = spec.tie_word_embeddings if spec is not None else config.get("tie_word_embeddings")
    mtp_config = bool(_first_int(config, "num_nextn_predict_layers", "mtp_num_hidden_layers", "num_mtp_layers"))

    loaded: list[Tensor] = []
    skipped: list[Tensor] = []
    reasons: dict[str, int] = {}

    def skip(t: Tensor, why: str) -> None:
        skipped.append(t)
        reasons[why] = reasons.get(why, 0) + 1

    for ct in info.tensors:
        kind, parallel = classify(ct.name)
        component = _component(ct.name)
        if component is not None:
            kind = component
        parallel = _refine_parallel(ct.name, parallel, ct.shape)
        if parallel == SKIP:
            skip(_to_tensor(ct, kind, "replicated", kv_heads), "buffers vLLM recomputes (inv_freq, masks)")
            continue
        if parallel == "vocab" and kind == "embedding" and component == "vision":
            parallel = "replicated"
        idx = layer_index(ct.name) if component is None else None
        if idx is not None and n_layers and idx >= n_layers:
            # Layers past num_hidden_layers are multi-token-prediction heads (DeepSeek-V3, GLM-4.5):
            # the main model never builds them; only MTP speculative decoding would load them.
            why = "MTP layers (loaded only with MTP speculative decoding)" if mtp_config else \
                f"layers beyond num_hidden_layers={n_layers}"
            skip(_to_tensor(ct, "mtp" if mtp_config else "other", parallel, kv_heads), why)
            continue
        if component == "mtp":
            skip(_to_tensor(ct, "mtp", parallel, kv_heads), "MTP layers (loaded only with MTP speculative "
                                                             "decoding)")
            continue
        tensor = _to_tensor(ct, kind, parallel, kv_heads)
        if kind == "lm_head" and tied_flag is True:
            # vLLM's loaders skip lm_head.weight when tied: the head *is* the embedding.
            skip(tensor, "lm_head stored but tied to the embedding")
            continue
        loaded.append(tensor)

    notes = [f"{n} tensor{'s' if n > 1 else ''} not loaded by vLLM: {why}" for why, n in reasons.items()]
    has_head = any(t.kind == "lm_head" for t in loaded)
    has_embedding = any(t.kind == "embedding" and t.parallel == "vocab" for t in loaded)
    if has_embedding and not has_head and "lm_head stored but tied to the embedding" not in reasons:
        notes.append("tied embeddings: no lm_head in the checkpoint, the head reuses the embedding")
    elif "lm_head stored but tied to the embedding" in reasons:
        notes.append("tied embeddings: the stored lm_head is ignored, the head reuses the embedding")
    other = [t.name for t in loaded if t.kind == "other"]
    if other:
        notes.append(f"{len(other)} tensor{'s' if len(other) > 1 else ''} of unknown role counted as "
                     f"replicated (e.g. {other[0]})")
    return TensorMapping(tuple(loaded), tuple(skipped), tuple(notes))


def checkpoint_tensors(info: CheckpointInfo, spec: ModelSpec | None = None) -> tuple[Tensor, ...]:
    """The tensors vLLM loads from this checkpoint, `stored=True` (see `map_checkpoint` for the rest)."""
    return map_checkpoint(info, spec).tensors


def tensor_nbytes(t: Tensor) -> int:
    """Exact stored bytes of a checkpoint tensor (torch dtypes and GGML block types alike)."""
    if t.dtype is None:
        raise ValueError(f"{t.name}: no stored dtype")
    n = dtype_nbytes(t.dtype, t.shape)
    if n is None:
        raise ValueError(f"{t.name}: unknown dtype {t.dtype!r}")
    return n
