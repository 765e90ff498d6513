"""Recursive Flint (model_type flint: RecursiveSI/flint) as vLLM 0.33 builds it (models/flint/model.py).

vLLM reads Flint's config with its own FlintConfig class (models/flint/configs.py), not transformers' one, and
the two fill omitted keys differently: vLLM makes every layer full attention when `layer_types` is absent, has no
dense layers when `mlp_only_layers` is absent, drops the window when `use_sliding_window` is false, and gives
RoPE to every layer not listed in `no_rope_layer_indices` (transformers instead rotates exactly the sliding
layers). A config written by transformers carries the first two lists, so both read the same layout from it.

Every layer: one fused q/k/v projection without biases (GQA, replicated KV heads once TP exceeds them), an
output projection, per-head q/k RMSNorms, and one learned sink logit per query head, which vLLM allocates as a
float32 parameter of this rank's heads. Layers typed "sliding_attention" pass the config's `sliding_window` to
vLLM's Attention as their own window (the window counts the current token, as vLLM's SlidingWindowSpec does), so
their KV cache is a SlidingWindowSpec; the others a FullAttentionSpec; both have the same page, so vLLM 0.33's
hybrid manager keeps them as separate groups of one page size. Layers listed in `mlp_only_layers` have a
gated MLP of `intermediate_size`; every other layer a sigmoid-routed MoE: a router in the model dtype (vLLM's
GateLinear with no fp32 override, although transformers keeps it in float32: the count is the same), fused
experts of `moe_intermediate_size`, and an ungated shared expert of `shared_expert_intermediate_size` added in
full. RoPE uses one float32 cos/sin table of max_position_embeddings x head_dim, shared by all rotary layers
(get_rope memoizes it); none when every layer is listed as NoPE. Untied embedding and LM head by default.

Not modelled: on one Blackwell GPU at TP=1, Flint's own decode kernels add a few small index buffers per MoE
layer; the NVFP4 GGUF checkpoint path (gguf_nvfp4.py) repacks GGUF's NVFP4 super-blocks losslessly into
ModelOpt NVFP4 tensors (4-bit codes, one e4m3 scale per 16 values, a float32 global scale per tensor / expert),
keeps the embedding and routers unquantized and dequantizes the LM head to BF16; gpuplan does not read GGUF
NVFP4 headers, so that path is not sized here.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from . import builders as b
from .adapters import _core_dims, _embed_head, _int, _rope, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, ServingLimits, Tensor

_FULL, _SWA = "full_attention", "sliding_attention"

# vLLM's FlintConfig defaults (models/flint/configs.py), which fill whatever a config.json leaves out. head_dim is
# 128 there, not hidden_size / heads (64).
_VLLM_DEFAULTS = {
    "vocab_size": 150144,
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "num_hidden_layers": 49,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "max_position_embeddings": 262144,
    "tie_word_embeddings": False,
    "moe_intermediate_size": 512,
    "shared_expert_intermediate_size": 1024,
    "num_experts_per_tok": 6,
    "num_experts": 256,
}


def _flint_layer_types(cfg: dict, n: int) -> list[str]:
    """vLLM's FlintConfig: all full attention when the list is absent (or empty); a wrong length is refused."""
    lt = cfg.get("layer_types")
    if not lt:
        return [_FULL] * n
    if not isinstance(lt, list) or len(lt) != n:
        raise ConfigError(
            "config",
            f"layer_types has {len(lt) if isinstance(lt, list) else '?'} entries but "
            f"num_hidden_layers is {n} (vLLM's FlintConfig refuses this)",
        )
    return [str(t) for t in lt]


def _window(cfg: dict) -> int:
    """The sliding layers' window, 0 when there is none: FlintConfig defaults it to 513 and drops it when
    use_sliding_window is false; a window of 0 (or null) turns sliding off in vLLM's ModelConfig."""
    if cfg.get("use_sliding_window") is False:
        return 0
    if "sliding_window" not in cfg:
        return 513
    return _int(cfg, "sliding_window", default=0)


