"""Tencent HunYuan v1 (hunyuan_v1_dense, hunyuan_v1_moe, hunyuan_vl) as vLLM 0.33 builds them through its
Transformers backend: transformers' classes with q/k/v and gate/up fused and split over TP, experts in one FusedMoE,
the MoE gate's wg a replicated Linear in the model dtype, no rotary cache, one full-attention KV cache per layer
(tests/fixtures/oracle/families/hunyuan.json: configs, their sources and transformers' meta-device counts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_hunyuan  # noqa: F401
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "hunyuan.json").read_text())["models"]
A13B, D7B = FX["hunyuan_v1_moe/Hunyuan-A13B-Instruct"], FX["hunyuan_v1_dense/Hunyuan-7B-Instruct"]
OCR, DEF_MOE = FX["hunyuan_vl/HunyuanOCR"], FX["hunyuan_v1_moe/transformers-default"]
GiB = 2**30


def _spec(m):
    return build_spec(m["config"], m["config_source"][:40])


@pytest.mark.parametrize("m", [A13B, D7B, OCR, DEF_MOE], ids=lambda m: m["hf_model_class"])
def test_parameters_equal_transformers_meta_count(m) -> None:
    spec = _spec(m)
    assert not spec.generic
    assert spec.total_params == m["hf_params"]


def test_a13b_is_80_4b_with_its_shared_expert_and_64_experts() -> None:
    """80,393,183,232 = embedding 128167 x 4096 (tied) + 32 x (attention 41,943,040 + q/k layernorms 256 + norms 8192
    + wg 64 x 4096 + 64 experts x 3 x 3072 x 4096 + shared MLP 3 x 3072 x 4096) + final norm 4096."""
    spec = _spec(A13B)
    assert spec.total_params == 80_393_183_232
    moe = spec.layers[0].mlp
    assert (moe.kind, moe.num_experts, moe.top_k, moe.moe_intermediate_size, moe.shared_intermediate_size) == (
        "moe", 64, 8, 3072, 3072)
    shared = sum(t.numel for t in spec.layers[0].tensors if t.kind == "shared_experts")
    assert shared == 3 * 3072 * 4096  # the generic path dropped this one (num_shared_expert spelling)
    (wg,) = [t for t in spec.layers[0].tensors if t.kind == "router"]
    # transformers declares wg float32; vLLM rebuilds it as a ReplicatedLinear in the model dtype
    assert wg.shape == (64, 4096) and wg.parallel == "replicated" and wg.dtype is None and wg.linear


def test_transformers_default_moe_config_is_one_expert_plus_the_shared_mlp() -> None:
    """num_experts 1: 32 x (1 expert + shared MLP, 3 x 11008 x 4096 each) = 8,657,043,456 MLP parameters, not a
    dense 4,328,521,728; untied embedding and LM head 2 x 290943 x 4096."""
    spec = _spec(DEF_MOE)
    assert spec.total_params == 13_188_337_664
    assert spec.layers[0].mlp.num_experts == 1 and not spec.tie_word_embeddings


def test_a13b_bf16_on_two_h100s_at_32k_does_not_fit() -> None:
    """Per rank at TP=2 (bf16): embedding (tied) 128192/2 x 4096 = 262,537,216; final norm 4096;
    32 x [q 2048 x 4096 + k, v 4 heads x 128 x 4096 + o 4096 x 2048 = 20,971,520, q/k layernorms 256, norms 8192,
    wg 64 x 4096 = 262,144 whole, experts 64 x 3 x 1536 x 4096 = 1,207,959,552, shared 3 x 1536 x 4096 = 18,874,368]
    = 40,200,974,336 parameters x 2 = 80,401,948,672 bytes (74.9 GiB), over the 72 GiB that
    gpu_memory_utilization 0.9 leaves of 80 GiB. Two H200s hold it with room for 826,384 tokens of KV."""
    spec = _spec(A13B)
    h100 = estimate_on(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    assert h100.weights_bytes == 80_401_948_672
    assert not h100.fits and h100.num_gpu_blocks == 0
    h200 = estimate_on(spec, gpu="H200", tensor_parallel_size=2, max_model_len=32768)
    assert h200.weights_bytes == h100.weights_bytes and h200.fits
    assert h200.kv_cache_tokens == 826_384


def test_a13b_at_tp1_is_two_bytes_a_parameter_with_the_vocab_padded_and_no_rotary_cache() -> None:
    """(80,393,183,232 + (128192 - 128167) x 4096) x 2 = 160,786,571,264 bytes: the Transformers backend keeps no
    cos/sin cache, so nothing else."""
    r = estimate_on(_spec(A13B), gpu="H100", max_model_len=32768)
    assert r.weights_bytes == 160_786_571_264


def test_a13b_fp8_on_one_h100_does_not_fit() -> None:
    """Online fp8 quantizes every vLLM linear, the replicated gate.wg included (the backend hands it the
    quant_config): 79,867,936,768 linear parameters at 1 byte, the embedding 128192 x 4096 and 274,432 norm
    parameters at 2 bytes, plus 34,816 bytes of fp32 scales = 80,918,669,312 bytes (75.4 GiB) > 72 GiB."""
    r = estimate_on(_spec(A13B), gpu="H100", max_model_len=32768, quantization="fp8")
    assert r.weights_bytes == 80_918_669_312
    assert not r.fits


def test_a13b_kv_is_32_full_layers_of_8_heads_without_cross_layer_sharing() -> None:
    """One vLLM Attention per layer (use_cla false; transformers has no CLA): 32 x (K + V) x 8 x 128 x 2 bytes =
    131,072 bytes a token, 2,097,152 a 16-token block at TP=1; at TP=2 4 KV heads a rank, 1,048,576 a block. An 8 GiB
    KV budget at TP=2 is 8192 blocks = 131,072 tokens, 4 requests of 32K."""
    spec = _spec(A13B)
    assert spec.attention_kinds == {"full": 32}
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * GiB, tensor_parallel_size=2, max_model_len=32768,
                     kv_cache_memory_bytes=8 * GiB)
    r = estimate(spec, dep)
    assert r.kv.bytes_per_block == 16 * 32 * 2 * 4 * 128 * 2 == 1_048_576
    assert r.kv.num_groups == 1
    assert (r.num_gpu_blocks, r.kv_cache_tokens, r.max_concurrency) == (8192, 131_072, 4.0)


def test_cross_layer_attention_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match="cross-layer"):
        build_spec({**A13B["config"], "use_cla": True, "cla_share_factor": 2})
    with pytest.raises(ConfigError, match="shared MLP"):
        build_spec({**A13B["config"], "num_shared_expert": [2] * 32})


def test_hunyuan_7b_fits_one_l4_at_32k() -> None:
    """7,504,568,320 parameters + 25 padded vocab rows x 4096 = 7,504,670,720 x 2 = 15,009,341,440 bytes (14.0 GiB);
    KV 32 x 2 x 8 x 128 x 2 = 131,072 bytes a token, 2,097,152 a block: the L4 keeps 2769 blocks = 44,304 tokens."""
    r = estimate_on(_spec(D7B), gpu="L4", max_model_len=32768)
    assert r.weights_bytes == 15_009_341_440
    assert r.kv.bytes_per_block == 2_097_152
    assert r.fits and (r.num_gpu_blocks, r.kv_cache_tokens) == (2769, 44_304)


def test_hunyuan_7b_at_tp2_is_split_evenly_by_the_fusers() -> None:
    """No tensor-parallel plan, but QKVFuser and GLUFuser split every projection: embedding 64096 x 4096 +
    32 x (q 2048 + k 512 + v 512 rows x 4096 + o 4096 x 2048 + MLP 3 x 7168 x 4096 + 256 + 8192) + 4096
    = 3,752,472,576 x 2 = 7,504,945,152 bytes."""
    r = estimate_on(_spec(D7B), gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    assert r.weights_bytes == 7_504_945_152
    assert not any("tensor-parallel plan" in w for w in r.warnings)


def test_hunyuanocr_text_and_vision_weights_at_tp1_and_tp2() -> None:
    """TP=1: (996,208,112 + 14 padded vocab rows x 1024) x 2 = 1,992,444,896 bytes.
    TP=2: text = embedding 60416 x 1024 + 24 x (q 1024 + k 512 + v 512 rows x 1024 + o 1024 x 1024 + MLP
    3 x 1792 x 1024 + 256 + 2048) + 1024 = 269,540,352; vision q/k/v (with biases) halved: 27 x 3 x 664,128 =
    53,794,368, the rest of the 457,198,064-parameter tower whole (o_proj, fc1/fc2, LayerNorms, patch conv, position
    table 16385 x 1152, patch merger) = 349,609,328; (269,540,352 + 53,794,368 + 349,609,328) x 2 = 1,345,888,096.
    KV: 24 layers x 2 x 8 heads x 128 x 2 bytes = 98,304 bytes a token, 1,572,864 a block at TP=1."""
    spec = _spec(OCR)
    assert spec.multimodal is not None and spec.multimodal.params == 457_198_064
    r1 = estimate_on(spec, gpu="L4", max_model_len=32768)
    assert r1.weights_bytes == 1_992_444_896 and r1.kv.bytes_per_block == 1_572_864
    r2 = estimate_on(spec, gpu="L4", tensor_parallel_size=2, max_model_len=32768)
    assert r2.weights_bytes == 1_345_888_096 and r2.kv.bytes_per_block == 786_432
