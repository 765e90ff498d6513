"""Qwen2.5-Omni-7B and Qwen3-Omni-30B-A3B as vLLM 0.33 serves them: the thinker (text model, audio tower, vision
tower), never the talker or the speech decoder (tests/fixtures/oracle/families/qwen_omni.json, config sources and
transformers 5.23 counts inside)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import gpuplan.model.adapters_qwen_omni  # noqa: F401
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "qwen_omni.json").read_text())
Q25 = FX["models"]["qwen2_5_omni/Qwen2.5-Omni-7B"]
Q3 = FX["models"]["qwen3_omni_moe/Qwen3-Omni-30B-A3B-Instruct"]
SINUSOIDS = 1500 * 1280 * 4  # the audio encoder's float32 position table, a GPU buffer in both models
MNBT = 8192  # max_num_batched_tokens of these starts (the deepstack buffers' rows)


def _q25():
    return build_spec(Q25["config"], "Qwen/Qwen2.5-Omni-7B")


def _q3():
    return build_spec(Q3["config"], "Qwen/Qwen3-Omni-30B-A3B-Instruct")


def _budget_run(spec, tp: int, kv_bytes: int):
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.33.0", block_size=16,
                     tensor_parallel_size=tp, max_model_len=32768, kv_cache_memory_bytes=kv_bytes)
    return estimate(spec, dep)


# ----------------------------------------------------------------------------- Qwen2.5-Omni-7B


def test_qwen25_omni_counts_the_thinker_that_transformers_builds_tower_for_tower() -> None:
    spec = _q25()
    assert not spec.generic and spec.architecture == "Qwen2_5OmniModel"
    assert spec.total_params == Q25["hf_params"] == 8_931_813_888
    parts = Q25["hf_params_by_part"]
    audio = next(t for t in spec.extra if t.name == "audio_tower")
    assert audio.numel == parts["model.audio_tower"] == 639_647_232 and audio.parallel == "replicated"
    visual = sum(t.numel for t in spec.extra if t.name.startswith("visual"))
    assert visual == parts["model.visual"] == 676_550_144
    # Qwen2.5: 28 full-attention layers of 4 KV heads, untied 152,064-row head
    assert spec.attention_kinds == {"full": 28} and not spec.tie_word_embeddings
    assert spec.param_counts()["lm_head"] == parts["lm_head"]


def test_qwen25_omni_weights_at_tp1_and_tp2_by_hand() -> None:
    """TP=1: 8,931,813,888 params x 2 bytes = 17,863,627,776, + the float32 sinusoid table 7,680,000, + the text
    model's M-RoPE cache 4 x 32768 positions x 128 x 2 = 33,554,432, + the vision tower's 8192 x (80 / 2) x 2 = 655,360
    = 17,905,517,568.
    TP=2 (28 heads, 4 KV heads, 16 vision heads: all even). Whole on every rank: the audio tower (transformers'
    module, plain Linear layers) 639,647,232, the text norms 28 x 2 x 3584 + 3584 = 204,288, and the vision tower's
    patch conv 3 x 2 x 14 x 14 x 1280 = 1,505,280, block norms and row biases 32 x 4 x 1280 = 163,840, ln_q 1280 and
    merger output bias 3584 (1,673,984): 641,525,504. The other 8,290,288,384 (q/k/v biases follow their column
    layers, the 152,064-row vocabulary splits evenly) split in half: 4,145,144,192.
    (641,525,504 + 4,145,144,192) x 2 = 9,573,339,392, + 7,680,000 + 33,554,432 + 655,360 = 9,615,229,184."""
    spec = _q25()
    assert estimate_on(spec, gpu="H100", tensor_parallel_size=1, max_model_len=32768).weights_bytes == 17_905_517_568
    assert estimate_on(spec, gpu="H100", tensor_parallel_size=2, max_model_len=32768).weights_bytes == 9_615_229_184


def test_qwen25_omni_kv_is_28_full_layers_of_4_heads_56_kib_a_token() -> None:
    """28 layers x (K + V) x 4 heads x 128 x 2 bytes = 57,344 bytes a token; a block of 16 is 917,504 bytes,
    one group. A 10 GiB KV budget: 10,737,418,240 // 917,504 = 11,702 blocks = 187,232 tokens; at 32K a request
    needs 2,048 blocks: 11,702 / 2,048 = 5.71 concurrent requests."""
    r = _budget_run(_q25(), 1, 10 * 2**30)
    assert r.kv.bytes_per_block == 16 * 28 * 2 * 4 * 128 * 2 == 917_504
    assert r.kv.num_groups == 1 and r.kv.groups[0].page_bytes == 16 * 2 * 4 * 128 * 2
    assert r.num_gpu_blocks == 11_702 and r.kv_cache_tokens == 187_232
    assert round(r.max_concurrency, 2) == 5.71


def test_does_qwen25_omni_7b_fit_one_l4_at_32k() -> None:
    """With its towers, no: 16.68 GiB of weights (above) plus the profile run's max-size video through the vision
    tower leave no KV cache on a 24 GB L4. Text only (--language-model-only) vLLM builds neither tower: the weights
    drop by the 1,316,197,376 tower parameters and the sinusoid and vision rotary tables, to
    (8,931,813,888 - 1,316,197,376) x 2 + 33,554,432 = 15,264,787,456 bytes, and 32K fits."""
    full = estimate_on(_q25(), gpu="L4", tensor_parallel_size=1, max_model_len=32768)
    assert not full.fits
    text = estimate_on(_q25(), gpu="L4", tensor_parallel_size=1, max_model_len=32768, language_model_only=True)
    assert text.weights_bytes == 15_264_787_456
    assert text.fits and text.kv_cache_tokens >= 32768


# ----------------------------------------------------------------------------- Qwen3-Omni-30B-A3B


def test_qwen3_omni_counts_the_thinker_that_transformers_builds_tower_for_tower() -> None:
    spec = _q3()
    assert not spec.generic and spec.architecture == "Qwen3OmniMoeForConditionalGeneration"
    assert spec.total_params == Q3["hf_params"] == 31_719_205_488
    parts = Q3["hf_params_by_part"]
    audio = sum(t.numel for t in spec.extra if t.name.startswith("audio_tower") and t.in_checkpoint)
    assert audio == parts["model.audio_tower"] == 647_927_168
    assert sum(t.numel for t in spec.extra if t.name.startswith("visual")) == parts["model.visual"] == 538_631_408
    assert spec.attention_kinds == {"full": 48}
    assert sum(1 for layer in spec.layers if layer.mlp.kind == "moe") == 48
    assert spec.layers[0].mlp.num_experts == 128 and spec.layers[0].mlp.top_k == 8


def test_qwen3_omni_weights_at_tp1_and_tp2_by_hand() -> None:
    """TP=1: 31,719,205,488 x 2 = 63,438,410,976, + sinusoids 7,680,000, + the text M-RoPE cache (the Omni class keeps
    MRotaryEmbedding's factor 4) 4 x 65536 x 128 x 2 = 67,108,864, + the vision rotary 8192 x (72 / 2) x 2 = 589,824,
    + three deepstack buffers 3 x 8192 x 2048 x 2 = 100,663,296 = 63,614,452,960.
    TP=2: whole on every rank are the text norms 48 x (2 x 2048 + 2 x 128) + 2048 = 210,944, the routers
    48 x 128 x 2048 = 12,582,912, the audio tower's convolutions, conv_out, LayerNorms, row biases, ln_post, proj1
    and proj2 = 18,494,848, and the vision tower's patch conv, positions, norms, row biases and merger norms and
    output biases = 4,649,600: 35,938,304 in all; the other 31,683,267,184 split in half, 15,841,633,592.
    (35,938,304 + 15,841,633,592) x 2 = 31,755,143,792, + the same 176,041,984 of buffers = 31,931,185,776."""
    spec = _q3()
    assert estimate_on(spec, gpu="H100", tensor_parallel_size=1, max_model_len=65536).weights_bytes \
        == 63_614_452_960
    assert estimate_on(spec, gpu="H100", tensor_parallel_size=2, max_model_len=65536).weights_bytes \
        == 31_931_185_776
    whole = [t for t in spec.extra if t.name == "audio_tower.replicated"]
    assert whole[0].numel == 18_494_848
    assert SINUSOIDS == 7_680_000


def test_qwen3_omni_kv_is_48_full_layers_of_4_heads_96_kib_a_token() -> None:
    """48 layers x (K + V) x 4 heads x 128 x 2 bytes = 98,304 bytes a token at TP=1 (a block 1,572,864); at TP=2 two
    heads a rank, 49,152 (786,432 a block). A 10 GiB budget at TP=2: 10,737,418,240 // 786,432 = 13,653 blocks =
    218,448 tokens."""
    r1 = _budget_run(_q3(), 1, 10 * 2**30)
    assert r1.kv.bytes_per_block == 16 * 48 * 2 * 4 * 128 * 2 == 1_572_864
    assert r1.num_gpu_blocks == 10 * 2**30 // 1_572_864 == 6_826
    r2 = _budget_run(_q3(), 2, 10 * 2**30)
    assert r2.kv.bytes_per_block == 786_432 and r2.kv.num_groups == 1
    assert r2.num_gpu_blocks == 13_653 and r2.kv_cache_tokens == 218_448


def test_qwen3_omni_30b_a3b_on_one_h100_at_64k_and_on_two() -> None:
    """One H100: 59.2 GiB of weights and towers, and 64K still fits (about 100K tokens of KV). Two (TP=2): 29.7 GiB
    a GPU, the KV cache holds several 64K requests at once."""
    one = estimate_on(_q3(), gpu="H100", tensor_parallel_size=1, max_model_len=65536)
    assert one.fits and one.weights_bytes == 63_614_452_960
    assert 65536 <= one.kv_cache_tokens < 4 * 65536
    two = estimate_on(_q3(), gpu="H100", tensor_parallel_size=2, max_model_len=65536)
    assert two.fits and two.max_concurrency > 4


def test_qwen3_omni_text_only_start_builds_no_towers_nor_their_deepstack_buffers() -> None:
    """--language-model-only: minus the 1,186,558,576 tower parameters (x 2 bytes), the sinusoids and the vision rotary
    cache: 63,614,452,960 - 2,373,117,152 - 7,680,000 - 589,824 = 61,233,065,984; from vLLM 0.28 use_deepstack is
    false without the tower (qwen3_omni_moe_thinker.py), so the three 8192 x 2048 x 2 buffers go too:
    61,233,065,984 - 100,663,296 = 61,132,402,688. vLLM 0.27 still allocates them."""
    r = estimate_on(_q3(), gpu="H100", tensor_parallel_size=1, max_model_len=65536, language_model_only=True)
    assert r.weights_bytes == 61_132_402_688
    old = estimate_on(_q3(), gpu="H100", tensor_parallel_size=1, max_model_len=65536, language_model_only=True,
                      vllm_version="0.27.1")
    assert dict(old.per_stage[0]["weights_by_kind"])["buffers"] == 100_663_296


def test_qwen3_omni_at_tp8_keeps_its_20_head_audio_layers_whole_on_every_gpu() -> None:
    """vLLM splits the audio encoder's qkv / fc1 (column) and out_proj / fc2 (row) only when TP divides its 20 heads.
    Those layers hold 32 x (3 x 1280^2 + 3 x 1280 + 1280 x 5120 + 5120) + 32 x (1280^2 + 5120 x 1280) = 629,432,320
    parameters: at TP 4 a quarter on each GPU; at TP 8 all of them, 7/8 x 629,432,320 x 2 bytes more than a split."""
    spec = _q3()
    always_split = replace(spec, extra=tuple(replace(t, split_if_tp_divides=0) for t in spec.extra))

    def vision(s, tp: int) -> int:
        return estimate_on(s, gpu="H200", tensor_parallel_size=tp, max_model_len=65536).per_stage[0][
            "weights_by_kind"]["vision"]

    assert vision(spec, 4) == vision(always_split, 4)
    assert vision(spec, 8) - vision(always_split, 8) == 629_432_320 * 2 * 7 // 8


def test_thinker_only_configs_and_missing_thinker_are_handled() -> None:
    # A thinker config saved on its own (model_type qwen2_5_omni_thinker) builds the same model.
    th = {**Q25["config"]["thinker_config"], "architectures": ["Qwen2_5OmniForConditionalGeneration"]}
    assert build_spec(th).total_params == Q25["hf_params"]
    try:
        build_spec({"model_type": "qwen3_omni_moe", "architectures": ["Qwen3OmniMoeForConditionalGeneration"]})
    except Exception as e:  # noqa: BLE001
        assert "thinker_config" in str(e)
    else:
        raise AssertionError("a config without thinker_config must be refused")
