"""Decoders that run their layers several times per token (tests/fixtures/oracle/families/loop.json): IQuest-Coder
Loop (vLLM models/iquest_loopcoder.py), HRM-Text (models/hrm_text.py), and the plain IQuest-Coder that vLLM maps
to Llama. vLLM gives every invocation of an attention block its own KV cache, so KV layers outnumber weight layers;
the fixture pins vLLM 0.32's meta-device build and KV planning (both model files are unchanged in 0.33)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec
from gpuplan.units import cdiv

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "loop.json").read_text())
LOOP = FX["models"]["loop/iquest-coder-v1-40b-loop-instruct"]
THINK = FX["models"]["loop/iquest-coder-v1-40b-loop-thinking"]
HRM = FX["models"]["loop/hrm-text-1b"]
HRM_SAVED = FX["models"]["loop/hrm-text-1b-as-transformers-saves-it"]
BASE = FX["models"]["loop/iquest-coder-v1-40b-base"]
H100 = dict(gpu_name="H100", gpu_memory_bytes=85_029_158_912)


def _oracle_run(model: dict, **kw):
    """Our estimate for the oracle's deployment: its KV byte budget, block size 16, its max_model_len."""
    meta = model["vllm_meta"]
    spec = build_spec(model["config"])
    dep = Deployment(**H100, vllm_version="0.32.0", block_size=16, max_model_len=meta["max_model_len"],
                     max_num_batched_tokens=meta["max_num_batched_tokens"],
                     kv_cache_memory_bytes=meta["kv_budget_bytes"], **kw)
    return spec, estimate(spec, dep)


def test_iquest_loop_40b_has_40b_parameters_as_vllm_builds_them() -> None:
    """80 Llama layers (q 5120x5120, k/v 1024x5120, o, gated MLP 3 x 5120x27648, two norms: 487,598,080) plus the
    loop gate per layer (40x128 + 40 bias = 5,160), untied 76,800 x 5,120 embedding and head, final norm:
    39,794,696,320. vLLM's bytes are 2 per parameter; we add the one rotary cache (131,072 x 128 bf16)."""
    spec, r = _oracle_run(LOOP)
    meta = LOOP["vllm_meta"]
    assert not spec.generic
    assert spec.total_params == meta["params"] == 80 * (487_598_080 + 5_160) + 2 * 76_800 * 5_120 + 5_120
    assert r.weights_bytes == meta["bytes"] + 131_072 * 128 * 2


def test_iquest_loop_caches_each_loop_separately_80_full_and_80_sliding_layers() -> None:
    """Loop 1 of each layer caches K/V with full attention, loop 2 its own K/V in a 64-token window (vLLM names it
    model.layers.{80 + i}): 160 KV layers of 8 heads x 128, pages of 16 x 2 x 8 x 128 x 2 = 65,536 bytes, in two
    groups of 80 that share 5 MiB blocks."""
    spec, r = _oracle_run(LOOP)
    meta = LOOP["vllm_meta"]
    assert spec.num_layers == meta["num_kv_layers"] == 160
    assert spec.attention_kinds == {"full": 80, "sliding_window": 80}
    assert {a.window for layer in spec.layers if (a := layer.attention).kind == "sliding_window"} == {64}
    assert r.kv.bytes_per_block == meta["bytes_per_block"] == 80 * 65_536
    assert r.num_gpu_blocks == meta["num_blocks"] == 40_000_000_000 // (80 * 65_536)
    assert sorted(g.kind for g in r.kv.groups) == ["full", "sliding_window"]
    assert r.kv.num_groups == len(meta["groups"]) == 2


def test_each_loop_request_also_reserves_its_window_blocks() -> None:
    """vLLM admits a request at max_model_len with its full-attention blocks (8,192 / 16 = 512) plus the window's
    reservation, cdiv(min(63 + tokens in flight, 8192), 16) + 1. The CPU oracle schedules one 2,048-token batch at a
    time (133 blocks); vLLM 0.32 on a GPU schedules asynchronously and keeps two batches in flight (261)."""
    meta = LOOP["vllm_meta"]
    assert round(meta["num_blocks"] / meta["max_concurrency_at_max_model_len"]) == 512 + cdiv(63 + 2048, 16) + 1
    _, r = _oracle_run(LOOP)
    assert r.max_concurrency == pytest.approx(meta["num_blocks"] / (512 + cdiv(63 + 2 * 2048, 16) + 1), abs=0.006)


