"""Vision-language wrappers gpuplan used to size as their text model alone (adapters_vision_wrappers.py): Kimi K2.5,
PaliGemma 2, Command A Vision (cohere2_vision), Phi-3-Vision (phi3_v) and LFM2-VL, with their towers as vLLM 0.33
builds them (tests/fixtures/oracle/families/vision_wrappers.json; its _meta says where each config comes from:
the PaliGemma 2 and Command A Vision ones are reconstructed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_vision_wrappers  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "vision_wrappers.json").read_text())
KIMI = FX["models"]["kimi_k25/Kimi-K2.5-INT4"]
PALI = FX["models"]["paligemma/paligemma2-3b-pt-224"]
COHERE = FX["models"]["cohere2_vision/command-a-vision-07-2025"]
LFM = FX["models"]["lfm2-vl/LFM2-VL-450M"]
PHI = FX["models"]["phi3_v/Phi-3-vision-128k-instruct"]


def _spec(entry: dict, name: str):
    return build_spec(json.loads(json.dumps(entry["config"])), name)


def _tower_bytes(r) -> dict:
    by = dict(r.per_stage[0]["weights_by_kind"])
    return {k: by.get(k, 0) for k in ("vision", "projector")}


def _tower_params(spec) -> dict:
    return {k: sum(t.numel for t in spec.extra if t.kind == k and t.in_checkpoint) for k in ("vision", "projector")}


# SigLIP-so400m (1152 wide, MLP 4304, 27 layers) as vLLM splits it: per layer qkv 3 x 1152^2 + 3 x 1152 and fc1
# 4304 x 1152 + 4304 by output (8,947,280), out_proj 1152^2 and fc2 1152 x 4304 by input (6,285,312); their two
# biases and two LayerNorms whole (6 x 1152 = 6,912). MoonViT3d's blocks have the same shapes.
SO400M_COLUMN, SO400M_ROW, SO400M_WHOLE_LAYERS = 27 * 8_947_280, 27 * 6_285_312, 27 * 6_912


# --------------------------------------------------------------------------------------------------- Kimi K2.5

def test_kimi_k25_counts_moonvit3d_and_its_projector_like_transformers_less_the_router_bias_buffers() -> None:
    """MoonViT3d: the blocks above, patch Conv2d 3 x 14 x 14 x 1152 + 1152, a 64 x 64 x 1152 position table, a final
    LayerNorm 2 x 1152 = 416,866,032; patch-merger projector: pre LayerNorm 2 x 1152, linear_1 4608^2 + 4608,
    linear_2 7168 x 4608 + 7168 = 54,277,888 (the checkpoint's listing holds exactly these shapes).
    transformers makes DeepseekV3's e_score_correction_bias a buffer: 60 MoE layers x 384 = 23,040 fewer."""
    spec = _spec(KIMI, "moonshotai/Kimi-K2.5")
    assert spec.architecture == "KimiK25ForConditionalGeneration" and not spec.generic and not spec.notes
    tower = SO400M_COLUMN + SO400M_ROW + SO400M_WHOLE_LAYERS + 678_528 + 64 * 64 * 1152 + 2304
    assert _tower_params(spec) == {"vision": tower, "projector": 2304 + 4608 * 4608 + 4608 + 7168 * 4608 + 7168}
    assert tower == KIMI["hf_by_category"]["vision"] == 416_866_032
    assert spec.total_params - KIMI["hf_params"] == 60 * 384 == 23_040


def test_kimi_k25_int4_quantizes_only_the_text_experts_and_keeps_the_tower_bf16() -> None:
    """The top-level and text_config quantization_config is compressed-tensors W4A16 (group 32) whose ignore list
    keeps attention, shared experts, the dense MLP and lm_head bf16; vLLM hands the tower and projector no quant
    config at all. Tower per GPU: TP=1 (416,866,032 + time_weight 4 x 1152) x 2 = 833,741,280 B and the projector
    54,277,888 x 2 = 108,555,776 B; TP=2 splits the column / row parts: (120,788,280 + 84,851,712 + 5,586,048)
    x 2 + 9,216 = 422,461,296 B, the projector (ReplicatedLinear) stays whole."""
    spec = _spec(KIMI, "moonshotai/Kimi-K2.5")
    assert spec.quant is not None and spec.quant.method == "compressed-tensors" and spec.quant.bits == 4
    one = estimate(spec, gpu="H200", tensor_parallel_size=1, max_model_len=32768)
    two = estimate(spec, gpu="H200", tensor_parallel_size=2, max_model_len=32768)
    assert _tower_bytes(one) == {"vision": 833_741_280, "projector": 108_555_776}
    assert _tower_bytes(two) == {"vision": 422_461_296, "projector": 108_555_776}
    by = dict(one.per_stage[0]["weights_by_kind"])
    # the routed experts are the only INT4 part: well under half their 1,014,686,023,680 bf16 parameters' bytes
    assert by["experts"] < 1_014_686_023_680 * 2 // 3
    assert by["attention"] == 2 * sum(t.numel for t in spec.layers[5].tensors if t.kind == "attention") * 61


def test_kimi_k25_int4_on_8_h200s_at_128k_fits_and_language_model_only_drops_the_tower() -> None:
    """Kimi K2.5 INT4 on 8 H200s at 128K? MLA caches 512 + 64 = 576 values a token in each of 61 layers:
    61 x 576 x 2 B = 70,272 B a token. The tower per rank at TP=8: (30,197,070 + 21,212,928 + 5,586,048) x 2 +
    9,216 = 114,001,308 B, projector 108,555,776 B: 222,557,084 B that --language-model-only gives back."""
    spec = _spec(KIMI, "moonshotai/Kimi-K2.5")
    full = estimate(spec, gpu="H200", tensor_parallel_size=8, max_model_len=131072)
    text = estimate(spec, gpu="H200", tensor_parallel_size=8, max_model_len=131072, language_model_only=True)
    assert full.fits and full.kv.kv_cache_tokens >= 131072
    assert full.kv.bytes_per_block % (61 * 576 * 2) == 0
    assert _tower_bytes(full) == {"vision": 114_001_308, "projector": 108_555_776}
    assert full.weights_bytes - text.weights_bytes == 222_557_084
    assert _tower_bytes(text) == {"vision": 0, "projector": 0}
    assert text.kv.kv_cache_tokens > full.kv.kv_cache_tokens


def test_kimi_k25_at_tp32_keeps_its_16_head_tower_whole_on_every_gpu() -> None:
    """32 does not divide MoonViT3d's 16 heads, so is_vit_use_data_parallel(16) falls back to data parallelism and
    its blocks are built with disable_tp (kimi_k25_vit.py): each GPU holds the TP=1 tower, 833,741,280 B, while
    the 64-head text model still splits 32 ways (and Kimi-VL's MoonViT, which does not pass its head count, has no
    such fallback)."""
    spec = _spec(KIMI, "moonshotai/Kimi-K2.5")
    r = estimate(spec, gpu="H200", tensor_parallel_size=32, max_model_len=32768)
    assert _tower_bytes(r) == {"vision": 833_741_280, "projector": 108_555_776}


# ---------------------------------------------------------------------------------------------------- PaliGemma 2

def test_paligemma2_3b_matches_transformers() -> None:
    """SigLIP at 224 px / patch 14 (256 positions, as num_image_tokens says; gpuplan's siglip defaults would say
    896): the blocks above + patch Conv2d 678,528 + positions 256 x 1152 + post LayerNorm 2304 = 412,442,352;
    projector nn.Linear 1152 -> 2304 with bias = 2,656,512; Gemma-2 2B text, tied."""
    spec = _spec(PALI, "google/paligemma2-3b-pt-224")
    assert spec.architecture == "PaliGemmaForConditionalGeneration" and spec.tie_word_embeddings
    assert _tower_params(spec) == {"vision": SO400M_COLUMN + SO400M_ROW + SO400M_WHOLE_LAYERS + 678_528
                                   + 256 * 1152 + 2304, "projector": 2304 * 1152 + 2304}
    assert _tower_params(spec)["vision"] == PALI["hf_by_category"]["vision"] == 412_442_352
    assert spec.total_params == PALI["hf_params"] == 3_032_242_416
    assert spec.max_position_embeddings == 8192  # transformers' Gemma2Config default, which vLLM reads


def test_paligemma2_3b_weights_at_tp1_and_tp2_by_hand() -> None:
    """bf16. TP=1: 3,032,242,416 x 2 + position_ids 256 x 8 B + one rotary cache 8192 x 256 x 2 B =
    6,068,681,184 B. TP=2 splits the tower's qkv/fc1 (column) and out_proj/fc2 weights (row):
    (120,788,280 + 84,851,712 + 1,162,368) x 2 + 2,048 = 413,606,768 B of tower per rank; the projector, a plain
    nn.Linear, stays whole (5,313,024 B)."""
    spec = _spec(PALI, "google/paligemma2-3b-pt-224")
    one = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=8192)
    two = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=8192)
    assert one.weights_bytes == 3_032_242_416 * 2 + 2048 + 8192 * 256 * 2 == 6_068_681_184
    assert _tower_bytes(one) == {"vision": 412_442_352 * 2 + 2048, "projector": 5_313_024}
    assert _tower_bytes(two) == {"vision": 413_606_768, "projector": 5_313_024}


