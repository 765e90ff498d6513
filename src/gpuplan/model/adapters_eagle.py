"""Separate draft checkpoints for speculative decoding: EAGLE-1 and EAGLE-3 heads and whole draft models, as vLLM
builds them beside the target (--speculative-config method "eagle", "eagle3" or "draft_model" with a "model").

Read in vLLM 0.14-0.33 (model_executor/models/llama_eagle.py, llama_eagle3.py, qwen3_eagle3.py;
transformers_utils/configs/eagle.py and speculators/algos.py; spec_decode/eagle.py, llm_base_proposer.py and
draft_model.py):

- An EAGLE-3 head is Llama-shaped decoder layers whose first layer's qkv_proj reads [embedding, hidden] (2 x hidden
  wide) and carries a hidden_norm; a replicated fc folds the target's three auxiliary hidden states (3 x the target's
  hidden) into one; a final norm; an LM head over draft_vocab_size tokens (the whole vocabulary where the config has
  no draft_vocab_size); and draft_id_to_target_id, an int64 map per draft token. An EAGLE-1 head has a replicated fc
  over [embedding, hidden] (2 x hidden), no input norm on its first layer and no LM head of its own.
- The draft's embedding is the target's (load_model points it there and frees the draft's copy) when the checkpoint
  ships none or an identical one; EAGLE-3 heads trained with vLLM's `speculators` library ship a copy that differs,
  and vLLM keeps it (a 2.9 GiB Qwen3-32B head logs so). A config does not say which, so the config's format decides:
  a speculators config keeps its embedding, any other shares the target's; the report says which was assumed.
- A draft model (method draft_model) is a whole small LM, its embedding and LM head its own.
- vLLM 0.12+ builds the draft with its own quantization config (get_draft_quant_config), not the target's: an
  unquantized head stays in the model dtype beside a quantized target. gpuplan builds every draft tensor in the model
  dtype (a draft that declares a quantization of its own is said to be counted unquantized). Sharded over the
  target's TP.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import GpuplanError
from . import builders as b
from .spec import Attention, Layer, Mlp, ModelSpec, MtpModule, Tensor

_PREFIX = "draft.layers.{i}."


def _int(cfg: dict, key: str, default: int | None = None) -> int:
    v = cfg.get(key)
    v = default if v is None else v
    if v is None:
        raise GpuplanError("speculative_config.model", f"the draft checkpoint's config has no {key}")
    try:
        return int(v)
    except (TypeError, ValueError):
        raise GpuplanError("speculative_config.model", f"the draft config's {key} is not a number: {v!r}") from None


def _unquantized(tensors: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return tuple(replace(t, linear=False, kind="draft", name=t.name.replace(b.P, _PREFIX)) for t in tensors)


def speculators_format(cfg: dict) -> bool:
    """A head saved by vLLM's `speculators` library (RedHatAI/*-speculator.eagle3): its layer shape sits in
    transformer_layer_config."""
    return bool(cfg.get("speculators_model_type")) or isinstance(cfg.get("transformer_layer_config"), dict)


def eagle_head(cfg: dict, target: ModelSpec, method: str) -> tuple[MtpModule, bool, int]:
    """An EAGLE ("eagle") or EAGLE-3 ("eagle3") head from its config.json, whether it keeps an embedding of its own
    (see the module docstring), and its hidden size."""
    layer_cfg = cfg.get("transformer_layer_config") if speculators_format(cfg) else cfg
    if not isinstance(layer_cfg, dict):
        raise GpuplanError("speculative_config.model", "the draft's speculators config has no transformer_layer_config")
    hidden = _int(layer_cfg, "hidden_size")
    heads = _int(layer_cfg, "num_attention_heads")
    kv_heads = _int(layer_cfg, "num_key_value_heads", heads)
    head_dim = _int(layer_cfg, "head_dim", hidden // heads)
    inter = _int(layer_cfg, "intermediate_size")
    n = _int(layer_cfg, "num_hidden_layers", 1)
    vocab = _int(layer_cfg, "vocab_size", target.vocab_size)
    draft_vocab = _int(cfg, "draft_vocab_size", 0) or _int(layer_cfg, "draft_vocab_size", 0) or vocab
    target_hidden = _int(cfg, "target_hidden_size", 0) or _int(layer_cfg, "target_hidden_size", 0) or hidden
    qk_norm = layer_cfg.get("model_type") == "qwen3"
    eagle3 = method == "eagle3"
    layers = []
    for j in range(n):
        width = 2 * hidden if eagle3 and j == 0 else hidden
        t = b.attention(width, heads, kv_heads, head_dim, qk_norm=qk_norm)
        # o_proj maps back to the hidden size whatever the input width
        t = tuple(replace(x, shape=(hidden, heads * head_dim)) if x.name.endswith("o_proj") else x for x in t)
        t += b.gated_mlp(hidden, inter)
        t += b.norm(b.P + "post_attention_layernorm", hidden)
        if not (method == "eagle" and j == 0):
            t += b.norm(b.P + "input_layernorm", hidden)
        if eagle3 and j == 0:
            t += b.norm(b.P + "hidden_norm", hidden)
        layers.append(Layer(Attention("full", heads, kv_heads, head_dim), Mlp("dense", inter), _unquantized(t)))
    if eagle3:
        extra = b.linear("draft.fc", "draft", hidden, 3 * target_hidden, "replicated", quantizable=False)
        extra += b.norm("draft.norm", hidden, kind="draft")
        extra += (Tensor("draft.lm_head.weight", "draft", (draft_vocab, hidden), "vocab"),
                  Tensor("draft.draft_id_to_target_id", "draft", (draft_vocab,), "replicated", dtype="int64"))
    else:
        extra = b.linear("draft.fc", "draft", hidden, 2 * hidden, "replicated", quantizable=False)
    own_embedding = speculators_format(cfg)
    if own_embedding:
        extra += (Tensor("draft.embed_tokens.weight", "draft", (vocab, hidden), "vocab"),)
    return MtpModule(layers=tuple(layers), tensors=extra, style=method), own_embedding, hidden


def draft_model(spec: ModelSpec) -> MtpModule:
    """A whole draft LM (method draft_model) as its own spec builds it: every layer, embedding, LM head and norm,
    in the model dtype (see the module docstring)."""

    def own(ts: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return tuple(replace(t, name="draft." + t.name, kind="draft", linear=False) for t in ts)

    layers = tuple(replace(x, tensors=own(x.tensors)) for x in spec.layers)
    # a tied LM head is the embedding itself
    head = tuple(t for t in spec.head if not (spec.tie_word_embeddings and t.kind == "lm_head"))
    return MtpModule(layers=layers, tensors=own(spec.embedding + head), style="draft_model")


# Google's Gemma-4 MTP assistants (google/gemma-4-*-it-assistant), which vLLM 0.21+ drafts with under method "mtp"
# (config/speculative.py turns their model_type into gemma4_mtp).
GEMMA4_ASSISTANTS = ("gemma4_assistant", "gemma4_unified_assistant")


def gemma4_assistant(cfg: dict) -> tuple[MtpModule, int]:
    """vLLM's Gemma4MTP (gemma4_mtp.py, 0.21-0.33) from the assistant's config.json, and the width of the hidden state
    it drafts from (backbone_hidden_size, the target's). Its decoder layers (text_config) are KV-shared: q_proj and
    o_proj over the layer's head size (global_head_dim on full layers), a q norm, the gated MLP and four norms, and
    their attention reads the target's last sliding and last full layer's cache, so they add no KV cache. Beside
    them a column-parallel pre_projection [H, 2 x backbone], a row-parallel post_projection [backbone, H], the final
    norm and a vocab-parallel draft-width LM head tied to the draft's embedding (Gemma4Proposer points the embedding
    at the target's and keeps that head); with use_ordered_embeddings the centroid head (a replicated [centroids, H]
    Linear) and its int64 token ordering. The assistant's own quantization (none in Google's releases) applies, so
    every tensor is in the model dtype."""
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    hidden, heads = _int(text, "hidden_size"), _int(text, "num_attention_heads")
    n, inter, vocab = _int(text, "num_hidden_layers"), _int(text, "intermediate_size"), _int(text, "vocab_size")
    hd = _int(text, "head_dim")
    ghd = _int(text, "global_head_dim", 0) or hd
    kv = _int(text, "num_key_value_heads", heads)
    window = _int(text, "sliding_window", 0) or None
    backbone = _int(cfg, "backbone_hidden_size", hidden)
    types = text.get("layer_types") if isinstance(text.get("layer_types"), list) else []
    norms = sum((b.norm(b.P + x, hidden) for x in ("input_layernorm", "post_attention_layernorm",
                                                   "pre_feedforward_layernorm", "post_feedforward_layernorm")), ())
    layers = []
    for i in range(n):
        sliding = i < len(types) and types[i] == "sliding_attention"
        d = hd if sliding else ghd
        att = Attention("sliding_window" if sliding else "full", heads, kv, d, window=window if sliding else None,
                        kv_shared=True)
        t = (b.linear(b.P + "self_attn.q_proj", "attention", heads * d, hidden, "column")
             + b.linear(b.P + "self_attn.o_proj", "attention", hidden, heads * d, "row")
             + b.norm(b.P + "self_attn.q_norm", d) + b.gated_mlp(hidden, inter) + norms
             + (Tensor(b.P + "layer_scalar", "draft", (1,), in_checkpoint=False),))  # a buffer, loaded with it
        layers.append(Layer(att, Mlp("dense", inter), _unquantized(t)))
    own = (b.linear("draft.pre_projection", "draft", hidden, 2 * backbone, "column", quantizable=False)
           + b.linear("draft.post_projection", "draft", backbone, hidden, "row", quantizable=False)
           + b.norm("draft.norm", hidden, kind="draft")
           + (Tensor("draft.lm_head.weight", "draft", (vocab, hidden), "vocab"),))
    if cfg.get("use_ordered_embeddings"):
        own += (b.linear("draft.masked_embedding.centroids", "draft", _int(cfg, "num_centroids", 2048), hidden,
                         "replicated", quantizable=False)
                + (Tensor("draft.masked_embedding.token_ordering", "draft", (vocab,), dtype="int64",
                          in_checkpoint=False),))
    return MtpModule(layers=tuple(layers), tensors=own, style="gemma4_assistant", modules=1), backbone
