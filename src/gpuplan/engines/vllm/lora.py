"""LoRA adapters on the GPU (vLLM's --enable-lora): the stacked A / B buffers vLLM allocates for max_loras adapter
slots of max_lora_rank beside every layer an adapter can touch, when it wraps the model in load_model, so inside
"Model loading took". Adapters are copied into these slots; more adapters than slots wait in CPU memory.

Read in the wheels (vllm/lora/layers, lora/model_manager.py, lora/utils.py, config/lora.py): every linear layer of
the language model is wrapped (get_supported_lora_modules: every LinearBase, the fused experts from 0.11.1, the
modules a model lists in embedding_modules). Per wrapped weight [out, in], sharded as its base layer is:

* column-parallel (q/k/v, gate/up, each a slice of its packed layer): A [rank, in], B [out / tp, rank];
* row-parallel (o, down): A [rank, in / tp], B [out, rank];
* replicated (MLA's latent projections, a router): A [rank, in], B [out, rank];
* fused experts, per local expert: gate and up each A [rank, hidden], B [I / tp, rank] (one A for both in the
  models whose checkpoints store 3-D expert weights), down A [rank, I / tp], B [hidden, rank];
* the embedding: A [vocab, rank], B [hidden, rank]; the LM head: A [rank, hidden], B [vocab, rank] (whole
  vocabularies, not split over TP); up to 0.11 both also kept 256 extra-vocabulary rows per slot.

--fully-sharded-loras splits the A of column-parallel layers and the B of row-parallel ones over TP too.

Left out, each a few MiB: up to 0.11 the models that took extra-vocabulary tokens (Llama among them) also grew their
own embedding and LM head by those 256 rows, padded the vocabulary to 256, and sized the head's B on the grown
vocabulary; the punica kernels' token maps (max_num_batched_tokens integers) and their per-layer scratch
([slices, tokens, rank] floats) during the profile run.
"""

from __future__ import annotations

from functools import cache

from ...datafiles import data_json
from ...deployment import Deployment
from ...errors import GpuplanError
from ...model.spec import ModelSpec, Tensor
from ...units import DTYPE_BYTES, cdiv
from .profiles import Profile, profile_rules
from .weights import Sharding

LORA_DTYPES = ("auto", "float16", "bfloat16")
_NOT_WRAPPED = frozenset({"mtp", "draft", "vision", "projector", "audio", "norm", "embedding", "lm_head"})


@cache
def _without_lora() -> dict:
    return data_json("vllm_lora_unsupported.json")


def check(spec: ModelSpec, dep: Deployment, profile: Profile) -> list[str]:
    """vLLM's own refusals of a LoRA configuration, by the option's name; the warnings it leaves."""
    if not dep.enable_lora:
        return []
    rules = profile_rules("lora")
    if not profile.at_least(rules["engine_from"]):
        raise GpuplanError("enable_lora", f"vLLM {profile.version} has no LoRA support: it came in "
                           f"{rules['engine_from']}", accepted=[f"vllm_version >= {rules['engine_from']}"])
    warnings: list[str] = []
    unsupported = _without_lora()
    if spec.architecture in unsupported["without_lora"]:
        if profile.at_least(unsupported["read_in"]):
            raise GpuplanError("enable_lora", f"vLLM {profile.version} has no LoRA support for {spec.architecture} "
                               "(its class does not implement SupportsLoRA)")
        warnings.append(f"enable_lora: vLLM {unsupported['read_in']}'s {spec.architecture} has no LoRA support; "
                        f"{profile.version} likely refuses --enable-lora for it too")
    if dep.max_lora_rank not in rules["ranks"]:
        raise GpuplanError("max_lora_rank", f"{dep.max_lora_rank} is not a rank vLLM accepts",
                           accepted=[str(r) for r in rules["ranks"]])
    if dep.max_loras < 1:
        raise GpuplanError("max_loras", f"must be at least 1, got {dep.max_loras}")
    if dep.lora_dtype not in LORA_DTYPES:
        raise GpuplanError("lora_dtype", f"unknown dtype {dep.lora_dtype!r}", accepted=LORA_DTYPES)
    if dep.fully_sharded_loras and dep.max_lora_rank % dep.tensor_parallel_size:
        raise GpuplanError("max_lora_rank", f"--fully-sharded-loras splits the rank over {dep.tensor_parallel_size} "
                           f"GPUs, which must divide {dep.max_lora_rank}")
    limit = next(n for since, n in reversed(rules["lm_head_vocab_limit"]) if profile.at_least(since))
    if spec.vocab_size > limit:
        raise GpuplanError("enable_lora", f"vLLM {profile.version} refuses LoRA for a vocabulary above {limit:,} "
                           f"tokens (LogitsProcessorWithLoRA); this model's is {spec.vocab_size:,}")
    if any(t.stored for t in spec.checkpoint or ()):
        warnings.append("enable_lora: the adapter slots are sized from the config's layer shapes")
    return warnings


