"""Small builders for the parameter inventory of common layer parts.

Names follow the HF module paths ("{i}" is the layer index) so checkpoint ignore lists match them.
"""

from __future__ import annotations

from .spec import Tensor

P = "model.layers.{i}."


def norm(name: str, size: int, bias: bool = False, kind: str = "norm") -> tuple[Tensor, ...]:
    out = [Tensor(name + ".weight", kind, (size,))]
    if bias:
        out.append(Tensor(name + ".bias", kind, (size,)))
    return tuple(out)


def linear(name: str, kind: str, out_f: int, in_f: int, parallel: str, bias: bool = False,
           heads: int = 0, quantizable: bool = True) -> tuple[Tensor, ...]:
    """A Linear's weight [out, in] (+ bias [out]). Row-parallel biases are replicated, as in vLLM."""
    w = Tensor(name, kind, (out_f, in_f), parallel, linear=quantizable, heads=heads)
    if not bias:
        return (w,)
    bias_parallel = {"row": "replicated", "kv": "kv"}.get(parallel, parallel)
    if bias_parallel in ("column", "kv"):
        b = Tensor(name + ".bias", kind, (out_f, 1), bias_parallel, heads=heads)
    else:
        b = Tensor(name + ".bias", kind, (out_f,), "replicated")
    return (w, b)


def mtp_input(prefix: str, hidden: int, final: str, *, parallel: str = "replicated",
              quantizable: bool = False) -> tuple[Tensor, ...]:
    """What a DeepSeek-style MTP module adds around its decoder layer: enorm and hnorm over the token's embedding and
    the previous hidden state, eh_proj [hidden, 2 x hidden] joining them (most vLLM modules build it as a plain
    nn.Linear, whole on every GPU and never quantized) and the output norm named `final`."""
    return (norm(prefix + "enorm", hidden) + norm(prefix + "hnorm", hidden)
            + linear(prefix + "eh_proj", "mtp", hidden, 2 * hidden, parallel, quantizable=quantizable)
            + norm(final, hidden, kind="mtp"))


def attention(hidden: int, heads: int, kv_heads: int, head_dim: int, *, qkv_bias: bool = False,
              o_bias: bool = False, qk_norm: bool = False, q_mult: int = 1, prefix: str = P + "self_attn.",
              o_name: str = "o_proj", v_head_dim: int | None = None, k_eq_v: bool = False) -> tuple[Tensor, ...]:
    """q/k/v/o projections. `q_mult` = 2 for gated attention (Qwen3-Next) whose q_proj also emits a gate."""
    vd = v_head_dim or head_dim
    t: list[Tensor] = []
    t += linear(prefix + "q_proj", "attention", heads * head_dim * q_mult, hidden, "column", qkv_bias)
    t += linear(prefix + "k_proj", "attention", kv_heads * head_dim, hidden, "kv", qkv_bias, heads=kv_heads)
    if not k_eq_v:
        t += linear(prefix + "v_proj", "attention", kv_heads * vd, hidden, "kv", qkv_bias, heads=kv_heads)
    t += linear(prefix + o_name, "attention", hidden, heads * vd, "row", o_bias)
    if qk_norm:
        t += norm(prefix + "q_norm", head_dim)
        t += norm(prefix + "k_norm", head_dim)
    return tuple(t)


def mla_attention(hidden: int, heads: int, q_lora_rank: int, kv_lora_rank: int, rope_dim: int, nope_dim: int,
                  v_dim: int, *, prefix: str = P + "self_attn.", o_name: str = "o_proj", gate: bool = False,
                  quantizable: bool = True) -> tuple[Tensor, ...]:
    """DeepSeek-style latent attention: q through a replicated q_a + norm + column q_b when q_lora_rank is set
    (else one column q_proj), a replicated kv_a_proj_with_mqa, the latent's norm, a column kv_b and a row output
    projection; `gate` adds a column g_proj as wide as the output (Kimi K3)."""
    qd, q = heads * (nope_dim + rope_dim), quantizable
    if q_lora_rank:
        t = (linear(prefix + "q_a_proj", "attention", q_lora_rank, hidden, "replicated", quantizable=q)
             + norm(prefix + "q_a_layernorm", q_lora_rank)
             + linear(prefix + "q_b_proj", "attention", qd, q_lora_rank, "column", quantizable=q))
    else:
        t = linear(prefix + "q_proj", "attention", qd, hidden, "column", quantizable=q)
    if gate:
        t += linear(prefix + "g_proj", "attention", heads * v_dim, hidden, "column", quantizable=q)
    return (t + linear(prefix + "kv_a_proj_with_mqa", "attention", kv_lora_rank + rope_dim, hidden, "replicated",
                       quantizable=q)
            + norm(prefix + "kv_a_layernorm", kv_lora_rank)
            + linear(prefix + "kv_b_proj", "attention", heads * (nope_dim + v_dim), kv_lora_rank, "column",
                     quantizable=q)
            + linear(prefix + o_name, "attention", hidden, heads * v_dim, "row", quantizable=q))


