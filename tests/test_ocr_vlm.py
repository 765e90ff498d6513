"""GLM-4.6V under transformers' glm46v / glmga types, PaddleOCR-VL and LightOnOCR as vLLM 0.33 builds them
(src/gpuplan/model/adapters_ocr_vlm.py; tests/fixtures/oracle/families/ocr_vlm.json says where each config comes
from and how transformers counted it). No vLLM 0.33 oracle exists: the KV pages below are worked from
v1/kv_cache_interface.py (FullAttentionSpec: 2 x block_size x KV heads per rank x head_size x 2 B) and
v1/core/kv_cache_utils.py (one uniform group: num_blocks = budget // page bytes, tokens = blocks x block_size)."""

from __future__ import annotations

import json
from pathlib import Path

import gpuplan.model.adapters_ocr_vlm  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate as estimate_on
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "ocr_vlm.json").read_text())
M = FX["models"]
GiB = 2**30


def _spec(key: str, name: str | None = None):
    return build_spec(json.loads(json.dumps(M[key]["config"])), name or key)


def _tower_bytes(r) -> dict:
    by = dict(r.per_stage[0]["weights_by_kind"])
    return {k: by.get(k, 0) for k in ("vision", "projector")}


def _tower_params(spec) -> dict:
    return {k: sum(t.numel for t in spec.extra if t.kind == k and t.in_checkpoint) for k in ("vision", "projector")}


def _kv_run(spec, budget: int, tp: int = 1):
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * GiB, block_size=16, tensor_parallel_size=tp,
                     max_model_len=8192, kv_cache_memory_bytes=budget)
    return estimate_on(spec, dep)


# ------------------------------------------------------------------------------------------- transformers defaults

def test_every_default_config_now_counts_exactly_what_transformers_builds() -> None:
    """The sweep's misses (glm46v / glmga -8.7% as a generic decoder, paddleocr_vl -55%, lighton_ocr -25% with no
    tower) are now exact: glm46v / glmga are GLM-4.1V's dimensions behind a new model_type (10,292,777,472),
    PaddleOCR-VL's default is tied (799,695,472), LightOnOCR's too (1,005,647,872)."""
    for mt in ("glm46v", "glmga", "paddleocr_vl", "lighton_ocr"):
        entry = M[f"{mt}/transformers-default"]
        spec = _spec(f"{mt}/transformers-default")
        assert not spec.generic and spec.model_type == mt and spec.multimodal is not None, mt
        assert spec.total_params == entry["hf_params"], mt
    assert M["glm46v/transformers-default"]["hf_params"] == 10_292_777_472


# ---------------------------------------------------------------------------------------------------- GLM-4.6V

def test_glm46v_routes_to_the_glm4v_classes_vllm_serves_it_with() -> None:
    """vLLM 0.33 has no Glm46V class: the dense text_config (glm4v_text) takes Glm4vForConditionalGeneration's
    layout, a glm4v_moe_text one Glm4vMoeForConditionalGeneration's. On GLM-4.5V's published dimensions relabelled
    glm46v, gpuplan is 5,760 above transformers: 45 MoE layers x 128 e_score_correction_bias, a buffer in
    transformers and a parameter in vLLM (the same gap as the glm4v_moe route)."""
    dense = _spec("glm46v/transformers-default")
    assert dense.architecture == "Glm4vForConditionalGeneration"
    assert all(layer.mlp.kind == "dense" for layer in dense.layers)
    moe = _spec("glm46v/GLM-4.5V-dims")
    assert moe.architecture == "Glm4vMoeForConditionalGeneration" and moe.model_type == "glm46v" and not moe.notes
    assert sum(layer.mlp.kind == "moe" for layer in moe.layers) == 45
    assert moe.total_params - M["glm46v/GLM-4.5V-dims"]["hf_params"] == 45 * 128 == 5_760
    relabelled = dict(M["glm46v/GLM-4.5V-dims"]["config"], model_type="glm4v_moe")
    assert build_spec(relabelled, "glm4v_moe").total_params == moe.total_params


def test_glm46v_with_transformers_own_architecture_says_vllm_has_no_such_class() -> None:
    cfg = dict(M["glm46v/transformers-default"]["config"], architectures=["Glm46VForConditionalGeneration"])
    spec = build_spec(cfg, "glm46v")
    assert spec.total_params == 10_292_777_472
    assert any("Transformers backend" in n for n in spec.notes)


def test_glm46v_moe_at_tp4_on_h100_fits_64k_with_a_47k_byte_token() -> None:
    """GLM-4.6V (the 106B MoE) at TP 4 on H100 at 64K? 46 layers x 2 (K, V) x 8/4 KV heads x 128 x 2 B = 47,104 B a
    token per GPU, 753,664 B a 16-token page. The 12-head tower splits 4 ways (3 heads a rank)."""
    spec = _spec("glm46v/GLM-4.5V-dims", "GLM-4.6V")
    r = estimate(spec, gpu="H100", tensor_parallel_size=4, max_model_len=65536)
    assert r.kv.bytes_per_block == 46 * 2 * 2 * 128 * 2 * 16 == 753_664
    assert r.fits and r.kv.kv_cache_tokens >= 65536
    assert spec.multimodal.tp_heads == 12


