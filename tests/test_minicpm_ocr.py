"""MiniCPM-V 4.6 / MiniCPM-OCR / MiniCPM-V 4.7 as vLLM 0.33 builds them (MiniCPMV4_6ForConditionalGeneration and its
two subclasses): vLLM's Qwen3.5 text model (Gated-DeltaNet + gated full attention) behind an Idefics2 (SigLIP2)
tower, a window-attention ViT merger and a 2x2 MLP merger (tests/fixtures/oracle/families/minicpm_ocr.json, config
sources inside). No vLLM 0.33 oracle exists: the KV numbers below are derived by hand from its source."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

import gpuplan.model.adapters_minicpm_ocr  # noqa: F401
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "minicpm_ocr.json").read_text())
MODELS = FX["models"]
V46 = MODELS["minicpmv4_6/MiniCPM-V-4.6"]
GiB = 2**30


def _v46(**changes):
    return build_spec({**V46["config"], **changes}, "openbmb/MiniCPM-V-4.6")


def _kv(spec, tp: int = 1):
    """vLLM 0.33's KV planning for a 10 GiB cache budget at max_model_len 8192 (block size left to vLLM)."""
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * GiB, tensor_parallel_size=tp, max_model_len=8192,
                     kv_cache_memory_bytes=10 * GiB)
    return estimate(spec, dep)


def test_minicpm_v46_holds_the_1_3b_parameters_of_its_checkpoint() -> None:
    # transformers' count of the published config equals the checkpoint's safetensors total: no MTP tensors ship
    spec = _v46()
    assert not spec.generic and spec.architecture == "MiniCPMV4_6ForConditionalGeneration"
    assert spec.total_params == V46["hf_params"] == V46["checkpoint_safetensors_params"] == 1_300_428_016
    assert spec.tie_word_embeddings and spec.extra_not_loaded == ()
    assert spec.attention_kinds == {"mamba": 18, "full": 6}


def test_minicpm_v46_vision_parts_are_the_siglip2_tower_the_vit_merger_and_the_merger() -> None:
    """Vision width h = 1152, MLP 4304, 27 layers, patch 14, image 980 (70 x 70 positions); text width 1024.
    vpm: 27 x (4h^2 + 4h + 2 x 4304h + 4304 + h + 4h) + conv 3 x 14^2 x h + h + 4900h + post-norm 2h = 417,792,240;
    vit_merger: qkv 3h^2 + 3h, out_proj h^2 + h, layer_norm1 2h, pre_norm 2 x 4h, linear_1 4h x 17216 + 17216,
    linear_2 17216 x h + h = 104,507,072; together 522,299,312 (transformers' vision_tower).
    merger: pre_norm 2 x 4608, linear_1 4608^2 + 4608, linear_2 4608 x 1024 + 1024 = 25,967,104."""
    counts = _v46().param_counts()
    assert counts["vision"] == 417_792_240 + 104_507_072 == 522_299_312
    assert counts["projector"] == 25_967_104


