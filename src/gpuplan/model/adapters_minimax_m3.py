"""MiniMax-M3 (model_type minimax_m3_text; the language model of the minimax_m3_vl checkpoints) as vLLM 0.33 builds
it (models/minimax_m3/nvidia/model.py, MiniMaxM3SparseForCausalLM).

The decoder is a GQA transformer with Gemma-style RMSNorms (weights initialised at zero, one per head for q and k)
and partial rotary embedding (head_dim x partial_rotary_factor channels). Two choices are made per layer:
- attention (sparse_attention_config.sparse_attention_freq): a plain layer is vLLM's generic Attention; a sparse
  layer (MiniMaxM3SparseAttention) folds a lightning indexer into the same column-parallel projection, whose output
  is [q | k | v | index_q | index_k]: index_q has as many heads as the KV heads and is sharded (or replicated past
  the KV head count) like them, index_k is one head copied on every rank; index_q/index_k get their own per-head
  norms. M3 disables the indexer's value/output branch, so no index_v / index_o projections exist;
- MLP (moe_layer_freq): a dense SwiGLU-OAI MLP of dense_intermediate_size, or a sigmoid-routed MoE: a float32 router
  (GateLinear), a float32 correction bias held as a parameter, fused experts and one shared expert of
  intermediate_size x n_shared_experts (vLLM sizes it so, not by shared_intermediate_size).
The model also allocates a top-k block-index buffer at load time: [mnbt rounded up to 4, index heads on the rank,
sparse_topk_blocks] int32. The checkpoint's MTP modules are skipped by the main model's loader (names with "mtp.").

KV caches (the recipe in engines/vllm/kv_recipes/minimax_m3.py): a plain layer has a FullAttentionSpec; a sparse
layer has the indexer's key-only cache (MLAAttentionSpec, one head of the index dim, bf16 by default whatever
--kv-cache-dtype says) and its main FullAttentionSpec K/V page. Both are FullAttentionSpec by type and take the same
block size (128, the only kernel block the M3 sparse and indexer backends take), so the whole model is one group
whatever the page sizes.

Only the text type is modelled: minimax_m3_vl (vLLM builds its CLIP-style vision tower, patch merger and projector)
and transformers' minimax_m3_vl_text schema are refused with a reason.
"""

from __future__ import annotations

from ..errors import ConfigError
from . import builders as b
from .adapters import _embed_head, _int, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, RopeCache, Tensor, TokenBuffer

RECIPE = "minimax_m3"
# The M3 sparse attention and indexer backends take head size 128 only (get_supported_head_sizes).
SPARSE_HEAD_DIM = 128

# vLLM's MiniMaxM3TextConfig fills what a config.json leaves out with the MiniMax-M3-preview text_config; these are
# the fields that change what vLLM allocates.
_VLLM_DEFAULTS = {
    "vocab_size": 200064, "hidden_size": 6144, "intermediate_size": 3072, "dense_intermediate_size": 12288,
    "num_hidden_layers": 60, "num_attention_heads": 64, "num_key_value_heads": 4, "head_dim": 128,
    "max_position_embeddings": 524288, "partial_rotary_factor": 0.5, "hidden_act": "swigluoai",
    "num_local_experts": 128, "num_experts_per_tok": 4, "n_shared_experts": 1, "use_routing_bias": True,
    "tie_word_embeddings": False,
}


