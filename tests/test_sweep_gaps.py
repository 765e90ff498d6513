"""Sweep gaps of popular vLLM families (tools/oracle/sweep_defaults.py vs transformers 5.23's meta-device counts).

Configs: transformers 5.23's default configs (tests/fixtures/oracle/families/sweep_gaps.json, hf_params counted with
AutoModelForImageTextToText on the meta device) and the real Qwen3.5 / Qwen3-VL cases already in qwen3_5.json and
qwen3_vl_moe.json. What vLLM 0.33 builds is read in /tmp/vw/full33/vllm (files named per test).
"""

from __future__ import annotations

import json
from pathlib import Path

import gpuplan.model.adapters_vision_wrappers  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.model.adapters import build_spec

FAMILIES = Path(__file__).parent / "fixtures" / "oracle" / "families"
FX = json.loads((FAMILIES / "sweep_gaps.json").read_text())["models"]


def _case(key: str) -> dict:
    return FX[f"{key}/transformers-default"]


def _named(file: str, name: str) -> dict:
    return next(c for c in json.loads((FAMILIES / file).read_text())["cases"] if c["name"] == name)


def test_qwen3_5_sweep_gap_is_the_vision_tower_transformers_causal_lm_leaves_out() -> None:
    """The sweep builds AutoModelForCausalLM for qwen3_5, i.e. transformers' text-only Qwen3_5ForCausalLM
    (8,953,803,264). vLLM serves the composite config as Qwen3_5ForConditionalGeneration (qwen3_5.py), which
    builds Qwen3_VisionTransformer as well: depth 27 x hidden 1152, MLP 4304, merger 4608 -> 3584, no deepstack.
    column: 27 x (3*1152^2 + 3*1152 + 4304*1152 + 4304) + (4608^2 + 4608) = 262,814,832
    row:    27 x (1152^2 + 1152*4304) + 3584*4608                      = 186,218,496
    whole:  patch 3*2*16*16*1152 + 1152, positions 2304*1152, norms/biases   = 4,617,344
    -> 453,650,672, and 8,953,803,264 + 453,650,672 = 9,407,453,936, transformers' ImageTextToText count."""
    case = _named("qwen3_5.json", "transformers default qwen3_5")
    spec = build_spec(case["config"])
    assert spec.param_counts()["vision"] == 453_650_672
    assert spec.total_params == case["total_params"] == 9_407_453_936
    assert spec.total_params - spec.param_counts()["vision"] == 8_953_803_264


def test_qwen3_vl_moe_config_dumped_by_transformers_5_keeps_its_untied_lm_head() -> None:
    """transformers 5 writes text_config.tie_word_embeddings true (Qwen3VLMoeTextConfig's default) beside the
    top-level false. vLLM builds the language model through VllmConfig.with_hf_config, which copies the top-level
    value into the text config of a multimodal model (config/vllm.py): the LM head is untied, 151,936 x 2048 =
    311,164,928 parameters that gpuplan used to drop.
    Weights at TP=1: 14,052,070,640 x 2 B = 28,104,141,280, + the rotary cache 128,000 x 128 x 2 B = 32,768,000,
    + the deepstack buffer 3 levels x 2048 x 8,192 tokens x 2 B = 100,663,296 -> 28,237,572,576."""
    case = _case("qwen3_vl_moe")
    assert case["config"]["text_config"]["tie_word_embeddings"] is True
    assert case["config"]["tie_word_embeddings"] is False
    spec = build_spec(case["config"])
    assert spec.param_counts()["lm_head"] == 151_936 * 2048
    assert spec.total_params == case["hf_params"] == 14_052_070_640
    r = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=4096)
    assert r.weights_bytes == 28_104_141_280 + 32_768_000 + 100_663_296


