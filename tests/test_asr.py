"""Qwen3-ASR and Granite Speech as vLLM 0.33 builds them (src/gpuplan/model/adapters_asr.py): the text decoder plus
an audio tower that a text-only start-up leaves unbuilt. Parameter totals are transformers 5.23's meta-device counts
(tests/fixtures/oracle/families/asr.json, config sources inside); weights and KV figures are hand arithmetic from
the 0.33 model code, written out in each docstring."""

from __future__ import annotations

import json
from pathlib import Path

import gpuplan.model.adapters_asr  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "asr.json").read_text())
QASR = FX["models"]["qwen3_asr/Qwen3-ASR-1.7B"]
GRAN = FX["models"]["granite_speech/granite-speech-3.3-8b"]


def _qwen():
    return build_spec(QASR["config"], "Qwen/Qwen3-ASR-1.7B")


def _granite():
    return build_spec(GRAN["config"], "ibm-granite/granite-speech-3.3-8b")


def _by_kind(r) -> dict:
    return dict(r.per_stage[0]["weights_by_kind"])


# ------------------------------------------------------------------------------------------------------ Qwen3-ASR

def test_qwen3_asr_counts_the_audio_tower_and_matches_transformers() -> None:
    """Before this adapter gpuplan sized only the Qwen3 text model. The tower (317,477,504) is transformers'
    audio_tower (314,328,704) plus its multi_modal_projector (3,148,800), which vLLM loads into audio_tower.proj1 /
    proj2: qkv + fc1 with biases 24 x 7,347,200 = 176,332,800 (column), out_proj + fc2 weights 24 x 5,242,880 =
    125,829,120 (row), and 15,315,584 whole (convs 4,800 + 4,148,160, conv_out 480 x 16 x 1024 = 7,864,320, the
    layers' LayerNorms and row biases 24 x 6,144, ln_post 2,048, proj1 1,049,600, proj2 2,099,200)."""
    spec = _qwen()
    assert not spec.generic and spec.architecture == "Qwen3ASRForConditionalGeneration"
    assert spec.total_params == QASR["hf_params"] == 2_038_052_480
    counts = spec.param_counts()
    tower = QASR["hf_params_by_module"]
    assert counts["vision"] == tower["model.audio_tower"] + tower["model.multi_modal_projector"] == 317_477_504
    assert counts["lm_head"] == 0  # tied to the embedding
    flat = build_spec(QASR["config_hf_flat"], "flat")  # transformers' own layout gives the same model
    assert flat.total_params == spec.total_params and flat.param_counts() == counts


def test_qwen3_asr_weights_at_tp1_and_tp2() -> None:
    """TP 1: 2,038,052,480 x 2 B = 4,076,104,960, the float32 sinusoid table 1500 x 1024 x 4 = 6,144,000 and the
    text MRoPE cache 4 x 65,536 positions x 128 x 2 B = 67,108,864: 4,149,357,824. TP 2 (divides the encoder's 16
    heads): the text halves attention (352,321,536 B) and MLP (1,056,964,608 B) and the 151,936-row embedding
    (311,164,928 B), norms whole (247,808 B); the tower keeps 15,315,584 whole and halves the 302,161,920 split
    params: 166,396,544 x 2 B + 6,144,000 = 338,937,088; with the rope cache 2,126,744,832."""
    spec = _qwen()
    r1 = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=16384)
    r2 = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=16384)
    assert r1.weights_bytes == 4_149_357_824
    assert _by_kind(r1)["vision"] == 641_099_008
    assert r2.weights_bytes == 2_126_744_832
    assert _by_kind(r2)["vision"] == 338_937_088


def test_qwen3_asr_encoder_stays_whole_where_tp_does_not_divide_its_heads() -> None:
    """A Qwen3-Omni-sized encoder (d_model 1280, 20 heads) at TP 8: vLLM's disable_tp keeps qkv / fc1 / out_proj /
    fc2 whole, so the tower bytes equal TP 1's; at TP 4 (divides 20) they are split."""
    cfg = json.loads(json.dumps(QASR["config"]))
    cfg["thinker_config"]["audio_config"].update(d_model=1280, encoder_attention_heads=20, encoder_ffn_dim=5120)
    spec = build_spec(cfg, "wide")
    v1 = _by_kind(estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=4096))["vision"]
    v4 = _by_kind(estimate(spec, gpu="H100", tensor_parallel_size=4, max_model_len=4096))["vision"]
    v8 = _by_kind(estimate(spec, gpu="H100", tensor_parallel_size=8, max_model_len=4096))["vision"]
    assert v8 == v1 and v4 < v1


def test_qwen3_asr_text_only_drops_the_tower() -> None:
    """--language-model-only: _mark_tower_model builds no audio_tower (sinusoid table included):
    4,149,357,824 - 641,099,008 = 3,508,258,816."""
    r = estimate(_qwen(), gpu="H100", language_model_only=True)
    assert r.weights_bytes == 3_508_258_816
    assert "vision" not in _by_kind(r) or _by_kind(r)["vision"] == 0


