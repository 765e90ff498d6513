"""NAVER HyperCLOVA X SEED as vLLM 0.33 builds it (models/hyperclovax.py, hyperclovax_vision_v2.py): a Llama-shaped
decoder with two extra peri-layer RMSNorms per layer and muP scalars that hold no memory, and the HCXVisionV2
wrapper that puts vLLM's Qwen2.5-VL tower and a biased Linear projector in front of it
(tests/fixtures/oracle/families/hyperclovax.json; its _meta says where each config comes from: the 32B one is
partly reconstructed, its intermediate_size assumed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_hyperclovax  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "hyperclovax.json").read_text())
DEFAULT = FX["models"]["hyperclovax/transformers-default"]
FLAGS = FX["models"]["hyperclovax/all-flags"]
SEED32 = FX["models"]["vlm/hcx_seed_think_32b"]


def _spec(entry: dict, name: str = "hcx"):
    return build_spec(json.loads(json.dumps(entry["config"])), name)


def test_default_hyperclovax_is_llama_7b_plus_two_peri_layer_norms_per_layer() -> None:
    spec = _spec(DEFAULT)
    assert not spec.generic and spec.model_type == "hyperclovax"
    # Llama-2-7B's 6,738,415,616 plus post_norm1 / post_norm2 (2 x 4096) in each of 32 layers; no muP parameters
    assert spec.total_params == DEFAULT["hf_params"] == 6_738_415_616 + 32 * 2 * 4096 == 6_738_677_760
    assert len([t for t in spec.layers[0].tensors if t.kind == "norm"]) == 4


def test_every_flag_the_config_carries_changes_the_count_as_in_transformers() -> None:
    """attention_bias (q, k, v and o biases), mlp_bias (gate, up, down biases), tied embeddings, no post norms,
    head_dim 96 wider than 256 / 4 heads:
    embed 1000 x 256; per layer q 384 x 256 + 384, k, v 2 x (192 x 256 + 192), o 256 x 384 + 256,
    gate/up 2 x (640 x 256 + 640), down 256 x 640 + 256, two norms 2 x 256 = 789,504 x 3; final norm 256."""
    spec = _spec(FLAGS)
    assert spec.tie_word_embeddings and spec.head_dim == 96
    assert spec.total_params == FLAGS["hf_params"] == 1000 * 256 + 3 * 789_504 + 256 == 2_624_768


def test_32b_vision_language_model_counts_tower_projector_and_untied_head_like_transformers() -> None:
    spec = _spec(SEED32, "naver-hyperclovax/HyperCLOVAX-SEED-Think-32B")
    assert spec.architecture == "HCXVisionV2ForCausalLM" and spec.model_type == "vlm"
    tower = sum(t.numel for t in spec.extra if t.kind == "vision")
    proj = sum(t.numel for t in spec.extra if t.kind == "projector")
    assert tower == SEED32["hf_parts"]["vision_model"] == 688_841_984
    assert proj == SEED32["hf_parts"]["projector"] == 5120 * 5120 + 5120
    assert spec.total_params == SEED32["hf_params"] == 33_738_820_864
    # transformers' wrapper would tie the head by its top-level default; vLLM reads text_config's flag only
    assert spec.total_params - SEED32["hf_params_outer_tied"] == 128256 * 5120


def test_32b_weights_at_tp1_and_tp2_by_hand() -> None:
    """TP=1: 33,738,820,864 bf16 parameters x 2 + one rotary cache 131072 x 128 x 2 = 67,511,196,160 bytes.
    TP=2, per rank (bf16): embedding and LM head 2 x 64128 x 5120; final norm 5120;
    72 x [q 2560 x 5120, k and v 2 x 512 x 5120, o 5120 x 2560, gate/up 2 x 12288 x 5120, down 5120 x 12288,
    four norms 4 x 5120] = 72 x 220,221,440;
    tower: split part (688,841,984 - 1,675,520) / 2 = 343,583,232 plus what every rank keeps whole, 1,675,520 =
    patch Conv3d 3 x 2 x 14 x 14 x 1280 + 32 blocks x (norm1, norm2, proj bias, down_proj bias) 4 x 1280 +
    merger ln_q 1280 + merger output bias 5120; mm_projector whole 26,219,520;
    = 16,884,097,792 parameters x 2 + rotary cache 33,554,432 = 33,801,750,016 bytes."""
    spec = _spec(SEED32)
    one = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=32768)
    assert one.weights_bytes == 33_738_820_864 * 2 + 131072 * 128 * 2 == 67_511_196_160
    two = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    per_rank = (2 * 64128 * 5120 + 5120 + 72 * 220_221_440 + 343_583_232 + 1_675_520 + 26_219_520)
    assert per_rank == 16_884_097_792
    assert two.weights_bytes == per_rank * 2 + 131072 * 128 * 2 == 33_801_750_016


def test_kv_is_one_full_attention_group_of_288_kib_a_token() -> None:
    """72 full-attention layers x (K + V) x 8 KV heads x 128 x 2 bytes = 294,912 bytes a token (16-token blocks:
    4,718,592); at TP=2 each rank keeps 4 KV heads: half. Independent of the FFN width the fixture assumes."""
    spec = _spec(SEED32)
    assert spec.attention_kinds == {"full": 72}
    one = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=32768)
    assert one.kv.bytes_per_block == 16 * 72 * 2 * 8 * 128 * 2 == 4_718_592
    assert one.kv.num_groups == 1
    two = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    assert two.kv.bytes_per_block == 4_718_592 // 2


def test_a_seed_32b_shape_with_an_assumed_24576_wide_ffn_does_not_fit_one_h100_at_32k() -> None:
    """No, in bf16 (with the fixture's assumed FFN width 24576): 62.9 GiB of weights leave 1,585 blocks = 25,360
    tokens, fewer than one 32K request needs (32K x 288 KiB = 9 GiB). Two H100s at TP=2 hold 17,508 blocks =
    280,128 tokens each, 8.5 requests of 32K."""
    spec = _spec(SEED32)
    one = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=32768)
    assert not one.fits
    assert one.kv_cache_tokens == 25_360 < 32768
    two = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    assert two.fits and two.kv_cache_tokens == 280_128


def test_tiny_random_checkpoint_with_gelu_is_refused_as_vllm_refuses_it() -> None:
    # hf-internal-testing's tiny HyperCLOVAX text config uses hidden_act gelu: HyperCLOVAXMLP raises for it.
    cfg = {**DEFAULT["config"], "hidden_act": "gelu"}
    with pytest.raises(ConfigError, match="silu"):
        build_spec(cfg, "tiny")


def test_model_type_vlm_is_only_taken_for_the_hyperclovax_architecture() -> None:
    cfg = {**SEED32["config"], "architectures": ["SomeOtherVLM"]}
    with pytest.raises(ConfigError, match="HCXVisionV2ForCausalLM"):
        build_spec(cfg, "other")
    # transformers' native name for the same wrapper builds the same model
    native = {**SEED32["config"], "model_type": "hyperclovax_vision_v2"}
    assert build_spec(native, "native").total_params == 33_738_820_864
