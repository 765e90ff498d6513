"""Pipeline and tensor parallelism refused or split the way vLLM does for models whose KV-cache layers are not
one per decoder layer (LongCat-Flash, looped decoders) and for classes without SupportsPP
(src/gpuplan/data/vllm_no_pipeline_parallel.json, read from the 0.33 wheel by tools/vllm/pp_support.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import GpuplanError
from gpuplan.model.adapters import build_spec

FAMILIES = Path(__file__).parent / "fixtures" / "oracle" / "families"


def _config(family: str, key: str) -> dict:
    return json.loads((FAMILIES / f"{family}.json").read_text())["models"][key]["config"]


def _on_h200(cfg: dict, **kw):
    return estimate(build_spec(cfg), Deployment(gpu_name="H200", gpu_memory_bytes=140 * 2**30, max_model_len=4096,
                                                 **kw))


def test_longcat_flash_on_three_stages_splits_its_28_decoder_layers_9_10_9() -> None:
    # vLLM's get_pp_indices gives the one extra layer to the middle stage; each decoder layer carries two MLA
    # caches, so the stages hold 18, 20 and 18 of gpuplan's KV-cache layers and never half a decoder layer.
    r = _on_h200(_config("longcat_flash", "longcat_flash/LongCat-Flash-Chat"), tensor_parallel_size=8,
                 pipeline_parallel_size=3)
    assert [tuple(st["layers"]) for st in r.per_stage] == [(0, 18), (18, 38), (38, 56)]
    assert r.per_stage[1]["weights_bytes"] > r.per_stage[0]["weights_bytes"] - 2 * 2**30  # the middle has a layer more


def test_longcat_flash_allows_a_stage_per_decoder_layer_and_no_more() -> None:
    cfg = _config("longcat_flash", "longcat_flash/LongCat-ShortCat")  # 2 decoder layers, 4 MLA caches
    assert _on_h200(cfg, pipeline_parallel_size=2).fits
    with pytest.raises(GpuplanError, match="3 stages for 2 layers"):
        _on_h200(cfg, pipeline_parallel_size=3)


@pytest.mark.parametrize("key", ["loop/iquest-coder-v1-40b-loop-instruct", "loop/hrm-text-1b"])
def test_looped_decoders_refuse_pipeline_parallelism_as_vllm_does(key: str) -> None:
    cfg = _config("loop", key)
    assert _on_h200(cfg).fits
    with pytest.raises(GpuplanError, match="does not support pipeline parallelism") as err:
        _on_h200(cfg, pipeline_parallel_size=2)
    assert err.value.field == "pipeline_parallel_size"


def test_plain_iquest_coder_is_a_llama_and_splits_over_stages() -> None:
    r = _on_h200(_config("loop", "loop/iquest-coder-v1-40b-base"), pipeline_parallel_size=2)
    assert [tuple(st["layers"]) for st in r.per_stage] == [(0, 40), (40, 80)]


def test_ring_25_linear_attention_refuses_more_gpus_than_its_norm_groups() -> None:
    # BailingMoeV2_5 normalises the linear attention's output in group_norm_size groups (4 in the class defaults)
    # and asserts the tensor-parallel size divides them.
    cfg = _config("bailing", "bailing_hybrid/ring-2.5-class-defaults")
    assert _on_h200(cfg, tensor_parallel_size=4).fits
    with pytest.raises(GpuplanError, match="group_norm_size") as err:
        _on_h200(cfg, tensor_parallel_size=8)
    assert err.value.field == "tensor_parallel_size"


def test_a_loop_checkpoint_relabelled_llama_is_still_sized_as_the_loop_vllm_runs() -> None:
    # vLLM chooses the class by architectures[0], whatever model_type says.
    cfg = _config("loop", "loop/iquest-coder-v1-40b-loop-instruct")
    relabelled = build_spec({**cfg, "model_type": "llama"})
    assert relabelled.attention_kinds == build_spec(cfg).attention_kinds == {"full": 80, "sliding_window": 80}


def _llama70b_on_two_h100s(env: tuple = ()):
    from gpuplan.api_python import estimate as api_estimate
    return api_estimate("meta-llama/Llama-3.1-70B", gpu="H100", pipeline_parallel_size=2, max_model_len=8192,
                        env=dict(env))


def test_an_explicit_layer_partition_moves_layers_and_the_kv_cache_follows_the_fuller_stage() -> None:
    """VLLM_PP_LAYER_PARTITION=38,42 puts two more 80-layer Llama decoder layers on the last stage: each is
    8192 x (2 x 8192 + 2 x 1024) attention + 3 x 8192 x 28672 MLP + two 8192 norms = 855,654,400 bf16 parameters
    (1.59 GiB), and the engine keeps the smaller stage's blocks, so the cache shrinks."""
    even = _llama70b_on_two_h100s()
    skewed = _llama70b_on_two_h100s((("VLLM_PP_LAYER_PARTITION", "38,42"),))
    assert [tuple(s["layers"]) for s in even.per_stage] == [(0, 40), (40, 80)]
    assert [tuple(s["layers"]) for s in skewed.per_stage] == [(0, 38), (38, 80)]
    layer = 8192 * (2 * 8192 + 2 * 1024) + 3 * 8192 * 28672 + 2 * 8192
    assert layer == 855_654_400
    assert skewed.per_stage[1]["weights_bytes"] - even.per_stage[1]["weights_bytes"] == 2 * layer * 2
    assert skewed.per_stage[0]["weights_bytes"] - even.per_stage[0]["weights_bytes"] == -2 * layer * 2
    assert skewed.kv_cache_tokens < even.kv_cache_tokens
    assert skewed.num_gpu_blocks == min(s["num_blocks"] for s in skewed.per_stage)


@pytest.mark.parametrize("raw", ["40,41", "80", "a,b", "0,80"])
def test_a_layer_partition_vllm_would_refuse_names_the_variable_and_an_accepted_split(raw: str) -> None:
    with pytest.raises(GpuplanError) as err:
        _llama70b_on_two_h100s((("VLLM_PP_LAYER_PARTITION", raw),))
    assert err.value.field == "env" and "VLLM_PP_LAYER_PARTITION" in str(err.value)
    assert "40,40" in err.value.accepted[0]
