"""Meituan LongCat-Flash (model_type longcat_flash) as vLLM builds it (models/longcat_flash.py): each of num_layers
decoder layers holds two MLA attention blocks, two dense MLPs and one MoE whose router also scores zero-computation
experts. Numbers from transformers 5.23 and vLLM 0.32's meta-device build and KV planner
(tests/fixtures/oracle/families/longcat_flash.json; vLLM 0.33's model file is the same)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "longcat_flash.json").read_text())
CHAT = FX["models"]["longcat_flash/LongCat-Flash-Chat"]
SHORTCAT = FX["models"]["longcat_flash/LongCat-ShortCat"]
H200 = dict(gpu_name="H200", gpu_memory_bytes=150_117_941_248)


def _oracle_run(model: dict, **kw):
    """The deployment the oracle planned: a 40e9-byte KV budget, 16-token blocks, 8,192 tokens."""
    meta = model["vllm_meta"]
    spec = build_spec(model["config"])
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=85_029_158_912, vllm_version="0.32.0", block_size=16,
                     max_model_len=meta["max_model_len"], kv_cache_memory_bytes=meta["kv_budget_bytes"], **kw)
    return spec, estimate(spec, dep)


def _by_kind(r) -> dict[str, int]:
    return r.per_stage[0]["weights_by_kind"]


def test_longcat_flash_chat_is_560b_as_vllm_loads_it() -> None:
    """The model card's 560B: vLLM builds 560,664,980,480 parameters. transformers 5.23 says 741B because it gives
    the 256 weightless zero experts a gate_up_proj too (28 x 256 x 2 x 2,048 x 6,144) and keeps the 28 x 768
    correction biases as buffers. The Hub's 562B adds the MTP layer vLLM does not load for plain serving."""
    spec = build_spec(CHAT["config"])
    assert not spec.generic
    phantom = 28 * 256 * 2 * 2048 * 6144
    assert spec.total_params == CHAT["vllm_meta"]["params"] == CHAT["hf_params"] - phantom + 28 * 768
    assert spec.total_params == 560_664_980_480
    counts = spec.param_counts()
    assert counts["experts"] == 28 * 512 * 3 * 2048 * 6144  # real experts only
    assert counts["mlp"] == 56 * 3 * 6144 * 12288  # two dense MLPs per decoder layer
    assert counts["router"] == 28 * (768 * 6144 + 768)  # 512 + 256 logits, classifier and bias
    mtp = spec.extra_not_loaded[0].numel
    assert round((spec.total_params + mtp) / 1e9) == 562


def test_longcat_flash_chat_weights_are_vllms_parameter_bytes() -> None:
    """vLLM's parameter bytes (bf16, the router classifier and bias float32) plus what vLLM holds that is not a
    parameter: the rotary cache (131,072 x 64 bf16). MLA's W_UK_T / W_UV are views of the bf16 kv_b_proj."""
    _, r = _oracle_run(CHAT)
    rope = 131072 * 64 * 2
    assert _by_kind(r)["rope_cache"] == rope and "mla_absorbed" not in _by_kind(r)
    assert r.weights_bytes == CHAT["vllm_meta"]["bytes"] + rope
    assert round(r.weights_bytes / 2**30, 1) == 1044.6


def test_every_decoder_layer_caches_two_mla_attentions() -> None:
    """28 decoder layers make 56 MLA KV caches of 512 + 64 values per token: 64,512 bytes per token in bf16, and
    the oracle's pages, blocks, tokens and concurrency."""
    spec, r = _oracle_run(CHAT)
    meta = CHAT["vllm_meta"]
    assert spec.attention_kinds == {"mla": 56} == {"mla": meta["num_kv_layers"]}
    assert r.per_stage[0]["bytes_per_token"] == 56 * (512 + 64) * 2 == 64_512
    assert r.kv.bytes_per_block == meta["bytes_per_block"] == 56 * meta["layer_kinds"][0]["page_size_bytes"]
    assert r.num_gpu_blocks == meta["num_blocks"]
    assert r.kv.num_groups == len(meta["groups"])
    assert r.kv_cache_tokens == meta["kv_cache_size_tokens"]
    assert r.max_concurrency == pytest.approx(meta["max_concurrency_at_max_model_len"], abs=0.006)