def placement(profile: Profile) -> str:
    """Where the slots show in vLLM's accounting: "weights" (inside "Model loading took", 0.8+), "missed" (V0's
    0.6.4-0.7.x profile leaves them out of the KV budget: the GPU holds them beyond gpu_memory_utilization) or
    "profile" (older V0 releases measured them with the profile run's drop in free memory)."""
    rules = profile_rules("lora")
    if profile.engine == "v1" or profile.at_least(rules["in_model_loading_from"]):
        return "weights"
    lo, hi = rules["v0_profile_misses_it"]
    return "missed" if profile.at_least(lo) and not profile.at_least(hi) else "profile"


def graph_cases(dep: Deployment, profile: Profile) -> int:
    """CUDA graphs captured per size: with and without adapters from 0.11.1 (cudagraph_specialize_lora, on by
    default), else once."""
    return 2 if dep.enable_lora and profile.at_least(profile_rules("lora")["graph_cases_from"]) else 1


def dtype_bytes(dep: Deployment, act_bytes: int) -> int:
    """lora_dtype "auto" follows the model's dtype."""
    return act_bytes if dep.lora_dtype == "auto" else DTYPE_BYTES[dep.lora_dtype]


def stage_bytes(spec: ModelSpec, lo: int, hi: int, *, first: bool, last: bool, sh: Sharding, dep: Deployment,
                profile: Profile, act_bytes: int) -> int:
    """LoRA slots on one GPU of the pipeline stage holding layers [lo, hi)."""
    if not dep.enable_lora:
        return 0
    rules = profile_rules("lora")
    rank, slots, full = dep.max_lora_rank, dep.max_loras, dep.fully_sharded_loras
    experts = profile.at_least(rules["moe_experts_from"])
    one_a = spec.architecture in rules["three_d_moe_architectures"]
    elements = sum(_tensor_elements(t, sh, rank, full, one_a) for layer in spec.layers[lo:hi] for t in layer.tensors
                   if _wrapped(t, experts))
    extra = rules["extra_vocab"]
    padding = extra["size"] if not profile.at_least(extra["until_before"]) else 0
    h, v = spec.hidden_size, spec.vocab_size
    if first:
        elements += (v + padding) * rank + h * rank + padding * h
    if last:
        v_b = cdiv(v, extra["padding"]) * extra["padding"] if padding else v
        elements += rank * h + v_b * rank + padding * h
    return slots * elements * dtype_bytes(dep, act_bytes)


def _wrapped(t: Tensor, experts: bool) -> bool:
    """A weight vLLM wraps with LoRA: a linear layer's matrix, a router's, fused experts from 0.11.1."""
    if t.kind in _NOT_WRAPPED or t.host or t.stored or len(t.shape) < 2 or t.shape[-1] == 1:
        return False
    if t.parallel in ("expert_col", "expert_row"):
        return experts and len(t.shape) == 3
    return t.linear or (t.kind == "router" and t.name.endswith("weight"))


def _tensor_elements(t: Tensor, sh: Sharding, rank: int, full: bool, one_a: bool) -> int:
    """A and B elements of one wrapped weight on one rank, per adapter slot."""
    p = "replicated" if t.kind in sh.replicated_kinds else t.parallel
    out, inn = t.shape[-2], t.shape[-1]
    tp = sh.tp
    if p in ("column", "kv"):
        if p == "kv":
            heads = t.heads or 1
            out_rank = (out // heads) * max(1, heads // tp)
        else:
            out_rank = cdiv(out, tp)
        return (rank // tp if full else rank) * inn + out_rank * rank
    if p == "row":
        return rank * cdiv(inn, tp) + (cdiv(out, tp) if full else out) * rank
    if p in ("expert_col", "expert_row"):
        local = cdiv(t.shape[0], sh.ep)
        if p == "expert_col":  # w13 [E, 2I, H]: gate and up slices
            a_count = 1 if one_a else 2
            return local * (a_count * (rank // sh.moe_tp if full else rank) * inn + cdiv(out, sh.moe_tp) * rank)
        return local * (rank * cdiv(inn, sh.moe_tp) + (cdiv(out, sh.moe_tp) if full else out) * rank)
    return rank * inn + out * rank  # replicated
