"""rednote dots3 (dots3_note, Dots3NoteForCausalLM) as vLLM 0.33 builds its text model
(vllm/models/dots3_note/nvidia/model.py): 13 sparse-MLA layers with the DSA indexer and 33 sliding-window MLA layers
of their own width, all with a per-head gate; a dense first layer and 45 MoE layers of 256 experts plus a shared
expert. The config is the released one (tests/fixtures/oracle/families/dots3_note.json, source inside)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters_dots3_note  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.engines.vllm.weights import Sharding, stage_weights
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "dots3_note.json").read_text())
NOTE = FX["models"]["dots3_note/dots3-note-prev"]
MNBT = 8192  # max_num_batched_tokens for the top-k index buffer in these hand sums


def _spec(**changes):
    return build_spec({**NOTE["config"], **changes}, "dots-studio/dots3-note-prev")


def _weights(tp: int) -> int:
    (stage,) = stage_weights(
        _spec(), Sharding(tp=tp, moe_tp=tp, ep=1), None, 2, 1, mla_absorbed=False, mnbt=MNBT
    )
    return stage.total


def test_dots3_is_transformers_text_model_plus_the_expert_bias_vllm_holds_as_parameters() -> None:
    spec = _spec()
    assert not spec.generic
    # transformers keeps 45 MoE layers x 256 e_score_correction_bias as buffers; vLLM's DeepseekV2MoE makes them
    # float32 Parameters
    assert NOTE["hf_buffers_numel"] == 45 * 256
    assert spec.total_params == NOTE["hf_params"] + 45 * 256 == 279_551_729_536
    assert sum(1 for layer in spec.layers if layer.mlp.kind == "moe") == 45


def test_dots3_layers_are_the_three_shapes_transformers_builds() -> None:
    """Per layer (hidden 5120):
    full attention: q_a 1024x5120 + q_a norm 1024 + q_b (128 x 192)x1024 + kv_a (512+64)x5120 + kv_a norm 512
      + kv_b (128 x 256)x512 + o 5120x(128 x 128) + headwise g_proj 128x5120 + k_rope norm 64 = 134,678,080;
      indexer wq_b (64 x 128)x1024 + wk 128x5120 + weights_proj 64x5120 + k_norm 2 x 128 = 9,371,904;
    sliding attention: q_a 1024x5120 + 1024 + q_b (64 x 256)x1024 + kv_a (1024+64)x5120 + 1024
      + kv_b (64 x 320)x1024 + o 5120x(64 x 128) + g_proj 64x5120 + 64 = 90,835,008;
    MoE: 256 x 3 x 1536 x 5120 + shared 3 x 1536 x 5120 + gate 256 x 5120 = 6,064,701,440; dense 3 x 13824 x 5120;
    two layer norms 2 x 5120."""
    spec = _spec()
    full, swa, moe, dense, norms = 144_049_984, 90_835_008, 6_064_701_440, 212_336_640, 10_240
    counts: dict[int, int] = {}
    for layer in spec.layers:
        hf_numel = sum(t.numel for t in layer.tensors if "e_score_correction_bias" not in t.name)
        counts[hf_numel] = counts.get(hf_numel, 0) + 1
    assert counts == {full + dense + norms: 1, full + moe + norms: 12, swa + moe + norms: 33}
    assert {str(k): v for k, v in counts.items()} == NOTE["hf_decoder_layer_groups"]


def test_dots3_mtp_block_and_its_embedding_stay_in_the_checkpoint() -> None:
    """Layer 46 (sliding-geometry attention 90,835,008 + dense MLP 212,336,640 + two norms 10,240 + eh_proj 5120 x
    10240 + enorm / hnorm / shared_head.norm 3 x 5120) and model.mtp.embed_tokens 152064 x 5120."""
    spec = _spec()
    assert sum(t.numel for t in spec.extra_not_loaded) == 1_134_193_728
    # The released index's total_size less the language model in bf16 (F32 expert bias: 4 bytes) leaves the two
    # tower files: 15,514,956,416 bytes, which this spec does not size.
    language = 2 * (NOTE["hf_params"] + 1_134_193_728) + 4 * 45 * 256
    assert 576_886_825_984 - language == 15_514_956_416


def test_dots3_weights_in_bf16_at_tp1() -> None:
    """bf16 (2 bytes) for all but the fp32 expert bias (45 x 256) and indexer k_norm (13 x 256): 4 bytes;
    two rotary caches (theta 8e7 and 5e4) of 524288 x 64 x 2; the top-k buffer 8192 x 2048 int32.
    2 x 279,551,714,688 + 4 x 14,848 + 2 x 67,108,864 + 67,108,864 = 559,304,815,360."""
    assert _weights(1) == 559_304_815_360


def test_dots3_weights_per_gpu_at_tp8() -> None:
    """Per rank: embedding + LM head 2 x 152064/8 x 5120 x 2 = 389,283,840; final norm 10,240;
    13 full attention: replicated q_a, kv_a, g_proj, indexer (wq_b, wk + weights_proj) and norms, q_b / kv_b / o
    split by 8 = 33,949,248 x 2 + k_norm 256 x 4 = 67,899,520 bytes each;
    33 sliding attention: 21,104,704 x 2 = 42,209,408 each;
    45 MoE: experts 256 x 3 x 192 x 5120 + shared 3 x 192 x 5120 + gate 256 x 5120 (x 2) + bias 256 x 4 =
    1,518,470,144 each; layer 0's MLP 3 x 1728 x 5120 x 2 = 53,084,160; 46 x two norms 20,480;
    rotary caches 134,217,728 and the top-k buffer 67,108,864.
    = 71,251,407,616 bytes (66.4 GiB)."""
    total = (
        389_283_840
        + 10_240
        + 13 * 67_899_520
        + 33 * 42_209_408
        + 45 * 1_518_470_144
        + 53_084_160
        + 46 * 20_480
        + 134_217_728
        + 67_108_864
    )
    assert _weights(8) == total == 71_251_407_616


def test_does_dots3_fit_on_8_h100s_at_128k_no_its_kv_cache_needs_5_69_gib() -> None:
    """66.4 GiB of weights per GPU at TP=8 leave about 3 GiB of a 0.9 x 80 GiB H100 for the KV cache (the activation
    peak is calibrated). vLLM 0.33 packs the layers block-outermost (tests/test_kv_packed.py): blocks of 2,367,488 B
    (17 sliding pages of 64 x 2,176), one request of 131,072 tokens takes 2,048 pages in the full group (13 sparse
    MLA + 13 indexer caches) and 2 x (cdiv(512 + 2 x 8,192, 64) + 1) = 530 in the two sliding groups: 2,578 x
    2,367,488 = 6,103,384,064 B = 5.69 GiB. The longest context is what the pool less its null block holds:
    (available - 2,367,488) // 2,367,488 pages, 530 of them the sliding groups', the rest 64 tokens each."""
    r = estimate(_spec(), gpu="H100", tensor_parallel_size=8, max_model_len=131072)
    assert not r.fits
    assert "5.69 GiB KV cache is needed" in r.reason
    block = 2_367_488
    assert r.kv.bytes_per_block == block and r.kv.blocks_per_request == 2_578
    pages = (r.available_kv_cache_bytes - block) // block
    assert r.max_model_len_fit == (pages - 530) * 64
    assert 30_000 < r.max_model_len_fit < 40_000  # about 34K tokens with today's activation estimate
    # 32K does fit, with room for a second request
    r32 = estimate(_spec(), gpu="H100", tensor_parallel_size=8, max_model_len=32768)
    assert r32.fits and r32.kv.max_concurrency > 1
    assert not any("KV cache not planned" in n for n in _spec().notes)