def test_tensor_parallel_splits_what_vllm_splits() -> None:
    """TP=8 on one GPU, by vLLM's layers: per MLA block the q_a/kv_a projections and norms whole (12,978,176), q_b,
    kv_b and o_proj an eighth (9,699,328); dense MLPs, experts (by intermediate size), embedding and lm_head an
    eighth; the float32 routers whole."""
    spec = build_spec(CHAT["config"])
    r = estimate(spec, Deployment(**H200, vllm_version="0.33.0", tensor_parallel_size=8, max_model_len=131072))
    mla = 56 * (12_978_176 + 9_699_328) * 2
    dense = 56 * 3 * 6144 * 12288 // 8 * 2 + 56 * 2 * 6144 * 2
    moe = 28 * (768 * 6144 + 768) * 4 + 28 * 512 * 3 * 2048 * 6144 // 8 * 2
    ends = 2 * 131072 * 6144 // 8 * 2 + 6144 * 2
    rope = 131072 * 64 * 2  # MLA's W_UK_T / W_UV view kv_b_proj: no copy
    assert r.weights_bytes == mla + dense + moe + ends + rope == 142_069_071_872 - 56 * 8 * 256 * 512 * 2
    assert not r.fits  # bf16 needs two nodes: 132.3 GiB of weights on each of 8 H200s


def test_bf16_chat_on_two_h200_nodes() -> None:
    """TP=8 x PP=2 on 16 H200s: each stage holds 14 decoder layers (28 MLA caches, 32,256 bytes per token; MLA
    KV is not split over TP) and about 66 GiB of weights, leaving room for the full 131,072-token context."""
    spec = build_spec(CHAT["config"])
    r = estimate(spec, Deployment(**H200, vllm_version="0.33.0", tensor_parallel_size=8, pipeline_parallel_size=2,
                                  max_model_len=131072))
    assert r.fits
    assert [s["layers"] for s in r.per_stage] == [[0, 28], [28, 56]]
    assert all(s["bytes_per_token"] == 28 * 1152 for s in r.per_stage)
    assert round(r.weights_bytes / 2**30, 1) == 66.1
    assert r.kv_cache_tokens > 131072


def test_resaved_config_with_num_hidden_layers_and_no_zero_experts() -> None:
    """transformers' 2-layer LongCat-ShortCat test checkpoint: num_hidden_layers 4 (= 2 x num_layers), 8 experts and
    no zero experts, a float32 config served in bf16. Its 3,483,006,976 transformers parameters plus the two
    layers' 8 correction biases are vLLM's count; bytes and KV match vLLM's build."""
    spec, r = _oracle_run(SHORTCAT)
    meta = SHORTCAT["vllm_meta"]
    assert spec.total_params == meta["params"] == SHORTCAT["hf_params"] + 2 * 8
    assert spec.attention_kinds == {"mla": 4}
    assert r.weights_bytes == meta["bytes"] + 131072 * 64 * 2
    assert r.kv.bytes_per_block == meta["bytes_per_block"] and r.num_gpu_blocks == meta["num_blocks"]


