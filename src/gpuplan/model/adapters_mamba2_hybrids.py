"""Mamba-2 hybrids: Granite-4.0 (granitemoehybrid), Nemotron-H, Falcon-H1, Bamba.

All four run vLLM's MambaMixer2 (vllm/model_executor/layers/mamba/mamba_mixer2.py). Its tensor-parallel split
shards heads; the B/C groups are sharded with them when tp divides n_groups, and otherwise (only n_groups == 1
is allowed) every rank holds the one group whole. The in_proj / conv1d rows of the B/C part are therefore
expressed as "kv" tensors with heads=n_groups (whole groups per rank, replicated when tp > groups), and the
conv state's B/C part likewise carries its groups in a dimension of their own.
"""

from __future__ import annotations

from dataclasses import replace

from . import builders as b
from .adapters import _core_dims, _embed_head, _int, _rope, _spec, _tie, register
from .spec import (
    Attention,
    Layer,
    Mlp,
    ModelSpec,
    MtpModule,
    RopeCache,
    SequenceParallelRule,
    StateTensor,
    Tensor,
)

_MAMBA = ("mamba", "linear_attention", "mamba2")
_ATTENTION = ("attention", "full_attention")


def _mamba2(prefix: str, hidden: int, inner: int, heads: int, head_dim: int, groups: int, d_state: int,
            d_conv: int, *, conv_bias: bool, in_bias: bool, out_bias: bool, gated_norm: bool = True
            ) -> tuple[tuple[Tensor, ...], tuple[StateTensor, ...]]:
    """MambaMixer2's parameters (HF names, vLLM sharding) and its per-request state.

    State (MambaStateShapeCalculator.mamba2_state_shape, vllm/model_executor/layers/mamba/mamba_utils.py):
    conv (d_conv - 1, (inner + 2 * groups' * d_state) / tp), where groups' = tp when tp does not divide groups
    (one group per rank), and ssm (heads / tp, head_dim, d_state) in mamba_ssm_cache_dtype.
    """
    bc = 2 * groups * d_state
    t: list[Tensor] = []
    t += b.linear(prefix + "in_proj", "attention", 2 * inner + heads, hidden, "column", in_bias)
    t.append(Tensor(prefix + "in_proj.bc", "attention", (bc, hidden), "kv", linear=True, heads=groups))
    if in_bias:
        t.append(Tensor(prefix + "in_proj.bc_bias", "attention", (bc,), "kv", heads=groups))
    t += [Tensor(prefix + "conv1d.weight", "attention", (inner, d_conv), "column"),
          Tensor(prefix + "conv1d.weight_bc", "attention", (bc, d_conv), "kv", heads=groups)]
    if conv_bias:
        t += [Tensor(prefix + "conv1d.bias", "attention", (inner,), "column"),
              Tensor(prefix + "conv1d.bias_bc", "attention", (bc,), "kv", heads=groups)]
    # A is an fp32 parameter in vLLM (loaded as -exp(A_log)); D and dt_bias take the model dtype.
    t += [Tensor(prefix + "A_log", "attention", (heads,), "head", dtype="float32"),
          Tensor(prefix + "D", "attention", (heads,), "head"),
          Tensor(prefix + "dt_bias", "attention", (heads,), "head")]
    if gated_norm:
        t.append(Tensor(prefix + "norm.weight", "norm", (inner,), "column"))
    t += b.linear(prefix + "out_proj", "attention", hidden, inner, "row", out_bias)
    state = (StateTensor("conv", (d_conv - 1, inner), 1, "conv"),
             StateTensor("conv_bc", (d_conv - 1, 2 * d_state, groups), 2, "conv", "groups", whole_when_one=True),
             StateTensor("ssm", (heads, head_dim, d_state), 0, "ssm", "heads"))
    return tuple(t), state


def _mamba2_attention(state: tuple[StateTensor, ...], chunk: int) -> Attention:
    # `chunk` is the Mamba-2 SSD chunk: vLLM aligns blocks to it when prefix caching keeps a state per block.
    return Attention("mamba", state=state, state_kind="mamba2", chunk=chunk)


