"""Quantized vision towers, round 2: which tower Linears vLLM 0.33 builds with the model's quant_config, family by
family (read in vllm/model_executor/models/), and what that does to "Model loading took" under --quantization fp8.

Per-tensor FP8 (online --quantization fp8): a Linear is its fp8 bytes + 8 bytes (fp32 weight_scale and
input_scale); biases, norms, convolutions and position tables stay bf16 (2 bytes). Under compressed-tensors, FP8
or NVFP4 a tower Linear is quantized unless the ignore list names it; under AWQ / GPTQ / bitsandbytes and under an
*assumed* checkpoint format (no config, hence no ignore list) the tower stays bf16.

| family | vLLM file | Linears built with the quant_config | never quantized |
| Qwen3-VL / -MoE / Qwen3.5 | qwen3_vl.py, qwen3_5.py | blocks' attn.qkv / attn.proj / mlp.linear_fc1/2, merger and deepstack mergers' linear_fc1/2 | conv, positions |
| Gemma 3 | gemma3_mm.py + siglip.py | q/k/v/out_proj; fc1/fc2 only if hidden and intermediate are multiples of 64 (so400m: 4304 is not) | mm_input_projection_weight (nn.Parameter) |
| InternVL (internvl_chat) | internvl.py + intern_vit.py | attn.qkv, attn.proj, mlp.fc1, mlp.fc2 | mlp1 (plain nn.Linear) |
| Qianfan-OCR | qianfan_ocr.py | same, but _patch_quant_config ignores them under Fp8Config / online FP8 | mlp1 |
| Mistral3 | mistral3.py + pixtral.py | q/k/v/o, gate/up/down; projector linear_1/linear_2 | patch_merger.merging_layer |
| LLaVA / NeXT | llava.py, llava_next.py + clip.py / siglip.py | CLIP/SigLIP encoder; LlavaMultiModalProjector linear_1/2 | - |
| OneVision / NeXT-Video | llava_onevision.py, llava_next_video.py | the encoder | projector (plain nn.Linear) |
| GLM-4.1V / 4.5V | glm4_1v.py | blocks' qkv / proj / gate_up / down, merger proj / gate_up / down | downsample conv |
| Idefics3 / SmolVLM | idefics3.py + idefics2_vision_model.py | q/k/v/out_proj, fc1, fc2, connector proj (ReplicatedLinear) | - |
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_quantized_towers import FP8_DYNAMIC  # llm-compressor's FP8_DYNAMIC scheme, as round 1 wrote it
from towers_support import family_config, weights_by_kind

from gpuplan.api_python import estimate
from gpuplan.model.adapters import build_spec

FIX = Path(__file__).parent / "fixtures"
PUBLISHED = json.loads((FIX / "quantized_towers2.json").read_text())["models"]
GEMMA = PUBLISHED["google/gemma-3-27b-it"]["config"]
MISTRAL = PUBLISHED["mistralai/Mistral-Small-3.1-24B-Instruct-2503"]["config"]
QWEN3_VL = json.loads((FIX / "vllm_logs" / "configs" / "Qwen__Qwen3-VL-8B-Instruct.json").read_text())




INTERNVL3 = family_config("internvl.json", "OpenGVLab/InternVL3-8B")
GLM41V = family_config("glm4v.json", "zai-org/GLM-4.1V-9B-Thinking")
QIANFAN = family_config("sweep_gaps2.json", "qianfan_ocr/default")
IDEFICS3 = family_config("sweep_gaps.json", "idefics3/transformers-default")





@pytest.mark.parametrize(("cfg", "name", "params", "linears"), [
    (QWEN3_VL, "Qwen/Qwen3-VL-8B-Instruct", 8_767_123_696, 27 * 4 + 4 * 2),
    (GEMMA, "google/gemma-3-27b-it", 27_432_406_640, 27 * 4),  # the MLPs are never quantized: lumped
    (INTERNVL3, "OpenGVLab/InternVL3-8B", 7_944_373_760, 24 * 4),
    (MISTRAL, "mistralai/Mistral-Small-3.1-24B-Instruct-2503", 24_011_361_280, 24 * 7 + 2),
    (GLM41V, "zai-org/GLM-4.1V-9B-Thinking", 10_292_777_472, 24 * 5 + 4),
    (IDEFICS3, "HuggingFaceM4/Idefics3-8B-Llama3", 6_909_685_760, 12 * 6 + 1),
])
def test_splitting_the_towers_into_vllms_linears_changes_no_parameter_count(cfg, name, params, linears) -> None:
    """The totals are the ones gpuplan had before the split (and the families' oracle counts); every Linear vLLM
    builds with the quant_config is now its own tensor."""
    spec = build_spec(cfg, name=name)
    assert spec.total_params == params
    assert len([t for t in spec.extra if t.linear and t.tower_quant]) == linears


def test_qwen3_vl_8b_with_online_fp8_on_one_l4_puts_its_tower_in_fp8() -> None:
    """`vllm serve Qwen/Qwen3-VL-8B-Instruct --quantization fp8` on one L4. Tower (hidden 1152, 27 blocks,
    intermediate 4304, out 4096, merged width 4608, 3 deepstack mergers):
      Linears a block: qkv 3456x1152 = 3,981,312, proj 1,327,104, fc1 and fc2 4304x1152 = 4,958,208 each:
      15,224,832; x 27 = 411,070,464. Four mergers: (4608 x 4608 + 4096 x 4608) x 4 = 160,432,128.
      116 Linears, 571,502,592 weights.
      The rest: Conv3d 3x2x16x16x1152 = 1,769,472 + bias 1,152, positions 2304 x 1152 = 2,654,208, per block
      biases 10,064 + LayerNorms 4,608 (x 27 = 396,144), merger norm / biases 2,304 + 4,608 + 4,096 = 11,008,
      deepstack norms / biases (9,216 + 4,608 + 4,096) x 3 = 53,760: 4,885,744.
    bf16: (571,502,592 + 4,885,744) x 2 = 1,152,776,672. fp8: 571,502,592 + 116 x 8 + 4,885,744 x 2 = 581,275,008
    (the whole model: 10,134,420,832 bytes, 9.44 GiB, against 10.05 GiB with the tower left bf16)."""
    w = weights_by_kind(QWEN3_VL, "Qwen/Qwen3-VL-8B-Instruct", "L4", quantization="fp8")
    assert w["vision"] == 571_502_592 + 116 * 8 + 2 * 4_885_744 == 581_275_008
    assert w["total"] == 10_134_420_832
    assert weights_by_kind(QWEN3_VL, "Qwen/Qwen3-VL-8B-Instruct", "L4")["vision"] == 1_152_776_672


def test_qwen3_vl_online_fp8_at_tp2_splits_the_tower_as_vllm_does() -> None:
    """TP=2: 571,502,592 / 2 = 285,751,296 fp8 bytes + 928 of scales. Column biases (qkv 3456 + fc1 4304) x 27 +
    4 merger fc1 x 4608 = 227,952, halved: 113,976; whole on each GPU: conv 1,770,624, positions 2,654,208, block
    norms 124,416, proj / fc2 biases 62,208, merger norms 2,304 + 27,648, merger fc2 biases 16,384 = 4,657,792.
    (113,976 + 4,657,792) x 2 = 9,543,536: 295,295,760 bytes a GPU."""
    w = weights_by_kind(QWEN3_VL, "Qwen/Qwen3-VL-8B-Instruct", "H100", 2, quantization="fp8")
    assert w["vision"] == 285_751_296 + 928 + 9_543_536 == 295_295_760


def test_qwen3_vl_fp8_dynamic_checkpoint_ignoring_re_visual_keeps_the_tower_bf16() -> None:
    """llm-compressor's VLM recipes ignore ["lm_head", "re:visual.*"]: re.match holds on every tower prefix
    ("visual.blocks.0.attn.qkv", "visual.deepstack_merger_list.2.linear_fc2"), so the tower stays 1,152,776,672
    bytes; ignoring only lm_head gives channel FP8: 571,502,592 + fp32 scales for the output rows, 27 x (3456 +
    1152 + 4304 + 1152) + 4 x (4608 + 4096) = 306,544 rows, x 4 = 1,226,176, + 9,771,488 bf16 rest: 582,500,256."""
    keep = _config_with(QWEN3_VL, {**FP8_DYNAMIC, "ignore": ["lm_head", "re:visual.*"]})
    assert weights_by_kind(keep, "q")["vision"] == 1_152_776_672
    quant = _config_with(QWEN3_VL, {**FP8_DYNAMIC, "ignore": ["lm_head"]})
    assert weights_by_kind(quant, "q")["vision"] == 571_502_592 + 4 * 306_544 + 9_771_488 == 582_500_256


def _config_with(cfg: dict, qc: dict) -> dict:
    return {**cfg, "quantization_config": qc}


def test_gemma3_27b_with_online_fp8_on_one_l40s_quantizes_attention_but_not_the_siglip_mlp() -> None:
    """"Gemma-3-27B with --quantization fp8 on one L40S": SigLIP-so400m (1152 wide, 27 layers, MLP 4304).
    siglip.py passes the quant_config to fc1 / fc2 only when 1152 and 4304 are multiples of 64; 4304 = 67 x 64 + 16
    is not, so only q/k/v/out_proj are fp8: 4 x 1152 x 1152 x 27 = 143,327,232 bytes + 108 x 8 = 864.
    bf16: MLPs 2 x 4304 x 1152 x 27 = 267,743,232 and the rest 5,795,568 (conv 677,376 + 1,152, positions 64^2 x
    1152 = 4,718,592, biases + LayerNorms 14,672 x 27 = 396,144, post LayerNorm 2,304): x 2 = 547,077,600.
    Tower 690,405,696 bytes (833,732,064 in bf16). The projector, a bare nn.Parameter (1152 x 5376) and a norm, stays
    bf16: 12,388,608. Whole model 29,425,118,672 bytes (27.40 GiB): it fits the L40S at 32K."""
    w = weights_by_kind(GEMMA, "google/gemma-3-27b-it", "L40S", quantization="fp8")
    assert w["vision"] == 143_327_232 + 864 + 547_077_600 == 690_405_696
    assert w["projector"] == 2 * (1152 * 5376 + 1152) == 12_388_608
    assert w["total"] == 29_425_118_672
    r = estimate(build_spec(GEMMA, name="google/gemma-3-27b-it"), gpu="L40S", tensor_parallel_size=1,
                 max_model_len=32768, quantization="fp8")
    assert r.fits


def test_gemma3_at_tp2_keeps_norms_conv_positions_and_projector_whole() -> None:
    """TP=2, bf16. Split: the Linear weights (143,327,232 + 267,743,232) / 2 = 205,535,232 and the column biases
    (3 x 1152 + 4304) x 27 = 209,520 / 2 = 104,760. Whole: conv and bias 678,528, positions 4,718,592, LayerNorms
    124,416 + 2,304, out_proj / fc2 biases 62,208 = 5,586,048. Tower 2 x 211,226,040 = 422,452,080 a GPU (gpuplan
    used to halve all of it: 416,866,032); the nn.Parameter projector is whole: 12,388,608 (was 6,194,304)."""
    w = weights_by_kind(GEMMA, "google/gemma-3-27b-it", "H100", 2)
    assert w["vision"] == 2 * (205_535_232 + 104_760 + 5_586_048) == 422_452_080
    assert w["projector"] == 12_388_608


def test_internvl3_8b_with_online_fp8_quantizes_internvit_but_not_mlp1() -> None:
    """InternViT-300M (1024 wide, 24 layers, MLP 4096, qkv bias, LayerNorm): qkv 3072 x 1024, proj 1024^2, fc1 and
    fc2 4096 x 1024: 12,582,912 a layer, 301,989,888 in 96 Linears (+ 768 bytes of scales). The rest: embeddings
    (conv 602,112 + bias, class token, 1025 positions) 1,653,760 and per layer biases 9,216 + norms 4,096 + layer
    scales 2,048 (x 24 = 368,640): 2,022,400, bf16. Tower 306,035,456 bytes (608,024,576 in bf16); mlp1, plain
    nn.Linear, stays bf16: 55,080,960."""
    w = weights_by_kind(INTERNVL3, "OpenGVLab/InternVL3-8B", "L4", quantization="fp8")
    assert w["vision"] == 301_989_888 + 768 + 2 * 2_022_400 == 306_035_456
    assert w["projector"] == 55_080_960
    assert w["total"] == 9_078_334_752


def test_qianfan_ocr_keeps_its_vit_bf16_under_fp8_but_not_under_compressed_tensors() -> None:
    """qianfan_ocr.py's _patch_quant_config adds every ViT qkv / proj / fc1 / fc2 to an Fp8Config's or online FP8
    config's ignored layers, so --quantization fp8 leaves the same InternViT-300M at 608,024,576 bytes; a
    compressed-tensors FP8-dynamic checkpoint ignoring only lm_head quantizes it: 301,989,888 + 4 x 24 x 9,216
    output-row scales (884,736) + 4,044,800 = 306,919,424."""
    assert weights_by_kind(QIANFAN, "baidu/Qianfan-OCR", quantization="fp8")["vision"] == 608_024_576
    ct = _config_with(QIANFAN, {**FP8_DYNAMIC, "ignore": ["lm_head"]})
    assert weights_by_kind(ct, "baidu/Qianfan-OCR")["vision"] == 301_989_888 + 884_736 + 4_044_800 == 306_919_424


def test_mistral_small_31_with_online_fp8_quantizes_pixtral_and_the_projector() -> None:
    """Mistral-Small-3.1-24B (Pixtral tower 1024 wide, 24 layers, MLP 4096; text 5120). Tower: q/k/v/o 4 x 1024^2
    and gate/up/down 3 x 4096 x 1024 = 16,777,216 a layer, 402,653,184 in 168 Linears (+ 1,344 of scales); conv
    602,112, ln_pre 1,024 and two RMSNorms a layer 49,152 = 652,288 bf16: 403,959,104 bytes (806,610,944 in bf16).
    Projector: linear_1 5120 x 1024 and linear_2 5120^2 fp8 = 31,457,280 + 16; its RMSNorm (1,024) and the patch
    merger's plain nn.Linear (1024 x 4096) bf16: 8,390,656: 39,847,952."""
    w = weights_by_kind(MISTRAL, "mistralai/Mistral-Small-3.1-24B-Instruct-2503", quantization="fp8")
    assert w["vision"] == 402_653_184 + 1_344 + 2 * 652_288 == 403_959_104
    assert w["projector"] == 31_457_280 + 16 + 8_390_656 == 39_847_952
    assert w["total"] == 25_392_358_928


def test_an_assumed_w8a8_checkpoint_of_mistral_small_keeps_the_tower_bf16() -> None:
    """RedHatAI's Mistral-Small-3.1 w8a8 start-up (dev set gt132, logged 24.07 GiB) is sized from the base config
    with an assumed int8 format: with no ignore list to read, the tower is sized as the published llm-compressor
    checkpoints keep it, bf16 (806,610,944 + 71,305,216 projector)."""
    w = weights_by_kind(MISTRAL, "RedHatAI/Mistral-Small-3.1-24B-Instruct-2503-quantized.w8a8", quantization="w8a8")
    assert w["vision"] == 806_610_944
    assert w["projector"] == 71_305_216


def test_glm41v_with_online_fp8() -> None:
    """GLM-4.1V-9B (tower 1536 wide, 24 blocks, MLP width out_hidden_size 4096; merger 4096 -> 13696): per block
    qkv 4608 x 1536 = 7,077,888, proj 2,359,296, gate and up 4096 x 1536 = 6,291,456 each, down 6,291,456: 28,311,552,
    x 24 = 679,477,248; merger proj 4096^2 = 16,777,216, gate and up 13696 x 4096 = 56,098,816 each, down 56,098,816:
    185,073,664. 124 Linears, 864,550,912 fp8 bytes + 992. bf16 rest 27,947,520 (Conv3d 1,806,336 + 1,536, 576
    positions 884,736, RMSNorms 73,728 + 3,072, downsample conv 25,165,824 + 4,096, merger LayerNorm 8,192):
    x 2 = 55,895,040. Tower 920,446,944 bytes (1,784,996,864 in bf16)."""
    w = weights_by_kind(GLM41V, "zai-org/GLM-4.1V-9B-Thinking", "L40S", quantization="fp8")
    assert w["vision"] == 864_550_912 + 992 + 55_895_040 == 920_446_944
    assert weights_by_kind(GLM41V, "zai-org/GLM-4.1V-9B-Thinking", "L40S")["vision"] == 1_784_996_864


def test_idefics3_with_online_fp8_quantizes_tower_and_connector() -> None:
    """Idefics3 (transformers' default: vision 1152 wide, 12 layers, MLP 3072, 32-px patches on 224 px; text 4096,
    scale 2): per layer q/k/v/out 4 x 1152^2 + fc1/fc2 2 x 3072 x 1152 = 12,386,304, x 12 = 148,635,648 in 72
    Linears (+ 576); rest bf16: conv 3,538,944 + 1,152, 49 positions 56,448, post LayerNorm 2,304, biases and
    LayerNorms 13,440 x 12 = 161,280: 3,760,128 x 2 = 7,520,256. Tower 156,156,480. The connector's ReplicatedLinear
    4096 x 4608 = 18,874,368 + 8 bytes."""
    w = weights_by_kind(IDEFICS3, "HuggingFaceM4/Idefics3-8B-Llama3", quantization="fp8")
    assert w["vision"] == 148_635_648 + 576 + 7_520_256 == 156_156_480
    assert w["projector"] == 18_874_368 + 8
