"""MiniCPM-V (minicpmv) and Phi-4-multimodal (phi4mm) as vLLM 0.33 builds them (models/minicpmv.py; phi4mm.py,
phi4mm_audio.py): the text model through gpuplan's qwen3 / qwen2 / llama / phi3 adapters, plus the towers
(tests/fixtures/oracle/families/minicpmv_phi4mm.json, config sources and counts inside)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_minicpmv_phi4mm  # noqa: F401
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import GpuplanError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "minicpmv_phi4mm.json").read_text())
MCV = FX["models"]["minicpmv/MiniCPM-V-4_5"]
PHI = FX["models"]["phi4mm/Phi-4-multimodal-instruct"]

SIGLIP_LAYER = 4 * (1152 * 1152 + 1152) + 2 * 1152 * 4304 + 4304 + 1152 + 4 * 1152  # 15,239,504
MCV_ROPE = 40960 * 128 * 2  # Qwen3's bf16 cos/sin cache: max_position_embeddings x head_dim
MCV_BUFFERS = (70 * 70 + 36000) * 4096  # the resampler's 2-D and temporal sin-cos tables (bf16, not in checkpoint)
PHI_ROPE = (4096 + 131072) * 96 * 2  # longrope: short cache (original length) then long cache, rotary dim 96


def _mcv(**change) -> dict:
    return {**MCV["config"], **change}


def _phi(**change) -> dict:
    return {**PHI["config"], **change}


# ----------------------------------------------------------------------------------------------- MiniCPM-V 4.5


def test_minicpm_v_4_5_is_its_checkpoints_8_7b_qwen3_plus_siglip_plus_resampler() -> None:
    """The checkpoint index holds 17,391,790,560 bf16 bytes = 8,695,895,280 parameters: transformers' Qwen3 on the
    flat config (8,189,195,264) + SigLIP-400M 27 layers x 15,239,504 + patch conv 678,528 + 4900 positions x 1152
    + post-LN 2,304 = 417,792,240 + resampler 64 x 4096 queries + kv_proj 1152 x 4096 + MultiheadAttention
    4 x 4096^2 + 4 x 4096 + three LayerNorms 6 x 4096 + proj 4096^2 = 88,907,776."""
    spec = build_spec(MCV["config"], "openbmb/MiniCPM-V-4_5")
    assert not spec.generic and spec.architecture == "MiniCPMV" and spec.model_type == "minicpmv"
    counts = spec.param_counts()
    assert counts["vision"] == 27 * SIGLIP_LAYER + 3 * 14 * 14 * 1152 + 1152 + 4900 * 1152 + 2304 == 417_792_240
    assert counts["projector"] == 64 * 4096 + 1152 * 4096 + 5 * 4096**2 + 10 * 4096 == 88_907_776
    assert spec.total_params - counts["vision"] - counts["projector"] == MCV["hf_text_params"] == 8_189_195_264
    assert spec.total_params == MCV["hf_params"] == 17_391_790_560 // 2
    # Qwen3ForCausalLM: q/k norms on every layer, no q/k/v biases
    names = {t.name for t in spec.layers[0].tensors}
    assert any("q_norm" in n for n in names) and not any(n.endswith("bias") for n in names)
    assert spec.multimodal.tp_heads == 16 and spec.multimodal.tokens_per_item == 10 * 64


@pytest.mark.parametrize("version, text_class_marker", [(2.6, "bias"), (4.0, None), (2.5, None)])
def test_each_version_builds_the_text_class_vllm_picks(version: float, text_class_marker: str | None) -> None:
    """2.6 builds Qwen2ForCausalLM (q/k/v biases, no q/k norms); 2.5 and 4.0 LlamaForCausalLM (neither). Only 4.5's
    Resampler4_5 holds the 36000 x D temporal table."""
    spec = build_spec(_mcv(version=version), "m")
    names = [t.name for t in spec.layers[0].tensors]
    assert not any("q_norm" in n for n in names)
    assert any(n.endswith("bias") for n in names) == (text_class_marker == "bias")
    buffers = {t.name for t in spec.extra if not t.in_checkpoint}
    assert buffers == {"resampler.pos_embed"}


def test_drop_vision_last_layer_cuts_one_siglip_layer() -> None:
    full = build_spec(MCV["config"], "m")
    cut = build_spec(_mcv(drop_vision_last_layer=True), "m")
    assert full.total_params - cut.total_params == SIGLIP_LAYER


@pytest.mark.parametrize("change, match", [
    ({"version": 2.0}, "2.0"),  # MiniCPM text model + timm ViT: not modelled
    ({"version": 4.6}, "version"),  # vLLM's MiniCPMV raises for versions outside its table
    ({"version": 4}, "version"),  # "4" splits into one number: vLLM's __new__ finds no class
])
def test_versions_vllm_refuses_or_gpuplan_does_not_model_are_refused(change: dict, match: str) -> None:
    with pytest.raises(GpuplanError, match=match):
        build_spec(_mcv(**change), "m")


def test_minicpm_v_4_5_weights_at_tp1_and_tp2_by_hand() -> None:
    """TP=1: 8,695,895,280 parameters x 2 + the vocabulary padded 151,748 -> 151,808 for the embedding and the
    untied LM head (2 x 60 x 4096 x 2 = 983,040) + resampler tables (4900 + 36000) x 4096 x 2 = 335,052,800
    + rotary 40960 x 128 x 2 = 17,738,312,160 bytes.
    TP=2, per rank: embedding + LM head 2 x 75,904 x 4096; per layer q 2048 x 4096, k and v 512 x 4096 each, o,
    q/k norms 256, MLP 3 x 6144 x 4096, two norms 8192 -> 96,477,440 x 36; final norm 4096 -> LM 4,094,997,504.
    SigLIP: q/k/v + fc1 with biases (27 x 8,947,280) and out_proj + fc2 weights (27 x 6,285,312) halved;
    whole: 27 x (out_proj and fc2 biases + two LayerNorms, 6,912) + patch conv 678,528 + positions 5,644,800
    + post-LN 2,304 = 6,512,256 -> 212,152,248. Resampler 88,907,776 + tables 167,526,400 whole.
    (4,094,997,504 + 212,152,248 + 256,434,176) x 2 + rotary 10,485,760 = 9,137,653,616 bytes."""
    spec = build_spec(MCV["config"], "m")
    one = estimate_on(spec, gpu="H100", tensor_parallel_size=1, max_model_len=8192)
    assert one.weights_bytes == 8_695_895_280 * 2 + 2 * 60 * 4096 * 2 + MCV_BUFFERS * 2 + MCV_ROPE == 17_738_312_160
    lm = 2 * 75_904 * 4096 + 36 * 96_477_440 + 4096
    tower = (27 * 8_947_280 + 27 * 6_285_312) // 2 + 6_512_256
    assert lm == 4_094_997_504 and tower == 212_152_248
    two = estimate_on(spec, gpu="H100", tensor_parallel_size=2, max_model_len=8192)
    assert two.weights_bytes == (lm + tower + 88_907_776 + MCV_BUFFERS) * 2 + MCV_ROPE == 9_137_653_616
    # --mm-encoder-tp-mode data (MiniCPMV supports it): the tower whole on both ranks
    data = estimate_on(spec, gpu="H100", tensor_parallel_size=2, max_model_len=8192, mm_encoder_tp_mode="data")
    assert data.weights_bytes == (lm + 417_792_240 + 88_907_776 + MCV_BUFFERS) * 2 + MCV_ROPE == 9_548_933_600


def test_minicpm_v_text_only_start_builds_neither_tower_nor_resampler_nor_its_tables() -> None:
    """--language-model-only: the LM 8,189,195,264 + 491,520 vocabulary padding rows, x 2, + rotary."""
    spec = build_spec(MCV["config"], "m")
    text = estimate_on(spec, gpu="L4", max_model_len=8192, language_model_only=True)
    assert text.weights_bytes == (8_189_195_264 + 2 * 60 * 4096) * 2 + MCV_ROPE == 16_389_859_328
    both_off = estimate_on(spec, gpu="L4", max_model_len=8192, limit_mm_per_prompt={"image": 0, "video": 0})
    assert both_off.weights_bytes == text.weights_bytes


def test_minicpm_v_kv_is_36_full_layers_of_8_heads_for_a_4_gib_budget() -> None:
    """One FullAttentionSpec group: 16 tokens x 36 layers x (K + V) x 8 heads x 128 x 2 bytes = 2,359,296 a block;
    4 GiB // 2,359,296 = 1,820 blocks = 29,120 tokens. TP=2 keeps 4 heads a rank: 1,179,648, 3,640 blocks."""
    spec = build_spec(MCV["config"], "m")
    for tp, per_block, blocks in ((1, 2_359_296, 1820), (2, 1_179_648, 3640)):
        dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.33.0", block_size=16,
                         max_model_len=8192, kv_cache_memory_bytes=4 * 2**30, tensor_parallel_size=tp)
        r = estimate(spec, dep)
        assert r.kv.bytes_per_block == 16 * 36 * 2 * (8 // tp) * 128 * 2 == per_block and r.kv.num_groups == 1
        assert (r.num_gpu_blocks, r.kv_cache_tokens) == (blocks, blocks * 16)


def test_minicpm_v_4_5_on_one_l4_at_8k_fits_two_requests() -> None:
    """Yes: 16.52 GiB of weights (with the resampler's 0.31 GiB of sin-cos tables) leave 1,285 blocks on a 24 GB
    L4 = 20,560 tokens at 144 KiB a token: two full 8K requests at once (2.5x)."""
    r = estimate_on(build_spec(MCV["config"], "m"), gpu="L4", max_model_len=8192)
    assert r.fits and r.weights_bytes == 17_738_312_160
    assert (r.num_gpu_blocks, r.kv_cache_tokens) == (1285, 20_560) and r.kv_cache_tokens // 8192 == 2


# ----------------------------------------------------------------------------------------- Phi-4-multimodal


def test_phi4_multimodal_is_4_71b_as_vllm_builds_it_transformers_builds_30m_more() -> None:
    """vLLM: Phi-4-mini text 3,836,021,760 (tied head) + SigLIP cut to 26 layers without post-LN 398,085,280
    + separators and img_projection 12,984,576 + conformer 441,238,304 + two audio projections 25,178,112.
    transformers' Phi4MultimodalForCausalLM (4,743,988,032) also builds SigLIP's 27th layer 15,239,504, its
    post-LN 2,304 and attention-pooling head 15,238,352, and keeps the audio normaliser's 160 as buffers."""
    spec = build_spec(PHI["config"], "microsoft/Phi-4-multimodal-instruct")
    assert not spec.generic and spec.architecture == "Phi4MMForCausalLM" and spec.tie_word_embeddings
    assert spec.total_params == PHI["vllm_params"] == sum(PHI["vllm_parts"].values()) == 4_713_508_032
    assert spec.total_params + 15_239_504 + 2304 + 15_238_352 - 160 == PHI["hf_params"] == 4_743_988_032
    counts = spec.param_counts()
    assert counts["vision"] == 398_085_280 + 441_238_304  # SigLIP + conformer
    assert counts["projector"] == 12_984_576 + 25_178_112
    assert spec.multimodal.params == 4_713_508_032 - 3_836_021_760
    assert spec.attention_kinds == {"full": 32}


def test_phi4_multimodal_lora_and_the_cut_siglip_layer_stay_in_the_checkpoint() -> None:
    """The loader maps every "lora" weight to nothing and skips SigLIP layer 27 and post_layernorm. With the
    published ranks (vision 256, speech 320) the LoRA pairs on qkv (3072 -> 5120), o, gate_up (-> 16384) and down
    are 32 x (256 + 320) x 45,056 = 830,472,192, which with the cut layer brings the checkpoint to the card's 5.6B."""
    spec = build_spec(PHI["config"], "m")
    assert {t.name: t.numel for t in spec.extra_not_loaded} == {
        "vision_encoder.img_processor.encoder.layers.cut": SIGLIP_LAYER + 2304}
    lora = build_spec(_phi(vision_lora={"r": 256, "lora_alpha": 512}, speech_lora={"r": 320, "lora_alpha": 640}),
                      "m")
    assert lora.total_params == spec.total_params
    per_rank = (3072 + 5120) + (3072 + 3072) + (3072 + 16384) + (8192 + 3072)
    assert sum(t.numel for t in lora.extra_not_loaded) == SIGLIP_LAYER + 2304 + 32 * 576 * per_rank
    assert spec.total_params + SIGLIP_LAYER + 2304 + 32 * 576 * per_rank == 5_559_222_032


def test_phi4_multimodal_weights_at_tp1_and_tp2_by_hand() -> None:
    """TP=1: 4,713,508,032 x 2 (vocabulary 200,064 needs no padding) + longrope cache (4096 + 131072) x 96 x 2
    = 25,952,256 + the conformer's scalar dev_type buffer 2 = 9,452,968,322 bytes.
    TP=2, per rank: tied embedding 100,032 x 3072; per layer qkv (1536 + 2 x 512) x 3072, o 3072 x 1536,
    gate_up 8192 x 3072, down 3072 x 4096, norms 6144 -> 50,337,792 x 32; final norm 3072 -> 1,918,110,720.
    SigLIP halves 26 x 8,947,280 + 26 x 6,285,312 and keeps 26 x 6,912 + 678,528 + 1,179,648 = 2,037,888 whole
    -> 200,061,584; separators + img_projection 12,984,576, conformer 441,238,304 and audio projections 25,178,112
    whole. 2,597,573,296 x 2 + 25,952,256 + 2 = 5,221,098,850 bytes."""
    spec = build_spec(PHI["config"], "m")
    one = estimate_on(spec, gpu="H100", tensor_parallel_size=1, max_model_len=4096)
    assert one.weights_bytes == 4_713_508_032 * 2 + PHI_ROPE + 2 == 9_452_968_322
    lm = 100_032 * 3072 + 32 * 50_337_792 + 3072
    siglip = (26 * 8_947_280 + 26 * 6_285_312) // 2 + 2_037_888
    assert (lm, siglip) == (1_918_110_720, 200_061_584)
    two = estimate_on(spec, gpu="H100", tensor_parallel_size=2, max_model_len=4096)
    assert two.weights_bytes == (lm + siglip + 12_984_576 + 441_238_304 + 25_178_112) * 2 + PHI_ROPE + 2
    assert two.weights_bytes == 5_221_098_850


def test_phi4_multimodal_text_only_needs_image_video_and_audio_off() -> None:
    """The towers go only when every modality is off: 3,836,021,760 x 2 + the longrope cache."""
    spec = build_spec(PHI["config"], "m")
    text = estimate_on(spec, gpu="A10G", language_model_only=True)
    assert text.weights_bytes == 3_836_021_760 * 2 + PHI_ROPE == 7_697_995_776
    images_off = estimate_on(spec, gpu="A10G", limit_mm_per_prompt={"image": 0, "video": 0})
    assert images_off.weights_bytes == 9_452_968_322  # audio still served: all towers built
    all_off = estimate_on(spec, gpu="A10G", limit_mm_per_prompt={"image": 0, "video": 0, "audio": 0})
    assert all_off.weights_bytes == text.weights_bytes


def test_phi4_multimodal_kv_is_32_full_layers_of_8_heads_for_a_4_gib_budget() -> None:
    """16 x 32 layers x 2 x 8 x 128 x 2 bytes = 2,097,152 a block: 4 GiB holds 2,048 blocks = 32,768 tokens;
    at TP=2 (4 heads a rank) 1,048,576 a block, 4,096 blocks = 65,536 tokens."""
    spec = build_spec(PHI["config"], "m")
    for tp in (1, 2):
        dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.33.0", block_size=16,
                         max_model_len=4096, kv_cache_memory_bytes=4 * 2**30, tensor_parallel_size=tp)
        r = estimate(spec, dep)
        assert r.kv.bytes_per_block == 2_097_152 // tp and r.kv.num_groups == 1
        assert (r.num_gpu_blocks, r.kv_cache_tokens) == (2048 * tp, 32_768 * tp)


