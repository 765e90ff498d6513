"""Whether vLLM builds a multimodal model's encoder towers, on which pipeline stages, and whether it profiles them.

A text-only start-up is one where every modality the model serves has --limit-mm-per-prompt 0, or
--language-model-only (0.17+) is set. Then:
- the V1 engine runs the model as text only (MultiModalRegistry.supports_multimodal_inputs, 0.10.1+): no encoder
  pass and no encoder cache in the profile run;
- classes that build their towers under a limit guard (0.10.1 - 0.14) or inside _mark_tower_model (0.15+) build no
  tower weights at all: "Model loading took" drops by the tower and projector.
Under pipeline parallelism vLLM builds towers on every stage (they sit outside make_layers), except that from 0.33
_mark_tower_model leaves them off the later stages when Model Runner V2 runs.

With --mm-encoder-tp-mode data (0.10.2+) a class that supports it keeps its towers' full weights on every TP rank
and gives each rank a share of the images; other classes fall back to splitting the weights ("weights").

The per-architecture facts are data/vllm_towers.json, read from each wheel by tools/vllm/tower_marks.py.
"""

from __future__ import annotations

from functools import cache

from ...datafiles import data_json
from ...deployment import Deployment
from ...errors import GpuplanError
from ...model.spec import ModelSpec
from .profiles import Profile, parse_version

ALL_MODALITIES = ("image", "video", "audio")
LANGUAGE_MODEL_ONLY_FROM = "0.17.0"  # MultiModalConfig.language_model_only
TEXT_ONLY_PROFILE_FROM = "0.10.1"  # MultiModalRegistry.supports_multimodal_inputs checks the limits
ENCODER_TP_MODES = ("weights", "data")
ENCODER_TP_MODE_FROM = "0.10.2"  # MultiModalConfig.mm_encoder_tp_mode


@cache
def _data() -> dict:
    return data_json("vllm_towers.json")


def _range_at(architecture: str, vt: tuple[int, ...], table: str = "architectures") -> list | None:
    for found in _data()[table].get(architecture, ()):
        lo, until = found[:2]
        if parse_version(lo) <= vt and (until is None or vt < parse_version(until)):
            return found
    return None


def encoder_data_parallel(spec: ModelSpec, dep: Deployment, profile: Profile, tp: int,
                          warnings: list[str]) -> bool:
    """Whether the towers run data-parallel over the TP ranks: whole on each GPU, each taking a share of the items."""
    mode = dep.mm_encoder_tp_mode
    if mode not in ENCODER_TP_MODES:
        raise GpuplanError("mm_encoder_tp_mode", f"unknown mode {mode!r}", accepted=ENCODER_TP_MODES)
    if mode == "weights":
        return False
    if not profile.at_least(ENCODER_TP_MODE_FROM):
        raise GpuplanError("mm_encoder_tp_mode", f"vLLM {profile.version} has no --mm-encoder-tp-mode: it came in "
                           f"{ENCODER_TP_MODE_FROM}", accepted=["weights", "a vllm_version of 0.10.2 or later"])
    if spec.multimodal is None:
        return False
    if _range_at(spec.architecture, profile.version_tuple, "encoder_tp_data") is None:
        warnings.append(f"--mm-encoder-tp-mode data: vLLM {profile.version}'s {spec.architecture} does not support "
                        "it and falls back to splitting the tower's weights over TP")
        return False
    return tp > 1


def modalities(architecture: str) -> tuple[str, ...]:
    """The modalities the model's towers serve, as its vLLM class names them (all three when not known)."""
    ranges = _data()["architectures"].get(architecture)
    return tuple(ranges[-1][3]) if ranges else ALL_MODALITIES


def text_only(spec: ModelSpec, dep: Deployment, profile: Profile) -> bool:
    """Whether this start-up turns every modality of a multimodal model off."""
    if dep.language_model_only and not profile.at_least(LANGUAGE_MODEL_ONLY_FROM):
        raise GpuplanError("language_model_only", f"vLLM {profile.version} has no --language-model-only: it came "
                           f"in {LANGUAGE_MODEL_ONLY_FROM}; set limit_mm_per_prompt to 0 for "
                           f"{', '.join(modalities(spec.architecture))} instead",
                           accepted=["a vllm_version of 0.17.0 or later", "false"])
    return spec.multimodal is not None and _modalities_off(spec, dep)


def _modalities_off(spec: ModelSpec, dep: Deployment) -> bool:
    """--language-model-only, or --limit-mm-per-prompt 0 for every modality the model serves."""
    if dep.language_model_only:
        return True
    limits = dict(dep.limit_mm_per_prompt)
    return all(limits.get(m) == 0 for m in modalities(spec.architecture))


def takes_multimodal_inputs(spec: ModelSpec, dep: Deployment) -> bool:
    """Whether vLLM runs this start-up with multimodal inputs (ModelConfig.supports_multimodal_inputs, 0.10.1+): a
    class with encoder towers and some modality left on. Its model runner then feeds the language model input
    embeddings, never token ids."""
    towered = (spec.multimodal is not None or spec.architecture in _data()["architectures"]
               or any(t.kind in ("vision", "audio") for t in spec.extra))
    return towered and not _modalities_off(spec, dep)


def profiles_text_only(profile: Profile, off: bool) -> bool:
    """Whether the profile run skips the encoder: V1 from 0.10.1 on a text-only start-up (`off`: text_only())."""
    return off and profile.engine == "v1" and profile.at_least(TEXT_ONLY_PROFILE_FROM)


def placement(spec: ModelSpec, profile: Profile, *, off: bool, pp: int, runner_v2: bool) -> str:
    """Where the tower and projector weights live: "none", "first" (stage) or "every" (stage).
    `off`: the start-up is text only (text_only())."""
    if spec.multimodal is None:
        return "first"
    found = _range_at(spec.architecture, profile.version_tuple)
    if found is not None and off:
        return "none"
    if pp == 1:
        return "first"
    later_skip = _data()["later_pp_stages_skip_marked_towers_mrv2_from"]
    if found is not None and found[2] == "marked" and runner_v2 and later_skip and profile.at_least(later_skip):
        return "first"
    return "every"