def test_checkpoint_names_reach_quantization_ignore_lists() -> None:
    """Tensors carry the checkpoint's per-decoder-layer names, so an FP8 ignore list that names one attention block
    keeps exactly that block in bf16; disable_quant_module ["self_attn"] (read by FlashDecoderLayer) keeps all 56."""
    cfg = CHAT["config"]
    dep = Deployment(**H200, vllm_version="0.33.0", tensor_parallel_size=8, max_model_len=8192)

    def attention_bytes(extra: dict) -> int:
        return _by_kind(estimate(build_spec({**cfg, **extra}), dep))["attention"]

    block = {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}
    fp8 = attention_bytes({"quantization_config": block})
    one = attention_bytes({"quantization_config": {**block, "ignored_layers": [
        "model.layers.27.self_attn.1.q_a_proj", "model.layers.27.self_attn.1.q_b_proj",
        "model.layers.27.self_attn.1.kv_a_proj_with_mqa", "model.layers.27.self_attn.1.kv_b_proj",
        "model.layers.27.self_attn.1.o_proj"]}})
    plain = attention_bytes({"quantization_config": block, "disable_quant_module": ["self_attn"]})
    bf16 = attention_bytes({})
    assert fp8 < one < plain == bf16
    assert plain - one == 55 * (bf16 - fp8) // 56


def test_config_without_zero_expert_type_is_refused() -> None:
    """vLLM's LongcatMoe asserts zero_expert_type is set: no guess."""
    cfg = {k: v for k, v in CHAT["config"].items() if k != "zero_expert_type"}
    with pytest.raises(Exception, match="zero_expert_type"):
        build_spec(cfg)


# LongCat-Flash-Lite's config.json as a Rust inference project's test fixture records it ("LongCat-Flash-Lite config,
# 14 checkpoint layers and the full n-gram trio", 2026-09-26; the same vocab / hidden / ratio / N / K as an n-gram
# hashing fixture citing the Hub config at main). zero_expert_type is not in that excerpt: "identity", as in every
# LongCat-Flash config (vLLM asserts it is set).
LITE = {"architectures": ["LongcatFlashNgramForCausalLM"], "model_type": "longcat_flash_ngram", "vocab_size": 131072,
        "hidden_size": 3072, "ffn_hidden_size": 6144, "expert_ffn_hidden_size": 1024, "num_layers": 14,
        "num_attention_heads": 32, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 128, "v_head_dim": 128, "n_routed_experts": 256, "moe_topk": 12,
        "routed_scaling_factor": 6.0, "zero_expert_num": 128, "zero_expert_type": "identity",
        "ngram_vocab_size_ratio": 78, "emb_neighbor_num": 4, "emb_split_num": 4, "rope_theta": 5000000.0,
        "rms_norm_eps": 1e-5, "max_position_embeddings": 327680, "eos_token_id": 2, "torch_dtype": "bfloat16"}
# 4 x (4 - 1) = 12 embedders of 78 x 131,072 + 2i + 1 rows, 3,072 / 12 = 256 wide
NGRAM_ROWS = 12 * 78 * 131072 + sum(2 * i + 1 for i in range(12))


def test_longcat_flash_lite_is_68_5b_because_its_ngram_tables_hold_31_4b() -> None:
    """The model card's 68.5B, of which over 30B are n-gram embeddings: the tables (122,683,536 x 256) and the 12
    stacked [256, 3,072] projections, beside the ordinary 131,072 x 3,072 token embedding."""
    spec = build_spec(LITE)
    assert spec.model_type == "longcat_flash" and not spec.generic  # vLLM maps the architecture to longcat_flash
    assert NGRAM_ROWS == 122_683_536
    assert spec.param_counts()["embedding"] == NGRAM_ROWS * 256 + 12 * 256 * 3072 + 131072 * 3072
    assert round(spec.total_params / 1e9, 1) == 68.6
    # Without the Ngram architecture vLLM's FlashModel builds no tables.
    plain = build_spec({**LITE, "architectures": ["LongcatFlashForCausalLM"]})
    assert spec.total_params - plain.total_params == NGRAM_ROWS * 256 + 12 * 256 * 3072


def test_longcat_flash_lite_at_tp8_splits_the_ngram_table_but_not_its_projections() -> None:
    """The concatenated table is one VocabParallelEmbedding: rows padded to 64 (122,683,584), an eighth per rank. The
    stacked projection is a plain parameter every rank holds whole; the hashing buffers are 73 int32s."""
    r = estimate(build_spec(LITE), Deployment(**H200, vllm_version="0.33.0", tensor_parallel_size=8,
                                              max_model_len=131072))
    table = 122_683_584 // 8 * 256 * 2
    tok = 131072 // 8 * 3072 * 2
    assert _by_kind(r)["embedding"] == table + tok + 12 * 256 * 3072 * 2 + 73 * 4
    assert r.fits  # 16.4 GiB of weights per H200


