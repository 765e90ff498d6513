"""rednote dots3 (model_type dots3_note, architecture Dots3NoteForCausalLM) as vLLM 0.33 builds it
(vllm/models/dots3_note/nvidia/model.py, on the DeepSeek-V3.2 runtime of models/deepseek_v32).

The released config.json is flat: the text model's keys sit at the top, the sliding layers' geometry in `swa_*` keys
beside the full layers' DeepSeek-style keys. vLLM reads both sets from the top level.

Two attention geometries, both latent (MLA) with q_lora_rank, both ending in a per-head sigmoid gate and an RMSNorm
over the rotary slice of the key:
  * "full" / "indexed" layers (layer_types other than sliding_attention): DeepSeek-V3.2 sparse MLA with the DSA
    lightning indexer on every such layer (wq_b, fused wk + weights_proj in the model dtype, fp32 LayerNorm k_norm);
  * "sliding_attention" layers: dense MLA of their own width (swa_num_attention_heads, swa_kv_lora_rank,
    swa_qk_nope_head_dim, ...) over a window of sliding_window_size tokens, no indexer.
q_a and kv_a are one replicated fused projection; q_b and kv_b split by heads (column), o_proj by rows. The gate
(g_proj) is a ReplicatedLinear of one output per head when attention_gate_type is "headwise" (the released
checkpoint), else a ColumnParallelLinear as wide as the attention output.

MLP: layer 0 .. first_k_dense_replace-1 a gated MLP of intermediate_size; every later layer DeepSeek-V2's MoE block
(router in the model dtype with a float32 e_score_correction_bias parameter under noaux_tc, fused routed experts)
plus a shared gated MLP of n_shared_experts x moe_intermediate_size. (With an FP8 block-quantized checkpoint vLLM
pads the dense and shared MLP widths to whole blocks per rank; the released checkpoint is bf16.)

Two rotary caches of max_position_embeddings x qk_rope_head_dim in the model dtype: rope_theta for the full layers
(their indexer's rotary embedding has the same key, so vLLM shares it) and swa_rope_theta for the sliding layers.
At load the model also allocates a [max_num_batched_tokens, index_topk] int32 top-k index buffer.

The checkpoint's next-token-prediction block (model.layers.<num_hidden_layers>: a sliding-geometry attention with a
dense MLP, eh_proj, enorm / hnorm / shared_head.norm) and its own model.mtp.embed_tokens are skipped by the main
model's loader; vLLM builds them (nvidia/mtp.py) only as a speculative draft.

Not modelled here: the vision (MoE ViT) and audio (Whisper-style) towers, which vLLM builds when config.json has
vision_config / audio_config and the prompt limits allow images, video or audio; sized they are not, so this spec is
the text-only deployment (--limit-mm-per-prompt with image, video and audio at 0).

KV cache (planned by engines/vllm/kv_packed.py): the sliding layers are SlidingWindowMLASpec layers of the sliding row
(swa_kv_lora_rank + swa_qk_rope_head_dim), the full layers' MLA rows are padded to that same width (physical head
size, Dots3NotePaddedMLAAttention) beside the indexer's key cache. The full layers' backend declares only the
block-outermost BLHNC layout, so vLLM 0.33 packs those pages side by side in each block; every layer here carries
`block_outermost` and the full layers `kv_row`.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from . import builders as b
from .adapters import _embed_head, _indexer_tensors, _int, _moe_layers, _spec, _tie, register
from .spec import Attention, Mlp, ModelSpec, RopeCache, SequenceParallelRule, Tensor, TokenBuffer

_SWA = "swa_"


def _attention_tensors(cfg: dict, hidden: int, pre: str) -> tuple[Tensor, ...]:
    """One geometry's attention block as vLLM allocates it (pre: "" for the full layers, "swa_" for the sliding)."""
    heads = _int(cfg, pre + "num_attention_heads")
    qlr, kvr = _int(cfg, pre + "q_lora_rank"), _int(cfg, pre + "kv_lora_rank")
    nope, rope, v = (
        _int(cfg, pre + "qk_nope_head_dim"),
        _int(cfg, pre + "qk_rope_head_dim"),
        _int(cfg, pre + "v_head_dim"),
    )
    p = b.P + "self_attn."
    # fused_qkv_a_proj is one replicated projection; it is split here as the checkpoint ships it
    t = (
        b.linear(p + "q_a_proj", "attention", qlr, hidden, "replicated")
        + b.norm(p + "q_a_layernorm", qlr)
        + b.linear(p + "q_b_proj", "attention", heads * (nope + rope), qlr, "column")
        + b.linear(p + "kv_a_proj_with_mqa", "attention", kvr + rope, hidden, "replicated")
        + b.norm(p + "kv_a_layernorm", kvr)
        + b.linear(p + "kv_b_proj", "attention", heads * (nope + v), kvr, "column")
        + b.linear(p + "o_proj", "attention", hidden, heads * v, "row")
    )
    gate = str(cfg.get(pre + "attention_gate_type") or "")
    if not gate:
        raise ConfigError(
            "config", f"config.json lacks '{pre}attention_gate_type' (vLLM's dots3_note reads it)"
        )
    if gate == "headwise":  # one sigmoid gate per head, kept whole on every rank
        t += b.linear(p + "g_proj", "attention", heads, hidden, "replicated")
    else:  # elementwise: as wide as the attention output, split by heads
        t += b.linear(p + "g_proj", "attention", heads * v, hidden, "column")
    return t + b.norm(p + "k_rope_only_layernorm", rope)


