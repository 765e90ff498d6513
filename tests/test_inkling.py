"""Thinking Machines Inkling (inkling_mm_model / inkling_model) as vLLM 0.33 builds it (vllm/models/inkling): hybrid
5:1 sliding-window / full attention with a relative-position branch, four short convolutions per layer whose state
vLLM pages as a second sliding-window cache of kernel_size-token blocks, two dense layers, then a sigmoid MoE with
two shared "sink" experts (tests/fixtures/oracle/families/inkling.json, config sources inside)."""

from __future__ import annotations

import json
from pathlib import Path

import gpuplan.model.adapters_inkling  # noqa: F401
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "inkling.json").read_text())
BIG, SMALL = FX["models"]["inkling/Inkling"], FX["models"]["inkling/Inkling-Small"]


def _text_only(entry: dict) -> dict:
    """The checkpoint's text_config served as InklingForCausalLM (model_type inkling_model)."""
    return {
        **entry["config"]["text_config"],
        "model_type": "inkling_model",
        "architectures": ["InklingForCausalLM"],
    }


def test_inkling_is_947b_as_transformers_counts_it_plus_the_router_bias_vllm_holds_as_a_parameter() -> None:
    spec = build_spec(_text_only(BIG), "thinkingmachines/Inkling")
    assert not spec.generic
    # transformers keeps the selection bias as a buffer; vLLM loads it as an fp32 parameter: 64 MoE layers x 256
    assert spec.total_params == BIG["hf_params"] + 64 * 256 == 947_025_564_226
    assert spec.attention_kinds == {"sliding_window": 55 + 66, "full": 11}  # 66 conv-state caches ride along
    assert spec.num_decoder_layers == 66
    assert [layer.mlp.kind for layer in spec.layers[:6:2]] == ["dense", "dense", "moe"]


def test_the_multimodal_checkpoint_adds_the_dmel_audio_tower_and_says_the_vision_tower_is_not_counted() -> (
    None
):
    spec = build_spec(BIG["config"], "thinkingmachines/Inkling")
    # nn.Embedding(80 mel bins x 16 levels, 6144) + its RMSNorm
    assert spec.total_params == BIG["hf_params"] + 64 * 256 + 80 * 16 * 6144 + 6144
    assert any("vision tower" in n for n in spec.notes)
    assert spec.architecture == "InklingForConditionalGeneration"


