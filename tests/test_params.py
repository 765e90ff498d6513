"""Parameter inventories equal the exact counts of shared/data/models (INDEX.md), via the catalog copies (one
exception, DeepSeek-V2-Lite, explained below)."""

from __future__ import annotations

import pytest

from gpuplan.catalog import list_models
from gpuplan.model.adapters import build_spec

EXACT = [e for e in list_models() if e.exact and e.total_params]


@pytest.mark.parametrize("entry", EXACT, ids=[e.id for e in EXACT])
def test_text_parameter_count_is_exact(entry):
    spec = build_spec(entry.hf_config, entry.id)
    counts = spec.param_counts()
    # The reference counts are for the text model of multimodal repos (INDEX.md).
    text = counts["total"] - counts.get("vision", 0) - counts.get("projector", 0)
    # transformers 4.57 (INDEX.md's method) keeps DeepSeek's router e_score_correction_bias as a buffer;
    # vLLM loads it as a parameter, and so do we (Nemotron-H's adapter already leaves it out of the count).
    buffers = sum(t.numel for layer in spec.layers for t in layer.tensors
                  if t.name.endswith("e_score_correction_bias") and t.in_checkpoint)
    assert text - buffers == entry.total_params


def test_deepseek_v3_count_equals_the_oracles():
    e = next(x for x in list_models() if x.id == "deepseek-ai/DeepSeek-V3")
    assert build_spec(e.hf_config).total_params == 671_026_419_200  # count_params.py, 61 layers


def test_deepseek_v2_lite_has_no_query_lora_and_index_counted_a_config_that_lost_the_null():
    """DeepSeek-V2-Lite projects queries directly ("q_lora_rank": null): 15,706,484,224 parameters, the published
    checkpoint's count. INDEX.md's 15,748,993,024 is transformers' count for a recorded copy of config.json that
    dropped the null, so DeepseekV2Config filled in q_lora_rank 1536 (27 layers x (1536 x 2048 + 3072 x 1536 + 1536
    - 3072 x 2048) = 42,508,800 more); gpuplan reads an absent key the same way."""
    e = next(x for x in list_models() if x.id == "deepseek-ai/DeepSeek-V2-Lite")
    assert build_spec(e.hf_config).total_params == 15_706_484_224
    lost = {k: v for k, v in e.hf_config.items() if k != "q_lora_rank"}
    assert build_spec(lost).total_params == 15_748_993_024 == 15_706_484_224 + 27 * (
        1536 * 2048 + 3072 * 1536 + 1536 - 3072 * 2048)


def test_llama4_scout_with_its_vision_tower_equals_transformers_full_count():
    e = next(x for x in list_models() if x.id == "meta-llama/Llama-4-Scout-17B-16E")
    assert build_spec(e.hf_config).total_params == 108_641_793_536  # count_params.py (shared/tools/vllm-oracle)


def test_packed_awq_ints_are_never_counted_as_parameters():
    e = next(x for x in list_models() if x.id == "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4")
    assert build_spec(e.hf_config).total_params == 70_553_706_496