def test_phi4_multimodal_on_one_a10g_fits_but_not_at_its_full_128k() -> None:
    """Yes at the default 4K (LongRoPE's short length): 8.80 GiB of weights leave 86,992 tokens of KV cache at
    128 KiB a token. The full 131,072 would need 16 GiB of cache; about 86,976 tokens is the longest that fits,
    so 64K works (1.3 requests at once)."""
    spec = build_spec(PHI["config"], "m")
    r = estimate_on(spec, gpu="A10G")
    assert r.fits and r.max_model_len == 4096 and r.kv_cache_tokens == 86_992
    full = estimate_on(spec, gpu="A10G", max_model_len=131072)
    assert not full.fits and full.max_model_len_fit == 86_976
    assert estimate_on(spec, gpu="A10G", max_model_len=65536).fits


def test_phi4_multimodal_refuses_what_vllm_refuses_or_gpuplan_has_not_read() -> None:
    spec = build_spec(PHI["config"], "m")
    with pytest.raises(GpuplanError, match="pipeline"):
        estimate_on(spec, gpu="H100", pipeline_parallel_size=2)
    with pytest.raises(GpuplanError, match="TP=3"):
        estimate_on(spec, gpu="H100", tensor_parallel_size=3)
    audio = PHI["config"]["audio_processor"]
    other = {**audio, "config": {**audio["config"], "depthwise_seperable_out_channel": 512}}
    with pytest.raises(GpuplanError, match="depthwise_seperable_out_channel"):
        build_spec(_phi(audio_processor=other), "m")
    with pytest.raises(GpuplanError, match="audio_processor"):
        build_spec({k: v for k, v in PHI["config"].items() if k != "audio_processor"}, "m")
