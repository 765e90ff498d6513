"""DeepSeek-VL2 (Tiny, Small, base) and DeepSeek-OCR 1 and 2 as vLLM 0.33 builds them (deepseek_vl2.py,
deepseek_ocr.py, deepseek_ocr2.py over deepseek_v2.py): the DeepSeek-V2 MoE text model, multi-head when the qk head
dims are 0 (Tiny, both OCRs) and MLA otherwise (Small, base), plus each class's towers and their TP split
(tests/fixtures/oracle/families/deepseek_vl2.json; its config_source fields say which configs are reconstructed).

Parameter counts are transformers 5.23 on the meta device, summed by part where transformers has no wrapper class
(its DeepseekOcr2ForConditionalGeneration is the only one, and matches DeepSeek-OCR-2 whole)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_deepseek_vl2  # noqa: F401
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import ConfigError, GpuplanError
from gpuplan.model.adapters import build_spec, with_defaults
from gpuplan.model.adapters_deepseek_vl2 import deepseek_v2_mha

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "deepseek_vl2.json").read_text())
TINY = FX["models"]["deepseek_vl_v2/deepseek-vl2-tiny"]
SMALL = FX["models"]["deepseek_vl_v2/deepseek-vl2-small"]
BASE = FX["models"]["deepseek_vl_v2/deepseek-vl2"]
OCR = FX["models"]["deepseek_vl_v2/DeepSeek-OCR"]
OCR2 = FX["models"]["deepseek_vl_v2/DeepSeek-OCR-2"]
LM_1280 = 2_934_734_080  # the 1280-wide, 12-layer, 64-expert language model with its untied head (Tiny, OCR, OCR-2)


def _spec(entry: dict, name: str = "m"):
    return build_spec(json.loads(json.dumps(entry["config"])), name)


def _part(spec, kind: str) -> int:
    return sum(t.numel for t in spec.extra if t.kind == kind and t.in_checkpoint)


def test_vl2_tiny_is_the_3_37b_of_its_model_card_siglip_projector_and_a_multi_head_moe() -> None:
    spec = _spec(TINY)
    assert spec.architecture == "DeepseekVLV2ForCausalLM" and spec.model_type == "deepseek_vl_v2" and not spec.generic
    assert spec.total_params == TINY["hf_params"] == 3_370_501_440
    assert _part(spec, "vision") == TINY["hf_parts"]["siglip_so400m_384"] == 428_225_600
    # downsample_mlp_gelu: 1152 x 2 x 2 -> 1280 -> 1280, biased; then image_newline and view_seperator
    assert _part(spec, "projector") == 4608 * 1280 + 1280 + 1280 * 1280 + 1280 + 2 * 1280
    assert spec.total_params - _part(spec, "vision") - _part(spec, "projector") == LM_1280
    # use_mla false, qk dims 0: plain attention of 10 K/V heads of 1280 / 10 = 128, not latent attention
    assert spec.attention_kinds == {"full": 12}
    att = spec.layers[0].attention
    assert (att.num_heads, att.num_kv_heads, att.head_dim, att.kv_lora_rank) == (10, 10, 128, 0)
    assert [layer.mlp.kind for layer in spec.layers] == ["dense"] + ["moe"] * 11


def test_the_multi_head_text_model_alone_is_what_the_deepseek_v2_adapter_can_call() -> None:
    """deepseek_v2_mha on the bare language_config (with transformers' DeepseekV2 defaults): embed + head
    2 x 129280 x 1280; layer 0: q/k/v/o 4 x 1280^2, MLP 3 x 6848 x 1280, two norms; 11 MoE layers: 64 experts
    3 x 896 x 1280 each, shared 3 x 1792 x 1280, router 64 x 1280; final norm. One rotary cache 4096 x 128."""
    lang = with_defaults({**TINY["config"]["language_config"], "model_type": "deepseek_v2"})
    spec = deepseek_v2_mha(lang, lang, "deepseek-vl2-tiny-text")
    per_moe = 4 * 1280 * 1280 + 64 * 3 * 896 * 1280 + 3 * 1792 * 1280 + 64 * 1280 + 2 * 1280
    dense = 4 * 1280 * 1280 + 3 * 6848 * 1280 + 2 * 1280
    assert spec.total_params == 2 * 129280 * 1280 + dense + 11 * per_moe + 1280 == LM_1280
    assert not spec.tie_word_embeddings  # deepseek_v2.py builds its own ParallelLMHead
    assert [(r.positions, r.rotary_dim) for r in spec.rope_caches] == [(4096, 128)]
    assert {t.name for t in spec.layers[1].tensors if t.kind == "router"} == {"model.layers.{i}.mlp.gate.weight"}


def test_a_deepseek_v2_text_config_with_zero_qk_dims_is_sized_as_multi_head_not_refused_for_lacking_mla() -> None:
    """deepseek_v2.py's use_mha (vLLM 0.14+): both qk head dims 0 build DeepseekAttention, whatever kv_lora_rank says;
    the plain deepseek_v2 adapter takes that path too (it used to stop on the missing kv_lora_rank)."""
    lang = {**TINY["config"]["language_config"], "model_type": "deepseek_v2", "architectures": ["DeepseekV2ForCausalLM"]}
    spec = build_spec(lang)
    assert spec.total_params == LM_1280
    assert spec.attention_kinds == {"full": 12}


def test_deepseek_ocr_is_sam_b_plus_clip_l_without_its_post_layernorm_3_34b() -> None:
    spec = _spec(OCR, "deepseek-ai/DeepSeek-OCR")
    assert spec.architecture == "DeepseekOCRForCausalLM"
    parts = OCR["hf_parts"]
    # vLLM's DeepCLIPVisionTransformer has no post_layernorm: transformers' CLIP-L/14-224 less 2 x 1024
    assert _part(spec, "vision") == parts["sam_vit_b_1024"] + parts["clip_l_224"] - 2048 == 95_569_152 + 303_177_728
    assert spec.total_params == OCR["hf_params"] == LM_1280 + 398_746_880 + 2048 * 1280 + 1280 + 2 * 1280
    assert spec.total_params == 3_336_106_240
    assert spec.multimodal.tp_heads == 16  # CLIP's QKVParallelLinear: TP must divide its 16 heads
    assert spec.attention_kinds == {"full": 12} and spec.max_model_len_limit == 8192


def test_deepseek_ocr2_equals_transformers_deepseek_ocr2_exactly() -> None:
    """SAM-B with a 896-channel last conv 94,979,328 + Qwen2-shaped encoder 357,898,112 + query tables
    (144 + 256) x 896 + projector 896 x 1280 + 1280 + view_seperator 1280 (no image_newline) + the 1280 LM."""
    spec = _spec(OCR2, "deepseek-ai/DeepSeek-OCR-2")
    assert spec.architecture == "DeepseekOCR2ForCausalLM"
    parts = OCR2["hf_parts"]
    assert _part(spec, "vision") == parts["vision_tower"] == 94_979_328 + 357_898_112 + 400 * 896
    assert _part(spec, "projector") == parts["multi_modal_projector"] + parts["view_separator"]
    assert spec.total_params == OCR2["hf_params"] == 3_389_119_360
    # the encoder's rotary inv_freq / original_inv_freq are buffers, not parameters: bytes but no count
    buffers = [t for t in spec.extra if not t.in_checkpoint]
    assert [(t.numel, t.dtype) for t in buffers] == [(64, "float32")]


def test_vl2_small_and_vl2_keep_latent_attention_and_vl2_holds_its_expert_bias_as_parameters() -> None:
    small, base = _spec(SMALL), _spec(BASE)
    assert small.attention_kinds == {"mla": 27} and base.attention_kinds == {"mla": 30}
    # Small: 16.1B on its card, with the 102400 vocabulary the fixture infers
    assert small.total_params == SMALL["hf_params"] == 16_148_349_504
    # transformers' DeepseekV3 keeps e_score_correction_bias as a buffer; vLLM's gate holds 29 x 72 fp32 parameters
    assert base.total_params == BASE["hf_params"] + 29 * 72 == 27_480_134_248
    assert BASE["hf_parts"]["e_score_correction_bias_as_hf_buffer"] == 29 * 72
    bias = [t for t in base.layers[1].tensors if t.name.endswith("e_score_correction_bias")]
    assert [t.dtype for t in bias] == ["float32"]


def test_vl2_tiny_weights_at_tp1_and_tp2_by_hand() -> None:
    """TP=1: 3,370,501,440 bf16 parameters x 2 + rotary cache 4096 x 128 x 2 = 6,742,051,456 bytes.
    TP=2, per rank: embed + head 2 x 64640 x 1280 = 165,478,400; final norm 1280; per layer q/k/v/o
    4 x 640 x 1280 = 3,276,800 + norms 2560; layer 0's MLP 3 x 3424 x 1280 = 13,148,160; 11 MoE layers of
    experts 64 x 3 x 448 x 1280 = 110,100,480 + shared 3 x 896 x 1280 = 3,440,640 + router 81,920 (whole)
    -> LM 1,467,833,600. SigLIP: the 28 timm Mlps (27 blocks + the pooling head) split fc1 (120,512 x 1152 + bias
    120,512) by rows and fc2 (1152 x 120,512) by columns: 69,475,168 + 69,414,912 per rank; the rest,
    150,445,440 (attention, norms, patch conv, positions, fc2 biases), stays whole. Projector 7,539,200 and both
    vectors 2,560 whole. 1,764,710,880 x 2 + rotary 1,048,576 = 3,530,470,336 bytes."""
    spec = _spec(TINY)
    one = estimate_on(spec, gpu="H100", tensor_parallel_size=1, max_model_len=4096)
    assert one.weights_bytes == 3_370_501_440 * 2 + 4096 * 128 * 2 == 6_742_051_456
    per_rank = 1_467_833_600 + 150_445_440 + 69_475_168 + 69_414_912 + 7_539_200 + 2560
    assert 150_445_440 + 2 * (69_475_168 + 69_414_912) == 428_225_600  # the halves add up to the tower
    two = estimate_on(spec, gpu="H100", tensor_parallel_size=2, max_model_len=4096)
    assert two.weights_bytes == per_rank * 2 + 4096 * 128 * 2 == 3_530_470_336


def test_ocr_weights_at_tp2_split_only_clip_and_count_its_position_ids_buffer() -> None:
    """Per rank at TP=2: the LM 1,467,833,600 (as VL2-Tiny's); SAM whole 95,569,152; CLIP-L split: qkv
    24 x 3072 x 1024 / 2 + bias 24 x 3072 / 2, fc1 24 x 4096 x 1024 / 2 + bias 24 x 4096 / 2, out_proj and fc2
    weights 1024 x 24 x 1024 / 2 and 1024 x 24 x 4096 / 2, whole: class 1024 + patch 602,112 + positions 263,168
    + pre-LN 2048 + 24 x (2 LayerNorms 4096 + out_proj and fc2 biases 2048) -> 152,096,768; projector 2,622,720
    and vectors 2,560 whole. 1,718,124,800 x 2 + rotary 8192 x 128 x 2 + position_ids 257 x 8 bytes
    = 3,438,348,808 bytes. DeepSeek-OCR-2's towers are all whole: 1,922,218,880 x 2 + 2,097,152 + 64 x 4 bytes."""
    ocr = estimate_on(_spec(OCR), gpu="H100", tensor_parallel_size=2, max_model_len=8192)
    clip = (24 * 3072 * 1024 + 24 * 3072 + 24 * 4096 * 1024 + 24 * 4096 + 1024 * 24 * 1024 + 1024 * 24 * 4096) // 2
    clip += 1024 + 602_112 + 263_168 + 2048 + 24 * 6144
    assert clip == 152_096_768
    per_rank = 1_467_833_600 + 95_569_152 + clip + 2_622_720 + 2560
    assert ocr.weights_bytes == per_rank * 2 + 8192 * 128 * 2 + 257 * 8 == 3_438_348_808
    ocr2 = estimate_on(_spec(OCR2), gpu="H100", tensor_parallel_size=2, max_model_len=8192)
    assert ocr2.weights_bytes == (1_467_833_600 + 453_235_840 + 1_149_440) * 2 + 8192 * 128 * 2 + 64 * 4


def test_kv_per_block_and_tokens_for_a_4_gib_budget() -> None:
    """Multi-head layers: one FullAttentionSpec group, 16 tokens x 12 layers x (K + V) x 10 heads x 128 x 2 bytes
    = 983,040 bytes a block; 4 GiB // 983,040 = 4,369 blocks = 69,904 tokens. TP=2 keeps 5 K/V heads a rank:
    491,520 a block, 8,738 blocks, 139,808 tokens. VL2's MLA: 30 layers x (512 + 64) x 2 bytes x 16 = 552,960 a
    block, the same on every rank: 4 GiB // 552,960 = 7,767 blocks = 124,272 tokens."""
    def run(entry, gpu, tp):
        dep = Deployment(gpu_name=gpu, gpu_memory_bytes=80 * 2**30, vllm_version="0.33.0", block_size=16,
                         max_model_len=4096, kv_cache_memory_bytes=4 * 2**30, tensor_parallel_size=tp)
        return estimate(_spec(entry), dep)

    one, two = run(TINY, "H100", 1), run(TINY, "H100", 2)
    assert one.kv.bytes_per_block == 16 * 12 * 2 * 10 * 128 * 2 == 983_040 and one.kv.num_groups == 1
    assert (one.num_gpu_blocks, one.kv_cache_tokens) == (4 * 2**30 // 983_040, 69_904) == (4369, 69_904)
    assert two.kv.bytes_per_block == 491_520 and (two.num_gpu_blocks, two.kv_cache_tokens) == (8738, 139_808)
    for tp in (1, 2):
        mla = run(BASE, "A100-80GB", tp)
        assert mla.kv.bytes_per_block == 16 * 30 * 576 * 2 == 552_960
        assert (mla.num_gpu_blocks, mla.kv_cache_tokens) == (7767, 124_272)


def test_deepseek_vl2_tiny_on_one_l4_fits_its_4k_context_many_times_over() -> None:
    """Yes: 6.28 GiB of bf16 weights on a 24 GB L4 leave 14,385 blocks = 230,160 tokens, 56 requests of 4096."""
    r = estimate_on(_spec(TINY), gpu="L4", max_model_len=4096)
    assert r.fits and r.weights_bytes == 6_742_051_456
    assert r.kv_cache_tokens == 230_160 and r.kv_cache_tokens // 4096 == 56


def test_deepseek_ocr_on_one_t4_runs_in_fp16_at_8k_and_text_only_drops_the_towers() -> None:
    """Yes: a T4 has no bf16, so vLLM runs float16 (same 2 bytes); weights 6,674,311,688 bytes leave 113,968 tokens,
    13 requests of 8K. With --language-model-only the SAM, CLIP, projector and vectors are not built:
    2,934,734,080 x 2 + rotary 2,097,152 = 5,871,565,312 bytes."""
    spec = _spec(OCR)
    r = estimate_on(spec, gpu="T4", max_model_len=8192)
    assert r.fits and r.weights_bytes == 6_674_311_688 and r.kv_cache_tokens == 113_968
    text = estimate_on(spec, gpu="T4", max_model_len=8192, language_model_only=True)
    assert text.weights_bytes == LM_1280 * 2 + 8192 * 128 * 2 == 5_871_565_312
    assert text.kv_cache_tokens > r.kv_cache_tokens


def test_deepseek_vl2_on_one_a100_80gb_fits_with_51_gib_of_weights() -> None:
    """Yes: 27,480,134,248 parameters in bf16 with 2,088 fp32 expert biases (+2 bytes each) and a 4096 x 64 rotary
    cache = 54,960,796,960 bytes; the MLA cache (552,960 bytes a 16-token block) then holds 629,072 tokens."""
    r = estimate_on(_spec(BASE), gpu="A100-80GB", max_model_len=4096)
    assert r.weights_bytes == 27_480_134_248 * 2 + 2088 * 2 + 4096 * 64 * 2 == 54_960_796_960
    assert r.fits and r.kv_cache_tokens == 629_072


def test_tp_sizes_vllm_cannot_split_are_refused() -> None:
    spec = _spec(TINY)
    with pytest.raises(GpuplanError, match="4304"):  # 10 heads allow TP=5, timm's patched fc1 of 4304 does not
        estimate_on(spec, gpu="H100", tensor_parallel_size=5, max_model_len=4096)
    with pytest.raises(GpuplanError, match="attention heads"):
        estimate_on(spec, gpu="H100", tensor_parallel_size=4, max_model_len=4096)


@pytest.mark.parametrize("change, match", [
    ({"architectures": ["UnlimitedOCRForCausalLM"]}, "architecture"),
    ({"tile_tag": "1D"}, "tile_tag"),
    ({"rswa_window": 128}, "rswa_window"),
    ({"projector_config": {"projector_type": "mlp_gelu"}}, "projector_type"),
])
def test_configs_vllm_would_build_differently_or_refuse_are_refused(change: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_spec({**json.loads(json.dumps(TINY["config"])), **change}, "x")


def test_a_config_without_tile_tag_is_refused_like_vllm_whose_config_defaults_it_to_a_placeholder() -> None:
    cfg = {k: v for k, v in json.loads(json.dumps(OCR["config"])).items() if k != "tile_tag"}
    with pytest.raises(ConfigError, match="'tile_tag'"):
        build_spec(cfg, "x")
