"""Quantized towers, round 3: MiniCPM-V (2.5 - 4.5), Kimi-K2.5 / Kimi-VL, Qwen2.5-Omni and Qwen3-Omni, as vLLM 0.33
builds their towers (read in vllm/model_executor/models/), and what that does to "Model loading took".

Per-tensor FP8 (online --quantization fp8): a Linear is its fp8 bytes + 8 bytes (fp32 weight_scale and
input_scale); biases, norms, convolutions, position tables and plain torch modules stay bf16 (2 bytes). Under a
compressed-tensors, FP8 or NVFP4 checkpoint a tower Linear built with the quant config is quantized unless the
ignore list names it (vLLM's names; plain entries renamed by hf_to_vllm_mapper, "re:" regexes as written).

| family | vLLM file | Linears built with the quant_config (prefix) | never quantized |
| MiniCPM-V 4.6 / 4.7 / OCR | minicpmv4_6.py | the same vpm; vit_merger.self_attn.qkv_proj / out_proj | vit_merger linear_1 / linear_2, merger (plain nn.Linear) |
| MiniCPM-V 2.5-4.5 | minicpmv.py + idefics2_vision_model.py + layers/resampler.py | vpm.encoder.layers.{j}.self_attn.qkv_proj / out_proj, mlp.fc1 / fc2; resampler.kv_proj (ReplicatedLinear, only when the vision width differs from the text width) | resampler query / MultiheadAttention / norms / proj (plain torch), sin-cos tables |
| Kimi-K2.5 / K2.6 | kimi_k25.py + kimi_k25_vit.py | vision_tower.encoder.blocks.{j}.wqkv / wo / mlp.fc0 / mlp.fc1 - except under compressed-tensors, which _maybe_ignore_quant_config drops for the tower and projector | mm_projector: built with the config, then cast by .to(dtype=model dtype) |
| Kimi-VL | kimi_vl.py + moonvit.py | none: MoonViT and the projector get no quant_config | everything |
| Qwen2.5-Omni | qwen2_5_omni_thinker.py + qwen2_5_vl.py | visual.blocks.{j}.attn.qkv / attn.proj / mlp.gate_proj, up_proj (gate_up) / mlp.down_proj, visual.merger.mlp.0 / mlp.2 | audio_tower (transformers' own Qwen2_5OmniAudioEncoder: plain torch) |
| Qwen3-Omni | qwen3_omni_moe_thinker.py | visual.blocks.{j}.attn.qkv / attn.proj / mlp.linear_fc1 / linear_fc2, visual.merger.mlp.0 / mlp.2, visual.merger_list.{k}.mlp.0 / mlp.2 | audio_tower (vLLM's own encoder, but its qkv_proj / out_proj / fc1 / fc2 / conv_out / proj1 / proj2 are built without quant_config) |

Ignore matching of fused Linears: vLLM checks a fused layer's shards only when its last name component is a
packed_modules_mapping key. The Omni thinker's key for the vision attention is "attn.qkv", never a last component,
so a checkpoint ignoring Qwen2.5-Omni's stored "thinker.visual.blocks.0.attn.q" / ".k" / ".v" does not keep
"visual.blocks.0.attn.qkv" bf16 in vLLM 0.33; gpuplan names it attn.qkv and matches the same way.

Not modelled (see the adapters): MiniCPM-V's resampler.kv_proj under an FP8 *checkpoint* (vLLM's .to(model dtype)
turns its fp8 parameter into bf16; gpuplan's tower_quant cannot tell an FP8 checkpoint from online fp8 and counts
it fp8, 4,718,592 bytes under for 4.5); Kimi-K2.5's projector scales under a quantized non-compressed-tensors
checkpoint (cast to bf16 with the projector; weights counted bf16, scales not counted); ModelOpt wildcards spelled
with the Omni checkpoint's "thinker." prefix (vLLM renames them, gpuplan's matcher only strips "model." forms).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_quantized_towers import FP8_DYNAMIC  # llm-compressor's FP8_DYNAMIC scheme, as round 1 wrote it
from towers_support import family_config, weights_by_kind

import gpuplan.model.adapters_minicpmv_phi4mm  # noqa: F401
import gpuplan.model.adapters_qwen_omni  # noqa: F401
import gpuplan.model.adapters_vision_wrappers  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.model.adapters import build_spec

FIX = Path(__file__).parent / "fixtures"




MINICPMV45 = family_config("minicpmv_phi4mm.json", "minicpmv/MiniCPM-V-4_5")
QWEN25_OMNI = family_config("qwen_omni.json", "qwen2_5_omni/Qwen2.5-Omni-7B")
QWEN3_OMNI = family_config("qwen_omni.json", "qwen3_omni_moe/Qwen3-Omni-30B-A3B-Instruct")
KIMI_K25 = family_config("vision_wrappers.json", "kimi_k25/Kimi-K2.5-INT4")
KIMI_VL = json.loads((FIX / "vllm_logs" / "configs" / "moonshotai__Kimi-VL-A3B-Instruct.json").read_text())
SINUSOIDS = 1500 * 1280 * 4  # the Omni audio encoders' float32 position table (a GPU buffer)




def _with_quant(cfg: dict, qc: dict) -> dict:
    """A checkpoint's quantization_config, where the config's own one sits (top level, and text_config when the
    config nests its text model)."""
    out = {**cfg, "quantization_config": qc}
    if isinstance(cfg.get("text_config"), dict):
        out["text_config"] = {**cfg["text_config"], "quantization_config": qc}
    return out


@pytest.mark.parametrize(("cfg", "name", "params", "linears"), [
    (MINICPMV45, "openbmb/MiniCPM-V-4_5", 8_695_895_280, 27 * 6 + 1),
    (QWEN25_OMNI, "Qwen/Qwen2.5-Omni-7B", 8_931_813_888, 32 * 5 + 2),
    (QWEN3_OMNI, "Qwen/Qwen3-Omni-30B-A3B-Instruct", 31_719_205_488, 27 * 4 + 4 * 2),
    (KIMI_K25, "moonshotai/Kimi-K2.5", 1_026_879_376_368, 27 * 4),
    (KIMI_VL, "moonshotai/Kimi-VL-A3B-Instruct", 16_407_656_048, 0),  # MoonViT takes no quant_config: lumps
])
def test_splitting_the_towers_into_vllms_linears_changes_no_parameter_count(cfg, name, params, linears) -> None:
    """The totals are the ones gpuplan had with the lumps (and the families' tests pin against transformers);
    every Linear vLLM builds with the quant config is now its own tensor."""
    spec = build_spec(cfg, name=name)
    assert spec.total_params == params
    assert len([t for t in spec.extra if t.linear and t.tower_quant]) == linears


# ----------------------------------------------------------------------------- MiniCPM-V 4.5


def test_minicpm_v45_with_online_fp8_on_one_l4_puts_its_siglip_and_kv_proj_in_fp8() -> None:
    """`vllm serve openbmb/MiniCPM-V-4_5 --quantization fp8` on one L4. Tower (SigLIP-400M in Idefics2 form: 1152
    wide, 27 layers, MLP 4304, patch 14 on 980 px):
      Linears a layer: q, k, v, out_proj 4 x 1152^2 = 5,308,416; fc1, fc2 2 x 4304 x 1152 = 9,916,416:
      15,224,832; x 27 = 411,070,464 in 162 Linears (+ 162 x 8 = 1,296 bytes of scales).
      bf16 rest: column biases (3 x 1152 + 4304) x 27 = 209,520; whole: conv 3 x 14^2 x 1152 = 677,376 + bias
      1,152, positions (980 / 14)^2 = 4900 x 1152 = 5,644,800, post LayerNorm 2,304, per layer out_proj / fc2
      biases and two LayerNorms 6,912 x 27 = 186,624: 6,512,256. x 2 = 13,443,552.
    Tower 424,515,312 bytes (835,584,480 in bf16). Resampler: kv_proj 4096 x 1152 = 4,718,592 fp8 + 8; the rest
    bf16: query 64 x 4096 + MultiheadAttention 4 x 4096^2 + 4 x 4096 + three LayerNorms 6 x 4096 + proj 4096^2 =
    84,189,184, the sin-cos tables 4900 x 4096 + 36000 x 4096 = 167,526,400: x 2 = 503,431,168; 508,149,768 in all
    (512,868,352 in bf16). Whole model 10,376,759,000 bytes (9.66 GiB; 10.05 GiB with the tower left bf16, as
    gpuplan counted it): it fits the L4 at 32K."""
    w = weights_by_kind(MINICPMV45, "openbmb/MiniCPM-V-4_5", "L4", quantization="fp8")
    assert w["vision"] == 411_070_464 + 1_296 + 13_443_552 == 424_515_312
    assert w["projector"] == 4_718_592 + 8 + 503_431_168 == 508_149_768
    assert w["total"] == 10_376_759_000
    bf16 = weights_by_kind(MINICPMV45, "openbmb/MiniCPM-V-4_5", "L4")
    assert (bf16["vision"], bf16["projector"]) == (835_584_480, 512_868_352)
    r = estimate(build_spec(MINICPMV45, name="openbmb/MiniCPM-V-4_5"), gpu="L4", tensor_parallel_size=1,
                 max_model_len=32768, quantization="fp8")
    assert r.fits and r.max_concurrency >= 2


def test_minicpm_v45_online_fp8_at_tp2_splits_the_tower_and_keeps_the_resampler_whole() -> None:
    """TP=2: 411,070,464 / 2 = 205,535,232 fp8 bytes + 1,296; column biases 209,520 / 2 = 104,760 and the whole
    6,512,256, bf16: 13,234,032. Tower 218,770,560 bytes a GPU. The resampler is never split: 508,149,768."""
    w = weights_by_kind(MINICPMV45, "openbmb/MiniCPM-V-4_5", "H100", 2, quantization="fp8")
    assert w["vision"] == 205_535_232 + 1_296 + 2 * (104_760 + 6_512_256) == 218_770_560
    assert w["projector"] == 508_149_768


def test_minicpm_v45_fp8_dynamic_checkpoint_quantizes_vpm_unless_ignored_and_never_the_resampler() -> None:
    """An llm-compressor FP8-dynamic MiniCPM-V-4.5 ignoring only lm_head: the 162 vpm Linears in channel FP8,
    411,070,464 bytes + an fp32 scale per output row, 27 x (4 x 1152 + 4304 + 1152) = 271,728 rows x 4 =
    1,086,912, + the 13,443,552 bf16 rest: 425,600,928. The resampler stays 512,868,352 (its kv_proj would be cast
    back to bf16 by the resampler's .to(model dtype); gpuplan keeps it out of compressed-tensors). Ignoring
    "re:vpm.*" keeps the tower at 835,584,480."""
    q = _with_quant(MINICPMV45, {**FP8_DYNAMIC, "ignore": ["lm_head"]})
    w = weights_by_kind(q, "openbmb/MiniCPM-V-4_5")
    assert w["vision"] == 411_070_464 + 1_086_912 + 13_443_552 == 425_600_928
    assert w["projector"] == 512_868_352
    keep = _with_quant(MINICPMV45, {**FP8_DYNAMIC, "ignore": ["lm_head", "re:vpm.*"]})
    assert weights_by_kind(keep, "openbmb/MiniCPM-V-4_5")["vision"] == 835_584_480


def test_minicpm_v46_with_online_fp8_quantizes_vpm_and_the_window_attention_not_the_mergers_mlps() -> None:
    """`vllm serve openbmb/MiniCPM-V-4.6 --quantization fp8` on one L4 (minicpmv4_6.py): the same SigLIP vpm
    (411,070,464 Linear weights in 162 Linears) and the vit_merger's window attention q/k/v / out_proj built with
    the quant config, 4 x 1152^2 = 5,308,416: 416,378,880 fp8 bytes + 166 x 8 = 1,328. bf16: vpm biases and
    embeddings 209,520 + 6,512,256; the window attention's q/k/v biases 3,456; out_proj bias 1,152, layer_norm1
    2,304 and the plain nn.Linear MLP over the 2x2-merged width (pre_norm 9,216, linear_1 4608 x 17216 + 17,216 =
    79,348,544, linear_2 17216 x 1152 + 1,152 = 19,833,984): 99,195,200. 105,920,432 x 2 = 211,840,864. Tower 628,221,072 bytes (1,044,598,624 in bf16); the merger (plain nn.Linear) stays 51,934,208.
    Whole model 1,720,489,760 bytes (1.60 GiB; 1.99 GiB with the tower bf16)."""
    cfg = family_config("minicpm_ocr.json", "minicpmv4_6/MiniCPM-V-4.6")
    w = weights_by_kind(cfg, "openbmb/MiniCPM-V-4.6", "L4", quantization="fp8")
    assert w["vision"] == 416_378_880 + 1_328 + 211_840_864 == 628_221_072
    assert w["projector"] == 51_934_208
    assert w["total"] == 1_720_489_760
    assert weights_by_kind(cfg, "openbmb/MiniCPM-V-4.6", "L4")["vision"] == 1_044_598_624


# ----------------------------------------------------------------------------- Qwen2.5-Omni / Qwen3-Omni


def test_qwen25_omni_7b_with_online_fp8_on_one_l4_quantizes_the_vision_tower_not_the_audio_one() -> None:
    """`vllm serve Qwen/Qwen2.5-Omni-7B --quantization fp8` on one L4. The vision tower is Qwen2.5-VL-7B's (depth
    32, 1280 wide, MLP 3420, out 3584): 674,529,280 Linear weights in 162 Linears fp8 + 1,296 of scales + 2,020,864
    other parameters bf16 = 678,572,304 (tests/test_quantized_towers.py). The audio tower, transformers' own
    module, stays bf16: 639,647,232 x 2 = 1,279,294,464, beside its float32 sinusoid table 7,680,000.
    Towers 1,965,546,768 bytes (2,640,074,752 in bf16); whole model 10,705,702,704 (9.97 GiB; 10.60 GiB with the
    vision tower left bf16)."""
    w = weights_by_kind(QWEN25_OMNI, "Qwen/Qwen2.5-Omni-7B", "L4", quantization="fp8")
    assert w["vision"] == 678_572_304 + 1_279_294_464 + SINUSOIDS == 1_965_546_768
    assert w["total"] == 10_705_702_704
    assert weights_by_kind(QWEN25_OMNI, "Qwen/Qwen2.5-Omni-7B", "L4")["vision"] == 2_640_074_752


def test_qwen25_omni_ignore_regexes_must_use_vllms_names() -> None:
    """compressed-tensors renames plain ignore entries through the thinker's mapper ("thinker." -> "") but leaves
    regexes as written: "re:visual.*" keeps the vision tower bf16 (2,640,074,752 with the audio tower); a regex
    spelled with the checkpoint's "thinker.visual." never matches vLLM's "visual.blocks.0.attn.qkv", so the tower
    is channel FP8: 674,529,280 + 432,384 output rows x 4 = 1,729,536 + 4,041,728 bf16 = 680,300,544, + the audio
    tower and sinusoids."""
    keep = _with_quant(QWEN25_OMNI, {**FP8_DYNAMIC, "ignore": ["lm_head", "re:visual.*"]})
    assert weights_by_kind(keep, "Qwen/Qwen2.5-Omni-7B")["vision"] == 2_640_074_752
    miss = _with_quant(QWEN25_OMNI, {**FP8_DYNAMIC, "ignore": ["lm_head", "re:thinker.visual.*"]})
    assert weights_by_kind(miss, "Qwen/Qwen2.5-Omni-7B")["vision"] == 680_300_544 + 1_279_294_464 + SINUSOIDS


def test_qwen3_omni_30b_with_online_fp8_on_one_h100() -> None:
    """`vllm serve Qwen/Qwen3-Omni-30B-A3B-Instruct --quantization fp8` on one H100. Vision tower (1152 wide, 27
    blocks, MLP 4304, out 2048, merged width 4608, 3 deepstack mergers):
      Linears a block: qkv 3456 x 1152 = 3,981,312, proj 1,327,104, linear_fc1 / fc2 4,958,208 each: 15,224,832;
      x 27 = 411,070,464. Merger and merger_list: 4 x (4608^2 + 2048 x 4608) = 122,683,392. 116 Linears,
      533,753,856 fp8 bytes + 928.
      bf16 rest: Conv3d 3 x 2 x 16^2 x 1152 = 1,769,472 + bias 1,152, positions (768 / 16)^2 = 2304 x 1152 =
      2,654,208, per block biases 10,064 + LayerNorms 4,608 (x 27 = 396,144), merger ln_q 2,304 + biases 4,608 +
      2,048, merger_list ln_q / biases 3 x (9,216 + 4,608 + 2,048) = 47,616: 4,877,552, x 2 = 9,755,104.
    Vision tower 543,509,888 bytes (1,077,262,816 in bf16). The audio tower (vLLM builds its Linears without the
    quant config) stays bf16: 647,927,168 x 2 = 1,295,854,336, + 7,680,000 of sinusoids. Whole model
    33,183,800,960 bytes (30.90 GiB; 31.40 GiB with the vision tower bf16): fits one H100 at 64K."""
    w = weights_by_kind(QWEN3_OMNI, "Qwen/Qwen3-Omni-30B-A3B-Instruct", quantization="fp8")
    assert w["vision"] == 533_753_856 + 928 + 9_755_104 + 1_295_854_336 + SINUSOIDS == 1_847_044_224
    assert w["total"] == 33_183_800_960
    assert weights_by_kind(QWEN3_OMNI, "Qwen/Qwen3-Omni-30B-A3B-Instruct")["vision"] == (
        1_077_262_816 + 1_295_854_336 + SINUSOIDS)
    r = estimate(build_spec(QWEN3_OMNI, name="Qwen/Qwen3-Omni-30B-A3B-Instruct"), gpu="H100",
                 tensor_parallel_size=1, max_model_len=65536, quantization="fp8")
    assert r.fits


def test_qwen3_omni_online_fp8_at_tp2() -> None:
    """TP=2 (the audio encoder's 20 heads divide, so its Linears split too). Vision: 533,753,856 / 2 =
    266,876,928 fp8 + 928; column biases (3456 + 4304) x 27 + 4 x 4608 = 227,952 / 2 = 113,976; whole conv
    1,770,624, positions 2,654,208, block LayerNorms 124,416, proj / fc2 biases 62,208, ln_q 2,304 + 3 x 9,216,
    mlp.2 biases 4 x 2048 = 8,192: 4,649,600; (113,976 + 4,649,600) x 2 = 9,527,152: 276,405,008. Audio (bf16,
    d 1280, 32 layers, FFN 5120): column 32 x (3 x 1280^2 + 3 x 1280 + 5120 x 1280 + 5120) = 367,288,320 and row
    32 x (1280^2 + 5120 x 1280) = 262,144,000 halved, the other 18,494,848 whole: 666,422,016 + 7,680,000."""
    w = weights_by_kind(QWEN3_OMNI, "Qwen/Qwen3-Omni-30B-A3B-Instruct", "H100", 2, quantization="fp8")
    audio = 2 * (367_288_320 // 2 + 262_144_000 // 2 + 18_494_848) + SINUSOIDS
    assert w["vision"] == 266_876_928 + 928 + 9_527_152 + audio == 950_507_024


# ----------------------------------------------------------------------------- Kimi-K2.5 / Kimi-VL

K25_TOWER_BF16 = 833_741_280  # 416,866,032 parameters + the 4 x 1152 time_weight buffer, all bf16
FP8_BLOCK = {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128], "activation_scheme": "dynamic"}


def test_kimi_k25_int4_keeps_its_tower_bf16_though_the_ignore_list_does_not_name_it() -> None:
    """moonshotai/Kimi-K2.5's compressed-tensors W4A16 config ignores lm_head, attention, shared experts and dense
    MLPs by regex; none matches "vision_tower.encoder.blocks.0.wqkv" or "...mlp.fc0". The tower stays bf16 all the
    same because kimi_k25.py's _maybe_ignore_quant_config hands it no quant config under compressed-tensors:
    833,741,280 bytes at TP=1, and per GPU at TP=8 (16 heads split): (411,070,464 / 8 + column biases
    (3456 + 4304) x 27 / 8 = 26,190 + the whole: LayerNorms 124,416, wo / fc1 biases 62,208, patch conv 677,376 +
    1,152, 64 x 64 positions 4,718,592, final LayerNorm 2,304 = 5,586,048) x 2 + the time_weight 9,216."""
    assert weights_by_kind(KIMI_K25, "moonshotai/Kimi-K2.5", "B200")["vision"] == K25_TOWER_BF16
    w = weights_by_kind(KIMI_K25, "moonshotai/Kimi-K2.5", "B200", 8)
    assert w["vision"] == 2 * (411_070_464 // 8 + 26_190 + 5_586_048) + 9_216 == 114_001_308


def test_kimi_k25_fp8_block_checkpoint_quantizes_the_tower_unless_ignored() -> None:
    """A Kimi-K2.5 in DeepSeek-V3's FP8 format (quant_method fp8, 128 x 128 blocks): the tower's 108 Linears are
    fp8, 411,070,464 bytes, with fp32 block scales: wqkv 27 x 9 + wo 9 x 9 + fc0 34 x 9 + fc1 9 x 34 = 936 a block,
    x 27 x 4 = 101,088; the other 5,795,568 parameters bf16 = 11,591,136; and the time_weight buffer, not cast when
    the tower keeps a quant config, float32: 4 x 1152 x 4 = 18,432. Tower 422,781,120 bytes. ignored_layers
    ["vision_tower"] keeps the Linears bf16: 833,741,280 + 9,216 (the float32 time_weight)."""
    w = weights_by_kind(_with_quant(KIMI_K25, FP8_BLOCK), "moonshotai/Kimi-K2.5", "B200")
    assert w["vision"] == 411_070_464 + 101_088 + 11_591_136 + 18_432 == 422_781_120
    assert w["projector"] == 108_555_776  # cast to the model dtype after it is built: bf16
    keep = _with_quant(KIMI_K25, {**FP8_BLOCK, "ignored_layers": ["vision_tower"]})
    assert weights_by_kind(keep, "moonshotai/Kimi-K2.5", "B200")["vision"] == K25_TOWER_BF16 + 9_216


def test_kimi_k25_nvfp4_quantizes_the_tower_only_when_exclude_modules_leaves_it() -> None:
    """ModelOpt NVFP4 excluding only lm_head: each Linear is out x in / 2 packed bytes + fp8 block scales (one per
    16 inputs, rows padded to 128 and scale columns to 4) + 8 bytes of fp32 globals. A block: wqkv 3456 x 576 +
    3456 x 72, wo 1152 x 576 + 1152 x 72, fc0 4304 x 576 + 4352 x 72, fc1 1152 x 2152 + 1152 x 272 (4304 / 16 = 269
    -> 272): 7,612,416 + 958,464 + 32 = 8,570,912; x 27 = 231,414,624; + 11,591,136 bf16 + 18,432 time_weight:
    243,024,192. Excluding "vision_tower*" keeps 833,750,496."""
    nv = {"quant_method": "modelopt", "quant_algo": "NVFP4", "exclude_modules": ["lm_head"]}
    assert weights_by_kind(_with_quant(KIMI_K25, nv), "moonshotai/Kimi-K2.5", "B200")["vision"] == (
        231_414_624 + 11_591_136 + 18_432) == 243_024_192
    nv_keep = {**nv, "exclude_modules": ["lm_head", "vision_tower*", "mm_projector*"]}
    assert weights_by_kind(_with_quant(KIMI_K25, nv_keep), "moonshotai/Kimi-K2.5", "B200")["vision"] == 833_750_496


def test_kimi_vl_with_online_fp8_keeps_moonvit_and_projector_bf16() -> None:
    """`vllm serve moonshotai/Kimi-VL-A3B-Instruct --quantization fp8`: moonvit.py builds wqkv / wo / fc0 / fc1 and
    kimi_vl.py the projector's ReplicatedLinears without a quant config, so only the text model shrinks; the tower
    (833,732,064 bytes) and projector (61,359,616) are the bf16 ones."""
    fp8 = weights_by_kind(KIMI_VL, "moonshotai/Kimi-VL-A3B-Instruct", "L4", quantization="fp8")
    bf16 = weights_by_kind(KIMI_VL, "moonshotai/Kimi-VL-A3B-Instruct", "L4")
    assert (fp8["vision"], fp8["projector"]) == (bf16["vision"], bf16["projector"]) == (833_732_064, 61_359_616)
    assert fp8["total"] < bf16["total"] * 0.6