def test_paligemma2_3b_on_one_t4_runs_in_fp16_and_text_only_drops_830_mb() -> None:
    """PaliGemma2-3B on one T4 (16 GB, no bf16: vLLM falls back to fp16) at 8K? Gemma-2 KV: 26 layers x 2 x 4 KV
    heads x 256 x 2 B = 106,496 B a token; the sliding layers keep only 4096 tokens' worth. Fits; text only frees
    the tower 824,886,752 + projector 5,313,024 B."""
    spec = _spec(PALI, "google/paligemma2-3b-pt-224")
    full = estimate(spec, gpu="T4", max_model_len=8192)
    text = estimate(spec, gpu="T4", max_model_len=8192, language_model_only=True)
    assert full.dtype == "float16" and full.fits
    assert full.weights_bytes - text.weights_bytes == 824_886_752 + 5_313_024
    assert text.kv.kv_cache_tokens > full.kv.kv_cache_tokens >= 8192


def test_paligemma_refuses_a_text_model_vllm_does_not_pick() -> None:
    cfg = json.loads(json.dumps(PALI["config"]))
    cfg["text_config"]["model_type"] = "llama"
    with pytest.raises(ConfigError):
        build_spec(cfg, "bad")


# ------------------------------------------------------------------------------------------- Command A Vision

