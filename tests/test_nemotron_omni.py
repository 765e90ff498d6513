"""Nemotron 3 Nano Omni (NemotronH_Nano_Omni_Reasoning_V3) as vLLM 0.33 builds it: the Nano VL v2 wrapper (Nemotron-H
MoE hybrid, RADIO ViT-H/16, mlp1) plus the Parakeet sound encoder and its projection
(tests/fixtures/oracle/families/nemotron_omni.json, config source and counts inside)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_nemotron_omni  # noqa: F401
import gpuplan.model.adapters_nemotron_vl  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "nemotron_omni.json").read_text())
OMNI = FX["models"]["NemotronH_Nano_Omni_Reasoning_V3/Nemotron-3-Nano-Omni-30B-A3B-Reasoning-BF16"]
CFG = OMNI["config"]
NAME = "nvidia/Nemotron-3-Nano-Omni-30B-A3B-Reasoning-BF16"

# Parakeet encoder, h 1024, FFN 4096, conv kernel 9, 24 blocks, no conv / linear biases (convolution_bias false,
# attention_bias forced off by vLLM's ParakeetConfig):
BLOCK = (2 * 2 * 1024 * 4096  # two macaron feed-forwards
         + 5 * 1024 * 1024 + 2 * 1024  # q, k, v, o, relative_k_proj + bias_u / bias_v
         + 2 * 1024 * 1024 + 1024 * 9 + 2 * 1024 + 1024 * 1024  # pw conv 1024 -> 2048, depth-wise, BatchNorm, pw conv
         + 5 * 2 * 1024)  # five LayerNorms
SUBSAMPLING = (9 * 256 + 256) + 2 * ((9 * 256 + 256) + (256 * 256 + 256)) + 256 * (128 // 8) * 1024 + 1024
ENCODER = SUBSAMPLING + 24 * BLOCK
SOUND_PROJ = 1024 + 1024 * 4096 + 4096 * 2688  # RMSNorm, Linear -> 4096, Linear -> text width, no biases
RADIO = 653_693_440  # vLLM's RADIO ViT-H/16 with its video embedder (T = 2) and 4 + 6 class / register tokens
MLP1 = 5120 + 5120 * 20480 + 20480 * 2688
BUFFERS = 24 * 2 * 1024 + 512  # BatchNorm running_mean / running_var, inv_freq (model dtype)


def _spec():
    return build_spec(CFG, NAME)


def _text():
    return build_spec(CFG["llm_config"], "text")


def test_the_omni_counts_its_audio_tower_like_transformers() -> None:
    spec = _spec()
    assert spec.model_type == "NemotronH_Nano_Omni_Reasoning_V3" == spec.architecture
    assert not spec.generic and not any("not counted" in n for n in spec.notes)
    assert ENCODER == 608_879_616 and SOUND_PROJ == 15_205_376 and MLP1 == 159_912_960
    assert _text().total_params == OMNI["hf_params"]["text_nemotron_h"] == 31_577_937_344
    assert spec.total_params == OMNI["hf_params"]["total"] == 31_577_937_344 + RADIO + MLP1 + ENCODER + SOUND_PROJ
    assert spec.total_params == 33_015_628_736
    assert spec.multimodal is not None and spec.multimodal.params == RADIO + MLP1 + ENCODER + SOUND_PROJ


def test_weights_per_gpu_at_tp1_and_tp2() -> None:
    """bf16. TP=1, vision kind: RADIO 653,693,440 + Parakeet 608,879,616 + buffers 49,664 = 1,262,622,720 x 2 B
    = 2,525,245,440, plus 24 num_batches_tracked int64 = 192 B -> 2,525,245,632 B; projector kind: mlp1 159,912,960
    + sound projection 15,205,376 = 175,118,336 x 2 = 350,236,672 B.
    TP=2: RADIO's qkv / proj / fc1 / fc2 (629,432,320) halve -> 314,716,160 + 24,261,120 whole = 338,977,280 x 2 =
    677,954,560 B; the Parakeet encoder is transformers' own module, whole on every rank: 1,217,858,752 B; vision
    1,895,813,312 B. The projectors are plain torch modules, whole: 350,236,672 B at any TP."""
    one = estimate(_spec(), gpu="H100", tensor_parallel_size=1, max_model_len=131072)
    two = estimate(_spec(), gpu="H100", tensor_parallel_size=2, max_model_len=131072)
    t1 = estimate(_text(), gpu="H100", tensor_parallel_size=1, max_model_len=131072)
    t2 = estimate(_text(), gpu="H100", tensor_parallel_size=2, max_model_len=131072)
    k1, k2 = one.per_stage[0]["weights_by_kind"], two.per_stage[0]["weights_by_kind"]
    assert 2 * (RADIO + ENCODER + BUFFERS) + 8 * 24 == k1["vision"] == 2_525_245_632
    assert 2 * (MLP1 + SOUND_PROJ) == k1["projector"] == k2["projector"] == 350_236_672
    assert k2["vision"] == 677_954_560 + 2 * (ENCODER + BUFFERS) + 8 * 24 == 1_895_813_312
    assert one.weights_bytes == t1.weights_bytes + 2_525_245_632 + 350_236_672 == 66_031_371_712
    assert two.weights_bytes == t2.weights_bytes + 1_895_813_312 + 350_236_672 == 33_832_056_512


def test_does_nemotron_3_nano_omni_fit_on_one_h100_at_128k() -> None:
    """Yes: 66.0 GB (61.5 GiB) of BF16 weights, and the rest holds about ten 128K requests.
    Only the language model has a cache. Per token per attention layer: 2 (K, V) x 2 KV heads x 128 x 2 B = 1,024 B.
    Mamba state per layer: conv (4 - 1) x (64 x 64 + 2 x 8 x 128) x 2 B = 36,864 B, plus ssm 64 heads x 64 x 128 x
    2 B = 1,048,576 B: 1,085,440 B. The SSM state keeps the model dtype: vLLM's SSM dtype hooks are keyed by
    architecture name (MODELS_CONFIG_MAP) and none lists the omni names, so no hook raises it to float32 as
    NemotronH_Nano_VL_V2's does. vLLM 0.33 raises the attention block size until a page holds a state:
    ceil(1,085,440 / 1,024) = 1,060 tokens, aligned up to 1,072 (a multiple of 16); page 1,072 x 1,024 = 1,097,728 B.
    6 attention + 23 Mamba layers in groups of 6: 1 attention group + 4 Mamba groups (one padding slot); one block
    costs 6 pages = 6,586,368 B. A 128K request: ceil(131,072 / 1,072) = 123 attention blocks."""
    r = estimate(_spec(), gpu="H100", tensor_parallel_size=1, max_model_len=131072)
    kv = r.kv
    assert r.fits is True
    assert (kv.block_size, kv.bytes_per_block, kv.num_groups, kv.group_size) == (1072, 6_586_368, 5, 6)
    mamba, full = kv.groups
    assert (mamba.kind, mamba.num_layers, mamba.page_bytes) == ("mamba", 23, 1_097_728)
    assert (full.kind, full.num_layers, full.page_bytes, full.blocks_per_request) == ("full", 6, 1_097_728, 123)
    assert kv.num_gpu_blocks == r.available_kv_cache_bytes // 6_586_368
    assert 9 < kv.max_concurrency < 12
    # the towers cost KV room: the text-only model leaves more KV memory on the same GPU
    assert estimate(_text(), gpu="H100", tensor_parallel_size=1, max_model_len=131072).available_kv_cache_bytes > \
        r.available_kv_cache_bytes


def test_a_text_only_start_up_builds_neither_radio_nor_parakeet() -> None:
    from gpuplan.deployment import Deployment
    from gpuplan.engines.vllm.estimate import estimate as vllm_estimate

    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, max_model_len=32768, language_model_only=True)
    t = estimate(_text(), gpu="H100", tensor_parallel_size=1, max_model_len=32768)
    assert vllm_estimate(_spec(), dep).weights_bytes == t.weights_bytes


def test_a_conv_bias_and_projection_bias_add_their_vectors() -> None:
    # convolution_bias: pw conv 1 (2h) + depth-wise (h) + pw conv 2 (h) per block; projection_bias: 4096 + 2688
    cfg = {**CFG, "sound_config": {**CFG["sound_config"], "convolution_bias": True, "projection_bias": True}}
    assert build_spec(cfg, "b").total_params - _spec().total_params == 24 * 4 * 1024 + 4096 + 2688


def test_a_sound_config_missing_sizes_is_refused() -> None:
    # the remote SoundConfig's own defaults (conv kernel 31, projection 20480, biased) would fill them
    sound = {k: v for k, v in CFG["sound_config"].items() if k not in ("conv_kernel_size", "projection_bias")}
    with pytest.raises(ConfigError, match="conv_kernel_size, projection_bias"):
        build_spec({**CFG, "sound_config": sound}, "omni")


def test_the_transformers_native_omni_format_is_refused() -> None:
    # transformers 5.23's nemotron_h_omni (text_config / audio_config / native RadioConfig) lacks the remote-code
    # fields vLLM 0.33 reads; the generic fallback used to size it at 1.968B for transformers' 2.660B
    cfg = {"model_type": "nemotron_h_omni", "architectures": ["NemotronH_Omni_Reasoning_V3"],
           "text_config": CFG["llm_config"], "audio_config": CFG["sound_config"]}
    with pytest.raises(ConfigError, match="nemotron_h_omni"):
        build_spec(cfg, "native")


@pytest.mark.parametrize(("arch", "since"), [("NemotronH_Omni_Reasoning_V3", "0.29"),
                                            ("NemotronH_Nano_Omni_Reasoning_V3", None)])
def test_an_omni_wrapper_drafts_with_its_text_mtp_only_where_vllm_promotes_its_text_config(arch: str,
                                                                                          since: str | None) -> None:
    """SpeculativeConfig turns the text config into nemotron_h_mtp for NemotronH_Omni_Reasoning_V3 (0.29+) and the
    Super omni (0.20+), not for the Nano's own architecture name (the fixture's config with one MTP module added)."""
    cfg = {**CFG, "architectures": [arch], "llm_config": {**CFG["llm_config"], "num_nextn_predict_layers": 1,
                                                          "mtp_hybrid_override_pattern": "*E"}}
    mtp = build_spec(cfg, NAME).mtp
    assert (mtp.since if mtp else None) == since
    assert build_spec(cfg["llm_config"], "text").mtp is not None  # the text model alone has one


def test_an_omni_text_config_naming_fp32_ssm_state_still_caches_it_in_the_model_dtype() -> None:
    """No SSM dtype hook runs for the omni names (MODELS_CONFIG_MAP, 0.20-0.33), so even a float32 in llm_config
    leaves 1,072-token blocks; the same text under NemotronH_Nano_VL_V2 gets the hook and float32's 2,096."""
    llm = {**CFG["llm_config"], "mamba_ssm_cache_dtype": "float32"}
    omni = estimate({**CFG, "llm_config": llm}, gpu="H100", max_model_len=131072)
    vl = estimate({**CFG, "architectures": ["NemotronH_Nano_VL_V2"], "model_type": "NemotronH_Nano_VL_V2",
                   "llm_config": llm}, gpu="H100", max_model_len=131072)
    assert (omni.kv.block_size, vl.kv.block_size) == (1072, 2096)
