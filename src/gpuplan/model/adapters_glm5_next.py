"""GLM-5-Next (GLM-5.3-Flash; model_type glm5_next_text, and glm5_next refused) as vLLM 0.33 builds it
(models/glm5next/common/{model,attention,kda}.py on the NVIDIA path).

The decoder interleaves Kimi-style KDA linear attention (layer_types "linear_attention"; by default three of every
four layers) with NoPE sparse MLA layers, each carrying a kpool DSA indexer. vLLM builds that indexer on every MLA
layer whenever index_topk is set: it ignores indexer_types (transformers leaves it off "shared" layers). The MLP is
dense on the mlp_layer_types "dense" layers (transformers' default: the first three) and a DeepSeek-style MoE
elsewhere: a bf16 replicated GateLinear, an fp32 correction bias with topk_method noaux_tc, fused experts and one
gated MLP for the shared experts. With `mhc` every layer keeps hc_mult residual streams and holds two fp32
hyper-connection mixers (fn [(2+n)n, n*hidden], base, scale) for attention and FFN; the final contraction is a
mean, with no weights.

What stays unquantized under an FP8 checkpoint: the MLA layer gets quant_config=None (its projections and its
indexer's wq_b are bf16), and the KDA layer is built with the quantization config cleared (its projections, and
the fp32 short convolutions, dt_bias and A_log). The experts, shared experts and dense MLPs follow the checkpoint.
The MTP layer past num_hidden_layers is skipped by the main model's loader. No rotary cache takes memory: the MLA
layers are NoPE and the indexer's rotary embedding has qk_rope_head_dim = 0 dimensions.

The KV cache (engines/vllm/kv_recipes/glm5_next.py) is block-outermost: the kpool tail cache's backend declares
only the BLHNC layout. Each MLA layer registers, in order, the indexer's compressed key cache (MLAAttentionSpec,
uint8, one 132-byte entry per 16 tokens), the tail ring (CircularBufferSpec, one block of 16 raw keys + gate
scores per request) and the sparse MLA latent (MLAAttentionSpec, 512 bf16); each KDA layer one MambaSpec padded to
the MLA page.

vLLM reads several config keys that transformers' Glm5NextTextConfig does not define (mhc, topk_method,
scoring_func, mla_use_nope, indexer_rope_interleave): a config.json without them fails to build in vLLM, so the
adapter refuses it. The vision-language wrapper glm5_next (Glm5NextForConditionalGeneration: this text model behind
Glm5NextVisionTransformer) is refused: its tower is not modelled.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from . import builders as b
from .adapters import _embed_head, _int, _spec, _tie, register
from .adapters_kimi_linear import KDA_SSM_FLAG
from .spec import Attention, Layer, Mlp, ModelSpec, StateTensor, Tensor, TokenBuffer

RECIPE = "glm5_next"
# keys vLLM 0.33's Glm5Next model reads as config attributes that transformers' config class leaves undefined
VLLM_KEYS = ("mhc", "topk_method", "scoring_func", "mla_use_nope", "indexer_rope_interleave")


def _f32(name: str, *shape: int, parallel: str = "replicated", kind: str = "other") -> Tensor:
    return Tensor(name, kind, tuple(shape), parallel, dtype="float32")


def _linear_dims(cfg: dict) -> tuple[int, int, int, float | None]:
    """KDA heads, head_dim, short-conv kernel and gate lower bound: transformers' flat keys, or the checkpoint's
    linear_attn_config dict, which Glm5NextTextConfig.__post_init__ folds into them."""
    heads = _int(cfg, "linear_num_heads", default=64)
    hd = _int(cfg, "linear_head_dim", default=128)
    ck = _int(cfg, "linear_conv_kernel_dim", default=4)
    lower = cfg.get("linear_lower_bound", -5.0)
    lin = cfg.get("linear_attn_config")
    if isinstance(lin, dict):
        heads = _int(lin, "num_heads", default=heads)
        hd = _int(lin, "head_dim", default=hd)
        ck = _int(lin, "short_conv_kernel_size", default=ck)
        lower = lin.get("gate_lower_bound", lower)
        if lin.get("safe_gate", True) and lower is None:
            lower = -5.0
    return heads, hd, ck, lower


def _kda(cfg: dict, hidden: int) -> tuple[Attention, tuple[Tensor, ...]]:
    """Glm5NextLinearAttention. Its state (kda_state_shape): a conv window of kernel-1 positions over q, k and v in
    the model dtype and a [heads, hd, hd] recurrent state in fp32 (kda_state_dtype with mamba_ssm_cache_dtype auto).
    FlashKDA prefills it on SM90/SM10x/SM12x in bf16 when head_dim is 128 and the gate is bounded, and then the layer
    keeps a prefill-checkpoint state ("kda_flash"; the engine decides the GPU side)."""
    heads, hd, ck, lower = _linear_dims(cfg)
    proj = heads * hd
    state = (StateTensor("conv", (ck - 1, 3 * proj), 1, "conv"),
             StateTensor("recurrent", (heads, hd, hd), 0, "ssm", "KDA heads"))  # --mamba-ssm-cache-dtype from 0.32
    p = b.P + "self_attn."
    q = False  # built with the quantization config cleared
    t = (b.linear(p + "in_proj_qkvbfg_a.qkv", "attention", 3 * proj, hidden, "column", quantizable=q)
         + b.linear(p + "in_proj_qkvbfg_a.b", "attention", heads, hidden, "column", quantizable=q)
         # f_a and g_a are shards of the merged projection that every rank keeps whole
         + b.linear(p + "in_proj_qkvbfg_a.fg_a", "attention", 2 * hd, hidden, "replicated", quantizable=q)
         + b.linear(p + "f_b_proj", "attention", proj, hd, "column", quantizable=q)
         + b.linear(p + "g_b_proj", "attention", proj, hd, "column", quantizable=q)
         + b.linear(p + "o_proj", "attention", hidden, proj, "row", quantizable=q)
         + (_f32(p + "qkv_conv1d.weight", 3 * proj, ck, parallel="column", kind="attention"),
            _f32(p + "dt_bias", proj, parallel="column", kind="attention"),
            Tensor(p + "A_log", "attention", (heads,), "head", dtype="float32"))
         + b.norm(p + "o_norm", hd))
    flash = hd == 128 and lower is not None
    att = Attention("mamba", state=state, state_kind="kda_flash" if flash else "kda", block_outermost=True,
                    recipe=RECIPE)
    return att, t


def _mla(cfg: dict, hidden: int, heads: int) -> tuple[Attention, tuple[Tensor, ...]]:
    """Glm5NextMLAAttention with its kpool Indexer, all unquantized."""
    qlr, kvr = _int(cfg, "q_lora_rank"), _int(cfg, "kv_lora_rank")
    rope_d, nope_d, v_d = _int(cfg, "qk_rope_head_dim"), _int(cfg, "qk_nope_head_dim"), _int(cfg, "v_head_dim")
    ihd, iheads = _int(cfg, "index_head_dim", default=128), _int(cfg, "index_n_heads", default=32)
    kpool, topk = _int(cfg, "index_kpool", default=16), _int(cfg, "index_topk", default=2048)
    if kpool < 2:
        raise ConfigError("index_kpool", f"vLLM's GLM-5-Next indexer caches need index_kpool > 1, got {kpool}")
    p = b.P + "self_attn."
    t = b.mla_attention(hidden, heads, qlr, kvr, rope_d, nope_d, v_d, prefix=p, quantizable=False)
    i = p + "indexer."
    t += ((_f32(i + "index_kpool_compress_ape", kpool, ihd, kind="attention"),
           Tensor(i + "index_kpool_compress_gate", "attention", (ihd, hidden), "replicated"))
          + b.linear(i + "wq_b", "attention", iheads * ihd, qlr, "replicated", quantizable=False)
          + b.linear(i + "wk_weights_proj", "attention", ihd + iheads, hidden, "replicated", quantizable=False)
          + (_f32(i + "k_norm.weight", ihd, kind="norm"), _f32(i + "k_norm.bias", ihd, kind="norm")))
    att = Attention("mla", heads, 1, kvr + rope_d, kv_lora_rank=kvr, qk_rope_head_dim=rope_d,
                    qk_nope_head_dim=nope_d, v_head_dim=v_d, indexer_head_dim=ihd, sparse=True,
                    block_outermost=True, recipe=RECIPE,
                    recipe_args=(("index_kpool", kpool), ("index_topk", topk)))
    return att, t


def _types(cfg: dict, n: int) -> tuple[list[bool], list[bool]]:
    """(is KDA, is MoE) per layer, with Glm5NextTextConfig's defaults: KDA where i % 4 != 3, the first three
    layers dense."""
    lt = cfg.get("layer_types")
    if not (isinstance(lt, list) and len(lt) >= n):
        lt = ["linear_attention" if i % 4 != 3 else "indexed_attention" for i in range(n)]
    mt = cfg.get("mlp_layer_types")
    if not (isinstance(mt, list) and len(mt) >= n):
        mt = ["dense"] * min(3, n) + ["sparse"] * (n - 3)
    return [lt[i] == "linear_attention" for i in range(n)], [mt[i] == "sparse" for i in range(n)]


@register("glm5_next_text")
def _glm5_next_text(cfg: dict, outer: dict, name: str) -> ModelSpec:
    missing = [k for k in VLLM_KEYS if k not in cfg]
    if missing:
        raise ConfigError("config", f"vLLM 0.33's Glm5NextForCausalLM reads {', '.join(missing)} from config.json "
                          "(GLM-5.3-Flash checkpoints ship them; transformers' Glm5NextTextConfig does not define "
                          "them), so it cannot build this model")
    if cfg.get("index_topk") is None:
        raise ConfigError("index_topk", "a GLM-5-Next config without the sparse indexer (full MLA) is not modelled")
    if not cfg.get("mla_use_nope"):
        raise ConfigError("mla_use_nope", "GLM-5-Next with rotary MLA (mla_use_nope false) is not modelled")
    if cfg.get("index_kpool_always_select_tail") is False:
        raise ConfigError("index_kpool_always_select_tail", "vLLM 0.33 refuses GLM-5-Next configs with "
                          "index_kpool_always_select_tail false")
    hidden, n, heads = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "num_attention_heads")
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    e = _int(cfg, "n_routed_experts", default=0)
    k, mi = _int(cfg, "num_experts_per_tok", default=0), _int(cfg, "moe_intermediate_size", default=0)
    shared = _int(cfg, "n_shared_experts", default=0)
    kda, kda_t = _kda(cfg, hidden)
    mla, mla_t = _mla(cfg, hidden, heads)
    is_kda, is_moe = _types(cfg, n)
    hc = _int(cfg, "hc_mult", default=4) if cfg.get("mhc") else 1
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    if hc > 1:
        mix = (2 + hc) * hc
        for part in ("attn", "ffn"):
            norms += (_f32(b.P + f"hc_{part}_fn", mix, hc * hidden), _f32(b.P + f"hc_{part}_base", mix),
                      _f32(b.P + f"hc_{part}_scale", 3))
    moe = Mlp("moe", 0, e, k, mi, shared * mi)
    moe_t = (b.router(hidden, e, correction_bias=cfg.get("topk_method") == "noaux_tc") + b.experts(hidden, mi, e)
             + (b.gated_mlp(hidden, shared * mi, prefix=b.P + "mlp.shared_experts.", kind="shared_experts")
                if shared else ()))
    dense_t = b.gated_mlp(hidden, inter)
    cache: dict[tuple[bool, bool], Layer] = {}
    layers = []
    for i in range(n):
        key = (is_kda[i], is_moe[i] and e > 0)
        if key not in cache:
            att, att_t = (kda, kda_t) if key[0] else (mla, mla_t)
            cache[key] = Layer(att, moe if key[1] else Mlp("dense", inter), att_t + (moe_t if key[1] else dense_t)
                               + norms)
        layers.append(cache[key])
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    not_loaded: tuple[Tensor, ...] = ()
    mtp = _int(cfg, "num_nextn_predict_layers", default=0)
    if mtp:
        # Glm5NextMultiTokenPredictorLayer: enorm, hnorm, eh_proj [hidden, 2 hidden], a shared-head norm and an MLA +
        # MoE decoder layer without hyper-connections; the checkpoint holds it, the main model skips it.
        block = sum(t.numel for t in mla_t + moe_t) + 2 * hidden
        not_loaded = (Tensor("model.layers.mtp", "mtp", (mtp * (block + 2 * hidden * hidden + 3 * hidden),),
                             "replicated"),)
    kpool, topk = _int(cfg, "index_kpool", default=16), _int(cfg, "index_topk", default=2048)
    # Glm5NextModel's topk_indices_buffer: [max_num_batched_tokens, round_up(topk + kpool - 1, 128)] int32
    width = -(-(topk + kpool - 1) // 128) * 128
    spec = _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=mla.head_dim,
                 inter=inter, tie=tie, embedding=emb, head=head, not_loaded=not_loaded,
                 token_buffers=(TokenBuffer("topk_indices_buffer", width, "int32"),), residual_streams=hc,
                 notes=("GLM-5-Next: weights and the KV layout follow vLLM 0.33's source; no start-up log "
                        "calibrates its activation or CUDA graph memory",))
    return replace(spec, **KDA_SSM_FLAG, mamba_ssm_flag_from="0.32")


@register("glm5_next")
def _glm5_next(cfg: dict, outer: dict, name: str) -> ModelSpec:
    raise ConfigError("model_type", "glm5_next (Glm5NextForConditionalGeneration) loads GLM-5-Next's vision tower "
                      "(Glm5NextVisionTransformer), which gpuplan does not model; its text model alone is "
                      "model_type glm5_next_text (Glm5NextForCausalLM)")
