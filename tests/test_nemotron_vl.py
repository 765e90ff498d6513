"""NVIDIA Nemotron Nano 12B v2 VL (NemotronH_Nano_VL_V2) as vLLM 0.33 builds it: the Nemotron-H hybrid text model,
vLLM's own RADIO ViT-H/16 tower and the mlp1 projector (tests/fixtures/oracle/families/nemotron_vl.json, config
source inside)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_nemotron_vl  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "nemotron_vl.json").read_text())
VL = FX["models"]["NemotronH_Nano_VL_V2/NVIDIA-Nemotron-Nano-12B-v2-VL-BF16"]
NAME = "nvidia/NVIDIA-Nemotron-Nano-12B-v2-VL-BF16"

# vLLM's RadioModel for vit_huge_patch16_224 (width 1280, 32 blocks, MLP 5120), patch 16, cpe_max_size 2048:
SPLIT = 32 * ((3 * 1280 * 1280 + 3 * 1280) + 1280 * 1280 + (5120 * 1280 + 5120) + 1280 * 5120)  # qkv, proj, fc1, fc2
WHOLE_BLOCKS = 32 * (4 * 1280 + 1280 + 1280 + 2 * 1280)  # norm1/norm2 w+b, proj/fc2 biases, ls1/ls2
WHOLE_ONCE = 3 * 16 * 16 * 1280 + 128 * 128 * 1280 + 8 * 1280  # patch embedder, 128x128 positions, 4 cls + 4 regs
MLP1 = 5120 + 5120 * 20480 + 20480 * 5120  # RMSNorm(4 x 1280), Linear -> 20480, Linear -> 5120, no biases


def _spec():
    return build_spec(VL["config"], NAME)


def test_the_12b_vl_counts_its_radio_tower_and_projector_not_just_the_text_model() -> None:
    spec = _spec()
    assert spec.model_type == "NemotronH_Nano_VL_V2" and spec.architecture == "NemotronH_Nano_VL_V2"
    assert not spec.generic and not any("not counted" in n for n in spec.notes)
    text = build_spec({**VL["config"]["llm_config"]}, "text")
    assert text.total_params == VL["hf_params"]["text_nemotron_h"] == 12_310_001_152
    # vLLM's RADIO equals transformers' RadioModel count (its layer-scale vectors stand for vLLM's ls1/ls2)
    assert SPLIT + WHOLE_BLOCKS + WHOLE_ONCE == VL["hf_params"]["vision_radio"] == 651_724_800
    assert MLP1 == VL["hf_params"]["mlp1_by_hand"] == 209_720_320
    assert spec.total_params == VL["hf_params"]["total"] == 13_171_446_272
    assert spec.multimodal is not None and spec.multimodal.params == 651_724_800 + 209_720_320
    assert spec.multimodal.tokens_per_item == 256  # one 512px tile: 32 x 32 patches, pixel-shuffled 2x2
    # the text config names no SSM dtype: the wrapper's hook (0.18+) gives float16 until 0.19, float32 from 0.20
    assert spec.mamba_ssm_dtype is None
    assert spec.mamba_ssm_dtype_defaults == (("0.18", "float16"), ("0.20", "float32"))


def test_a_text_config_naming_fp32_ssm_state_is_read_from_0_18_when_the_wrapper_gained_its_hook() -> None:
    cfg = {**VL["config"], "llm_config": {**VL["config"]["llm_config"], "mamba_ssm_cache_dtype": "float32"}}
    spec = build_spec(cfg, NAME)
    assert spec.mamba_ssm_dtype == "float32" and spec.mamba_ssm_dtype_from == "0.18"

    def state_page(version: str) -> int:
        r = estimate(cfg, gpu="H100", vllm_version=version, max_model_len=32768, enable_prefix_caching=False)
        return next(g.page_bytes for g in r.kv.groups if g.kind == "mamba")

    # 0.17 keeps the model dtype (bf16), 0.18 the config's float32: about twice the page
    assert state_page("0.18") > 1.9 * state_page("0.17")


def test_weights_per_gpu_at_tp1_and_tp2() -> None:
    """TP=1: everything in bf16. Tower 651,724,800 x 2 = 1,303,449,600 B; mlp1 209,720,320 x 2 = 419,440,640 B.
    TP=2: the tower's qkv / proj / fc1 / fc2 weights and the qkv / fc1 biases halve (629,432,320 / 2 = 314,716,160),
    the rest stays whole (327,680 + 21,964,800): 337,008,640 x 2 = 674,017,280 B; mlp1 is a plain torch
    Sequential, whole on every rank (419,440,640 B at any TP). The text model's bytes are its own adapter's."""
    spec = _spec()
    text = build_spec({**VL["config"]["llm_config"]}, "text")
    one = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=32768)
    two = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    t1 = estimate(text, gpu="H100", tensor_parallel_size=1, max_model_len=32768)
    t2 = estimate(text, gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    kinds1, kinds2 = one.per_stage[0]["weights_by_kind"], two.per_stage[0]["weights_by_kind"]
    assert (kinds1["vision"], kinds1["projector"]) == (1_303_449_600, 419_440_640)
    assert (kinds2["vision"], kinds2["projector"]) == (674_017_280, 419_440_640)
    assert SPLIT // 2 + WHOLE_BLOCKS + WHOLE_ONCE == 337_008_640
    assert one.weights_bytes == t1.weights_bytes + 1_303_449_600 + 419_440_640 == 26_342_899_712
    assert two.weights_bytes == t2.weights_bytes + 674_017_280 + 419_440_640 == 13_403_785_216


def test_text_only_start_up_builds_no_tower() -> None:
    # _mark_tower_model(image, video, audio): with --language-model-only vLLM builds neither RADIO nor mlp1.
    spec = _spec()
    from gpuplan.deployment import Deployment
    from gpuplan.engines.vllm.estimate import estimate as vllm_estimate

    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, max_model_len=32768, language_model_only=True)
    r = vllm_estimate(spec, dep)
    text = build_spec({**VL["config"]["llm_config"]}, "text")
    t = estimate(text, gpu="H100", tensor_parallel_size=1, max_model_len=32768)
    assert r.weights_bytes == t.weights_bytes


def test_nemotron_nano_12b_vl_on_one_l40s_at_32k() -> None:
    """Only the language model has a KV cache. Per TP=1 rank:
    attention (6 layers): 2 (K,V) x 8 KV heads x 128 x 2 B = 4,096 B per token per layer;
    Mamba (28 layers): conv (4 - 1) x (128 x 80 + 2 x 8 x 128) x 2 B = 3 x 12,288 x 2 = 73,728 B, plus
    ssm 128 heads x 80 x 128 x 4 B (float32) = 5,242,880 B: 5,316,608 B per state.
    vLLM 0.33's hybrid planner raises the attention block size until one attention page holds a Mamba state:
    ceil(5,316,608 / 4,096) = 1,298 tokens, rounded up to the kernel alignment -> 1,312 tokens, a page of
    1,312 x 4,096 = 5,373,952 B, to which the Mamba pages are padded. The 34 cache layers form groups of 6
    (6 attention + 28 Mamba -> 6 groups with 2 padding slots), so one block costs 6 x 5,373,952 = 32,243,712 B.
    A 32K request: 32,768 / 1,312 -> 25 attention blocks; Mamba in 'align' prefix-cache mode 15 blocks."""
    r = estimate(_spec(), gpu="L40S", tensor_parallel_size=1, max_model_len=32768)
    kv = r.kv
    assert r.fits is True
    assert (kv.block_size, kv.bytes_per_block, kv.num_groups, kv.group_size) == (1312, 32_243_712, 6, 6)
    mamba, full = kv.groups
    assert (mamba.kind, mamba.num_layers, mamba.page_bytes) == ("mamba", 28, 5_373_952)
    assert (full.kind, full.num_layers, full.page_bytes, full.blocks_per_request) == ("full", 6, 5_373_952, 25)
    assert kv.num_gpu_blocks * 32_243_712 <= r.available_kv_cache_bytes
    assert kv.max_concurrency > 1  # more than one 32K request at a time


def test_a_sound_config_missing_the_encoder_sizes_is_refused_not_guessed() -> None:
    # The Parakeet encoder is sized from sound_config (adapters_nemotron_omni.py); the remote SoundConfig's own
    # defaults are not readable, so a config that leaves sizing keys out is refused rather than filled in.
    cfg = {**VL["config"], "sound_config": {"model_type": "parakeet", "hidden_size": 1024, "num_hidden_layers": 24}}
    with pytest.raises(ConfigError, match="sound_config"):
        build_spec(cfg, "omni")


def test_an_unknown_radio_vit_is_refused() -> None:
    vis = {**VL["config"]["vision_config"], "args": {**VL["config"]["vision_config"]["args"], "model": "vit_giant"}}
    with pytest.raises(ConfigError, match="vit_giant"):
        build_spec({**VL["config"], "vision_config": vis}, "x")
