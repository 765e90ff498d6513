"""Which parts of a quantized Qwen2-VL / Qwen2.5-VL checkpoint vLLM 0.33 keeps quantized.

vLLM 0.33's qwen2_5_vl.py (and qwen2_vl.py) hand the model's quant_config to the vision tower: every block's qkv,
proj, gate_up (fc1) and down (fc2) and the merger's mlp.0 / mlp.2 are Linear layers built with it, under the
prefixes "visual.blocks.{j}.attn.qkv", ..., "visual.merger.mlp.0". So a compressed-tensors, FP8 or NVFP4 config
quantizes every tower Linear its ignore list does not name, and `--quantization fp8` on the bf16 checkpoint
(OnlineQuantizationConfig, fp8 per tensor, empty ignore list) quantizes the tower too. Ignore matching
(compressed-tensors should_ignore_layer): an entry equal to the prefix, or a "re:" regex re.match-ed against it;
plain entries are first renamed through the model's hf_to_vllm_mapper ("model.visual." -> "visual."), regexes are
not. AWQ / GPTQ derive the skipped layers from the checkpoint's bf16 tensors, so the tower stays bf16.

Qwen2.5-VL-7B-Instruct's tower (config tests/fixtures/vllm_logs/configs/Qwen__Qwen2.5-VL-7B-Instruct.json, the
published config.json): depth 32, hidden 1280, intermediate 3420, 16 heads, merge 2, out 3584.
  Linear weights per block: qkv 3840x1280 = 4,915,200; proj 1280x1280 = 1,638,400; gate and up 3420x1280 each
  = 8,755,200; down 1280x3420 = 4,377,600: 19,686,400; x 32 = 629,964,800. Merger: mlp.0 5120x5120 = 26,214,400,
  mlp.2 3584x5120 = 18,350,080. All Linear weights: 674,529,280 in 32 x 5 + 2 = 162 Linears, 13,240 output rows a
  block (3840 + 1280 + 3420 + 3420 + 1280) and 8,704 in the merger: 432,384 rows.
  The rest: 2,020,864 parameters (676,550,144 in all): Conv3d patch embedding 1280x3x2x14x14 = 1,505,280, biases,
  RMSNorm weights.
  bf16: 676,550,144 x 2 = 1,353,100,288 bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.api_python import estimate
from gpuplan.engines.vllm.weights import Sharding, _quant_for, tensor_bytes
from gpuplan.model.adapters import build_spec
from gpuplan.model.quant_config import parse_quant_config

CONFIG = Path(__file__).parent / "fixtures" / "vllm_logs" / "configs" / "Qwen__Qwen2.5-VL-7B-Instruct.json"
TOWER_BF16 = 1_353_100_288

# llm-compressor's FP8_DYNAMIC scheme as compressed-tensors writes it into config.json: channel-wise FP8 weights
# (fp32 scale per output row), dynamic per-token FP8 activations.
FP8_DYNAMIC = {
    "quant_method": "compressed-tensors", "format": "float-quantized",
    "config_groups": {"group_0": {
        "targets": ["Linear"],
        "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True, "dynamic": False},
        "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "symmetric": True,
                              "dynamic": True}}},
}


def _config(quantization_config: dict | None = None) -> dict:
    cfg = json.loads(CONFIG.read_text())
    return {**cfg, "quantization_config": quantization_config} if quantization_config else cfg


def _weights(cfg: dict, gpu: str, tp: int, **options) -> dict:
    spec = build_spec(cfg, name="Qwen/Qwen2.5-VL-7B-Instruct")
    stage = estimate(spec, gpu=gpu, tensor_parallel_size=tp, max_model_len=8192, **options).per_stage[0]
    return {"total": stage["weights_bytes"], **stage["weights_by_kind"]}


def test_the_tower_is_vllms_own_layers_and_counts_the_same() -> None:
    spec = build_spec(_config(), name="Qwen/Qwen2.5-VL-7B-Instruct")
    tower = [t for t in spec.extra if t.kind == "vision"]
    assert sum(t.numel for t in tower) == 676_550_144 == spec.multimodal.params
    assert sum(t.numel for t in tower if t.linear) == 674_529_280
    assert len([t for t in tower if t.linear]) == 162
    assert spec.total_params == 8_292_166_656  # unchanged by splitting the tower


def test_qwen25_vl_7b_with_online_fp8_on_one_l4_quantizes_the_tower_too() -> None:
    """`vllm serve Qwen/Qwen2.5-VL-7B-Instruct --quantization fp8` (fp8 per tensor, online) on one L4.
    Tower: 674,529,280 fp8 bytes + 162 x 8 bytes of fp32 scales (gpuplan's per-tensor FP8 Linear: weight_scale and
    input_scale) = 1,296 + the 2,020,864 other parameters in bf16 = 4,041,728: 678,572,304 bytes, against
    1,353,100,288 in bf16. Whole model: 9,515,590,448 bytes (8.86 GiB); with the tower left bf16, as gpuplan used to
    count it, 10,190,118,432 (9.49 GiB)."""
    w = _weights(_config(), "L4", 1, quantization="fp8")
    assert w["vision"] == 674_529_280 + 162 * 8 + 2 * 2_020_864 == 678_572_304
    assert w["total"] == 9_515_590_448
    assert _weights(_config(), "L4", 1)["vision"] == TOWER_BF16


def test_online_fp8_at_tp2_splits_the_quantized_tower_as_vllm_does() -> None:
    """TP=2: qkv, gate, up and mlp.0 split their rows (and biases), proj, down and mlp.2 their columns (biases whole);
    norms and the patch conv are whole on each GPU. Per GPU: 674,529,280 / 2 = 337,264,640 fp8 bytes + 1,296 of scales;
    column biases (3840 + 6840) x 32 + 5120 = 346,880 / 2 = 173,440 and the whole parts 1,505,280 (conv) + 81,920
    (norms) + 1,280 (ln_q) + 81,920 (row biases) + 3,584 (mlp.2 bias) = 1,673,984: 1,847,424 x 2 = 3,694,848.
    Tower per GPU: 340,960,784 bytes. In bf16: (674,876,160 / 2 + 1,673,984) x 2 = 678,224,128."""
    w = _weights(_config(), "H100", 2, quantization="fp8")
    assert w["vision"] == 337_264_640 + 1_296 + 3_694_848 == 340_960_784
    assert w["total"] == 4_825_210_928
    assert _weights(_config(), "H100", 2)["vision"] == 678_224_128


def test_redhat_fp8_dynamic_ignoring_re_visual_keeps_the_tower_bf16() -> None:
    """RedHatAI's Qwen2.5-VL FP8-dynamic / w4a16 recipes (their model cards) ignore ["lm_head", "re:visual.*"]:
    re.match("visual.*", "visual.blocks.0.attn.qkv") holds, so every tower Linear is unquantized: 1,353,100,288."""
    cfg = _config({**FP8_DYNAMIC, "ignore": ["lm_head", "re:visual.*"]})
    w = _weights(cfg, "H100", 1)
    assert w["vision"] == TOWER_BF16
    assert w["total"] == 10_195_679_232


def test_a_checkpoint_listing_its_tower_as_model_visual_keeps_it_bf16() -> None:
    """A checkpoint saved by transformers >= 4.52 lists its ignored layers as "model.visual.blocks.0.attn.qkv", ...:
    compressed-tensors' apply_vllm_mapper renames such plain paths to vLLM's "visual.blocks.0.attn.qkv"."""
    names = [f"model.visual.blocks.{j}.{n}" for j in range(32)
             for n in ("attn.qkv", "attn.proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")]
    cfg = _config({**FP8_DYNAMIC, "ignore": ["lm_head", *names, "model.visual.merger.mlp.0",
                                             "model.visual.merger.mlp.2"]})
    assert _weights(cfg, "H100", 1)["vision"] == TOWER_BF16


def test_an_fp8_dynamic_checkpoint_that_ignores_only_lm_head_quantizes_the_tower() -> None:
    """ignore ["lm_head"]: vLLM builds the tower's 162 Linears in channel FP8: 674,529,280 bytes + one fp32 scale per
    output row, 432,384 x 4 = 1,729,536, + 4,041,728 of bf16 biases, norms and conv: 680,300,544 bytes. A regex
    spelled only in the checkpoint's "model.visual." form does the same: vLLM does not rename regexes, and
    re.match("model.visual.*", "visual.blocks.0.attn.qkv") fails."""
    tower = 674_529_280 + 4 * 432_384 + 2 * 2_020_864
    for ignore in (["lm_head"], ["lm_head", "re:model.visual.*"]):
        w = _weights(_config({**FP8_DYNAMIC, "ignore": ignore}), "H100", 1)
        assert w["vision"] == tower == 680_300_544
        assert w["total"] == 9_522_879_488


def test_qwen25_vl_awq_keeps_its_tower_bf16() -> None:
    """Qwen/Qwen2.5-VL-7B-Instruct-AWQ-style config (4 bits, group 128, zero point, no modules_to_not_convert):
    vLLM's AWQ reads the skipped layers off the checkpoint's bf16 tensors (maybe_update_config), the tower among
    them, so it stays 1,353,100,288 bytes while the text model is AWQ."""
    awq = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm",
           "modules_to_not_convert": None}
    w = _weights(_config(awq), "L4", 1)
    assert w["vision"] == TOWER_BF16
    assert w["mlp"] < 3_000_000_000  # the text MLPs are 4-bit (11.4 GB in bf16)


def test_modelopt_wildcards_reach_the_tower_through_vllms_rename() -> None:
    """ModelOpt's exclude_modules "model.visual*" becomes "model.visual" and "model.visual.*", and the mapper turns
    the second into "visual.*", which fnmatch-es vLLM's tower prefixes: the tower stays bf16 under NVFP4. A tower
    tensor that vLLM does not quantize (a bias, the conv) never is."""
    spec = build_spec(_config(), name="Qwen/Qwen2.5-VL-7B-Instruct")
    qkv = next(t for t in spec.extra if t.name == "visual.blocks.0.attn.qkv.weight")
    conv = next(t for t in spec.extra if t.name == "visual.norms_biases_embeddings")  # holds the patch conv
    nvfp4 = parse_quant_config({"quant_method": "modelopt", "quant_algo": "NVFP4", "exclude_modules": ["lm_head"]})
    excluded = parse_quant_config({"quant_method": "modelopt", "quant_algo": "NVFP4",
                                   "exclude_modules": ["lm_head", "model.visual*"]})
    assert _quant_for(qkv, nvfp4, "visual.blocks.0.attn.qkv") is nvfp4
    assert _quant_for(qkv, excluded, "visual.blocks.0.attn.qkv") is None
    assert _quant_for(conv, nvfp4, "visual.patch_embed.proj") is None
    # NVFP4 qkv [3840, 1280]: 3840 x 640 packed + 3840 x 80 fp8 scales (128 x 4 swizzle already aligned) + 8 bytes
    assert tensor_bytes(qkv, Sharding(1, 1, 1), nvfp4, 2, "visual.blocks.0.attn.qkv") == 3840 * 640 + 3840 * 80 + 8


@pytest.mark.parametrize("method", ["gptq", "bitsandbytes"])
def test_methods_not_read_for_the_tower_leave_it_in_the_model_dtype(method: str) -> None:
    spec = build_spec(_config(), name="Qwen/Qwen2.5-VL-7B-Instruct")
    qkv = next(t for t in spec.extra if t.name == "visual.blocks.0.attn.qkv.weight")
    q = parse_quant_config({"quant_method": method, "bits": 4, "group_size": 128, "load_in_4bit": True})
    assert _quant_for(qkv, q, "visual.blocks.0.attn.qkv") is None
