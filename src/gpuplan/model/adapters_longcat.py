"""Meituan LongCat-Flash (model_type longcat_flash) as vLLM builds it (vllm/model_executor/models/longcat_flash.py).

A config's `num_layers` counts *decoder* layers (transformers derives num_hidden_layers = 2 x num_layers). vLLM's
FlashDecoderLayer holds, in this order of use:

- two DeepSeek-style MLA attention blocks (`self_attn.0`, `self_attn.1`: DeepseekV2MLAAttention from deepseek_v2.py,
  each with its own KV cache of kv_lora_rank + qk_rope_head_dim values per token), each behind its own
  input_layernorm.{0,1} and post_attention_layernorm.{0,1};
- two dense gated MLPs (`mlps.0`, `mlps.1`, ffn_hidden_size wide);
- one routed MoE (`mlp`, the "shortcut" MoE that runs beside the first MLP and the second attention): a float32
  router over n_routed_experts + zero_expert_num logits (GateLinear, no bias) with a float32
  e_score_correction_bias of the same width, and fused experts for the n_routed_experts real ones only. The
  zero-computation ("identity") experts are routing targets with no weights.

gpuplan's layers carry one attention each, so each decoder layer becomes two layers here: the first holds
attention 0, its two norms, mlps.0 and the MoE; the second attention 1, its norms and mlps.1. That gives vLLM's 2 x
num_layers MLA KV caches. Tensor names are spelled per decoder layer (no "{i}" placeholder) so they match the
checkpoint's `model.layers.N.self_attn.H.*` names for ignore lists.

LongCat-Flash-Lite (LongcatFlashNgramForCausalLM, vLLM 0.26+, which maps it to the same config type) is this model
plus a hashed n-gram input embedding on the first PP rank: see `_ngram_embedding`.

From 0.11 to 0.31 FlashModel.load_weights also kept, per attention block, `w_kc` and `w_vc`: contiguous copies of
kv_b_proj (dequantized to the model dtype when it is block-FP8) held as plain attributes, one kv_b_proj's worth of
model-dtype values per attention per GPU. 0.32 dropped them.

The checkpoint also ships one MTP (next-token) layer under `model.mtp.*`; plain serving skips it
(FlashModel.load_weights drops "mtp." names; longcat_flash_mtp.py loads it only as a speculative draft: `_mtp`).
"""

from __future__ import annotations

from ..errors import ConfigError
from . import builders as b
from .adapters import _embed_head, _int, _rope, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, MtpModule, Tensor


def _decoder_layers(cfg: dict) -> int:
    # transformers' LongcatFlashConfig: num_hidden_layers is a property (2 x num_layers) whose setter wins over
    # num_layers when a re-saved config carries both.
    nh = cfg.get("num_hidden_layers")
    if isinstance(nh, int) and not isinstance(nh, bool) and nh > 0:
        if nh % 2:
            raise ConfigError("num_hidden_layers", f"longcat_flash stacks attention in pairs; {nh} is odd")
        return nh // 2
    return _int(cfg, "num_layers")