# ------------------------------------------------------------------------------------------------ PaddleOCR-VL

def test_paddleocr_vl_15_tower_projector_and_untied_head_by_hand() -> None:
    """SigLIP-so400m (1152 wide, MLP 4304, 27 layers): per layer qkv 3 x 1152^2 + 3 x 1152 and fc1 4304 x 1152 + 4304
    by output (8,947,280), out_proj 1152^2 and fc2 1152 x 4304 by input (6,285,312), two biases and two LayerNorms
    (6,912); then patch Conv2d 3 x 14^2 x 1152 + 1152, 27^2 = 729 positions x 1152, post LayerNorm 2304:
    412,987,248, as transformers counts it. mlp_AR: LayerNorm 2304, linear_1 4608^2 + 4608, linear_2
    1024 x 4608 + 1024 = 25,960,192. The published config says tie_word_embeddings false and its checkpoint ships
    lm_head: vLLM builds it (103,424 x 1024 = 105,906,176) where transformers 5.23 ties."""
    spec = _spec("paddleocr_vl/PaddleOCR-VL-1.5", "PaddlePaddle/PaddleOCR-VL-1.5")
    assert spec.architecture == "PaddleOCRVLForConditionalGeneration" and not spec.tie_word_embeddings
    tower = 27 * (8_947_280 + 6_285_312 + 6_912) + 678_528 + 729 * 1152 + 2304
    assert _tower_params(spec) == {"vision": tower, "projector": 2304 + 4608 * 4608 + 4608 + 1024 * 4608 + 1024}
    assert tower == 412_987_248
    assert spec.total_params - M["paddleocr_vl/PaddleOCR-VL-1.5"]["hf_params"] == 103_424 * 1024 == 105_906_176
    # ERNIE-4.5-0.3B text: 18 layers of 16 query / 2 KV heads of 128, no biases, mrope (rope_scaling mrope_section)
    assert spec.layers[0].attention.num_kv_heads == 2 and spec.layers[0].attention.head_dim == 128
    assert spec.rope_caches[0].mrope and spec.rope_caches[0].positions == 131072


def test_paddleocr_vl_weights_at_tp1_and_tp2_by_hand() -> None:
    """bf16. TP=1: 905,601,648 x 2 + position_ids 729 x 8 B + the tower's float32 inv_freq 18 x 4 B + one mrope
    cos/sin cache 4 x 131,072 x 128 x 2 B (134,217,728) = 1,945,426,928 B. TP=2: the text model's attention
    84,934,656, MLP 169,869,312, embedding and lm_head 105,906,176 each, norms 75,776 B; the tower's qkv/fc1 and
    out_proj/fc2 weights halve: (241,576,560 + 169,703,424) / 2 x 2 + 1,707,264 x 2 + 5,832 + 72 = 414,700,416 B;
    mlp_AR is plain nn.Linear, whole: 51,920,384 B; the rope cache whole: 1,067,530,624 B a GPU."""
    spec = _spec("paddleocr_vl/PaddleOCR-VL-1.5")
    one = estimate(spec, gpu="L4", tensor_parallel_size=1, max_model_len=16384)
    two = estimate(spec, gpu="L4", tensor_parallel_size=2, max_model_len=16384)
    assert one.weights_bytes == 905_601_648 * 2 + 729 * 8 + 18 * 4 + 4 * 131072 * 128 * 2 == 1_945_426_928
    assert _tower_bytes(two) == {"vision": 414_700_416, "projector": 51_920_384}
    assert two.weights_bytes == (84_934_656 + 169_869_312 + 2 * 105_906_176 + 75_776 + 414_700_416 + 51_920_384
                                 + 134_217_728) == 1_067_530_624


def test_paddleocr_vl_kv_pages_for_a_1_gib_budget() -> None:
    """One full-attention group of 18 layers; a layer's page is 2 (K, V) x 16 tokens x 2 KV heads x 128 x 2 B =
    16,384 B, so a block across the layers is 294,912 B (18,432 B a token). A 1 GiB KV budget:
    2^30 // 294,912 = 3,640 blocks = 58,240 tokens."""
    r = _kv_run(_spec("paddleocr_vl/PaddleOCR-VL-1.5"), GiB)
    assert r.kv.bytes_per_block == 18 * 2 * 16 * 2 * 128 * 2 == 294_912
    assert r.num_gpu_blocks == GiB // 294_912 == 3_640
    assert r.kv_cache_tokens == 3_640 * 16 == 58_240


def test_does_paddleocr_vl_fit_on_one_l4_at_16k() -> None:
    """Yes, with room to spare: under 2 GB of weights on a 24 GB L4, and over a million tokens of KV at 18,432 B a
    token. A text-only start (--language-model-only) drops the tower and mlp_AR: 825,980,400 + 51,920,384 B."""
    spec = _spec("paddleocr_vl/PaddleOCR-VL-1.5")
    full = estimate(spec, gpu="L4", max_model_len=16384)
    text = estimate(spec, gpu="L4", max_model_len=16384, language_model_only=True)
    assert full.fits and full.kv.kv_cache_tokens >= 1_000_000
    assert full.weights_bytes - text.weights_bytes == 412_987_248 * 2 + 5_832 + 72 + 51_920_384
    assert text.kv.kv_cache_tokens > full.kv.kv_cache_tokens


