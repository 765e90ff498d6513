"""Decoders that run the same weights several times per token, as vLLM builds them.

vLLM gives every *invocation* of an attention block its own KV-cache layer, so these models hold many more KV
layers than weight layers. A ModelSpec lists what vLLM registers: each physical layer carries its weights and its
first KV cache; the further caches of the same layer follow it as weightless layers (no tensors), so weights count
once and the KV cache counts every invocation. Tensor names carry the real layer index, not the list position.

- IQuest-Coder Loop (model_type iquestloopcoder, vllm/model_executor/models/iquest_loopcoder.py): a Llama stack
  run `loop_num` times. Loop 0 caches K/V with full attention; every later loop caches its own K/V in a sliding
  window of `loop_window_size` and also reads loop 0's cache, mixing the two through a per-layer gate projection
  (`gate_projections.{i}`: [heads, head_dim] + bias). vLLM registers loop k of layer i as
  `model.layers.{k * num_hidden_layers + i}`: num_hidden_layers full layers plus (loop_num - 1) x that many
  sliding ones. Head size is hidden_size / heads whatever head_dim says; no projection has a bias.
- HRM-Text (model_type hrm_text, models/hrm_text.py): two stacks, L_module and H_module, of num_layers_per_stack
  layers. Each high cycle runs L L_cycles times, then H once; every (cycle, layer) run has its own KV cache, so L's
  layers hold H_cycles x L_cycles caches each and H's H_cycles. Attention is MHA (the config's KV head count is
  ignored) with a sigmoid output gate fused into one [gate|q|k|v] projection; RMSNorms have no weight; a frozen
  `z_L_init` vector seeds the L state. The cache layers are PrefillPrefixLMAttention: full-attention pages flagged
  non-causal, which makes vLLM's engine turn chunked prefill and prefix caching off. vLLM refuses pipeline
  parallelism for it.
- IQuest-Coder (model_type iquestcoder): vLLM's registry maps IQuestCoderForCausalLM to LlamaForCausalLM.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from . import builders as b
from .adapters import _core_dims, _embed_head, _int, _llama, _rope, _spec, _tie, register
from .spec import Attention, Layer, Mlp, ModelSpec, Tensor


def _at(tensors: tuple[Tensor, ...], index: int) -> tuple[Tensor, ...]:
    """The builders' "{i}" placeholder made the real layer index (the list position is not the layer number)."""
    return tuple(replace(t, name=t.name.replace("{i}", str(index))) for t in tensors)


@register("iquestloopcoder")
def _iquest_loop(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, n, heads, kv, _ = _core_dims(cfg)
    if not heads or hidden % heads:
        raise ConfigError("config", f"hidden_size {hidden} is not divisible by num_attention_heads {heads}")
    hd = hidden // heads  # LoopCoderAttention derives it; a config head_dim is not read
    inter, vocab = _int(cfg, "intermediate_size"), _int(cfg, "vocab_size")
    loops = _int(cfg, "loop_num", default=2)
    window = _int(cfg, "loop_window_size", default=64)
    if loops < 1 or window < 1:
        raise ConfigError("config", f"loop_num ({loops}) and loop_window_size ({window}) must be at least 1")
    full = Attention("full", heads, kv, hd)
    local = Layer(Attention("sliding_window", heads, kv, hd, window=window), Mlp("none"), (), continues=True)
    # Llama block without biases (vLLM hard-codes bias=False), plus the loop gate: a column-parallel
    # Linear(head_dim -> heads) with bias, split over TP by heads.
    block = (b.attention(hidden, heads, kv, hd) + b.gated_mlp(hidden, inter)
             + b.norm(b.P + "input_layernorm", hidden) + b.norm(b.P + "post_attention_layernorm", hidden)
             + b.linear("model.gate_projections.{i}", "attention", heads, hd, "column", bias=True))
    layers: list[Layer] = []
    for i in range(n):
        # Layer i, then its later loops' caches (Layer.continues: a pipeline split keeps them on layer i's stage).
        layers.append(Layer(full, Mlp("dense", inter), _at(block, i)))
        layers += [local] * (loops - 1)
    tie = _tie(cfg, outer)
    emb, head = _embed_head(vocab, hidden, tie, final_norm=b.norm("model.norm", hidden))
    notes = (f"IQuest-Coder Loop: each of the {n} layers runs {loops} times per token; vLLM caches loop 1 with "
             f"full attention and each later loop in a {window}-token sliding window ({n} full + "
             f"{n * (loops - 1)} sliding KV layers)",) if loops > 1 else ()
    spec = _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd), notes=notes)
    return replace(spec, layer_runs=float(loops))