def test_dots3_reads_the_sliding_geometry_vllm_reads() -> None:
    spec = _spec()
    full, swa = spec.layers[0].attention, spec.layers[2].attention
    assert (full.num_heads, full.kv_lora_rank, full.indexer_head_dim, full.sparse, full.window) == (
        128,
        512,
        128,
        True,
        None,
    )
    assert (swa.num_heads, swa.kv_lora_rank, swa.qk_nope_head_dim, swa.window, swa.sparse) == (
        64,
        1024,
        192,
        513,
        False,
    )
    assert [i for i, x in enumerate(spec.layers) if x.attention is full] == [0, 1] + list(range(5, 46, 4))
    # TP must divide the 64 sliding heads as well as the 128 full ones
    assert (64, "sliding-window attention heads (swa_num_attention_heads)") in spec.tp_divides
    # an elementwise gate is column-parallel and as wide as the attention output
    g = [
        t for t in _spec(swa_attention_gate_type="elementwise").layers[2].tensors if t.name.endswith("g_proj")
    ]
    assert [(t.shape, t.parallel) for t in g] == [((64 * 128, 5120), "column")]


def test_dots3_refuses_configs_vllm_cannot_read() -> None:
    cfg = {k: v for k, v in NOTE["config"].items() if k != "swa_kv_lora_rank"}
    with pytest.raises(ConfigError, match="swa_kv_lora_rank"):
        build_spec(cfg, "x")
    nested = {
        "model_type": "dots3_note",
        "architectures": ["Dots3NoteForCausalLM"],
        "text_config": NOTE["config"],
    }
    with pytest.raises(ConfigError, match="flat layout"):
        build_spec(nested, "x")