def gated_mlp(hidden: int, inter: int, *, bias: bool = False, prefix: str = P + "mlp.",
              kind: str = "mlp", names: tuple[str, str, str] = ("gate_proj", "up_proj", "down_proj")
              ) -> tuple[Tensor, ...]:
    """Gate and up (column-parallel) and down (row-parallel); `names` for checkpoints that call them otherwise."""
    gate, up, down = names
    return (
        linear(prefix + gate, kind, inter, hidden, "column", bias)
        + linear(prefix + up, kind, inter, hidden, "column", bias)
        + linear(prefix + down, kind, hidden, inter, "row", bias)
    )


def plain_mlp(hidden: int, inter: int, *, bias: bool = True, up: str = P + "mlp.fc1",
              down: str = P + "mlp.fc2") -> tuple[Tensor, ...]:
    return linear(up, "mlp", inter, hidden, "column", bias) + linear(down, "mlp", hidden, inter, "row", bias)


def experts(hidden: int, inter: int, num: int, *, prefix: str = P + "mlp.experts", bias: bool = False,
            gated: bool = True) -> tuple[Tensor, ...]:
    """Fused MoE experts as vLLM holds them: w13 [E, 2I, H] and w2 [E, H, I]."""
    up = 2 * inter if gated else inter
    t = [
        Tensor(prefix + ".w13_weight", "experts", (num, up, hidden), "expert_col", linear=True),
        Tensor(prefix + ".w2_weight", "experts", (num, hidden, inter), "expert_row", linear=True),
    ]
    if bias:
        t.append(Tensor(prefix + ".w13_bias", "experts", (num, up, 1), "expert_col"))
        t.append(Tensor(prefix + ".w2_bias", "experts", (num, hidden), "replicated"))
    return tuple(t)


def router(hidden: int, num: int, *, name: str = P + "mlp.gate", bias: bool = False,
           correction_bias: bool = False, fp32: bool = False) -> tuple[Tensor, ...]:
    # Routers are ReplicatedLinear in vLLM and usually stay unquantized; GLM-4 MoE's gate is an fp32 Linear.
    t = [Tensor(name + ".weight", "router", (num, hidden), "replicated", dtype="float32" if fp32 else None)]
    if bias:
        t.append(Tensor(name + ".bias", "router", (num,), "replicated"))
    if correction_bias:
        t.append(Tensor(name + ".e_score_correction_bias", "router", (num,), "replicated", dtype="float32"))
    return tuple(t)


def embedding(vocab: int, hidden: int, name: str = "model.embed_tokens") -> Tensor:
    return Tensor(name + ".weight", "embedding", (vocab, hidden), "vocab")


def lm_head(vocab: int, hidden: int, name: str = "lm_head", bias: bool = False) -> tuple[Tensor, ...]:
    t = [Tensor(name + ".weight", "lm_head", (vocab, hidden), "vocab")]
    if bias:
        t.append(Tensor(name + ".bias", "lm_head", (vocab, 1), "vocab"))
    return tuple(t)


def mamba1_mixer(prefix: str, hidden: int, inner: int, d_state: int, d_conv: int, dt_rank: int, *,
                 conv_bias: bool, bias: bool) -> tuple[Tensor, ...]:
    """Mamba-1's MambaMixer as vLLM holds it (vllm/model_executor/layers/mamba/mamba_mixer.py): A is an fp32
    parameter (loaded as -exp(A_log)); x_proj is row-parallel, the rest split by channel."""
    return (linear(prefix + "in_proj", "attention", 2 * inner, hidden, "column", bias)
            + (Tensor(prefix + "conv1d.weight", "attention", (inner, d_conv), "column"),)
            + ((Tensor(prefix + "conv1d.bias", "attention", (inner, 1), "column"),) if conv_bias else ())
            + linear(prefix + "x_proj", "attention", dt_rank + 2 * d_state, inner, "row")
            + linear(prefix + "dt_proj", "attention", inner, dt_rank, "column", True)
            + (Tensor(prefix + "A_log", "attention", (inner, d_state), "column", dtype="float32"),
               Tensor(prefix + "D", "attention", (inner, 1), "column"))
            + linear(prefix + "out_proj", "attention", hidden, inner, "row", bias))
