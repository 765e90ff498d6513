"""Molmo2 (molmo2) as vLLM 0.33 builds it (models/molmo2.py): a Qwen3-style text model with an embedding widened
by additional_vocab_size, a SigLIP ViT cut to the 25 blocks its adapter reads, an attention-pooling layer and a
gated projector (tests/fixtures/oracle/families/molmo2.json, config source inside). No vLLM 0.33 oracle exists for
it: KV and byte figures below are hand arithmetic from vLLM's source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_unified_vlms  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "molmo2.json").read_text())
M4 = FX["models"]["allenai/Molmo2-4B"]
ROPE = 36864 * 128 * 2  # one cos/sin cache: max_position_embeddings x head_dim, bf16


def _spec():
    return build_spec(M4["config"], "allenai/Molmo2-4B")


def test_molmo2_4b_has_the_parameters_of_transformers_and_of_its_checkpoint_index() -> None:
    spec = _spec()
    assert not spec.generic and spec.architecture == "Molmo2ForConditionalGeneration"
    assert spec.total_params == M4["hf_params"] == M4["checkpoint_total_parameters"] == 4_850_869_200
    counts = spec.param_counts()
    # embed_tokens holds 151,936 + 128 additional rows; the untied LM head 151,936
    assert counts["embedding"] == 152_064 * 2560 and counts["lm_head"] == 151_936 * 2560
    # 25 of 27 ViT blocks (vit_layers -3, -9 -> 24, 18): each fused qkv 3456 x 1152, wo, w1/w2 4304 wide, biases,
    # two LayerNorms; plus a 729 x 1152 position table and a 588 -> 1152 patch Linear
    block = 3456 * 1152 + 3456 + 1152 * 1152 + 1152 + 2 * 4304 * 1152 + 4304 + 1152 + 4 * 1152
    assert counts["vision"] == 25 * block + 729 * 1152 + 588 * 1152 + 1152 == M4["hf_by_category"]["vision"]
    assert counts["projector"] == M4["hf_by_category"]["projector"]
    assert spec.attention_kinds == {"full": 36}


def test_molmo2_4b_weights_at_tp1_and_tp2() -> None:
    """The checkpoint is float32; vLLM's dtype "auto" serves it in bfloat16.
    TP=1: 4,850,869,200 x 2 + rope 36,864 x 128 x 2 = 9,711,175,584.
    TP=2 per rank (152,064 and 151,936 are multiples of 64: no vocab padding): embedding 76,032 x 2560, LM head
    75,968 x 2560, final norm 2560; 36 layers x (q 2048 x 2560 + k, v 512 x 2560 each + o 2560 x 2048 + q/k norms
    2 x 128 + up/gate 2 x 4864 x 2560 + down 2560 x 4864 + 2 norms x 2560) = 36 x 50,468,096; 25 ViT blocks x
    (qkv 1728 x 1152 + 1728 + wo 1152 x 576 + 1152 (row bias whole) + w1 2152 x 1152 + 2152 + w2 1152 x 2152 + 1152
    + LayerNorms 4608) = 25 x 7,623,208; position table and patch Linear whole 1,518,336; pooling q 576 x 2304 + 576,
    kv 1152 x 2304 + 1152, o 1152 x 576 + 1152 = 4,647,744; projector 9728 x 1152 + 2560 x 4864 = 23,658,496.
    = 2,426,378,792 x 2 + 9,437,184 = 4,862,194,768."""
    spec = _spec()
    assert spec.torch_dtype == "float32"
    one = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=32768)
    assert one.weights_bytes == M4["hf_params"] * 2 + ROPE == 9_711_175_584
    two = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    per_rank = (76_032 * 2560 + 75_968 * 2560 + 2560 + 36 * 50_468_096 + 25 * 7_623_208 + 1_518_336
                + 4_647_744 + 23_658_496)
    assert per_rank == 2_426_378_792
    assert two.weights_bytes == per_rank * 2 + ROPE == 4_862_194_768


def test_molmo2_4b_kv_is_36_full_layers_of_8_heads_of_128() -> None:
    """One FullAttentionSpec group: a block holds 16 tokens x 36 layers x (K, V) x 8 heads x 128 x 2 bytes =
    2,359,296 bytes (144 KiB a token). With 4 GiB: 4,294,967,296 // 2,359,296 = 1,820 blocks = 29,120 tokens;
    a 32K request needs 2,048 blocks, so concurrency 0.89."""
    r = estimate(_spec(), gpu="H100", tensor_parallel_size=1, max_model_len=32768, kv_cache_memory_bytes=4 * 2**30)
    assert r.kv.bytes_per_block == 16 * 36 * 2 * 8 * 128 * 2 == 2_359_296
    assert r.kv.num_groups == 1
    assert r.num_gpu_blocks == 4 * 2**30 // 2_359_296 == 1820
    assert r.kv_cache_tokens == 1820 * 16 == 29_120
    assert not r.fits  # less than one 32K request


def test_does_molmo2_4b_fit_one_l4_at_32k_yes() -> None:
    """9.7 GB of bf16 weights on a 24 GB L4 leave room for more than two 32K requests (KV at 144 KiB a token)."""
    r = estimate(_spec(), gpu="L4", tensor_parallel_size=1, max_model_len=32768)
    assert r.fits and r.weights_bytes == 9_711_175_584
    assert r.kv.bytes_per_block == 2_359_296
    assert r.kv_cache_tokens > 2 * 32768


def test_transformers_native_molmo2_config_is_refused_as_vllm_reads_vit_config() -> None:
    native = {k: v for k, v in M4["config"].items() if k != "vit_config"}
    native["vision_config"] = M4["config"]["vit_config"]
    with pytest.raises(ConfigError):
        build_spec(native, "native")
