"""A vLLM release older than a model's architecture cannot serve it natively: the estimate says so.

src/gpuplan/data/vllm_added_architectures.json is read from the release wheels' model registries by
tools/vllm/first_native_release.py.
"""

from __future__ import annotations

from gpuplan.catalog import find_model
from gpuplan.datafiles import data_json
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.engines.vllm.profiles import parse_version
from gpuplan.model.adapters import build_spec

H100 = dict(gpu_name="H100", gpu_memory_bytes=85_029_158_912)


def _warnings(model: str, version: str, **dep) -> tuple[str, ...]:
    spec = build_spec(find_model(model).hf_config, model)
    return estimate(spec, Deployment(**{**H100, "vllm_version": version, **dep})).warnings


def test_qwen3_next_on_vllm_0_10_1_is_flagged_and_on_0_10_2_is_not() -> None:
    old = _warnings("Qwen/Qwen3-Next-80B-A3B-Instruct", "0.10.1", tensor_parallel_size=4, max_model_len=32768)
    assert any("no implementation of Qwen3NextForCausalLM" in w and "--vllm-version 0.10.2" in w for w in old)
    new = _warnings("Qwen/Qwen3-Next-80B-A3B-Instruct", "0.10.2", tensor_parallel_size=4, max_model_len=32768)
    assert not any("no implementation" in w for w in new)


def test_llama_is_never_flagged() -> None:
    assert not any("no implementation" in w for w in _warnings("meta-llama/Llama-3.1-8B", "0.6.0"))


def test_every_added_architecture_arrives_between_two_read_wheels() -> None:
    data = data_json("vllm_added_architectures.json")
    wheels = [parse_version(v) for v in data["wheels"]]
    assert wheels == sorted(wheels) and len(wheels) > 30
    for arch, span in data["added"].items():
        lo, hi = parse_version(span["absent_in"]), parse_version(span["first_seen"])
        assert lo < hi and wheels.index(hi) == wheels.index(lo) + 1, arch
