"""Speculative decoding's drafter, as vLLM's V1 engine builds it beside the target model.

What a drafter adds per GPU, read in vLLM's spec_decode/eagle.py (llm_base_proposer.py from 0.20) and the MTP model
files (deepseek_mtp.py, glm4_moe_mtp.py, qwen3_next_mtp.py, qwen3_5_mtp.py), 0.10-0.33:

- weights: the draft's own modules, loaded inside the same "Model loading took" measurement as the target's. An
  MTP draft's embedding and LM head are the target's: load_model deletes the draft's copies and points at the
  target's (the embedding only without pipeline parallelism), so only its decoder layers, input norms and
  projection stay. DeepSeek-style MTP modules keep a vocab-parallel LM head of their own before 0.16.
- KV cache: the draft's attention layers register in the same forward context as the target's, so
  get_kv_cache_spec lists them and the KV planner groups them with the target's layers: every block carries
  their pages too (fewer tokens for the same memory).
- activation: the proposer's persistent buffers, [max_num_batched_tokens] input ids (int32), positions (int64)
  and an arange (int32), and [max_num_batched_tokens, hidden] hidden states and input embeddings in the model
  dtype, allocated with the model runner, so inside the profiled torch peak; the draft's dummy forward reuses the
  target's layer shapes, so the forward peak is unchanged.
- CUDA graphs: the draft captures its own piecewise graphs per batch size; budget.cudagraph counts them per layer
  like the target's (an estimate, as for the target).

N-gram and suffix drafters propose from the request's own tokens, on the CPU: no weights, KV or graphs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ...deployment import Deployment
from ...errors import GpuplanError
from ...model.spec import ModelSpec, Tensor
from .profiles import Profile

# vLLM's method names for a checkpoint's own MTP modules; every one builds the modules MtpModule describes.
MTP_METHODS = ("mtp", "deepseek_mtp", "glm4_moe_mtp", "qwen3_next_mtp", "qwen3_5_mtp", "ernie_mtp", "mimo_mtp",
               "longcat_flash_mtp", "pangu_ultra_moe_mtp")
FREE_METHODS = ("ngram", "[ngram]", "suffix")  # no GPU weights, KV or graphs
SIZED_METHODS = MTP_METHODS + FREE_METHODS
# Methods with a separate draft checkpoint, which gpuplan does not size yet (it would need the draft's config).
SEPARATE_DRAFT = ("eagle", "eagle3", "draft_model", "medusa", "mlp_speculator", "dflash")


@dataclass(frozen=True)
class Drafter:
    method: str  # "mtp", "ngram", "suffix" or "" (none)
    tokens: int  # num_speculative_tokens
    hidden_width: int = 0  # the proposer's hidden-states buffer width (0: no proposer buffers on the GPU)
    embed_width: int = 0  # its input-embeddings buffer width
    notes: tuple[str, ...] = ()

    def buffer_bytes(self, mnbt: int, act_bytes: int) -> int:
        """The proposer's persistent buffers (see the module docstring), on the last pipeline stage."""
        if not self.hidden_width:
            return 0
        return mnbt * (4 + 8 + 4 + (self.hidden_width + self.embed_width) * act_bytes)


NONE = Drafter("", 0)


def normalized_method(method: str | None) -> str:
    """vLLM's method name as gpuplan sizes it ("mtp", "ngram", "suffix"), or a GpuplanError naming the accepted."""
    m = (method or "").strip().lower()
    if m in MTP_METHODS:
        return "mtp"
    if m in FREE_METHODS:
        return "suffix" if m == "suffix" else "ngram"
    if m in SEPARATE_DRAFT:
        raise GpuplanError("speculative_config.method", f"{m!r} drafts with a separate checkpoint, whose weights "
                           "and KV layers gpuplan does not size yet", accepted=list(SIZED_METHODS))
    raise GpuplanError("speculative_config.method", f"unknown speculative method {method!r}",
                       accepted=list(SIZED_METHODS))


def serving_spec(spec: ModelSpec, dep: Deployment, profile: Profile, pp: int) -> tuple[ModelSpec, Drafter]:
    """`spec` as vLLM builds it with the deployment's drafter (the MTP modules' layers and tensors added), and what
    else the drafter costs. Without speculative decoding: `spec` unchanged and NONE."""
    if not dep.speculative_method:
        return spec, NONE
    method = normalized_method(dep.speculative_method)
    n = dep.num_speculative_tokens
    if n < 1:
        raise GpuplanError("speculative_config.num_speculative_tokens", f"must be at least 1, got {n}")
    if profile.engine == "v0":
        raise GpuplanError("speculative_config", f"gpuplan sizes speculative decoding on vLLM's V1 engine; vLLM "
                           f"{profile.version} runs V0 here", accepted=["vllm_version >= 0.8.5 with the V1 engine"])
    if method != "mtp":
        return spec, Drafter(method, n, notes=(f"{method} speculative decoding ({n} draft token{'s' * (n > 1)}) "
                                            "proposes from the "
                                            "request's own tokens on the CPU: no draft weights, KV cache or graphs",))
    mtp = spec.mtp
    if mtp is None:
        raise GpuplanError("speculative_config.method", f"{spec.name} has no MTP modules gpuplan can build "
                           "(num_nextn_predict_layers / mtp_num_hidden_layers in its config, on a model family "
                           "whose MTP drafter gpuplan knows)", accepted=["ngram", "suffix"])
    tensors = mtp.tensors
    if pp > 1:
        # load_model shares the target's embedding only when there is one pipeline stage; the last stage
        # otherwise keeps the draft's own vocab-parallel copy.
        tensors += (Tensor("mtp.embed_tokens", "mtp", (spec.vocab_size, spec.hidden_size), "vocab"),)
    layers = tuple(replace(x, continues=True) for x in mtp.layers)
    served = replace(spec, layers=spec.layers + layers, head=spec.head + tensors,
                     extra_not_loaded=tuple(t for t in spec.extra_not_loaded if t.kind != "mtp"), mtp=None)
    notes = [f"MTP speculative decoding ({n} draft token{'s' * (n > 1)}, {len(layers)} MTP module"
             f"{'s' * (len(layers) > 1)}): the draft's "
             "decoder layers, norms and projection are loaded and cached beside the target's (the embedding and LM "
             "head are shared); its CUDA graphs are estimated per layer like the target's"]
    if n > len(layers) and n % len(layers):
        notes.append(f"num_speculative_tokens {n} is not a multiple of the checkpoint's {len(layers)} MTP modules; "
                     "vLLM reuses them in turn")
    # hc_mult models widen the hidden-states buffer to the whole residual (llm_base_proposer.py)
    return served, Drafter("mtp", n, spec.hidden_size * spec.residual_streams, spec.hidden_size, tuple(notes))