@register("hrm_text")
def _hrm_text(cfg: dict, outer: dict, name: str) -> ModelSpec:
    hidden, heads, vocab = _int(cfg, "hidden_size"), _int(cfg, "num_attention_heads"), _int(cfg, "vocab_size")
    # transformers' HrmTextConfig: a checkpoint's num_hidden_layers is the per-stack depth; once the config has
    # been through transformers, num_layers_per_stack holds it and num_hidden_layers the inflated cache count.
    per_stack = _int(cfg, "num_layers_per_stack", "num_hidden_layers")
    h_cycles, l_cycles = _int(cfg, "H_cycles", default=2), _int(cfg, "L_cycles", default=3)
    hd = _int(cfg, "head_dim", default=128)  # HrmTextConfig's default; vLLM reads the attribute
    inter = _int(cfg, "intermediate_size", default=4096)
    if not per_stack or not h_cycles or not l_cycles:
        raise ConfigError("config", f"hrm_text needs layers and cycles: num_layers_per_stack {per_stack}, "
                          f"H_cycles {h_cycles}, L_cycles {l_cycles}")
    att_bias, mlp_bias = bool(cfg.get("attention_bias")), bool(cfg.get("mlp_bias"))
    att = Attention("full", heads, heads, hd)
    cache_only = Layer(att, Mlp("none"), (), continues=True)

    def block(stack: str, i: int) -> tuple[Tensor, ...]:
        # HF's runtime module names; vLLM fuses gate/q/k/v into one gqkv_proj split by heads, which holds the same.
        p = f"model.{stack}.layers.{i}."
        t = b.attention(hidden, heads, heads, hd, qkv_bias=att_bias, o_bias=att_bias, prefix=p + "self_attn.")
        t += b.linear(p + "self_attn.gate_proj", "attention", heads * hd, hidden, "column", att_bias)
        return t + b.gated_mlp(hidden, inter, bias=mlp_bias, prefix=p + "mlp.")  # weightless RMSNorms

    layers: list[Layer] = []
    for stack, runs in (("L_module", h_cycles * l_cycles), ("H_module", h_cycles)):
        for i in range(per_stack):
            layers.append(Layer(att, Mlp("dense", inter), block(stack, i)))
            layers += [cache_only] * (runs - 1)
    tie = _tie(cfg, outer)
    z_l = Tensor("model.z_L_init", "other", (hidden,))
    emb, head = _embed_head(vocab, hidden, tie, final_norm=(), embed_extra=(z_l,))
    notes = (f"HRM-Text: 2 x {per_stack} layers run {per_stack * h_cycles * (l_cycles + 1)} times per token, each "
             "run with its own KV cache; vLLM refuses pipeline parallelism for it",
             "HRM-Text reads the prompt bidirectionally, so vLLM turns chunked prefill and prefix caching off at "
             "start-up: a prompt longer than --max-num-batched-tokens is never scheduled (set it to at least "
             "max_model_len, which raises the activation peak)",)
    spec = _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=heads, head_dim=hd, inter=inter,
                 tie=tie, embedding=emb, head=head, rope=_rope(cfg, hd), notes=notes)
    # The L stack runs H x L times and the H stack H times: H x (L + 1) / 2 passes over the 2 stacks on average.
    return replace(spec, layer_runs=h_cycles * (l_cycles + 1) / 2)


@register("iquestcoder")
def _iquest_coder(cfg: dict, outer: dict, name: str) -> ModelSpec:
    return _llama(cfg, outer, name)