@register("flint")
def _flint(cfg: dict, outer: dict, name: str) -> ModelSpec:
    cfg = {**_VLLM_DEFAULTS, **cfg}
    hidden, n, heads, kv, hd = _core_dims(cfg)
    vocab, inter = _int(cfg, "vocab_size"), _int(cfg, "intermediate_size")
    e, k = _int(cfg, "num_experts"), _int(cfg, "num_experts_per_tok")
    mi, si = _int(cfg, "moe_intermediate_size"), _int(cfg, "shared_expert_intermediate_size")
    types = _flint_layer_types(cfg, n)
    window = _window(cfg)
    dense = {int(i) for i in (cfg.get("mlp_only_layers") or [])}
    no_rope = {int(i) for i in (cfg.get("no_rope_layer_indices") or [])}

    # One sink logit per query head, float32 (make_attention_sink(num_heads // tp, torch.float32)).
    sinks = (Tensor(b.P + "self_attn.sinks", "attention", (heads,), "head", dtype="float32"),)
    att_t = b.attention(hidden, heads, kv, hd, qk_norm=True) + sinks
    norms = b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
    full = Attention("full", heads, kv, hd)
    swa = Attention("sliding_window", heads, kv, hd, window=window) if window else full
    moe = Mlp("moe", 0, e, k, mi, si)
    # Router: GateLinear(hidden, num_experts) in the model dtype; the shared expert is added without a gate.
    moe_t = (
        b.router(hidden, e)
        + b.experts(hidden, mi, e)
        + b.gated_mlp(hidden, si, prefix=b.P + "mlp.shared_expert.", kind="shared_experts")
    )
    dense_t = b.gated_mlp(hidden, inter)

    cache: dict[tuple[bool, bool], Layer] = {}
    layers = []
    for i in range(n):
        key = (types[i] == _SWA, i in dense)
        if key not in cache:
            a = swa if key[0] else full
            mlp = Mlp("dense", inter) if key[1] else moe
            cache[key] = Layer(a, mlp, att_t + (dense_t if key[1] else moe_t) + norms)
        layers.append(cache[key])

    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    # get_rope(head_dim, max_position_embeddings, rope_parameters, dtype=float32): one table for all rotary layers
    # (vLLM asserts the rotation covers the whole head); gpuplan's shared rule sizes scaled RoPE types.
    rope_cfg = {
        **cfg,
        "rope_scaling": cfg.get("rope_parameters") or cfg.get("rope_scaling"),
        "partial_rotary_factor": None,
        "rotary_pct": None,
    }
    rope = _rope(rope_cfg, hd, "float32") if any(i not in no_rope for i in range(n)) else ()
    # FlintAttention asserts a FlashInferImpl, a bfloat16 model and a bfloat16 KV cache. vLLM 0.33 puts FlashInfer
    # first only on SM 10.x (platforms/cuda.py); elsewhere FlashAttention comes first. FlashInfer serves sinks only
    # where its TRT-LLM kernels run (FlashInferBackend.supports_sink: SM 9.0, 10.x, 12.x).
    notes = (
        "vLLM's Flint model runs only on the FlashInfer attention backend; outside the B200/B300 family (SM 10.x) "
        "start vLLM with --attention-backend FLASHINFER.",
    )
    limits = ServingLimits(
        "vLLM's Flint attention (FlashInfer with attention sinks)",
        model_dtypes=("bfloat16",),
        kv_dtypes=("auto", "bfloat16"),
        capabilities=((9.0, 9.05), (10.0, 11.0), (12.0, 13.0)),
    )
    spec = _spec(
        name,
        cfg,
        outer,
        layers,
        hidden=hidden,
        vocab=vocab,
        heads=heads,
        head_dim=hd,
        inter=inter,
        tie=tie,
        embedding=emb,
        head=head,
        rope=rope,
        notes=notes,
    )
    return replace(spec, serving_limits=limits)