def test_loop_thinking_keeps_an_8k_window_so_a_32k_request_takes_over_a_third_more_blocks() -> None:
    """IQuest-Coder-V1-40B-Loop-Thinking sets loop_window_size 8192: same pages and blocks as the Instruct model,
    but at 32K a request reserves 2,048 full blocks plus cdiv(8191 + 2 x 2048, 16) + 1 = 769 window blocks
    (the CPU oracle, one batch in flight: 641)."""
    spec, r = _oracle_run(THINK)
    meta = THINK["vllm_meta"]
    assert spec.total_params == meta["params"]
    assert {a.window for layer in spec.layers if (a := layer.attention).kind == "sliding_window"} == {8192}
    assert (r.kv.bytes_per_block, r.num_gpu_blocks) == (meta["bytes_per_block"], meta["num_blocks"])
    assert round(meta["num_blocks"] / meta["max_concurrency_at_max_model_len"]) == 2048 + cdiv(8191 + 2048, 16) + 1
    assert r.max_concurrency == pytest.approx(meta["num_blocks"] / (2048 + 769), abs=0.006)


def test_iquest_loop_at_tp2_splits_the_gates_with_the_heads() -> None:
    """Per rank at TP=2: attention 62,914,560 / 2, MLP 424,673,280 / 2, norms 10,240 whole, gate 5,160 / 2 per
    layer; embedding and head 786,432,000 / 2; final norm 5,120: 19,897,760,320 parameters, x 2 bytes, plus the
    33,554,432-byte rotary cache. KV: 4 heads per rank, 2,621,440-byte blocks."""
    _, r = _oracle_run(LOOP, tensor_parallel_size=2)
    per_layer = 62_914_560 // 2 + 424_673_280 // 2 + 10_240 + 5_160 // 2
    assert r.weights_bytes == 2 * (80 * per_layer + 786_432_000 // 2 + 5_120) + 33_554_432
    assert r.kv.bytes_per_block == 80 * 16 * 2 * 4 * 128 * 2


def test_the_tensors_carry_the_real_layer_number() -> None:
    """Layer i's weights sit at list position 2i (its loop-2 cache follows it), but are named model.layers.{i}:
    quantization ignore lists name real layers."""
    spec = build_spec(LOOP["config"])
    assert spec.layers[2 * 7].tensors[0].name == "model.layers.7.self_attn.q_proj"
    assert any(t.name == "model.gate_projections.7.bias" for t in spec.layers[14].tensors)
    assert spec.layers[15].tensors == ()


def test_hrm_text_1b_counts_what_transformers_and_vllm_count() -> None:
    """2 stacks x 16 layers of gate/q/k/v/o (5 x 1536 x 1536) and a gated MLP (3 x 1536 x 4096), weightless
    RMSNorms, untied 65,536 x 1,536 embedding and head, the 1,536-wide z_L_init: 1,182,795,264."""
    spec, r = _oracle_run(HRM)
    meta = HRM["vllm_meta"]
    assert not spec.generic
    assert spec.total_params == HRM["hf_params"] == meta["params"] == 1_182_795_264
    assert r.weights_bytes == meta["bytes"] + 4096 * 128 * 2


def test_hrm_text_caches_every_cycle_128_kv_layers_for_32_weight_layers() -> None:
    """Per token L runs H_cycles x L_cycles = 6 times and H twice: 16 x 6 + 16 x 2 = 128 full-attention caches of
    12 heads x 128 (MHA whatever num_key_value_heads says), 786,432 bytes per token; one group, 12 MiB blocks."""
    spec, r = _oracle_run(HRM)
    meta = HRM["vllm_meta"]
    assert spec.num_layers == meta["num_kv_layers"] == 128
    assert spec.attention_kinds == {"full": 128}
    assert sum(1 for layer in spec.layers if layer.tensors) == 32
    assert r.kv.bytes_per_block == meta["bytes_per_block"] == 16 * 128 * 2 * 12 * 128 * 2
    assert r.num_gpu_blocks == meta["num_blocks"]
    assert r.kv_cache_tokens == meta["kv_cache_size_tokens"] == 3178 * 16
    assert r.max_concurrency == pytest.approx(meta["max_concurrency_at_max_model_len"], abs=0.006)


def test_hrm_config_saved_by_transformers_reads_the_same() -> None:
    """transformers writes num_layers_per_stack 16 and num_hidden_layers 128 back: still 32 weight layers."""
    spec, r = _oracle_run(HRM_SAVED)
    meta = HRM_SAVED["vllm_meta"]
    assert spec.total_params == HRM_SAVED["hf_params"] == meta["params"] == HRM["hf_params"]
    assert (spec.num_layers, r.kv.bytes_per_block, r.num_gpu_blocks) == (128, meta["bytes_per_block"],
                                                                          meta["num_blocks"])


def test_hrm_text_at_tp2() -> None:
    """Per rank: 32 x (11,796,480 + 18,874,368) / 2 + 201,326,592 / 2 + 1,536 parameters, x 2, plus the 1 MiB
    rotary cache; 6 KV heads per rank."""
    _, r = _oracle_run(HRM, tensor_parallel_size=2)
    assert r.weights_bytes == 2 * (32 * 30_670_848 // 2 + 201_326_592 // 2 + 1_536) + 4096 * 128 * 2
    assert r.kv.bytes_per_block == 128 * 16 * 2 * 6 * 128 * 2


def test_iquest_coder_base_is_llama_for_vllm() -> None:
    """IQuestCoderForCausalLM is LlamaForCausalLM in vLLM's registry; the config's sliding_window is null."""
    spec, r = _oracle_run(BASE)
    meta = BASE["vllm_meta"]
    assert not spec.generic
    assert spec.total_params == meta["params"] == LOOP["vllm_meta"]["params"] - 80 * 5_160
    assert spec.attention_kinds == {"full": 80}
    assert (r.kv.bytes_per_block, r.num_gpu_blocks, r.kv_cache_tokens) == (
        meta["bytes_per_block"], meta["num_blocks"], meta["kv_cache_size_tokens"])


def test_iquest_loop_on_two_h100s_at_32k() -> None:
    """vLLM 0.33, TP=2, default scheduler (8,192 tokens a batch, two in flight): each 32K request takes 2,048 full
    blocks and cdiv(63 + 16,384, 16) + 1 = 1,029 window blocks."""
    spec = build_spec(LOOP["config"])
    r = estimate(spec, Deployment(**H100, tensor_parallel_size=2, vllm_version="0.33.0", max_model_len=32768))
    assert r.fits
    assert r.weights_bytes == 39_829_075_072
    assert r.max_num_batched_tokens == 8192
    assert r.max_concurrency == pytest.approx(r.num_gpu_blocks / (2048 + 1029), abs=0.006)


def test_a_looped_decoder_reads_its_layers_once_per_run_so_it_decodes_slower_than_its_base() -> None:
    """Throughput counts the weights a token reads: IQuest Loop's 80 layers twice (loop_num 2), the embedding row
    and head once. Its base model has the same tensors and runs them once."""
    from gpuplan.planner.throughput import active_params

    loop, base = build_spec(LOOP["config"]), build_spec(BASE["config"])
    head = 76_800 * 5_120  # untied lm_head, read once per token
    layers = 80 * (487_598_080 + 5_160)
    assert active_params(loop).active - head == pytest.approx(2 * layers, rel=1e-6)
    assert active_params(base).active - head == pytest.approx(layers - 80 * 5_160, rel=1e-6)


def test_hrm_text_runs_its_two_stacks_four_times_on_average() -> None:
    # L stack H_cycles x L_cycles = 6 times, H stack H_cycles = 2 times: (6 + 2) / 2.
    assert build_spec(HRM["config"]).layer_runs == 4.0
    assert build_spec(HRM_SAVED["config"]).layer_runs == 4.0