def test_minicpm_v46_weights_on_one_and_two_h100s() -> None:
    """TP=1, bf16: 2 x 1,300,428,016 = 2,600,856,032; the vocabulary padded to a multiple of 64 (248,094 -> 248,128:
    34 x 1024 x 2 = 69,632); A_log held in fp32 by vLLM (18 GDN layers x 16 heads x 2 more bytes = 576); the rotary
    cache 262,144 positions x 64 rotated dims x 2 = 33,554,432. Total 2,634,480,672.
    TP=2 per rank: attention (norms apart) 18 GDN layers x [((8192 + 32) x 1024 + 6144 x 4 + 16) / 2 x 2 + 8 x 4
    + 1024 x 2048 / 2 x 2] + 6 full layers x [(4096 + 2 x 512) x 1024 / 2 + 1024 x 2048 / 2] x 2 = 233,816,928
    (in_proj_qkvz + in_proj_ba, conv1d, dt_bias split by output; A_log fp32; out_proj / o_proj split by input);
    norms 55,552 x 2 = 111,104; MLP 24 x 3 x 3584 x 1024 / 2 x 2 = 264,241,152; tied embedding 124,064 x 1024 x 2
    = 254,083,072; tower split over its 16 heads: (245,561,328 column + 171,030,528 row) / 2 + 105,707,456 whole,
    x 2 = 628,006,768; merger whole 51,934,208; rotary 33,554,432. Total 1,465,747,664."""
    spec = _v46()
    one = estimate_on(spec, gpu="H100", tensor_parallel_size=1, max_model_len=32768)
    assert one.weights_bytes == 2 * 1_300_428_016 + 69_632 + 576 + 33_554_432 == 2_634_480_672
    two = estimate_on(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    assert two.weights_bytes == (233_816_928 + 111_104 + 264_241_152 + 254_083_072 + 628_006_768 + 51_934_208
                                 + 33_554_432) == 1_465_747_664


def test_minicpm_v46_towers_are_dropped_text_only_and_whole_in_encoder_data_mode() -> None:
    # vision 1,044,598,624 + merger 51,934,208 bytes at TP=1 are built inside the image tower mark
    spec = _v46()
    text = estimate_on(spec, gpu="H100", tensor_parallel_size=1, max_model_len=32768, language_model_only=True)
    assert text.weights_bytes == 2_634_480_672 - 1_044_598_624 - 51_934_208
    # --mm-encoder-tp-mode data (supports_encoder_tp_data): the tower is whole on each of the two ranks
    data = estimate_on(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768, mm_encoder_tp_mode="data")
    assert data.weights_bytes == 1_465_747_664 - 628_006_768 + 1_044_598_624


def test_minicpm_v46_kv_groups_pages_and_tokens_for_a_10_gib_budget() -> None:
    """vLLM 0.33, bf16, TP=1. No config hook for this architecture, so mamba_ssm_cache_dtype stays auto: the GDN
    state is bf16. Per linear layer: conv (4 - 1) x (2 x 16 x 128 + 16 x 128 = 6144) x 2 = 36,864 bytes + temporal
    16 x 128 x 128 x 2 = 524,288: 561,152. A full layer's token: 2 KV heads x 256 x (K + V) x 2 = 2,048 bytes.
    _align_hybrid_block_size: prefix caching on -> mamba_cache_mode align, the kernel block alignment lcm(16, GDN's
    64-token checkpoint) = 64, block = 64 x cdiv(561,152, 64 x 2,048) = 320; page 320 x 2,048 = 655,360 (the mamba
    page padded up to it). Groups of 6 layers: the 6 full layers, the 18 GDN layers in 3 -> 4 groups, 6 tensors of
    num_blocks pages: 10 GiB // 655,360 // 6 = 2,730 blocks (3,932,160 bytes each). A request at 8192 takes
    cdiv(8192, 320) = 26 full blocks + 3 groups x 3 align-mode states = 35 -> 2,730 / 35 = 78.0 x 8192 = 638,976
    tokens. At TP=2 one KV head and half the GDN heads: page 327,680, 5,461 blocks, 156.03x, 1,278,186 tokens."""
    r = _kv(_v46())
    assert (r.kv.block_size, r.kv.group_size, r.kv.num_groups) == (320, 6, 4)
    assert [(g.kind, g.num_layers, g.page_bytes) for g in r.kv.groups] == [("mamba", 18, 655_360),
                                                                          ("full", 6, 655_360)]
    assert r.kv.bytes_per_block == 6 * 655_360 == 3_932_160
    assert r.num_gpu_blocks == 10 * GiB // 655_360 // 6 == 2_730
    assert r.kv_cache_tokens == 2_730 * 8192 // 35 == 638_976
    two = _kv(_v46(), tp=2)
    assert (two.kv.block_size, two.kv.groups[0].page_bytes, two.num_gpu_blocks) == (320, 327_680, 5_461)
    assert two.kv_cache_tokens == int(5_461 / 35 * 8192) == 1_278_186


def test_minicpm_v46_gdn_state_is_bf16_where_plain_qwen3_5_reads_float32_from_its_config() -> None:
    # Same text config served as Qwen3_5ForCausalLM: its config hook applies mamba_ssm_dtype float32, temporal state
    # 1,048,576 bytes -> block 64 x cdiv(1,085,440, 131,072) = 576. With the state in bf16 the layouts are identical.
    qwen = build_spec({**V46["config"]["text_config"], "architectures": ["Qwen3_5ForCausalLM"]}, "qwen3.5-text")
    assert qwen.mamba_ssm_dtype == "float32" and _kv(qwen).kv.block_size == 576
    ours, same = _kv(_v46()).kv, _kv(replace(qwen, mamba_ssm_dtype=None)).kv
    assert (ours.block_size, ours.groups, ours.num_gpu_blocks) == (same.block_size, same.groups, same.num_gpu_blocks)


def test_only_minicpm_v46_drops_the_last_vision_layer_when_asked() -> None:
    # one Idefics2 layer at h = 1152: 4h^2 + 4h + 2 x 4304h + 4304 + h + 4h = 15,239,504 (transformers keeps it)
    assert _v46().total_params - _v46(drop_vision_last_layer=True).total_params == 15_239_504
    ocr = _v46(drop_vision_last_layer=True, model_type="minicpm_ocr",
               architectures=["MiniCPMOcrForConditionalGeneration"])
    assert ocr.total_params == 1_300_428_016  # MiniCPMOcrForConditionalGeneration keeps every layer


@pytest.mark.parametrize("key", ["minicpm_ocr/default", "minicpmv4_7/default"])
def test_transformers_default_configs_count_what_vllm_builds(key: str) -> None:
    m = MODELS[key]
    spec = build_spec(m["config"], key)
    assert spec.architecture == m["hf_model_class"]
    if key.startswith("minicpm_ocr"):
        # top-level tie_word_embeddings true, text_config false: transformers ties, vLLM (reading the text config
        # only, no with_hf_config for this class) builds its own 248,320 x 4,096 head
        assert not spec.tie_word_embeddings
        assert spec.total_params == m["hf_params"] + 248_320 * 4_096 == 9_111_202_816
    else:
        assert spec.total_params == m["hf_params"] == 9_111_202_816


def test_minicpm_ocr_default_kv_for_a_10_gib_budget() -> None:
    """4 KV heads x 256 x 2 x 2 = 4,096 bytes a token; GDN: conv 3 x (2 x 16 x 128 + 32 x 128) x 2 = 49,152 +
    temporal 32 x 128 x 128 x 2 = 1,048,576 -> block 64 x cdiv(1,097,728, 262,144) = 320, page 1,310,720; 8 full and
    24 GDN layers in groups of 8 -> 4 groups; 10 GiB // 1,310,720 // 8 = 1,024 blocks; 1,024 / 35 x 8192 tokens."""
    r = _kv(build_spec(MODELS["minicpm_ocr/default"]["config"]))
    assert (r.kv.block_size, r.kv.group_size, r.kv.num_groups, r.kv.groups[1].page_bytes) == (320, 8, 4, 1_310_720)
    assert r.num_gpu_blocks == 1_024 and r.kv_cache_tokens == int(1_024 / 35 * 8192) == 239_674


def test_profiled_image_is_the_largest_slice_grid() -> None:
    # 4.6: a 1120 x 10080 image, 9 x 1 slices of 448^2 at 16x (64 tokens each) + a 1344 x 168 overview (72) = 648;
    # OCR: 448 x 4032 at 4x: 9 x 256 + 1344 x 140 / 784 (240) = 2,544
    assert _v46().multimodal.tokens_per_item == 648
    assert build_spec(MODELS["minicpm_ocr/default"]["config"]).multimodal.tokens_per_item == 2_544
    assert _v46().multimodal.tp_heads == 16


@pytest.mark.parametrize("change, field", [({"merger_times": 2}, "merger_times"),
                                           ({"merge_kernel_size": [3, 3]}, "merge_kernel_size")])
def test_merger_shapes_vllm_cannot_load_are_refused(change: dict, field: str) -> None:
    with pytest.raises(ConfigError) as e:
        _v46(**change)
    assert e.value.field == field


def test_a_moe_text_model_is_refused() -> None:
    text = {**V46["config"]["text_config"], "model_type": "qwen3_5_moe_text"}
    with pytest.raises(ConfigError):
        _v46(text_config=text)


def test_does_minicpm_v46_serve_its_full_262k_context_on_one_h100() -> None:
    # Yes: 2.45 GiB of weights leave most of the card to the cache; a 262,144-token request takes
    # cdiv(262144, 320) = 820 full-attention blocks + 9 GDN state blocks, so dozens of them fit at once.
    r = estimate_on(_v46(), gpu="H100", tensor_parallel_size=1, max_model_len=262_144)
    assert r.fits
    assert r.kv.blocks_per_request == 820 + 9
    assert r.max_concurrency == pytest.approx(r.num_gpu_blocks / 829, abs=0.01)
    assert r.max_concurrency > 20
