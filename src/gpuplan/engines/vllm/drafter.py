"""Speculative decoding's drafter, as vLLM's V1 engine builds it beside the target model.

What a drafter adds per GPU, read in vLLM's spec_decode/eagle.py (llm_base_proposer.py from 0.20) and the MTP model
files (deepseek_mtp.py, glm4_moe_mtp.py, qwen3_next_mtp.py, qwen3_5_mtp.py, DeepSeek-V4's mtp.py, mimo_v2_mtp.py,
nemotron_h_mtp.py, step3p5_mtp.py, ernie_mtp.py, longcat_flash_mtp.py, bailing_moe_mtp.py, bailing_moe_v3_mtp.py,
hy_v3_mtp.py), 0.10-0.33:

- weights: the draft's own modules, loaded inside the same "Model loading took" measurement as the target's. An
  MTP draft's embedding and LM head are the target's: load_model deletes the draft's copies and points at the
  target's (the embedding only without pipeline parallelism), so only its decoder layers, input norms and
  projection stay. DeepSeek-style MTP modules keep a vocab-parallel LM head of their own before 0.16; Step-3.5's
  keep one per layer from 0.23, whose Step3p5MTPProposer skips the sharing (spec.Tensor since / until).
- KV cache: the draft's attention layers register in the same forward context as the target's, so
  get_kv_cache_spec lists them and the KV planner groups them with the target's layers: every block carries
  their pages too (fewer tokens for the same memory).
- activation: the proposer's persistent buffers, [max_num_batched_tokens] input ids (int32), positions (int64)
  and an arange (int32), and [max_num_batched_tokens, hidden] hidden states and input embeddings in the model
  dtype, allocated with the model runner before the profile run: in the budget from 0.27 (the free-memory drop),
  out of the headroom before. The draft's dummy forward is no larger than the target's. On the V1 runner the
  profile's dummy sample also runs the rejection sampler (budget.activation), whatever the method.
- separate draft checkpoints (eagle, eagle3, draft_model, and Gemma-4's MTP assistant under "mtp"): built from the
  draft's config.json (model/adapters_eagle.py), which the faces resolve from speculative_config's "model". The
  assistant's layers are KV-shared with the target's (Gemma4Proposer), so it adds no KV cache.
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

# vLLM's method names for a checkpoint's own MTP modules (config/speculative.py MTPModelTypes, 0.33; it takes each
# as "mtp"); gpuplan builds the modules its model adapters describe (MtpModule) and names the rest as unbuilt.
MTP_METHODS = ("mtp", "deepseek_mtp", "dots3_note_mtp", "mimo_mtp", "mimo_v2_mtp", "glm4_moe_mtp",
               "glm4_moe_lite_mtp", "glm_ocr_mtp", "ernie_mtp", "nemotron_h_mtp", "exaone_moe_mtp", "exaone4_5_mtp",
               "qwen3_next_mtp", "qwen4_exp_mtp", "qwen3_5_mtp", "longcat_flash_mtp", "bailing_hybrid_v3_mtp",
               "minimax_m3_mtp", "bailing_hybrid_mtp", "kimi_k3_mtp", "pangu_ultra_moe_mtp", "step3p5_mtp",
               "step5_mtp", "hy_v3_mtp", "hy_v4_mtp", "gemma4_mtp", "inkling_mtp", "glm5_next_mtp")
FREE_METHODS = ("ngram", "[ngram]", "suffix")  # no GPU weights, KV or graphs
# Methods that draft with a separate checkpoint, named by speculative_config's "model" (model/adapters_eagle.py).
SEPARATE_DRAFT = ("eagle", "eagle3", "draft_model")
SIZED_METHODS = MTP_METHODS + FREE_METHODS + SEPARATE_DRAFT
UNSIZED_METHODS = ("medusa", "mlp_speculator", "dflash", "dspark")  # separate heads gpuplan does not build yet


@dataclass(frozen=True)
class Drafter:
    method: str  # "mtp", "eagle", "eagle3", "draft_model", "ngram", "suffix" or "" (none)
    tokens: int  # num_speculative_tokens
    hidden_width: int = 0  # the proposer's hidden-states buffer width (0: no proposer buffers on the GPU)
    embed_width: int = 0  # its input-embeddings buffer width
    notes: tuple[str, ...] = ()
    model: str = ""  # the separate draft checkpoint, as speculative_config names it

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
        return m
    if m in UNSIZED_METHODS:
        raise GpuplanError("speculative_config.method", f"{m!r} drafts with a head gpuplan does not build yet",
                           accepted=list(SIZED_METHODS))
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
    if method in SEPARATE_DRAFT:
        return _separate_draft(spec, dep, method, n, pp)
    if method == "mtp" and _assistant(dep.speculative_draft_config):
        return _gemma4_assistant(spec, dep, n, profile)
    if method != "mtp":
        return spec, Drafter(method, n, notes=(f"{method} speculative decoding ({n} draft token{'s' * (n > 1)}) "
                                            "proposes from the "
                                            "request's own tokens on the CPU: no draft weights, KV cache or graphs",))
    mtp = spec.mtp
    if mtp is None and spec.model_type.startswith("gemma4"):
        read = f" (gpuplan could not read {dep.speculative_model!r})" if dep.speculative_model else ""
        raise GpuplanError("speculative_config.model", f"Gemma-4 drafts with Google's MTP assistant, a separate "
                           f"checkpoint: name it as speculative_config's model{read}",
                           accepted=["google/gemma-4-31B-it-assistant and its E2B/E4B/26B-A4B siblings",
                                     "ngram", "suffix"])
    if mtp is None:
        raise GpuplanError("speculative_config.method", f"{spec.name} has no MTP modules gpuplan can build "
                           "(num_nextn_predict_layers / mtp_num_hidden_layers in its config, on a model family "
                           "whose MTP drafter gpuplan knows)", accepted=["ngram", "suffix"])
    if mtp.since and not profile.at_least(mtp.since):
        raise GpuplanError("speculative_config.method", f"vLLM {profile.version} has no MTP drafter for "
                           f"{spec.name}; it drafts with the checkpoint's MTP module from {mtp.since}",
                           accepted=[f"vllm_version >= {mtp.since}", "ngram", "suffix"])
    tensors = mtp.tensors
    if pp > 1:
        # load_model shares the target's embedding only when there is one pipeline stage; the last stage
        # otherwise keeps the draft's own vocab-parallel copy.
        tensors += (Tensor("mtp.embed_tokens", "mtp", (spec.vocab_size, spec.hidden_size), "vocab"),)
    served = replace(_beside(spec, mtp.layers, tensors),
                     extra_not_loaded=tuple(t for t in spec.extra_not_loaded if t.kind != "mtp"), mtp=None)
    m = mtp.num_modules
    notes = [f"MTP speculative decoding ({n} draft token{'s' * (n > 1)}, {m} MTP module{'s' * (m > 1)}"
             + (f" of {len(mtp.layers)} layers" if len(mtp.layers) != m else "") + "): the draft's "
             "decoder layers, norms and projection are loaded and cached beside the target's (the embedding and LM "
             "head are shared); its CUDA graphs are estimated per layer like the target's"]
    if n > m and n % m:
        notes.append(f"num_speculative_tokens {n} is not a multiple of the checkpoint's {m} MTP modules; "
                     "vLLM reuses them in turn")
    # hc_mult models widen the hidden-states buffer to the whole residual (llm_base_proposer.py)
    return served, Drafter("mtp", n, spec.hidden_size * spec.residual_streams, spec.hidden_size, tuple(notes))


def _separate_draft(spec: ModelSpec, dep: Deployment, method: str, n: int, pp: int) -> tuple[ModelSpec, Drafter]:
    """An EAGLE / EAGLE-3 head or a whole draft model from the draft checkpoint's config (model/adapters_eagle.py):
    its layers join the target's KV cache and CUDA graphs, its tensors load beside the target's on the last stage."""
    from ...model.adapters import build_spec
    from ...model.adapters_eagle import draft_model, eagle_head

    cfg = dep.speculative_draft_config
    name = dep.speculative_model or "the draft"
    if not cfg:
        raise GpuplanError("speculative_config.model", (
            f"{dep.speculative_model!r}'s config.json was not read" if dep.speculative_model else
            f"method {method!r} drafts with a separate checkpoint: name it") + " (a catalog name, an HF repo id or a "
            "local path, whose config.json gpuplan reads)")
    notes = []
    if method == "draft_model":
        draft = build_spec(dict(cfg), name)
        if draft.vocab_size != spec.vocab_size:
            raise GpuplanError("speculative_config.model", f"{name}'s vocabulary ({draft.vocab_size}) is not the "
                               f"target's ({spec.vocab_size}); vLLM's draft_model method refuses a draft whose "
                               "vocabulary size differs (verify_equal_vocab_size_if_draft_model)")
        module = draft_model(draft)
        hidden = draft.hidden_size
        notes.append(f"draft model {name} ({n} draft token{'s' * (n > 1)}): its {draft.num_layers} layers, embedding "
                     "and LM head load beside the target (sharded over the target's TP) and cache KV with it")
    else:
        module, own_embedding, hidden = eagle_head(dict(cfg), spec, method)
        if pp > 1 and not own_embedding:
            # load_model shares the target's embedding only with one pipeline stage
            module = replace(module, tensors=module.tensors + (
                Tensor("draft.embed_tokens.weight", "draft", (spec.vocab_size, hidden), "vocab"),))
            own_embedding = True
        label = "EAGLE-3" if method == "eagle3" else "EAGLE"
        notes.append(f"{label} head {name} ({n} draft token{'s' * (n > 1)}, {len(module.layers)} layer"
                     f"{'s' * (len(module.layers) > 1)}): loaded beside the target, its layers cached with it; "
                     + ("its own embedding kept (a speculators checkpoint ships one that differs from the target's)"
                        if own_embedding else "the target's embedding shared (the checkpoint ships none)"))
    if cfg.get("quantization_config"):
        notes.append(f"{name} declares its own quantization; gpuplan counts its weights in the model dtype "
                     "(an upper bound)")
    return _beside(spec, module.layers, module.tensors), Drafter(method, n, hidden, spec.hidden_size, tuple(notes),
                                                               model=name)


def _assistant(cfg) -> bool:
    from ...model.adapters_eagle import GEMMA4_ASSISTANTS

    return bool(cfg) and cfg.get("model_type") in GEMMA4_ASSISTANTS


def _gemma4_assistant(spec: ModelSpec, dep: Deployment, n: int, profile: Profile) -> tuple[ModelSpec, Drafter]:
    """Google's Gemma-4 MTP assistant (model/adapters_eagle.py gemma4_assistant): its KV-shared layers read the
    target's cache, so it adds weights, graphs and the proposer's buffers but no KV cache."""
    from ...model.adapters_eagle import gemma4_assistant

    name = dep.speculative_model or "the assistant"
    if not profile.at_least("0.21"):
        raise GpuplanError("speculative_config.method", f"vLLM {profile.version} has no Gemma-4 MTP drafter; "
                           "gemma4_mtp.py drafts with the assistant from 0.21",
                           accepted=["vllm_version >= 0.21", "ngram", "suffix"])
    if not spec.model_type.startswith("gemma4"):
        raise GpuplanError("speculative_config.model", f"{name} is a Gemma-4 MTP assistant; vLLM wires its layers "
                           f"to a Gemma-4 target's cache, and {spec.name} is {spec.model_type}",
                           accepted=["a Gemma-4 target"])
    module, backbone = gemma4_assistant(dict(dep.speculative_draft_config or {}))
    if backbone != spec.hidden_size:
        raise GpuplanError("speculative_config.model", f"{name} drafts for a {backbone}-wide Gemma-4 "
                           f"(backbone_hidden_size), and {spec.name} is {spec.hidden_size} wide",
                           accepted=[f"the assistant trained for {spec.name}"])
    # The draft-width embedding is the LM head's tensor (tied), so whichever embedding the draft reads at any
    # pipeline size, nothing beyond the module is allocated.
    notes = (f"Gemma-4 MTP assistant {name} ({n} draft token{'s' * (n > 1)}, {len(module.layers)} KV-shared "
             "layers): loaded beside the target with its own draft-width LM head; its attention reads the target's "
             "last sliding and full layers' cache, so it adds no KV cache",)
    return _beside(spec, module.layers, module.tensors), Drafter("mtp", n, backbone, backbone, notes, model=name)


def _beside(spec: ModelSpec, layers: tuple, tensors: tuple[Tensor, ...]) -> ModelSpec:
    """`spec` with a drafter's layers after the target's (on the last pipeline stage, continuing the last decoder
    layer) and its other tensors beside the LM head."""
    return replace(spec, layers=spec.layers + tuple(replace(x, continues=True) for x in layers),
                   head=spec.head + tensors)


def kv_groups_spanned(plan, target_specs: list, draft_specs: list, profile: Profile) -> int:
    """How many KV cache groups the drafter's cache layers fall in. vLLM's hybrid grouping lists each spec's layers in
    registration order, the draft's after the target's, and deals them into that spec's groups: in runs of
    group_size in 0.10, round-robin (group i takes layers[i::groups]) from 0.11 (kv_cache_utils.py). Without the
    hybrid grouping there is one group."""
    if not draft_specs or not getattr(plan, "hybrid", False) or not getattr(plan, "group_size", 0):
        return 1 if draft_specs else 0
    spanned: set = set()
    for s in set(draft_specs):
        first, count = target_specs.count(s), draft_specs.count(s)
        groups = -(-(first + count) // plan.group_size)
        spanned |= {(s, i % groups if profile.at_least("0.11") else i // plan.group_size)
                    for i in range(first, first + count)}
    return len(spanned)


def asserts_one_group(drafter: Drafter, profile: Profile) -> bool:
    """vLLM 0.10.2-0.16 asserts at start-up that EAGLE / MTP (and 0.15-0.16's draft-model) layers share one KV cache
    group ("All eagle layers should belong to the same kv cache group", gpu_model_runner.initialize_kv_cache);
    0.17 kept the check for hidden-state extraction only."""
    return drafter.method in ("mtp",) + SEPARATE_DRAFT and not profile.at_least("0.17")


def check_one_group(profile: Profile, groups: int) -> None:
    """The start-up failure asserts_one_group foresees when the drafter's layers fall in several groups."""
    if groups > 1:
        raise GpuplanError("speculative_config", f"vLLM {profile.version} asserts that all draft layers share one "
                           f"KV cache group; this drafter's layers fall in {groups} groups of the hybrid cache, so "
                           "the start-up stops with an AssertionError",
                           accepted=["vllm_version >= 0.17", "ngram", "suffix"])

