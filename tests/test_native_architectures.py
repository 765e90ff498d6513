"""Is an architecture served by vLLM at all? When no release has a native implementation, the estimate says so.

src/gpuplan/data/vllm_native_architectures.json is read from the release wheels' model registries by
tools/vllm/native_architectures.py (ast, never an import), and, for architectures no wheel implements, from
transformers 5.23 with the same tool's --transformers pass. vLLM 0.33 (model_impl auto) hands such an architecture
to its Transformers modeling backend (model_executor/models/registry.py _try_resolve_transformers): the registry
raises "not supported" when the transformers class cannot switch to vLLM's attention, and the backend raises at
construction when a decoder layer does not call transformers' attention interface (models/transformers/base.py).

Configs: transformers' default configs (tests/fixtures/native_architectures/transformers_defaults.json; no
published config.json of these was found), built by gpuplan's generic-decoder fallback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.catalog import find_model
from gpuplan.datafiles import data_json
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.engines.vllm.profiles import never_native
from gpuplan.errors import UnservableDeployment
from gpuplan.model.adapters import build_spec

H100 = dict(gpu_name="H100", gpu_memory_bytes=85_029_158_912)
CONFIGS = json.loads((Path(__file__).parent / "fixtures" / "native_architectures" /
                      "transformers_defaults.json").read_text())["configs"]
NATIVE = data_json("vllm_native_architectures.json")
NO_NATIVE = "has a native implementation of"


def _estimate(config: dict, version: str = "0.33.0", **dep):
    return estimate(build_spec(config, "test"), Deployment(**{**H100, "vllm_version": version, "max_model_len": 4096,
                                                               **dep}))


def test_is_zamba_v1_served_by_vllm_0_33() -> None:
    """No: no wheel from 0.4.3 to 0.33.0 registers ZambaForCausalLM, and its Mamba layers do not call
    transformers' attention interface, which vLLM 0.33's Transformers backend refuses."""
    with pytest.raises(UnservableDeployment) as e:
        _estimate(CONFIGS["zamba"])
    msg = str(e.value)
    assert "cannot start ZambaForCausalLM" in msg and "from v0.4.3 to v0.33.0" in msg
    assert "attention interface" in msg and "transformers 5.23.0" in msg


def test_is_recurrent_gemma_served_by_vllm_0_33() -> None:
    with pytest.raises(UnservableDeployment, match="cannot start RecurrentGemmaForCausalLM"):
        _estimate(CONFIGS["recurrent_gemma"], tensor_parallel_size=2)


def test_a_zamba_config_without_architectures_is_refused_by_its_model_type() -> None:
    """A hand-trimmed config.json with no `architectures`: vLLM 0.33 fills it in from transformers' tables for the
    model_type (transformers_utils/config.py), so it meets Zamba's classes all the same; gpuplan checks the
    model_type's transformers class instead of letting the generic decoder size it silently."""
    config = {k: v for k, v in CONFIGS["zamba"].items() if k != "architectures"}
    with pytest.raises(UnservableDeployment, match="cannot start ZambaForCausalLM"):
        _estimate(config)


def test_a_llama_config_without_architectures_is_still_sized() -> None:
    llama = {k: v for k, v in find_model("meta-llama/Llama-3.1-8B").hf_config.items() if k != "architectures"}
    assert _estimate(llama).weights_bytes > 0


def test_zamba_v1_on_an_older_release_is_sized_but_flagged() -> None:
    """gpuplan read the Transformers-backend fallback of 0.33 only: 0.32 gets the warning, not a refusal."""
    r = _estimate(CONFIGS["zamba"], "0.32.0")
    note = next(w for w in r.warnings if NO_NATIVE in w)
    assert "ZambaForCausalLM" in note and "was not read" in note
    assert isinstance(r.fits, bool)


@pytest.mark.parametrize("key, arch", [("jetmoe", "JetMoeForCausalLM"), ("idefics", "IdeficsForVisionText2Text")])
def test_a_never_native_architecture_the_backend_may_run_gets_a_warning(key: str, arch: str) -> None:
    """JetMoe and Idefics (v1) pass the backend's checks as read: sized, with the warning; fits stays a memory
    answer."""
    r = _estimate(CONFIGS[key])
    note = next(w for w in r.warnings if NO_NATIVE in w)
    assert arch in note and "Transformers modeling backend" in note and "refuses it otherwise" in note
    assert isinstance(r.fits, bool) and r.kv_cache_tokens > 0


def test_llama_gets_no_such_warning() -> None:
    spec = build_spec(find_model("meta-llama/Llama-3.1-8B").hf_config, "meta-llama/Llama-3.1-8B")
    r = estimate(spec, Deployment(**H100, max_model_len=8192))
    assert not any(NO_NATIVE in w for w in r.warnings)


def test_zamba2_and_moved_architectures_are_native_somewhere() -> None:
    # Zamba2: native in 0.33; GPTNeoX: native until 0.31, on the Transformers-backend table since;
    # a reward-model suffix vLLM swaps back to its registered LlamaForCausalLM.
    for arch in ("Zamba2ForCausalLM", "LlamaForCausalLM", "GPTNeoXForCausalLM", "LlamaForRewardModeling"):
        assert never_native(arch) is None, arch
    assert never_native("ZambaForCausalLM") == ("0.4.3", "0.33.0")
    assert never_native("") is None


def test_native_list_agrees_with_the_added_and_removed_files() -> None:
    added = data_json("vllm_added_architectures.json")
    removed = data_json("vllm_removed_architectures.json")["last_native_release"]
    backend = data_json("vllm_transformers_backend.json")["backend"]
    native = set().union(*NATIVE["native"].values())
    # the added file was made from fewer wheels of the same span
    assert set(added["wheels"]) <= set(NATIVE["wheels"]) and added["wheels"][-1] == NATIVE["wheels"][-1]
    assert NATIVE["newest"] == NATIVE["wheels"][-1] == "0.33.0" and NATIVE["wheels"][0] == added["wheels"][0]
    assert {"LlamaForCausalLM", "Zamba2ForCausalLM"} <= set(NATIVE["native"]["_TEXT_GENERATION_MODELS"])
    assert len(NATIVE["native"]["_MULTIMODAL_MODELS"]) > 100
    # every added architecture is still in 0.33, or was removed, moved to the backend or a plugin, or dropped
    # silently (earlier_only)
    elsewhere = set(removed) | set(NATIVE["earlier_only"]) | set(NATIVE["out_of_tree"]) | set(backend)
    for arch in added["added"]:
        assert (arch in native) != (arch in elsewhere), arch
    assert not native & set(removed)
    # the backend verdicts concern architectures no wheel read here registers
    for arch, why in NATIVE["transformers_backend"].items():
        assert never_native(arch) is not None and why["refused"] in ("incompatible", "non_attention_layers"), arch
