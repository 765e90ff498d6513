"""vLLM version profiles: behaviour that changed between releases, read from data files."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from ...datafiles import data_json
from ...errors import GpuplanError

# setuptools_scm names a vLLM built from a checkout without release tags "0.1.devN" (N: commits since the first):
# it says nothing about the release the code is near.
_UNTAGGED = re.compile(r"^\s*v?0\.1\.dev\d+")
# A build between releases: "0.23.1rc1.dev531+g...", "0.16.1.dev0+g...", "0.10.1.2.dev0+g...".
_DEVELOPMENT = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.\d+)*(?:rc\d+)?\.dev\d+")


def untagged_build(v: str) -> bool:
    return bool(_UNTAGGED.match(str(v)))


def development_series(v: str) -> tuple[int, int] | None:
    """(major, minor) of a development build's version string; None for a release (or an untagged build)."""
    m = _DEVELOPMENT.match(str(v))
    return (int(m.group(1)), int(m.group(2))) if m and not untagged_build(v) else None


@lru_cache(maxsize=1024)  # profiles compare versions dozens of times per estimate
def parse_version(v: str) -> tuple[int, ...]:
    if untagged_build(v):
        raise GpuplanError("vllm_version", f"{v!r} is vLLM built from source without release tags, which does not "
                           "say which release its code follows; give that release", accepted=["e.g. 0.19.0", "0.12"])
    m = re.match(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(v))
    if not m:
        raise GpuplanError("vllm_version", f"cannot read vLLM version {v!r}", accepted=["e.g. 0.19.0", "0.12", "0.6.6"])
    return tuple(int(x) if x is not None else 0 for x in m.groups())


@dataclass(frozen=True)
class Profile:
    name: str
    version: str
    version_tuple: tuple[int, ...]
    flags: dict[str, Any] = field(hash=False, compare=False)
    calib: dict[str, Any] = field(hash=False, compare=False)

    def __getattr__(self, item: str) -> Any:  # flags read as attributes: profile.engine, profile.formula
        flags = self.__dict__.get("flags") or {}
        if item in flags:
            return flags[item]
        raise AttributeError(item)

    def at_least(self, v: str) -> bool:
        return self.version_tuple >= parse_version(v)

    def flag_from(self, flag: str) -> bool:
        """A boolean flag that turned on at a version inside this profile (e.g. budget_ceil_from)."""
        since = self.flags.get(flag + "_from")
        if since is not None:
            return self.at_least(since)
        return bool(self.flags.get(flag))


def _load(name: str) -> dict:
    return data_json(name)


@cache
def _profiles() -> tuple[dict, list[dict], dict]:
    data = _load("vllm_profiles.json")
    calib = _load("calibration.json")
    return data, data["profiles"], calib


@cache
def _removed() -> dict[str, str]:
    return _load("vllm_removed_architectures.json")["last_native_release"]


def removed_after(profile: Profile, architecture: str) -> str | None:
    """The last vLLM release with a native implementation of `architecture`, when this profile's is newer."""
    last = _removed().get(architecture)
    return last if last is not None and profile.version_tuple > parse_version(last) else None


@cache
def _added() -> dict[str, dict[str, str]]:
    return _load("vllm_added_architectures.json")["added"]


def added_span(architecture: str) -> dict[str, str] | None:
    """{absent_in, first_seen}: the releases between which vLLM added `architecture`; None when it predates
    the oldest wheel read."""
    return _added().get(architecture)


def added_after(profile: Profile, architecture: str) -> tuple[str, str] | None:
    """(absent_in, first_seen) when `architecture` is known to postdate this profile's release: its native
    implementation arrived after absent_in (a release at or after this one) and no later than first_seen."""
    span = added_span(architecture)
    if span is None or profile.version_tuple > parse_version(span["absent_in"]):
        return None
    return span["absent_in"], span["first_seen"]


@cache
def _transformers_backend() -> dict:
    return _load("vllm_transformers_backend.json")


def on_transformers_backend(profile: Profile, architecture: str) -> bool:
    """Whether this release builds `architecture` with its Transformers modeling backend (transformers' own
    rotary embedding: no vLLM rotary cache)."""
    run = _transformers_backend()["backend"].get(architecture)
    return run is not None and profile.at_least(run["since"])


def lacks_tp_plan(architecture: str) -> bool:
    """A Transformers-backend architecture whose transformers config declares no tensor-parallel plan."""
    return architecture in _transformers_backend()["no_tp_plan"]


@cache
def _native_architectures() -> dict:
    return _load("vllm_native_architectures.json")