@register("longcat_flash")
def _longcat_flash(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, heads, vocab = _int(cfg, "hidden_size"), _int(cfg, "num_attention_heads"), _int(cfg, "vocab_size")
    n = _decoder_layers(cfg)
    qlr = cfg.get("q_lora_rank")
    kvr = _int(cfg, "kv_lora_rank")
    rope_d, nope_d, v_d = _int(cfg, "qk_rope_head_dim"), _int(cfg, "qk_nope_head_dim"), _int(cfg, "v_head_dim")
    ffn = _int(cfg, "ffn_hidden_size", "intermediate_size")
    mi = _int(cfg, "expert_ffn_hidden_size", "moe_intermediate_size")
    e = _int(cfg, "n_routed_experts", "num_local_experts")
    zero = _int(cfg, "zero_expert_num", default=0)
    k = _int(cfg, "moe_topk", "num_experts_per_tok")
    if cfg.get("zero_expert_type") is None:
        # LongcatMoe asserts it: vLLM cannot build the model without it.
        raise ConfigError("zero_expert_type", "longcat_flash needs zero_expert_type (vLLM asserts it is set)")
    act = cfg.get("hidden_act") or "silu"
    if act != "silu":
        raise ConfigError("hidden_act", f"vLLM's FlashMLP supports only silu, not {act!r}")
    # Modules the checkpoint's quantization leaves out: vLLM builds them with quant_config=None.
    plain = set(cfg.get("disable_quant_module") or ())
    att_q, mlp_q = "self_attn" not in plain, "mlps" not in plain

    def attention(p: str, quantizable: bool = att_q) -> tuple[Tensor, ...]:
        # q_a_proj and kv_a_proj_with_mqa are fused into one replicated projection in vLLM; same elements.
        return (b.mla_attention(hidden, heads, int(qlr or 0), kvr, rope_d, nope_d, v_d, prefix=p,
                                quantizable=quantizable)
                # w_kc / w_vc (0.11-0.31): kv_b_proj's rows again, split over TP like it, in the model dtype
                + (Tensor(p + "w_kc_w_vc", "attention", (heads * (nope_d + v_d), kvr), "column", in_checkpoint=False,
                          until="0.32"),))

    def mlp(p: str) -> tuple[Tensor, ...]:
        return (b.linear(p + "gate_proj", "mlp", ffn, hidden, "column", quantizable=mlp_q)
                + b.linear(p + "up_proj", "mlp", ffn, hidden, "column", quantizable=mlp_q)
                + b.linear(p + "down_proj", "mlp", hidden, ffn, "row", quantizable=mlp_q))

    def moe(p: str) -> tuple[Tensor, ...]:
        # LongcatRouter: classifier and correction bias are float32 and span the zero experts too; unquantized.
        logits = e + zero
        return ((Tensor(p + "router.classifier.weight", "router", (logits, hidden), "replicated", dtype="float32"),
                 Tensor(p + "router.e_score_correction_bias", "router", (logits,), "replicated", dtype="float32"))
                + b.experts(hidden, mi, e, prefix=p + "experts"))

    att = Attention("mla", heads, 1, kvr + rope_d, kv_lora_rank=kvr, qk_rope_head_dim=rope_d,
                    qk_nope_head_dim=nope_d, v_head_dim=v_d)
    # For the activation estimate the dense mlps.0 runs on every token beside the MoE, as a shared expert would.
    first_mlp, second_mlp = Mlp("moe", ffn, e, k, mi, ffn), Mlp("dense", ffn)
    layers: list[Layer] = []
    for i in range(n):
        p = f"model.layers.{i}."
        for h in (0, 1):
            t = attention(f"{p}self_attn.{h}.") + mlp(f"{p}mlps.{h}.")
            t += b.norm(f"{p}input_layernorm.{h}", hidden) + b.norm(f"{p}post_attention_layernorm.{h}", hidden)
            if h == 0:
                t += moe(p + "mlp.")
            layers.append(Layer(att, first_mlp if h == 0 else second_mlp, t, continues=h == 1))
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden),
                            embed_extra=_ngram_embedding(cfg, outer, hidden, vocab))
    # The MTP layer vLLM drafts with, as built by longcat_flash_mtp.py (0.11-0.33): a DeepseekV2DecoderLayer under
    # the prefix model.layers.{2n}, whose MLA attention and dense ffn-wide MLP take the checkpoint's quantization
    # whatever disable_quant_module says (DeepseekV2DecoderLayer reads vllm_config.quant_config); beside it enorm,
    # hnorm, a ReplicatedLinear eh_proj [H, 2H] (quantized unless "mtp" is in disable_quant_module) and
    # final_layernorm. Its embedding and LM head are replaced by the target's (the proposer's load_model).
    p = f"model.layers.{2 * n}."
    mtp_layer = Layer(att, second_mlp, attention(p + "self_attn.", True) + b.gated_mlp(hidden, ffn, prefix=p + "mlp.")
                      + b.norm(p + "input_layernorm", hidden) + b.norm(p + "post_attention_layernorm", hidden))
    own = b.mtp_input(p, hidden, p + "final_layernorm", quantizable="mtp" not in plain)
    mtp = MtpModule(layers=(mtp_layer,), tensors=own, style="longcat", since="0.11")
    # Listed, not loaded for plain serving: the module and the checkpoint's own copy of the embedding.
    not_loaded = (Tensor("model.mtp", "mtp", (vocab * hidden + mtp.params,), "replicated"),)
    rope = _rope(cfg, rope_d, "float32" if cfg.get("rope_scaling") else None)
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=kvr + rope_d,
                 inter=ffn, tie=tie, embedding=emb, head=head, rope=rope, not_loaded=not_loaded, mtp=mtp)


NGRAM_ARCH = "LongcatFlashNgramForCausalLM"


def _ngram_embedding(cfg: dict, outer: dict, hidden: int, vocab: int) -> tuple[Tensor, ...]:
    """LongCat-Flash-Lite's hashed n-gram embedding (longcat_flash_ngram.py, vLLM 0.26+), built on the first PP rank
    only by the Ngram class and only when ngram_vocab_size_ratio is set. emb_split_num x (emb_neighbor_num - 1)
    embedders, each a table of m + 2i + 1 rows (m = ratio x vocab) of hidden / embedders values, concatenated into one
    VocabParallelEmbedding (rows padded to 64, split over TP), and their projections stacked into one
    [embedders, dim, hidden] parameter that every rank holds whole. Both are in the config's torch_dtype, never
    quantized. Three small int32 buffers hold the hashing moduli, powers and table offsets."""
    archs = outer.get("architectures") or cfg.get("architectures") or []
    ratio = cfg.get("ngram_vocab_size_ratio")
    if not archs or archs[0] != NGRAM_ARCH or ratio is None:
        return ()
    k, n = _int(cfg, "emb_split_num"), _int(cfg, "emb_neighbor_num")
    if k < 1 or n < 2:
        raise ConfigError("emb_neighbor_num", f"LongCat's n-gram embedding needs emb_split_num >= 1 and "
                          f"emb_neighbor_num >= 2, got {k} and {n}")
    m = float(ratio) * vocab
    embedders = k * (n - 1)
    dim = hidden // embedders
    rows = sum(int(m + 2 * i + 1) for i in range(embedders))
    dt = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16")
    dt = dt if dt in ("bfloat16", "float16", "float32") else "bfloat16"
    p = "model.ngram_embeddings."
    return (Tensor(p + "oe_embedder.weight", "embedding", (rows, dim), "vocab", dtype=dt),
            Tensor(p + "oe_projection", "embedding", (embedders, dim, hidden), dtype=dt),
            Tensor(p + "buffers", "embedding", ((n - 1) * k * n + (n - 1) * k + embedders + 1,), dtype="int32",
                   in_checkpoint=False))
