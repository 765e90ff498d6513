"""Sweep gaps, round 2: Persimmon, Fuyu and Qianfan-OCR as vLLM builds them (tests/fixtures/oracle/families/
sweep_gaps2.json holds the configs, their sources and transformers 5.23's meta-device counts).

- Persimmon / Fuyu were sized by the generic gated-MLP fallback (+25%: a gate_proj of 4096 x 16384 in each of 36
  layers that Persimmon does not have, minus its biases and q/k LayerNorms). vLLM implemented both natively until
  0.25.0 (persimmon.py, fuyu.py); 0.26+ lists them as previously supported.
- Qianfan-OCR fell through to its Qwen3 text model only (-2.7%: the InternViT-300M tower and the mlp1 projector,
  337,583,104 parameters, that vLLM 0.33's InternVLChatModel builds).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_internvl  # noqa: F401
import gpuplan.model.adapters_nongated  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "sweep_gaps2.json").read_text())
MODELS = FX["models"]


def _spec(key: str):
    return build_spec(MODELS[key]["config"], key)


@pytest.mark.parametrize("key", sorted(MODELS))
def test_parameter_count_equals_transformers(key: str) -> None:
    spec = _spec(key)
    assert not spec.generic
    assert spec.total_params == MODELS[key]["hf_params"]


def test_persimmon_8b_is_a_biased_non_gated_decoder_with_an_untied_head() -> None:
    """Per layer: fused QKV 3 x 4096 x 4096 + 3 x 4096 bias = 50,343,936; dense 4096^2 + 4096 = 16,781,312; q/k
    LayerNorms 2 x 2 x 64 = 256; dense_h_to_4h 16384 x 4096 + 16384 = 67,125,248; dense_4h_to_h 4096 x 16384 + 4096
    = 67,112,960; two LayerNorms 4 x 4096 = 16,384: 201,380,096. x 36 = 7,249,683,456, + embedding and untied head
    2 x 262,144 x 4096 = 2,147,483,648, + final LayerNorm 8,192 = 9,397,175,296."""
    spec = _spec("adept/persimmon-8b-base")
    assert sum(t.numel for t in spec.layers[0].tensors) == 201_380_096
    assert spec.total_params == 36 * 201_380_096 + 2 * 262_144 * 4096 + 8192 == 9_397_175_296
    assert not spec.tie_word_embeddings
    # no partial_rotary_factor in the file: PersimmonConfig's 0.5 -> a 32-wide rotary cache of 16,384 positions
    assert [(c.positions, c.rotary_dim) for c in spec.rope_caches] == [(16384, 32)]


def test_how_much_does_persimmon_8b_take_on_one_h100_under_vllm_0_25() -> None:
    """TP 1: 9,397,175,296 x 2 bytes = 18,794,350,592 + the rotary cache 16,384 x 32 x 2 = 1,048,576:
    18,795,399,168. TP 2: whole on each rank per layer 2 x 2 x 4096 LayerNorm + 256 q/k LayerNorm + the dense and
    dense_4h_to_h biases 2 x 4096 = 24,832, x 36 = 893,952, + final LayerNorm 8,192 = 902,144; the other
    9,396,273,152 halve to 4,698,136,576; (4,698,136,576 + 902,144) x 2 + 1,048,576 = 9,399,126,016.
    KV: 64 heads x 64 x (K + V) x 2 bytes = 16,384 bytes per token per layer; a 16-token block of 36 layers is
    16 x 36 x 16,384 = 9,437,184 bytes."""
    spec = _spec("adept/persimmon-8b-base")
    one = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=16384, vllm_version="0.25.0")
    two = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=16384, vllm_version="0.25.0")
    assert one.weights_bytes == 18_795_399_168
    assert two.weights_bytes == 9_399_126_016
    assert one.kv.bytes_per_block == 9_437_184
    assert one.fits and one.max_concurrency > 1


def test_can_i_serve_persimmon_on_vllm_0_33() -> None:
    # vLLM 0.26+ lists PersimmonForCausalLM as previously supported (registry.py _PREVIOUSLY_SUPPORTED_MODELS): the
    # numbers are the 0.25 implementation's and the report says so.
    r = estimate(_spec("adept/persimmon-8b-base"), gpu="H100", max_model_len=16384)
    assert any("0.25.0" in w and "PersimmonForCausalLM" in w for w in r.warnings)


def test_fuyu_8b_adds_one_column_parallel_patch_projection() -> None:
    """vision_embed_tokens: 30 x 30 x 3 = 2,700 -> 4,096 with bias: 11,059,200 + 4,096 = 11,063,296 on top of
    Persimmon's 9,397,175,296 = 9,408,238,592. gather_output keeps its weight and bias split over TP: at TP 2 each
    rank holds 5,531,648 of them. TP 1: 9,408,238,592 x 2 + 1,048,576 = 18,817,525,760; TP 2: Persimmon's
    9,399,126,016 + 5,531,648 x 2 = 9,410,189,312. A profile image is 1920 x 1080 in 30-pixel patches: 64 x 36."""
    spec = _spec("fuyu/default-8b")
    assert spec.total_params == 9_397_175_296 + 11_063_296
    assert spec.multimodal.params == 11_063_296 and spec.multimodal.tokens_per_item == 2304
    one = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=16384, vllm_version="0.25.0")
    two = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=16384, vllm_version="0.25.0")
    assert one.weights_bytes == 18_817_525_760
    assert two.weights_bytes == 9_410_189_312


def test_qianfan_ocr_counts_the_internvit_tower_and_mlp1() -> None:
    """InternViT-300M (transformers' -hf field names mapped by vLLM's _add_intern_vit_fields): embeddings
    3 x 14 x 14 x 1024 + 1024 + 1024 (class token) + (32^2 + 1) x 1024 = 1,653,760; per layer qkv 3 x 1024^2 +
    3 x 1024, proj 1024^2 + 1024, two LayerNorms 4 x 1024, two layer scales 2 x 1024, fc1 4096 x 1024 + 4096, fc2
    1024 x 4096 + 1024 = 12,598,272, x 24 = 302,358,528; mlp1: LayerNorm 2 x 4096, 4096 x 4096 + 4096 twice =
    33,570,816. Tower + projector 337,583,104, text 12,049,461,248: 12,387,044,352."""
    spec = _spec("qianfan_ocr/default")
    assert spec.multimodal.params == 1_653_760 + 24 * 12_598_272 + 33_570_816 == 337_583_104
    assert spec.total_params == 12_049_461_248 + 337_583_104
    assert spec.multimodal.tokens_per_item == 256  # (448 / 14)^2 x 0.5^2


def test_does_qianfan_ocr_fit_one_h100_at_32k_and_what_does_tp_2_hold() -> None:
    """TP 1: 12,387,044,352 x 2 + rotary cache 32,768 x 128 x 2 = 8,388,608: 24,782,477,312. TP 2: whole on each
    rank: the tower's embeddings 1,653,760, proj biases 24,576, norms and scales 172,032 and mlp1 33,570,816 =
    35,421,184, and the text model's RMSNorms 32 x (2 x 4096 + 2 x 128) + 4096 = 274,432; split: the tower's
    302,161,920 -> 151,080,960, the text's 12,049,186,816 -> 6,024,593,408. (6,211,369,984) x 2 + 8,388,608 =
    12,431,128,576. KV: 32 layers x 16 tokens x 32 KV heads x 128 x 2 x 2 bytes = 8,388,608 per block at TP 1."""
    spec = _spec("qianfan_ocr/default")
    one = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=32768)
    two = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    assert one.weights_bytes == 24_782_477_312
    assert two.weights_bytes == 12_431_128_576
    assert one.kv.bytes_per_block == 8_388_608 and two.kv.bytes_per_block == 4_194_304
    assert one.fits and one.max_concurrency > 1


def test_qianfan_ocr_head_stays_untied_when_only_the_text_config_ties() -> None:
    # QianfanOCRConfig's class default tie_word_embeddings False is copied onto the text config by vLLM's
    # with_hf_config even when config.json names none at the top level.
    cfg = json.loads(json.dumps(MODELS["qianfan_ocr/default"]["config"]))
    cfg.pop("tie_word_embeddings", None)
    cfg["text_config"]["tie_word_embeddings"] = True
    spec = build_spec(cfg)
    assert not spec.tie_word_embeddings and spec.total_params == 12_387_044_352


def test_qianfan_ocr_without_internvl_chat_keys_is_refused() -> None:
    # vLLM 0.33's InternVLChatModel reads config.select_layer / force_image_size / ps_version unguarded.
    cfg = {k: v for k, v in MODELS["qianfan_ocr/default"]["config"].items() if k != "select_layer"}
    with pytest.raises(ConfigError, match="select_layer"):
        build_spec(cfg)