@cache
def _ever_served() -> frozenset[str]:
    """Every architecture some release read here registers: natively (newest wheel, older wheels, added, removed),
    through _TRANSFORMERS_SUPPORTED_MODELS, or as an out-of-tree plugin it names (_OOT_SUPPORTED_MODELS)."""
    d = _native_architectures()
    return frozenset(set().union(*d["native"].values()) | set(d["earlier_only"]) | set(d["out_of_tree"])
                     | set(_added()) | set(_removed()) | set(_transformers_backend()["backend"]))


# vLLM's architecture suffixes (config/model.py _SUFFIX_TO_DEFAULTS): the registry also tries an unregistered
# architecture with its suffix swapped for each of these (registry.py _normalize_arch).
_ARCH_SUFFIXES = ("ForCausalLM", "ForConditionalGeneration", "ChatModel", "LMHeadModel", "ForTextEncoding",
                  "EmbeddingModel", "ForSequenceClassification", "ForTokenClassification", "ForAudioClassification",
                  "ForImageClassification", "ForVideoClassification", "ClassificationModel", "ForRewardModeling",
                  "RewardModel", "Model")


def never_native(architecture: str) -> tuple[str, str] | None:
    """(oldest, newest) wheel read when no vLLM release between them registers `architecture` (nor a suffix-swapped
    name vLLM would also try); None when one does, or when the config names no architecture."""
    if not architecture:
        return None
    served = _ever_served()
    suffix = next((s for s in _ARCH_SUFFIXES if architecture.endswith(s)), None)
    names = {architecture} | ({architecture.replace(suffix, s) for s in _ARCH_SUFFIXES} if suffix else set())
    if names & served:
        return None
    wheels = _native_architectures()["wheels"]
    return wheels[0], wheels[-1]


def architecture_of_model_type(model_type: str) -> str | None:
    """For a config that names no architecture: the generative class transformers gives its model_type, where it
    is one no vLLM release implements (vLLM 0.33 fills a missing `architectures` from transformers' own tables,
    transformers_utils/config.py, and so meets the same class family)."""
    found = [arch for arch, v in _native_architectures().get("transformers_backend", {}).items()
             if v.get("model_type") == model_type]
    return found[0] if len(found) == 1 else None


def registry_read(profile: Profile) -> bool:
    """Whether gpuplan read this release's model registry and Transformers-backend fallback (the newest wheel)."""
    return profile.version_tuple >= parse_version(_native_architectures()["newest"])


def backend_refusal(profile: Profile, architecture: str) -> dict | None:
    """Why this release's Transformers modeling backend refuses an architecture no release implements natively
    ({"refused": "incompatible" | "non_attention_layers", ...}); None when not known to. Read for the newest wheel
    only, so older releases get None."""
    d = _native_architectures()
    if not registry_read(profile) or never_native(architecture) is None:
        return None
    found = d.get("transformers_backend", {}).get(architecture)
    return {**found, "transformers_version": d["transformers_version"]} if found else None


def quant_min_capability(profile: Profile, method: str) -> float | None:
    """The lowest compute capability vLLM accepts for a quantization method in this release (None: not tracked)."""
    steps = _profiles()[0]["quant_min_capability"].get(method)
    if not steps:
        return None
    return [s["cc"] for s in steps if profile.at_least(s["from"])][-1]


def shares_host_memory(cc: float | None) -> bool:
    """Whether a GPU of this compute capability shares the host's memory (Jetson Orin and Thor, GB10)."""
    return cc in _profiles()[0]["unified_memory"]["compute_capabilities"]


def unified_memory(profile: Profile, cc: float) -> bool:
    """Whether vLLM reads this GPU's free memory from the host (a GPU sharing the host's memory; vllm_profiles.json
    unified_memory)."""
    return profile.at_least(_profiles()[0]["unified_memory"]["from"]) and shares_host_memory(cc)


def modelopt_mixed_refusal(profile: Profile, uses: dict[tuple[str, str], str]) -> str | None:
    """Why this release cannot load a ModelOpt MIXED_PRECISION checkpoint, or None where it can
    (vllm_profiles.json modelopt_mixed). `uses`: (quant_algo, "linear" | "moe" | "lm_head") -> a module using it."""
    d = _profiles()[0]["modelopt_mixed"]
    v = profile.version
    if not profile.at_least(d["from"]):
        return f"vLLM {v} has no ModelOpt MIXED_PRECISION support (it arrived in {d['from']})"
    for (algo, where), name in sorted(uses.items()):
        since = (d["moe_from"] if where == "moe" else d["linear_from"]).get(algo)
        what = "fused-MoE" if where == "moe" else "linear"
        if since is None or not profile.at_least(since):
            when = f"from {since}" if since else "in no release read"
            return (f"vLLM {v} builds no {algo} {what} layer inside a MIXED_PRECISION checkpoint ({name}; "
                    f"{when}): the layer would be unquantized and its stored weights fail to load")
        if where == "lm_head" and not profile.at_least(d["lm_head_from"]):
            return (f"vLLM {v} leaves lm_head unquantized in a MIXED_PRECISION checkpoint (quantized from "
                    f"{d['lm_head_from']}), so this checkpoint's {algo} lm_head fails to load")
    return None