def test_qwen3_asr_1_7b_on_one_t4() -> None:
    """"Does Qwen3-ASR-1.7B run on one T4?" Yes, at its full 65,536-token context. The T4 has no bfloat16, so
    vLLM runs float16 (same bytes). KV: 28 layers x 2 x 8 KV heads x 128 x 2 B = 114,688 B a token, a block of
    16 = 1,835,008 B (one full-attention group, 65,536 B pages per layer). The estimate (calibrated activation and
    CUDA graphs) leaves 5,252 blocks: 84,032 tokens, 84,032 / 65,536 = 1.28 requests at full length."""
    r = estimate(_qwen(), gpu="T4")
    assert r.fits and r.dtype == "float16"
    assert r.weights_bytes == 4_149_357_824
    assert r.kv.bytes_per_token == 114_688 and r.kv.bytes_per_block == 1_835_008
    assert [(g.kind, g.num_layers, g.page_bytes) for g in r.kv.groups] == [("full", 28, 65_536)]
    assert (r.kv.num_gpu_blocks, r.kv_cache_tokens, r.kv.max_concurrency) == (5_252, 84_032, 1.28)


# --------------------------------------------------------------------------------------------------- Granite Speech

def test_granite_speech_matches_transformers_without_the_lora() -> None:
    """Encoder 439,980,288: per conformer layer two feed-forwards 2 x 8,395,776, attention 4,328,576 (its
    rel_pos_emb 1025 x 128), conv module 6,333,440, post_norm 2,048 = 27,455,616, x 16 = 439,289,856, plus
    input_linear 164,864, out 262,400, out_mid 263,168. Projector 37,796,864: 3 queries x 1024, the Q-Former
    LayerNorm 2,048, two layers of self- and cross-attention 2 x 4,200,448, intermediate_query 4,198,400 and
    output_query 4,197,376, the linear 1024 -> 4096 4,198,400. The LoRA adapter is counted by neither."""
    spec = _granite()
    assert not spec.generic and spec.architecture == "GraniteSpeechForConditionalGeneration"
    assert spec.total_params == GRAN["hf_params"] == 8_648_645_888
    counts = spec.param_counts()
    assert counts["vision"] == GRAN["hf_params_by_module"]["model.encoder"] == 439_980_288
    assert counts["projector"] == GRAN["hf_params_by_module"]["model.projector"] == 37_796_864
    assert any("LoRA" in n for n in spec.notes)


def test_granite_speech_weights_at_tp1_and_tp2() -> None:
    """TP 1: 8,648,645,888 params x 2 B = 17,297,291,776, the embedding padded from 49,160 to 49,216 rows
    (+56 x 4096 x 2 = 458,752), the encoder's buffers (BatchNorm statistics 16 x 2 x 2048 x 2 B = 131,072;
    num_batches_tracked 16 x 8 B and attention_dists 200 x 200 x 8 B = 320,128) and the rope cache
    131,072 x 128 x 2 B = 33,554,432: 17,331,756,160. TP 2: the encoder splits only its feed-forwards and CTC head
    (column 134,611,200 and row 134,479,872 params halve, 170,889,216 stay whole): 305,434,752 x 2 B + 451,200 =
    611,320,704; the projector stays whole (75,593,728); the embedding halves to 24,608 x 4096 x 2 = 201,588,736."""
    spec = _granite()
    r1 = estimate(spec, gpu="H100", tensor_parallel_size=1, max_model_len=16384)
    r2 = estimate(spec, gpu="H100", tensor_parallel_size=2, max_model_len=16384)
    assert r1.weights_bytes == 17_331_756_160
    assert (_by_kind(r1)["vision"], _by_kind(r1)["projector"]) == (880_411_776, 75_593_728)
    assert r2.weights_bytes == 8_891_898_752
    assert (_by_kind(r2)["vision"], _by_kind(r2)["projector"]) == (611_320_704, 75_593_728)


def test_granite_speech_text_only_drops_encoder_and_projector() -> None:
    """limit_mm_per_prompt {"audio": 0}: neither tower is built: 17,331,756,160 - 880,411,776 - 75,593,728 =
    16,375,750,656."""
    r = estimate(_granite(), gpu="H100", limit_mm_per_prompt={"audio": 0})
    assert r.weights_bytes == 16_375_750_656


def test_granite_speech_3_3_8b_on_one_l40s_at_16k() -> None:
    """"Does Granite-Speech-3.3-8B fit on one L40S at 16K?" Yes: 17,331,756,160 B of weights, and KV at 40 layers x
    2 x 8 x 128 x 2 B = 163,840 B a token (block 2,621,440 B, one full group of 65,536 B pages) leaves 9,817
    blocks: 157,072 tokens, 157,072 / 16,384 = 9.59 requests at full length."""
    r = estimate(_granite(), gpu="L40S", max_model_len=16384)
    assert r.fits
    assert r.weights_bytes == 17_331_756_160
    assert r.kv.bytes_per_token == 163_840 and r.kv.bytes_per_block == 2_621_440
    assert [(g.kind, g.num_layers, g.page_bytes) for g in r.kv.groups] == [("full", 40, 65_536)]
    assert (r.kv.num_gpu_blocks, r.kv_cache_tokens, r.kv.max_concurrency) == (9_817, 157_072, 9.59)