def _attention(cfg: dict, pre: str, **kw) -> Attention:
    heads, kvr, rope = (
        _int(cfg, pre + "num_attention_heads"),
        _int(cfg, pre + "kv_lora_rank"),
        _int(cfg, pre + "qk_rope_head_dim"),
    )
    return Attention(
        "mla",
        heads,
        1,
        kvr + rope,
        v_head_dim=_int(cfg, pre + "v_head_dim"),
        kv_lora_rank=kvr,
        qk_rope_head_dim=rope,
        qk_nope_head_dim=_int(cfg, pre + "qk_nope_head_dim"),
        **kw,
    )


@register("dots3_note")
def _dots3_note(cfg: dict, outer: dict, name: str) -> ModelSpec:
    if cfg.get("hidden_size") is None and isinstance(cfg.get("text_config"), dict):
        # vLLM's Dots3NoteConfig is a DeepseekV3Config read from the top level; a nested text_config (transformers'
        # own save format) leaves vLLM with DeepSeek-V3 defaults and no swa_* keys at all.
        raise ConfigError(
            "config",
            "dots3_note config.json nests its text model in text_config; vLLM reads the "
            "released flat layout (text keys and swa_* keys at the top level)",
        )
    hidden, n, vocab = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "vocab_size")
    heads, swa_heads = _int(cfg, "num_attention_heads"), _int(cfg, _SWA + "num_attention_heads")
    inter, mi = _int(cfg, "intermediate_size"), _int(cfg, "moe_intermediate_size")
    e, k = _int(cfg, "n_routed_experts"), _int(cfg, "num_experts_per_tok")
    shared = _int(cfg, "n_shared_experts", default=1)
    first_dense, freq = _int(cfg, "first_k_dense_replace", default=0), _int(cfg, "moe_layer_freq", default=1)
    types = cfg.get("layer_types")
    if not isinstance(types, list) or len(types) < n:
        raise ConfigError(
            "config", "dots3_note config.json needs layer_types for all num_hidden_layers layers"
        )
    sliding = [types[i] == "sliding_attention" for i in range(n)]  # anything else is a full (indexed) layer
    index_dim = _int(cfg, "index_head_dim", default=128)
    window = _int(cfg, "sliding_window_size")

    # the full layers' cache rows are padded to the sliding layers' row; the padded sparse backend declares BLHNC
    # only, which makes the whole model's KV cache block-outermost
    swa_row = _int(cfg, _SWA + "kv_lora_rank") + _int(cfg, _SWA + "qk_rope_head_dim")
    full = _attention(cfg, "", indexer_head_dim=index_dim, sparse=True, block_outermost=True, kv_row=swa_row)
    swa = _attention(cfg, _SWA, window=window, block_outermost=True)
    full_t = _attention_tensors(cfg, hidden, "") + _indexer_tensors(
        cfg, hidden, _int(cfg, "q_lora_rank"), index_dim
    )
    swa_t = _attention_tensors(cfg, hidden, _SWA)

    moe = Mlp("moe", 0, e, k, mi, shared * mi)
    moe_t = (
        b.router(hidden, e, correction_bias=cfg.get("topk_method", "noaux_tc") == "noaux_tc")
        + b.experts(hidden, mi, e)
        + b.gated_mlp(hidden, shared * mi, prefix=b.P + "mlp.shared_experts.", kind="shared_experts")
    )
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    layers = _moe_layers(
        cfg,
        n,
        lambda i: e > 0 and i >= first_dense and i % freq == 0,
        lambda i: swa if sliding[i] else full,
        lambda a: swa_t if a is swa else full_t,
        inter,
        hidden,
        moe,
        moe_t,
        norms,
    )

    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    not_loaded: tuple[Tensor, ...] = ()
    mtp = _int(cfg, "num_nextn_predict_layers", default=1)  # Dots3NoteConfig's setdefault
    if mtp:
        # per block: the sliding-geometry attention, a dense MLP, two layer norms, eh_proj [hidden, 2 x hidden],
        # enorm / hnorm / shared_head.norm; plus one MTP embedding (model.mtp.embed_tokens) of its own
        block = (
            sum(t.numel for t in swa_t) + 3 * inter * hidden + 2 * hidden + 2 * hidden * hidden + 3 * hidden
        )
        not_loaded = (Tensor("model.layers.mtp", "mtp", (mtp * block + vocab * hidden,), "replicated"),)
    pos, rope_d = _int(cfg, "max_position_embeddings"), _int(cfg, "qk_rope_head_dim")
    rope = (
        RopeCache(pos, rope_d, theta=float(cfg.get("rope_theta") or 0) or None),
        RopeCache(
            pos, _int(cfg, _SWA + "qk_rope_head_dim"), theta=float(cfg.get(_SWA + "rope_theta") or 0) or None
        ),
    )
    notes: tuple[str, ...] = ()
    if (
        outer.get("vision_config")
        or outer.get("audio_config")
        or cfg.get("vision_config")
        or cfg.get("audio_config")
    ):
        notes += (
            "vision and audio towers not sized: the weights are the text-only deployment's "
            "(--limit-mm-per-prompt image, video and audio at 0)",
        )
    spec = _spec(
        name,
        cfg,
        outer,
        layers,
        hidden=hidden,
        vocab=vocab,
        heads=heads,
        head_dim=_int(cfg, "kv_lora_rank") + rope_d,
        inter=inter,
        tie=tie,
        embedding=emb,
        head=head,
        rope=rope,
        not_loaded=not_loaded,
        notes=notes,
        token_buffers=(TokenBuffer("topk_indices_buffer", _int(cfg, "index_topk"), "int32"),),
    )
    # DeepseekV2MoE keeps its shared experts whole under sequence-parallel MoE; both geometries assert that TP
    # divides their head counts.
    return replace(
        spec,
        sequence_parallel=(SequenceParallelRule(("shared_experts",), "0.33"),),
        tp_divides=((swa_heads, "sliding-window attention heads (swa_num_attention_heads)"),),
    )