def _vllm_defaults(cfg: dict) -> dict:
    """The config as vLLM's MiniMaxM3TextConfig holds it: omitted (or null) fields take its defaults; its default
    schedules are the 60-layer checkpoint's whatever num_hidden_layers says (3 dense-MLP plain-attention layers,
    then 57 MoE sparse-attention layers)."""
    freq = [0] * 3 + [1] * 57
    out = {**_VLLM_DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    out.setdefault("moe_layer_freq", freq)
    out.setdefault("sparse_attention_config", {
        "sparse_index_dim": 128, "sparse_num_index_heads": 4, "sparse_topk_blocks": 16,
        "sparse_block_size": 128, "sparse_attention_freq": freq,
    })
    return out


def _sparse_layers(cfg: dict, n: int) -> set[int]:
    """_sparse_attention_layer_ids: the layers whose sparse_attention_freq entry is non-zero."""
    sc = cfg.get("sparse_attention_config") or {}
    freq = sc.get("sparse_attention_freq")
    if not freq:
        return set()
    if len(freq) < n:
        raise ConfigError("config", f"sparse_attention_freq has {len(freq)} entries for {n} layers")
    return {i for i in range(n) if freq[i]}


def _moe_layers(cfg: dict, n: int) -> set[int]:
    """_is_moe_layer: the layers whose moe_layer_freq entry is non-zero (vLLM indexes the list by layer)."""
    freq = cfg.get("moe_layer_freq")
    if len(freq) < n:
        raise ConfigError("config", f"moe_layer_freq has {len(freq)} entries for {n} layers")
    return {i for i in range(n) if freq[i]}


@register("minimax_m3_text")
def _minimax_m3(cfg: dict, outer: dict, name: str) -> ModelSpec:
    cfg = _vllm_defaults(cfg)
    if cfg.get("hidden_act") != "swigluoai":
        # MiniMaxM3MLP raises on anything else (the shared expert is one, so MoE-only models too).
        raise ConfigError("config", f"vLLM's MiniMax-M3 MLP takes hidden_act 'swigluoai' only, got "
                          f"{cfg.get('hidden_act')!r}", accepted=["swigluoai"])
    hidden, n = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers")
    heads, kv, hd = _int(cfg, "num_attention_heads"), _int(cfg, "num_key_value_heads"), _int(cfg, "head_dim")
    vocab = _int(cfg, "vocab_size")
    e, k = _int(cfg, "num_local_experts"), _int(cfg, "num_experts_per_tok")
    mi, dense_i = _int(cfg, "intermediate_size"), _int(cfg, "dense_intermediate_size")
    shared_i = mi * _int(cfg, "n_shared_experts", default=0)
    sparse, moe_ids = _sparse_layers(cfg, n), _moe_layers(cfg, n)
    sc = cfg.get("sparse_attention_config") or {}
    idx_heads = _int(sc, "sparse_num_index_heads", default=kv)
    idx_dim = _int(sc, "sparse_index_dim", default=hd)
    topk = _int(sc, "sparse_topk_blocks", default=16)
    if sparse and (idx_heads != kv or idx_dim != hd or hd != SPARSE_HEAD_DIM):
        # MinimaxM3QKVParallelLinearWithIndexer asserts index heads == KV heads and lays index_q out in head_dim
        # slots; both sparse backends take head size 128 only.
        raise ConfigError("config", "vLLM's MiniMax-M3 sparse layers need sparse_num_index_heads == "
                          f"num_key_value_heads and sparse_index_dim == head_dim == {SPARSE_HEAD_DIM} (got "
                          f"{idx_heads}, {kv}, {idx_dim}, {hd})")

    p = b.P + "self_attn."
    # q/k norms are per head (qk_norm_type per_head): one head_dim weight each, on every rank.
    plain_t = b.attention(hidden, heads, kv, hd) + b.norm(p + "q_norm", hd) + b.norm(p + "k_norm", hd)
    sparse_t = plain_t + (
        # index_q rides the KV-head path of the fused projection (split over TP, replicated past the KV heads)
        Tensor(p + "index_q_proj.weight", "attention", (idx_heads * idx_dim, hidden), "kv", linear=True,
               heads=idx_heads),
        # index_k is one shared head that every rank computes whole
        Tensor(p + "index_k_proj.weight", "attention", (idx_dim, hidden), "replicated", linear=True),
    ) + b.norm(p + "index_q_norm", idx_dim) + b.norm(p + "index_k_norm", idx_dim)
    f = b.P + "block_sparse_moe."
    moe_t = (b.router(hidden, e, name=f + "gate", correction_bias=bool(cfg.get("use_routing_bias")), fp32=True)
             + b.experts(hidden, mi, e, prefix=f + "experts"))
    if shared_i:
        moe_t += b.gated_mlp(hidden, shared_i, prefix=f + "shared_experts.")
    dense_t = b.gated_mlp(hidden, dense_i)
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)

    plain = Attention("full", heads, kv, hd, recipe=RECIPE)
    sparse_att = Attention("full", heads, kv, hd, recipe=RECIPE,
                           recipe_args=(("index_dim", idx_dim),))
    moe = Mlp("moe", 0, e, k, mi, shared_i)
    dense = Mlp("dense", dense_i)
    cache: dict[tuple[bool, bool], Layer] = {}
    layers = []
    for i in range(n):
        key = (i in sparse, i in moe_ids)
        if key not in cache:
            att_t = sparse_t if key[0] else plain_t
            cache[key] = Layer(sparse_att if key[0] else plain, moe if key[1] else dense,
                               att_t + (moe_t if key[1] else dense_t) + norms)
        layers.append(cache[key])

    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    # One cos/sin cache of head_dim x partial_rotary_factor channels, shared by every layer (get_rope caches it).
    rot = int(hd * float(cfg.get("partial_rotary_factor") or 1.0))
    pos = _int(cfg, "max_position_embeddings")
    # [round_up(mnbt, 4), index heads per rank, topk] int32, only with a sparse_attention_config. The heads per rank
    # are max(1, index heads / TP), which a TokenBuffer cannot express: sized here for TP >= the index heads (one
    # head per rank), the only regime in which this model's weights fit.
    buffers = (TokenBuffer("topk_indices_buffer", topk, "int32"),) if cfg.get("sparse_attention_config") else ()
    notes = ()
    if cfg.get("num_mtp_modules") or cfg.get("num_nextn_predict_layers"):
        notes = ("the checkpoint's MTP modules are not loaded by vLLM's main model and are not counted",)
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=mi, tie=tie,
                 embedding=emb, head=head, rope=(RopeCache(pos, rot),), token_buffers=buffers, notes=notes)


@register("minimax_m3_vl")
def _minimax_m3_vl(cfg: dict, outer: dict, name: str) -> ModelSpec:
    raise ConfigError(
        "model",
        "MiniMax-M3's vision-language checkpoint (minimax_m3_vl): vLLM 0.33 builds its vision tower (a 3-D RoPE "
        "CLIP-style ViT, patch merger and projector) beside the language model, and gpuplan does not size that tower "
        "or its profile run yet. Its language model alone is modelled: pass the checkpoint's text_config with "
        "model_type 'minimax_m3_text'",
        accepted=["minimax_m3_text"],
    )


@register("minimax_m3_vl_text")
def _minimax_m3_vl_text(cfg: dict, outer: dict, name: str) -> ModelSpec:
    raise ConfigError(
        "model",
        "minimax_m3_vl_text is transformers' schema for MiniMax-M3's language model; vLLM 0.33 has no config class "
        "for it and reads MiniMax-M3 through its own minimax_m3_text schema (sparse_attention_config, "
        "moe_layer_freq, hidden_act 'swigluoai'), which transformers' class rewrites. Pass the text_config with "
        "model_type 'minimax_m3_text'",
        accepted=["minimax_m3_text"],
    )