def test_command_a_vision_matches_transformers() -> None:
    """SigLIP at 512 px / patch 16: 1024 positions, patch Conv2d 3 x 16 x 16 x 1152 + 1152 = 885,888, so the tower
    is 413,534,448; pixel-shuffle projector: linear_1 (4 x 1152 -> 36864) 169,906,176 + linear_2 (18432 -> 12288)
    226,504,704 = 396,410,880. vLLM builds no pooling head (neither does transformers with vision_use_head false)."""
    spec = _spec(COHERE, "CohereLabs/command-a-vision-07-2025")
    assert spec.architecture == "Cohere2VisionForConditionalGeneration"
    assert _tower_params(spec) == {"vision": SO400M_COLUMN + SO400M_ROW + SO400M_WHOLE_LAYERS + 885_888
                                   + 1024 * 1152 + 2304, "projector": 169_906_176 + 226_504_704}
    assert _tower_params(spec) == {"vision": 413_534_448, "projector": 396_410_880}
    assert spec.total_params == COHERE["hf_params"] == 111_867_525_360


def test_command_a_vision_on_2_h100s_does_not_fit_and_4_do() -> None:
    """Command A Vision on 2 H100s? 111.9B bf16 parameters: TP=2 leaves 111,904,153,456 B a GPU, more than an H100
    holds, tower or not. Tower per rank at TP=2: (120,788,280 + 84,851,712 + 2,254,464) x 2 + position_ids 8,192 =
    415,797,104 B; projector linear_1 halves (84,953,088) and linear_2's weight (113,246,208) split, its bias whole:
    (84,953,088 + 113,246,208 + 12,288) x 2 = 396,423,168 B. On 4 H100s it starts at 32K."""
    spec = _spec(COHERE, "CohereLabs/command-a-vision-07-2025")
    two = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    assert not two.fits and two.weights_bytes == 111_904_153_456
    assert _tower_bytes(two) == {"vision": 415_797_104, "projector": 396_423_168}
    four = estimate(spec, gpu="H100", tensor_parallel_size=4, max_model_len=32768)
    assert four.fits
    text = estimate(spec, gpu="H100", tensor_parallel_size=4, max_model_len=32768, language_model_only=True)
    assert _tower_bytes(text) == {"vision": 0, "projector": 0}
    assert four.weights_bytes - text.weights_bytes == sum(_tower_bytes(four).values())