# -------------------------------------------------------------------------------------------------- LightOnOCR

def test_lighton_ocr_2_mistral3_config_is_routed_by_architecture_and_matches_transformers() -> None:
    """The published config says model_type mistral3; vLLM picks LightOnOCRForConditionalGeneration by
    architecture. Pixtral tower (1024 wide, MLP 8192, 24 layers, all used: vision_feature_layer -1): per layer qkv
    3 x 1024^2 and gate_up 2 x 8192 x 1024 by output, o_proj 1024^2 and down 8192 x 1024 by input, two RMSNorms;
    patch Conv2d 3 x 14^2 x 1024 (no bias), ln_pre 1024: 705,295,360. Projector: RMSNorm 1024, patch merger
    4096 x 1024, linear_1 and linear_2 1024^2 (no bias): 6,292,480. Qwen3 0.6B-shaped text, tied."""
    spec = _spec("lighton_ocr/LightOnOCR-2-1B", "lightonai/LightOnOCR-2-1B")
    assert spec.model_type == "lighton_ocr" and spec.architecture == "LightOnOCRForConditionalGeneration"
    assert spec.tie_word_embeddings and not spec.generic
    tower = 24 * (3 * 1024**2 + 2 * 8192 * 1024 + 1024**2 + 8192 * 1024 + 2 * 1024) + 602_112 + 1024
    assert _tower_params(spec) == {"vision": tower, "projector": 1024 + 4096 * 1024 + 2 * 1024**2}
    assert tower == M["lighton_ocr/LightOnOCR-2-1B"]["hf_by_category"]["vision"] == 705_295_360
    assert spec.total_params == M["lighton_ocr/LightOnOCR-2-1B"]["hf_params"] == 1_307_637_760


def test_lighton_ocr_2_weights_at_tp1_and_tp2_by_hand() -> None:
    """bf16. TP=1: 1,307,637,760 x 2 + the axial rotary's two float32 buffers 2 x 32 x 4 B + one rope cache
    16,384 x 128 x 2 B (4,194,304) = 2,619,470,080 B. TP=2 halves the tower's column (478,150,656) and row
    (226,492,416) parts: 704,643,072 + 652,288 x 2 + 256 = 705,947,904 B; the projector keeps its norm and patch
    merger whole (4,195,328 x 2) and halves linear_1 / linear_2: 10,487,808 B."""
    spec = _spec("lighton_ocr/LightOnOCR-2-1B")
    one = estimate(spec, gpu="L4", tensor_parallel_size=1, max_model_len=16384)
    two = estimate(spec, gpu="L4", tensor_parallel_size=2, max_model_len=16384)
    assert one.weights_bytes == 1_307_637_760 * 2 + 256 + 16384 * 128 * 2 == 2_619_470_080
    assert _tower_bytes(one) == {"vision": 705_295_360 * 2 + 256, "projector": 6_292_480 * 2}
    assert _tower_bytes(two) == {"vision": 705_947_904, "projector": 10_487_808}


def test_lighton_ocr_kv_pages_for_a_1_gib_budget() -> None:
    """28 full-attention layers of 8 KV heads x 128: 28 x 2 x 16 x 8 x 128 x 2 B = 1,835,008 B a block (114,688 B a
    token); 1 GiB holds 2^30 // 1,835,008 = 585 blocks = 9,360 tokens. TP=2 halves the KV heads: 917,504 B."""
    spec = _spec("lighton_ocr/LightOnOCR-2-1B")
    r = _kv_run(spec, GiB)
    assert r.kv.bytes_per_block == 1_835_008 and r.num_gpu_blocks == 585 and r.kv_cache_tokens == 9_360
    assert _kv_run(spec, GiB, tp=2).kv.bytes_per_block == 917_504


def test_does_lighton_ocr_2_fit_on_one_l4_at_16k_and_what_text_only_saves() -> None:
    spec = _spec("lighton_ocr/LightOnOCR-2-1B")
    full = estimate(spec, gpu="L4", max_model_len=16384)
    text = estimate(spec, gpu="L4", max_model_len=16384, language_model_only=True)
    assert full.fits and full.kv.kv_cache_tokens >= 16384
    assert full.weights_bytes - text.weights_bytes == 705_295_360 * 2 + 256 + 6_292_480 * 2


def test_lighton_ocr_feature_layer_limits_the_tower() -> None:
    """vision_feature_layer -2 builds 23 of the 24 Pixtral layers: one layer (19,922,944 + 9,437,184 + 2,048)
    fewer."""
    cfg = dict(M["lighton_ocr/LightOnOCR-2-1B"]["config"], vision_feature_layer=-2)
    spec = build_spec(cfg, "x")
    assert 1_307_637_760 - spec.total_params == 19_922_944 + 9_437_184 + 2_048