def test_longcat_flash_lite_in_bf16_does_not_fit_one_h200_because_of_its_ngram_tables() -> None:
    """127.8 GiB of bf16 weights, 59.3 of them embeddings: with the profile run's peak they exceed the 128.6 GiB an
    H200 gives vLLM at 0.92 utilization, so no KV cache is left."""
    r = estimate(build_spec(LITE), Deployment(**H200, vllm_version="0.33.0", max_model_len=32768))
    assert round(r.weights_bytes / 2**30, 1) == 127.8 and not r.fits
    assert "no memory left for the KV cache" in r.reason


MTP1 = {"method": "mtp", "num_speculative_tokens": 1}


def _tp8(version: str, **kw) -> gpuplan.MemoryReport:
    return gpuplan.estimate(CHAT["config"], gpu="B200", tensor_parallel_size=8, vllm_version=version,
                            max_model_len=32768, **kw)


def test_from_0_11_to_0_31_every_attention_also_keeps_w_kc_and_w_vc() -> None:
    """FlashModel.load_weights (0.11-0.31) stored contiguous copies of each kv_b_proj as w_kc / w_vc: per GPU at
    TP=8, 64 x (128 + 128) / 8 rows of 512 in bf16 for each of the 56 attention blocks. 0.32 dropped them."""
    copy = 64 * 256 // 8 * 512 * 2
    assert _tp8("0.31").weights_bytes - _tp8("0.32").weights_bytes == 56 * copy == 117_440_512
    assert _tp8("0.11").weights_bytes == _tp8("0.31").weights_bytes


def test_longcat_flash_mtp_drafts_with_one_mla_layer_a_dense_mlp_and_a_replicated_eh_proj() -> None:
    """longcat_flash_mtp.py at TP=8 in bf16: a DeepseekV2DecoderLayer (q_a_proj [1536, 6144] and the fused
    kv_a_proj [576, 6144] whole, their norms, q_b_proj [64 x 192, 1536], kv_b_proj [64 x 256, 512] and o_proj
    [6144, 8192] split eight ways; a 12288-wide gated MLP split eight ways; two norms) and beside it enorm, hnorm,
    final_layernorm and eh_proj [6144, 12288] whole. Before 0.32 its attention keeps w_kc / w_vc too."""
    att = 1536 * 6144 + 1536 + 64 * 192 * 1536 // 8 + 576 * 6144 + 512 + 64 * 256 * 512 // 8 + 6144 * 8192 // 8
    layer = att + 3 * 12288 // 8 * 6144 + 2 * 6144
    own = 3 * 6144 + 6144 * 12288
    added = _tp8("0.32", speculative_config=MTP1).weights_bytes - _tp8("0.32").weights_bytes
    assert added == 2 * (layer + own) == 253_034_496
    added_031 = _tp8("0.31", speculative_config=MTP1).weights_bytes - _tp8("0.31").weights_bytes
    assert added_031 - added == 64 * 256 // 8 * 512 * 2


def test_longcat_flash_mtp_layer_is_a_57th_mla_cache_and_needs_vllm_0_11() -> None:
    base, mtp = _tp8("0.33"), _tp8("0.33", speculative_config={"method": "longcat_flash_mtp",
                                                              "num_speculative_tokens": 1})
    assert base.kv.bytes_per_token * 57 == mtp.kv.bytes_per_token * 56
    assert [(g.kind, g.num_layers) for g in mtp.kv.groups] == [("mla", 57)]
    with pytest.raises(gpuplan.GpuplanError) as e:
        _tp8("0.10", speculative_config=MTP1)
    assert "vllm_version >= 0.11" in e.value.accepted