# ------------------------------------------------------------------------------------------------ Phi-3-Vision

def test_phi3_vision_is_phi3_mini_plus_23_clip_layers_and_the_hd_projection() -> None:
    """Text (Phi-3-mini layout): embed and lm_head 2 x 32064 x 3072, 32 x (qkv 3 x 3072^2, o 3072^2, gate_up
    2 x 8192 x 3072, down 3072 x 8192, two norms) = 32 x 113,252,352, final norm = 3,821,079,552.
    CLIP ViT-L/14-336 up to layer_idx -2 = 23 layers x (7,347,200 column + 5,242,880 row + 6,144 whole), class
    embedding 1024, bias-free patch Conv2d 602,112, positions 577 x 1024, pre LayerNorm 2048, no post LayerNorm =
    290,909,184; glb_GN + sub_GN 2 x 4096, img_projection 4096 -> 3072 -> 3072 with biases = 22,034,432.
    The checkpoint (remote-code model) also holds CLIP's 24th layer and post LayerNorm, 12,598,272 more, which
    vLLM never builds."""
    spec = _spec(PHI, "microsoft/Phi-3-vision-128k-instruct")
    assert spec.architecture == "Phi3VForCausalLM" and spec.model_type == "phi3_v" and not spec.generic
    tower = 23 * (7_347_200 + 5_242_880 + 6_144) + 1024 + 602_112 + 577 * 1024 + 2048
    proj = 2 * 4096 + 4096 * 3072 + 3072 + 3072 * 3072 + 3072
    assert _tower_params(spec) == {"vision": tower, "projector": proj} == {"vision": 290_909_184,
                                                                           "projector": 22_034_432}
    text = 2 * 32064 * 3072 + 32 * 113_252_352 + 3072
    assert spec.total_params == text + tower + proj == 4_134_023_168
    assert PHI["hf_params"] - spec.total_params == 7_347_200 + 5_242_880 + 6_144 + 2048 == 12_598_272


def test_phi3_vision_weights_at_tp1_and_tp2_by_hand() -> None:
    """TP=1 tower: 290,909,184 x 2 + position_ids 577 x 8 B = 581,822,984; TP=2: (168,985,600 / 2 + 120,586,240 / 2
    + 1,337,344) x 2 + 4,616 = 292,251,144; the HD projection (nn.Linear, nn.Parameter) is whole: 44,068,864."""
    spec = _spec(PHI, "microsoft/Phi-3-vision-128k-instruct")
    one = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=16384)
    two = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=16384)
    assert _tower_bytes(one) == {"vision": 581_822_984, "projector": 44_068_864}
    assert _tower_bytes(two) == {"vision": 292_251_144, "projector": 44_068_864}
    # totals: TP=1 4,134,023,168 x 2 + 4,616 + the LongRoPE ("su") cache, short and long concatenated,
    # (4096 + 131072) x 96 x 2 = 8,294,003,208; TP=2 text per rank
    # embed and lm_head 2 x 16032 x 3072, 32 x (qkv 3 x 1536 x 3072, o 3072 x 1536, gate_up 2 x 4096 x 3072,
    # down 3072 x 4096, norms 6,144) = 32 x 56,629,248, final norm 3072 = 1,910,639,616; + tower 146,123,264 +
    # projector 22,034,432 = 2,078,797,312 x 2 + 4,616 + 25,952,256 = 4,183,551,496
    rope = (4096 + 131072) * 96 * 2
    assert one.weights_bytes == 4_134_023_168 * 2 + 577 * 8 + rope == 8_294_003_208
    text2 = 2 * 16032 * 3072 + 32 * 56_629_248 + 3072
    assert two.weights_bytes == (text2 + 146_123_264 + 22_034_432) * 2 + 577 * 8 + rope == 4_183_551_496