def test_qwen3_vl_30b_a3b_with_a_text_config_that_says_tied_still_counts_its_lm_head() -> None:
    """The published Qwen3-VL-30B-A3B config with the transformers-5 dump's text_config.tie_word_embeddings true:
    vLLM reads the top-level false, so the count stays the published 31,070,754,032."""
    case = _named("qwen3_vl_moe.json", "Qwen/Qwen3-VL-30B-A3B-Instruct")
    cfg = {**case["config"], "text_config": {**case["config"]["text_config"], "tie_word_embeddings": True}}
    assert build_spec(cfg).total_params == case["total_params"] == 31_070_754_032


def test_llava_onevision_counts_its_siglip_tower_projector_and_image_newline() -> None:
    """llava_onevision.py: SigLIP up to vision_feature_layer -1 (all 26 layers) without the post LayerNorm
    (require_post_norm=False), a biased 2-layer projector from the 1152-wide features, an image_newline vector.
    per layer 4*(1152^2+1152) + (1152*4304+4304) + (4304*1152+1152) + 4*1152 = 15,239,504; x26 = 396,227,104;
    + patch conv 3*14*14*1152 + 1152 + positions 27^2*1152 = 1,518,336 -> tower 397,745,440;
    projector 1152*4096 + 4096^2 + 2*4096 + newline 4096 = 21,508,096.
    transformers also builds SigLIP's post LayerNorm: it counts 2 x 1152 = 2,304 more."""
    case = _case("llava_onevision")
    spec = build_spec(case["config"])
    assert not spec.generic
    assert spec.param_counts()["vision"] == 397_745_440
    assert spec.param_counts()["projector"] == 21_508_096
    assert spec.total_params == case["hf_params"] - 2 * 1152 == 12_469_099_808


def test_llava_next_video_builds_clip_to_the_second_last_layer_and_no_image_newline() -> None:
    """llava_next_video.py: CLIP up to vision_feature_layer -2 (23 of 24 layers, no post LayerNorm), the NeXT
    projector from 1024 to 4096 with biases, the pooler (no parameters), and no image_newline (video only).
    tower 23 x 12,596,224 + patch 3*14*14*1024 + class 1024 + positions 577*1024 + pre-LN 2048 = 290,909,184;
    projector 1024*4096 + 4096 + 4096^2 + 4096 = 20,979,712. transformers counts the 24th layer (12,596,224),
    the post LayerNorm (2,048) and an image_newline (4,096) more: 12,602,368."""
    case = _case("llava_next_video")
    spec = build_spec(case["config"])
    assert spec.param_counts()["vision"] == 290_909_184
    assert spec.param_counts()["projector"] == 20_979_712
    assert spec.total_params == case["hf_params"] - 12_602_368 == 7_050_304_512


def test_idefics3_and_smolvlm_weights_on_one_and_two_h100s_include_the_vision_model() -> None:
    """idefics3.py / smolvlm.py: Idefics2VisionTransformer (12 layers of 1152, MLP 3072, post LayerNorm), the
    pixel-shuffle connector (4608 -> 4096, no bias, replicated) and the Llama text model; the sweep's -2.48% was
    the missing 152,395,776 + 18,874,368 = 171,270,144 parameters.
    TP=1: 6,909,685,760 x 2 B + rotary cache 2048 x 128 x 2 B (524,288) = 13,819,895,808.
    TP=2 per GPU: text 2 x 16,000 x 4096 (embed + head) + (2,147,483,648 + 4,328,521,728) / 2 + norms 266,240
    = 3,369,340,928; tower column 90,321,408 / 2 + row 58,392,576 / 2 + whole 3,681,792 = 78,038,784;
    connector 18,874,368 -> 3,466,254,080 x 2 B + 524,288 = 6,933,032,448."""
    for mt in ("idefics3", "smolvlm"):
        case = _case(mt)
        spec = build_spec(case["config"])
        assert not spec.generic and spec.model_type == mt
        assert spec.total_params == case["hf_params"] == 6_909_685_760
        assert spec.param_counts()["vision"] == 152_395_776
        assert spec.param_counts()["projector"] == 18_874_368
        assert estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=2048).weights_bytes == 13_819_895_808
        assert estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=2048).weights_bytes == 6_933_032_448