def _mamba_cfg(cfg: dict, hidden: int, inner_key: str | None = None) -> tuple[int, int, int, int, int, int]:
    """inner, heads, head_dim, groups, d_state, d_conv of the `mamba_*` spelling (Granite, Bamba, Falcon-H1)."""
    inner = (_int(cfg, inner_key, default=0) if inner_key else 0) or int(
        float(cfg.get("mamba_expand") or 2) * hidden)
    heads = _int(cfg, "mamba_n_heads", default=128)
    hd = cfg.get("mamba_d_head")
    head_dim = int(hd) if hd not in (None, "auto") else inner // heads
    return (inner, heads, head_dim, _int(cfg, "mamba_n_groups", default=1), _int(cfg, "mamba_d_state", default=256),
            _int(cfg, "mamba_d_conv", default=4))


def _is_attention(types: list[str], i: int) -> bool:
    return types[i] in _ATTENTION


@register("granitemoehybrid")
def _granitemoehybrid(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Granite-4.0-H: Mamba-2 or NoPE attention per layer_types, each followed by a MoE with a shared expert
    (vllm/model_executor/models/granitemoehybrid.py). num_local_experts 0 (H-Micro) is the dense variant."""
    hidden, n, heads = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads)
    hd = hidden // heads  # vLLM's GraniteMoeHybridAttention ignores head_dim
    vocab = _int(cfg, "vocab_size")
    e, k = _int(cfg, "num_local_experts", default=8), _int(cfg, "num_experts_per_tok", default=2)
    mi, si = _int(cfg, "intermediate_size"), _int(cfg, "shared_intermediate_size", default=1024)
    types = [str(x) for x in (cfg.get("layer_types") or cfg.get("layers_block_type") or ["mamba"] * n)][:n]
    inner, mh, mhd, g, ds, dc = _mamba_cfg(cfg, hidden)
    p = b.P + "mamba."
    mamba_t, state = _mamba2(p, hidden, inner, mh, mhd, g, ds, dc, conv_bias=bool(cfg.get("mamba_conv_bias", True)),
                             in_bias=bool(cfg.get("mamba_proj_bias")), out_bias=bool(cfg.get("mamba_proj_bias")))
    mamba = _mamba2_attention(state, _int(cfg, "mamba_chunk_size", default=256))
    full = Attention("full", heads, kv, hd)
    att_t = b.attention(hidden, heads, kv, hd, qkv_bias=bool(cfg.get("attention_bias")),
                        o_bias=bool(cfg.get("attention_bias")))
    mlp_t: tuple[Tensor, ...] = ()
    if e:
        mlp = Mlp("moe", 0, e, k, mi, si)
        mlp_t += b.router(hidden, e, name=b.P + "block_sparse_moe.router.layer")
        mlp_t += b.experts(hidden, mi, e, prefix=b.P + "block_sparse_moe.experts")
    else:
        mlp = Mlp("dense", si)
    if si:
        kind = "shared_experts" if e else "mlp"
        mlp_t += (b.linear(b.P + "shared_mlp.input_linear", kind, 2 * si, hidden, "column")
                  + b.linear(b.P + "shared_mlp.output_linear", kind, hidden, si, "row"))
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    attn_layer = Layer(full, mlp, att_t + mlp_t + norms)
    mamba_layer = Layer(mamba, mlp, mamba_t + mlp_t + norms)
    layers = [attn_layer if _is_attention(types, i) else mamba_layer for i in range(n)]
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    rope = _rope(cfg, hd) if cfg.get("position_embedding_type") == "rope" else ()
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd,
                 inter=mi if e else si, tie=tie, embedding=emb, head=head, rope=rope)


@register("bamba")
def _bamba(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Bamba: Mamba-2 layers with attention at attn_layer_indices, a gated MLP on every layer
    (vllm/model_executor/models/bamba.py)."""
    hidden, n, heads = _int(cfg, "hidden_size"), _int(cfg, "num_hidden_layers"), _int(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads)
    hd = hidden // heads  # vLLM's BambaAttentionDecoderLayer
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    attn_idx = set(cfg.get("attn_layer_indices") or ())
    types = cfg.get("layer_types") or cfg.get("layers_block_type")
    is_attn = (lambda i: types[i] in _ATTENTION) if isinstance(types, list) and len(types) >= n \
        else (lambda i: i in attn_idx)
    inner, mh, mhd, g, ds, dc = _mamba_cfg(cfg, hidden)
    bias = bool(cfg.get("mamba_proj_bias"))
    mamba_t, state = _mamba2(b.P + "mamba.", hidden, inner, mh, mhd, g, ds, dc,
                             conv_bias=bool(cfg.get("mamba_conv_bias", True)), in_bias=bias, out_bias=bias)
    mamba = _mamba2_attention(state, _int(cfg, "mamba_chunk_size", default=256))
    full = Attention("full", heads, kv, hd)
    mlp_t = b.gated_mlp(hidden, inter, bias=bool(cfg.get("mlp_bias")), prefix=b.P + "feed_forward.")
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "pre_ff_layernorm", hidden)
    attn_layer = Layer(full, Mlp("dense", inter), b.attention(hidden, heads, kv, hd) + mlp_t + norms)
    mamba_layer = Layer(mamba, Mlp("dense", inter), mamba_t + mlp_t + norms)
    layers = [attn_layer if is_attn(i) else mamba_layer for i in range(n)]
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.final_layernorm", hidden))
    # vLLM rotates attn_rotary_emb of the head's dims (transformers hard-codes partial_rotary_factor 0.5).
    pos = _int(cfg, "max_position_embeddings", default=8192)
    rope = (RopeCache(pos, _int(cfg, "attn_rotary_emb", default=hd)),) if any(is_attn(i) for i in range(n)) else ()
    return _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=rope)