def test_phi3_vision_on_one_l4_fits_16k_not_32k() -> None:
    """Phi-3.5-vision / Phi-3-vision on one L4 (24 GB)? Full attention, 32 layers x 2 x 32 heads x 96 x 2 B =
    393,216 B a token (6,291,456 a 16-token block). After 8.3 GB of weights the L4 holds about 32K tokens' KV:
    16K fits, the 32K start is refused (its KV needs 12 GiB), and even text-only it stays short of 32K."""
    spec = _spec(PHI, "microsoft/Phi-3-vision-128k-instruct")
    ok = estimate(spec, gpu="L4", max_model_len=16384)
    assert ok.fits and ok.kv.bytes_per_block == 16 * 32 * 2 * 32 * 96 * 2 == 6_291_456
    assert not estimate(spec, gpu="L4", max_model_len=32768).fits
    text = estimate(spec, gpu="L4", max_model_len=16384, language_model_only=True)
    assert ok.weights_bytes - text.weights_bytes == 581_822_984 + 44_068_864


def test_phi3_vision_refuses_a_config_without_the_hd_transform() -> None:
    cfg = json.loads(json.dumps(PHI["config"]))
    cfg["embd_layer"]["use_hd_transform"] = False
    with pytest.raises(ConfigError):
        build_spec(cfg, "bad")


# ----------------------------------------------------------------------------------------------------- LFM2-VL

def test_lfm2_vl_450m_matches_transformers() -> None:
    """SigLIP2-NaFlex base (768 wide, MLP 3072, 12 layers): per layer 4,134,144 column + 2,949,120 row + 4,608
    whole; patch Linear 768 x 768 + 768, 256 positions x 768, post LayerNorm 1536 = 85,843,200. Projector: LayerNorm
    over 4 x 768 (6,144), 3072 -> 2560 and 2560 -> 1024 with biases = 10,495,488. The published config says
    model_type "lfm2-vl" (transformers' is lfm2_vl): both are served."""
    spec = _spec(LFM, "LiquidAI/LFM2-VL-450M")
    assert spec.architecture == "Lfm2VlForConditionalGeneration" and spec.model_type == "lfm2-vl"
    tower = 12 * (4_134_144 + 2_949_120 + 4_608) + 768 * 768 + 768 + 256 * 768 + 1536
    assert _tower_params(spec) == {"vision": tower, "projector": 6144 + 3072 * 2560 + 2560 + 2560 * 1024 + 1024}
    assert tower == LFM["hf_by_category"]["vision"] == 85_843_200
    assert spec.total_params == LFM["hf_params"] == 450_822_656


def test_lfm2_vl_450m_weights_at_tp1_and_tp2_by_hand() -> None:
    """TP=1 tower 85,843,200 x 2 = 171,686,400 B; TP=2 (49,609,728 / 2 + 35,389,440 / 2 + 844,032) x 2 =
    86,687,232 B; the projector's ReplicatedLinears stay whole: 20,990,976 B."""
    spec = _spec(LFM, "LiquidAI/LFM2-VL-450M")
    one = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=32768)
    two = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    assert _tower_bytes(one) == {"vision": 171_686_400, "projector": 20_990_976}
    assert _tower_bytes(two) == {"vision": 86_687_232, "projector": 20_990_976}


def test_lfm2_vl_450m_on_one_t4_fits_its_128k_context() -> None:
    """LFM2-VL-450M on one T4 at 128K? Only 6 of its 16 layers attend: 6 x 2 x 8 KV heads x 64 x 2 B = 12,288 B a
    token (196,608 a block); the 10 short-conv layers keep a fixed state. The tower is 0.19 GB of the 0.9 GB."""
    spec = _spec(LFM, "LiquidAI/LFM2-VL-450M")
    r = estimate(spec, gpu="T4", max_model_len=128000)
    assert r.fits and r.kv.kv_cache_tokens >= 128000
    text = estimate(spec, gpu="T4", max_model_len=128000, language_model_only=True)
    assert r.weights_bytes - text.weights_bytes == 171_686_400 + 20_990_976