def in_versions(vt: tuple[int, ...], versions: list[str]) -> bool:
    """Whether version `vt` lies in a data file's inclusive [first, last] version pair."""
    return parse_version(versions[0]) <= vt <= parse_version(versions[1])


@cache
def get_profile(version: str | None, use_v1: bool | None = None) -> Profile:
    """The profile for `version`; `use_v1` is the deployment's VLLM_USE_V1 (None: not set), which picks the V0
    engine in the releases that still shipped it beside V1."""
    data, profiles, calib = _profiles()
    v = version or data["newest"]
    vt = parse_version(v)
    choice = data.get("engine_env", {}).get(f"VLLM_USE_V1={int(use_v1)}") if use_v1 is not None else None
    if choice and in_versions(vt, choice["versions"]):
        found = next(p for p in profiles if p["name"] == choice["profile"])
    else:
        found = next((p for p in profiles if in_versions(vt, p["versions"])), None)
    if found is None:
        raise GpuplanError("vllm_version", f"no profile for vLLM {v}", accepted=[p["name"] for p in profiles])
    cal = {**calib.get("defaults", {}), **calib.get("profiles", {}).get(found["name"], {})}
    flags = found
    for step in found.get("from_releases", ()):  # a flag that changed inside the profile's range
        if vt >= parse_version(step["from"]):
            flags = {**flags, **{k: x for k, x in step.items() if k != "from"}}
    return Profile(found["name"], v, vt, flags, cal)


def v0_default_mnbt(profile: Profile, max_model_len: int, max_num_seqs: int, *, chunked: bool,
                    multimodal: bool) -> int:
    """The V0 engine's max_num_batched_tokens when none is given (SchedulerConfig, per release)."""
    d = _profiles()[0]["v0_scheduler_defaults"]

    def stepped(table: list) -> int | None:
        return next((n for since, n in reversed(table) if profile.at_least(since)), None)

    mnbt = stepped(d["chunked_mnbt"]) if chunked else max(max_model_len, 2048)
    if multimodal and (floor := stepped(d["multimodal_mnbt_floor"])):
        mnbt = max(mnbt, floor)
    if profile.at_least(d["mnbt_capped_by_seqs_x_len_from"]):
        mnbt = min(mnbt, max_num_seqs * max_model_len)
    return mnbt


def v1_chunked_prefill(profile: Profile, enable_chunked_prefill: bool | None) -> bool:
    """V1 chunks prefills unless told not to, which it heeds from 0.9.2 (before, it forced chunking on)."""
    d = _profiles()[0]["v1_scheduler_defaults"]
    return enable_chunked_prefill is not False or not profile.at_least(d["chunked_prefill_optional_from"])


def v1_batch_defaults(profile: Profile, max_num_seqs: int | None, mnbt: int | None, default_seqs: int,
                      default_mnbt: int, max_model_len: int, *, chunked: bool = True,
                      throughput: bool = False) -> tuple[int, int]:
    """(max_num_seqs, max_num_batched_tokens) as the V1 engine's arguments settle them from the user's values and
    the GPU tier's defaults; `throughput`: --performance-mode throughput, which doubles the defaulted ones."""
    if throughput:
        default_seqs, default_mnbt = 2 * default_seqs, 2 * default_mnbt
    seqs, tokens = max_num_seqs or default_seqs, mnbt or default_mnbt
    capped = profile.at_least(_profiles()[0]["v1_scheduler_defaults"]["defaults_capped_from"])
    if not chunked:
        if not capped:
            tokens = max_model_len  # 0.9.2-0.11.0 set it outright, over a value the user gave
        elif mnbt is None:
            tokens = max(max_model_len, tokens)  # later releases raise a defaulted one
    if capped:
        if mnbt is None:
            tokens = min(tokens, seqs * max_model_len)
        if max_num_seqs is None:
            seqs = min(seqs, tokens)
    return seqs, tokens