def test_inkling_small_weights_per_gpu_at_tp1_and_tp8() -> None:
    """Inkling-Small, bf16 (2 bytes; router bias and global scale fp32), per rank at TP=t:
    per layer: qkvr = q 32x128 + k,v 2 x 8x128 + r 32x16 rows of 4096 (q, r / t; k, v whole KV heads / t);
      o 4096 x 4096 / t; q/k norms 2 x 128; relative table 16 x 512 (local) or 16 x 1024 (7 full layers);
      K/V convolutions 2 x (8/t)x128 x 4 taps; stream convolutions 2 x 4096/t x 4; attn/mlp norms 2 x 4096;
    layers 0-1 dense: gate_up 2 x 16384 x 4096 / t, down 4096 x 16384 / t, global scale 1;
    40 MoE layers: router 264 (258 padded to 8) x 4096, fp32 global scale 1 and bias 256;
      experts 256 x 3 x 2048 x 4096 / t; sink experts 2 x 3 x 2048 x 4096 / t;
    embedding 201024 x 4096 on every rank (replicated) + embed norm; final norm; LM head 201024/t x 4096."""

    def by_hand(t: int) -> int:
        h = 4096
        att = (
            (32 * 128 + 2 * 8 * 128 + 32 * 16) * h // t
            + h * 4096 // t
            + 2 * 128
            + 2 * 8 // t * 128 * 4
            + 2 * h // t * 4
            + 2 * h
        )
        rel = 35 * 16 * 512 + 7 * 16 * 1024
        dense = 2 * (3 * 16384 * h // t + 1)
        moe = 40 * (264 * h + 256 * 3 * 2048 * h // t + 2 * 3 * 2048 * h // t)
        rest = 201024 * h + h + h + 201024 // t * h
        return 2 * (42 * att + rel + dense + moe + rest) + 40 * 4 * (1 + 256)

    spec = build_spec(_text_only(SMALL), "thinkingmachines/Inkling-Small")
    assert spec.total_params == SMALL["hf_params"] + 40 * 256
    one = estimate_on(spec, gpu="H200", tensor_parallel_size=1, max_model_len=4096)
    eight = estimate_on(spec, gpu="H100", tensor_parallel_size=8, max_model_len=131072)
    assert one.weights_bytes == by_hand(1) == 527_312_385_188
    assert eight.weights_bytes == by_hand(8) == 67_432_055_972


def test_inkling_small_kv_layout_at_tp8_is_twelve_groups_of_seven_16_kib_pages() -> None:
    """vLLM 0.33 at TP=8, block 16, bf16: every layer registers two caches.
    Attention: full and sliding layers both 8 KV heads -> 1 head/rank: 16 x 1 x (128 + 128) x 2 = 8,192 B a page.
    Conv state (sconv_swa_attn.py): SlidingWindowSpec block 4 = window 4, 1 head/rank of D = next_pow2(2 x 128 +
    2 x 4096/8) = 2048, K only: 4 x 1 x 2048 x 2 = 16,384 B. unify_kv_cache_spec_page_size grows the attention
    blocks to 32 tokens (16,384 B). Buckets by spec: 7 full, 35 sliding (window 512), 42 conv -> group size 7 ->
    1 + 5 + 6 = 12 groups; a block of one group = 7 x 16,384 = 114,688 B.
    A 131,072-token request (in flight 2 x 8,192 tokens): full cdiv(131072, 32) = 4,096; sliding 5 x
    (cdiv(511 + 16384, 32) + 1) = 5 x 529; conv 6 x (cdiv(3 + 16384, 4) + 1) = 6 x 4,098 -> 31,329 blocks.
    With 40 GiB for the cache: 42,949,672,960 // 114,688 = 374,491 blocks -> int(374491 / 31329 x 131072) tokens."""
    spec = build_spec(_text_only(SMALL), "thinkingmachines/Inkling-Small")
    dep = Deployment(
        gpu_name="H100",
        gpu_memory_bytes=80 * 2**30,
        tensor_parallel_size=8,
        vllm_version="0.33.0",
        max_model_len=131072,
        kv_cache_memory_bytes=40 * 2**30,
    )
    kv = estimate(spec, dep).kv
    assert (kv.block_size, kv.group_size, kv.num_groups) == (16, 7, 12)
    assert kv.bytes_per_block == 7 * 16384 == 114_688
    groups = {(g.kind, g.block_size): (g.num_layers, g.page_bytes, g.blocks_per_request) for g in kv.groups}
    assert groups == {
        ("full", 32): (7, 16384, 4096),
        ("sliding_window", 32): (35, 16384, 5 * 529),
        ("sliding_window", 4): (42, 16384, 6 * 4098),
    }
    assert kv.blocks_per_request == 4096 + 5 * 529 + 6 * 4098 == 31_329
    assert kv.num_gpu_blocks == 42_949_672_960 // 114_688 == 374_491
    assert kv.kv_cache_tokens == int(374_491 / 31_329 * 131072) == 1_566_768


def test_big_inkling_conv_state_pages_match_across_layer_types_and_fp8_kv_leaves_them_bf16() -> None:
    """Inkling at TP=8: sliding attention 16 KV heads -> 2/rank: 16 x 2 x 256 x 2 = 16,384 B; full 8 -> 1/rank:
    8,192 B (block grows to 32). Conv state: full layers 1 head of next_pow2(256 + 2 x 6144/8 = 1792) = 2048, local
    layers 2 heads of next_pow2(256 + 2 x 6144/16 = 1024) = 1024: 4 x 2048 x 2 = 4 x 2 x 1024 x 2 = 16,384 B.
    11 full layers -> groups of 11: 1 full + 5 sliding + 1 + 5 conv = 12 groups, 11 x 16,384 = 180,224 B a block.
    --kv-cache-dtype fp8 halves the attention pages (8,192 and 4,096 B) but the conv state stays bf16 at 16,384 B:
    attention blocks grow to 32 (sliding) and 64 (full) tokens instead."""
    spec = build_spec(BIG["config"], "thinkingmachines/Inkling")
    bf16 = estimate_on(spec, gpu="H200", tensor_parallel_size=8, max_model_len=131072).kv
    assert (bf16.bytes_per_block, bf16.num_groups, bf16.group_size) == (180_224, 12, 11)
    fp8 = estimate(
        spec,
        Deployment(
            gpu_name="H200",
            gpu_memory_bytes=141 * 2**30,
            tensor_parallel_size=8,
            vllm_version="0.33.0",
            max_model_len=131072,
            kv_cache_dtype="fp8",
        ),
    ).kv
    assert fp8.bytes_per_block == 180_224
    assert sorted((g.kind, g.block_size) for g in fp8.groups) == [
        ("full", 64),
        ("sliding_window", 4),
        ("sliding_window", 32),
    ]


def test_does_inkling_small_fit_on_8_h100s_at_128k_and_not_on_4() -> None:
    """With its audio tower, weights per GPU at TP=8 are 67,442,549,924 B (62.8 GiB), leaving room for two
    131,072-token requests on 80 GiB cards; at TP=4 they are 133,139,739,812 B (124.0 GiB), more than an H100
    has. TP=16 is refused: the conv state asserts TP <= the 8 KV heads."""
    spec = build_spec(SMALL["config"], "thinkingmachines/Inkling-Small")
    eight = estimate_on(spec, gpu="H100", tensor_parallel_size=8, max_model_len=131072)
    assert eight.weights_bytes == 67_442_549_924
    assert eight.fits and eight.kv_cache_tokens >= 131072
    four = estimate_on(spec, gpu="H100", tensor_parallel_size=4, max_model_len=131072)
    assert four.weights_bytes == 133_139_739_812 and not four.fits
    assert (8, "KV heads of the full-attention layers") in spec.tp_divides


def test_transformers_spelling_of_the_mlp_widths_is_read_back_as_vllm_does() -> None:
    # moe_intermediate_size without dense_intermediate_size: intermediate_size is the dense width (configs.py)
    txt = _text_only(SMALL)
    hf = {
        **{k: v for k, v in txt.items() if k != "dense_intermediate_size"},
        "intermediate_size": 16384,
        "moe_intermediate_size": 2048,
    }
    assert build_spec(hf).total_params == build_spec(txt).total_params
    # layer_types alone is not read by vLLM: every layer is built as full attention
    lt = {
        **{k: v for k, v in txt.items() if k != "local_layer_ids"},
        "layer_types": ["hybrid_sliding" if i % 6 != 5 else "hybrid" for i in range(42)],
    }
    spec = build_spec(lt)
    assert spec.attention_kinds == {"full": 42, "sliding_window": 42}
    assert any("local_layer_ids" in n for n in spec.notes)