@register("falcon_h1")
def _falcon_h1(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Falcon-H1: attention and a Mamba-2 mixer side by side in every layer, then a gated MLP
    (vllm/model_executor/models/falcon_h1.py, FalconH1ParallelHybrid).

    vLLM registers the mixer of layer i as its own cache layer (index num_hidden_layers + i), so each layer holds
    a KV page *and* a Mamba state: expressed as a full-attention layer carrying `state`, which the KV planner
    turns into one attention spec and one Mamba spec per layer."""
    hidden, n, heads, kv, hd = _core_dims(cfg)
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    inner, mh, mhd, g, ds, dc = _mamba_cfg(cfg, hidden, inner_key="mamba_d_ssm")
    mamba_t, state = _mamba2(b.P + "mamba.", hidden, inner, mh, mhd, g, ds, dc,
                             conv_bias=bool(cfg.get("mamba_conv_bias", True)),
                             in_bias=bool(cfg.get("mamba_proj_bias")), out_bias=bool(cfg.get("projectors_bias")),
                             gated_norm=bool(cfg.get("mamba_rms_norm")))
    att = Attention("full", heads, kv, hd, state=state, state_kind="mamba2",
                    chunk=_int(cfg, "mamba_chunk_size", default=256))
    bias = bool(cfg.get("attention_bias"))
    tensors = (b.attention(hidden, heads, kv, hd, qkv_bias=bias, o_bias=bias) + mamba_t
               + b.gated_mlp(hidden, inter, bias=bool(cfg.get("mlp_bias")), prefix=b.P + "feed_forward.")
               + b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "pre_ff_layernorm", hidden))
    layer = Layer(att, Mlp("dense", inter), tensors)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.final_layernorm", hidden))
    pos = _int(cfg, "max_position_embeddings", default=8192)
    rope = (RopeCache(pos, _int(cfg, "attn_rotary_emb", default=hd)),)
    return _spec(name, cfg, outer, [layer] * n, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=rope)


_NEMOTRON_TYPES = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe",
                   "linear_attention": "mamba", "mamba": "mamba", "full_attention": "attention",
                   "attention": "attention", "mlp": "mlp", "moe": "moe"}


def _nemotron_types(cfg: dict) -> list[str]:
    pattern = cfg.get("hybrid_override_pattern")
    if isinstance(pattern, str) and pattern:
        return [_NEMOTRON_TYPES[c] for c in pattern]
    types = cfg.get("layers_block_type") or cfg.get("layer_types")
    if isinstance(types, list) and types:
        return [_NEMOTRON_TYPES[str(t)] for t in types]
    return ["mamba", "moe", "attention", "mlp"]  # transformers' default


@register("nemotron_h")
def _nemotron_h(cfg: dict, outer: dict, name: str) -> ModelSpec:
    """Nemotron-H / Nemotron-Nano-v2 / Nemotron-3: every block is one of Mamba-2 (M), attention (*),
    ReLU^2 MLP (-) or MoE (E), each with its own pre-norm and each a layer of its own
    (vllm/model_executor/models/nemotron_h.py). vLLM takes the SSM cache dtype from the config's
    mamba_ssm_cache_dtype from 0.13 (NemotronHForCausalLMConfig, models/config.py); when it has none, the hook picks
    float16 in 0.13-0.19 and float32 from 0.20 ("only float32 is known to have no accuracy issues"); before 0.13
    there is no hook and the state takes the model dtype whatever the config says."""
    types = _nemotron_types(cfg)
    hidden, heads = _int(cfg, "hidden_size"), _int(cfg, "num_attention_heads")
    kv = _int(cfg, "num_key_value_heads", default=heads)
    hd = _int(cfg, "head_dim", default=0) or hidden // heads
    vocab = _int(cfg, "vocab_size")
    mh, mhd = _int(cfg, "mamba_num_heads", default=128), _int(cfg, "mamba_head_dim", default=64)
    g = _int(cfg, "n_groups", "mamba_n_groups", default=8)
    ds, dc = _int(cfg, "ssm_state_size", default=128), _int(cfg, "conv_kernel", "mamba_d_conv", default=4)
    chunk = _int(cfg, "chunk_size", "mamba_chunk_size", default=128)
    conv_bias = cfg.get("use_conv_bias", cfg.get("mamba_conv_bias", True))
    use_bias, mlp_bias = bool(cfg.get("use_bias")), bool(cfg.get("mlp_bias"))
    P = "backbone.layers.{i}."
    mamba_t, state = _mamba2(P + "mixer.", hidden, mh * mhd, mh, mhd, g, ds, dc, conv_bias=bool(conv_bias),
                             in_bias=use_bias, out_bias=use_bias)
    norm = b.norm(P + "norm", hidden)
    none = Attention("none")
    mamba = Layer(_mamba2_attention(state, chunk), Mlp("none"), mamba_t + norm)
    attn = Layer(Attention("full", heads, kv, hd), Mlp("none"),
                 b.attention(hidden, heads, kv, hd, prefix=P + "mixer.") + norm)
    inter = cfg.get("intermediate_size") or 21504
    inters = inter if isinstance(inter, list) else [inter]
    mlp_layers = {i: Layer(none, Mlp("dense", i), b.plain_mlp(hidden, i, bias=mlp_bias, up=P + "mixer.up_proj",
                                                               down=P + "mixer.down_proj") + norm)
                  for i in {int(x) for x in inters}}
    e, k = _int(cfg, "n_routed_experts", "num_local_experts", default=8), _int(cfg, "num_experts_per_tok", default=2)
    mi = _int(cfg, "moe_intermediate_size", default=7688)
    si = _int(cfg, "moe_shared_expert_intermediate_size", default=7688) * _int(cfg, "n_shared_experts", default=1)
    latent = _int(cfg, "moe_latent_size", default=0)
    width = latent or hidden
    moe_t = b.router(hidden, e, name=P + "mixer.gate") + (
        # a buffer in transformers (not in its parameter count), an fp32 parameter in vLLM
        Tensor(P + "mixer.gate.e_score_correction_bias", "router", (e,), "replicated", dtype="float32",
               in_checkpoint=False),)
    moe_t += b.experts(width, mi, e, prefix=P + "mixer.experts", gated=False)
    if si:
        moe_t += (b.linear(P + "mixer.shared_experts.up_proj", "shared_experts", si, hidden, "column", mlp_bias)
                  + b.linear(P + "mixer.shared_experts.down_proj", "shared_experts", hidden, si, "row", mlp_bias))
    if latent:
        moe_t += (b.linear(P + "mixer.fc1_latent_proj", "experts", latent, hidden, "replicated", mlp_bias)
                  + b.linear(P + "mixer.fc2_latent_proj", "experts", hidden, latent, "replicated", mlp_bias))
    moe = Layer(none, Mlp("moe", 0, e, k, mi, si), moe_t + norm)
    layers, mlp_i = [], 0
    for t in types:
        if t == "mlp":
            layers.append(mlp_layers[int(inters[mlp_i] if len(inters) > 1 else inters[0])])
            mlp_i += 1
        else:
            layers.append({"mamba": mamba, "attention": attn, "moe": moe}[t])
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("backbone.norm_f", hidden),
                            embed_name="backbone.embeddings")
    ssm = cfg.get("mamba_ssm_cache_dtype") if isinstance(cfg.get("mamba_ssm_cache_dtype"), str) else None
    mtp = _nemotron_mtp(cfg, P, attn, moe, hidden)
    # The checkpoint's mtp.* tensors are skipped by the main model's loader (NemotronHModel, "mtp": None).
    not_loaded = (Tensor("mtp", "mtp", (sum(t.numel for x in mtp.layers for t in x.tensors if t.in_checkpoint)
                                        + sum(t.numel for t in mtp.tensors),), "replicated"),) if mtp else ()
    spec = _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd,
                 inter=int(inters[0]), tie=tie, embedding=emb, head=head, rope=(), mamba_ssm_dtype=ssm,
                 not_loaded=not_loaded, mtp=mtp)
    # NemotronHForCausalLMConfig, the hook that reads the config's dtype, arrived in 0.13: 0.12 and before keep the
    # model dtype whatever the config says (as 0.12.0 logs for Nemotron-3-Nano's float32 config: 1,072-token blocks).
    spec = replace(spec, mamba_ssm_dtype_defaults=(("0.13", "float16"), ("0.20", "float32")),
                   mamba_ssm_dtype_from="0.13")
    # NemotronHMoE keeps its shared experts whole under sequence-parallel MoE (0.12+)
    spec = replace(spec, sequence_parallel=(SequenceParallelRule(("shared_experts",), "0.12"),))
    if cfg.get("block_configs"):
        # Puzzle checkpoints (NemotronHPuzzleForCausalLM) vary expert counts and widths per block through the
        # remote config's get_nemotron_h_config_for_layer, which gpuplan does not read: the uniform sizing
        # above is only an estimate for them.
        spec = replace(spec, generic=True, notes=spec.notes + (
            "its block_configs give each block its own sizes (a Puzzle checkpoint); gpuplan sizes every block "
            "from the top-level fields, so weights and KV are estimates",))
    return spec


def _nemotron_mtp(cfg: dict, prefix: str, attn: Layer, moe: Layer, hidden: int) -> MtpModule | None:
    """vLLM's NemotronHMTP (nemotron_h_mtp.py, 0.17-0.33): one module whose layers follow
    mtp_hybrid_override_pattern (transformers' later spelling: the mtp_layers_block_type list; default "*E"), an
    attention layer for each "*" and a MoE layer for each "E", shaped like the target's and built with the
    checkpoint's quantization under the names mtp.layers.{k}. Its first layer adds enorm, hnorm and a
    column-parallel eh_proj [H, 2H] (quantizable), its last a final_layernorm; the embedding and LM head are the
    target's. vLLM supports exactly one module of only those two kinds; anything else builds nothing here."""
    if _int(cfg, "num_nextn_predict_layers", default=0) != 1:
        return None
    pattern, listed = cfg.get("mtp_hybrid_override_pattern"), cfg.get("mtp_layers_block_type")
    blocks = (pattern if isinstance(pattern, str) and pattern else listed if isinstance(listed, list) and listed
              else "*E")
    kinds = [_NEMOTRON_TYPES.get(str(x)) for x in blocks]
    if set(kinds) - {"attention", "moe"}:
        return None
    layers = tuple(replace(src, tensors=tuple(replace(t, name=t.name.replace(prefix, f"mtp.layers.{k}."))
                                              for t in src.tensors))
                   for k, src in enumerate(attn if x == "attention" else moe for x in kinds))
    first, last = "mtp.layers.0.", f"mtp.layers.{len(kinds) - 1}."
    own = b.mtp_input(first, hidden, last + "final_layernorm", parallel="column", quantizable=True)
    return MtpModule(layers=layers, tensors=own, style="nemotron_h", since="0.17", modules=1)