@cache
def uses_model_runner_v2(profile: Profile, architecture: str, env: bool | None, mamba_mode: str, *,
                         moe: bool = False, quantized: bool = False, has_state: bool = False,
                         attention_free: bool = False, spec_method: str = "") -> bool:
    """Whether this start-up runs vLLM's second GPU model runner (config/vllm.py use_v2_model_runner).
    `quantized`: the checkpoint's config has a quantization_config; `has_state`: Mamba / linear-attention layers
    (vLLM's has_inner_state; a hybrid when the model also has attention layers); `spec_method`: the speculative
    method as drafter.normalized_method names it ("" without one)."""
    mr = _profiles()[0].get("model_runner_v2", {})
    if profile.engine != "v1" or not mr or not profile.at_least(mr["env_from"]):
        return False
    if env is not None:  # VLLM_USE_V2_MODEL_RUNNER, set: it decides before any default
        return env
    vt = profile.version_tuple
    if has_state and any(in_versions(vt, e["versions"]) and mamba_mode in e["modes"]
                         for e in mr["unsupported_mamba_cache_modes"]):
        return False  # _get_v2_model_runner_unsupported_features: vLLM falls back to V1
    if spec_method and any(in_versions(vt, e["versions"]) and spec_method in e["methods"]
                           for e in mr["spec_methods_v1_only"]):
        return False  # the same, for a speculative method the V2 runner does not run yet
    if profile.at_least(mr["all_from"]):
        return True
    listed = any(in_versions(vt, e["versions"]) and architecture in e["architectures"]
                 for e in mr["default_architectures"])
    rule = next((e for e in mr["default_rules"] if in_versions(vt, e["versions"])), None)
    if rule is None:
        return False
    hybrid = has_state and not attention_free
    if rule["rule"] == "listed_dense_unquantized":
        return listed and not moe and not quantized
    if rule["rule"] == "listed":
        return listed
    # listed_or_dense
    if attention_free or (hybrid and not (rule["hybrid"] == "listed" and listed)):
        return False
    return listed or not moe


@cache
def model_runner_v2_profiles_cudagraphs(profile: Profile) -> bool:
    return profile.at_least(_profiles()[0]["model_runner_v2"]["cudagraph_profiled_from"])


@cache
def model_runner_v2_copies_logits(profile: Profile) -> bool:
    """Whether the V2 runner's profile sample makes a float32 copy of the logits (up to 0.27)."""
    return not profile.at_least(_profiles()[0]["model_runner_v2"]["sampler_fp32_copy_until"])


def usage_line_logged(profile: Profile) -> bool:
    """Whether V1 prints its "Actual usage is ..." line at the default log level (vllm_profiles.json usage_line)."""
    return profile.engine == "v1" and any(
        profile.at_least(lo) and profile.version_tuple <= parse_version(hi)
        for lo, hi in _profiles()[0]["usage_line"]["info"])


def moe_workspace_persistent(profile: Profile) -> bool:
    """Whether the fused-MoE workspace outlives the forward pass (V1 from 0.11: shared resizable buffers)."""
    return profile.engine == "v1" and profile.at_least(_profiles()[0]["moe_workspace_persistent"]["from"])


def moe_modular_kernel(profile: Profile) -> bool:
    """Whether the unquantized MoE path runs the modular kernel's TritonExperts (V1 from 0.14), not fused_experts."""
    return profile.engine == "v1" and profile.at_least(_profiles()[0]["fused_moe_workspace"]["modular_from"])


def profile_rules(section: str) -> dict:
    """A section of vllm_profiles.json (read once, with the profiles)."""
    return _profiles()[0][section]


def flashinfer_sampler(profile: Profile, env: bool | None) -> bool:
    """Whether a V1 start-up samples its profile batch with FlashInfer's top-k/top-p kernels, where the profile's
    own sampler (sort-based or calibrated) would not say so: where VLLM_USE_FLASHINFER_SAMPLER=1 opts in (0.8-0.20;
    on 0.8-0.11.0 that stands for "flashinfer is installed", which turns it on there). Unset, gpuplan takes the
    sort path: 0.8-0.11.0 use FlashInfer only if it is installed (flashinfer_if_installed)."""
    fi = _profiles()[0]["flashinfer_sampler"]
    if profile.engine != "v1" or not env:
        return False
    return profile.at_least(fi["opt_in_from"]) and not profile.at_least(fi["opt_in_until"])


def flashinfer_if_installed(profile: Profile) -> bool:
    """Whether this release samples with FlashInfer by default wherever flashinfer is importable (0.8-0.11.0 V1):
    the estimate then depends on the install, which gpuplan cannot see."""
    fi = _profiles()[0]["flashinfer_sampler"]
    return profile.engine == "v1" and profile.at_least(fi["when_installed_from"]) and \
        not profile.at_least(fi["when_installed_until"])


def tokens_formula(profile: Profile) -> str:
    """How the profile's vLLM computes the logged "GPU KV cache size: N tokens" (kv.kv_report), with a patch release
    that changed it inside a profile's range (tokens_x_len_from: 0.20.1 took 0.21's max_concurrency x max_model_len)."""
    since = profile.flags.get("tokens_x_len_from")
    return "concurrency_x_len" if since and profile.at_least(since) else profile.tokens_formula

