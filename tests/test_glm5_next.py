"""GLM-5-Next (GLM-5.3-Flash, glm5_next_text) as vLLM 0.33 builds it (models/glm5next): 34 KDA layers and 11 NoPE
sparse-MLA layers with a kpool indexer, 3 dense + 42 MoE layers of 288 experts, 4 hyper-connection streams; its
KV pool is block-outermost (engines/vllm/kv_recipes/glm5_next.py). Config: transformers' defaults plus the keys
vLLM reads (tests/fixtures/oracle/families/glm5_next.json, source inside)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.engines.vllm.kv_recipes.glm5_next  # noqa: F401
import gpuplan.model.adapters_glm5_next  # noqa: F401
from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import ConfigError, GpuplanError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "glm5_next.json").read_text())
CASE = FX["models"]["glm5_next_text/default"]
CFG = CASE["config"]
FP8 = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}
K128 = 131072
GiB = 2**30


def _spec(cfg: dict | None = None):
    return build_spec(cfg or CFG, "zai-org/GLM-5.3-Flash")


def _run(tp: int, budget: int = 20 * GiB, **kw):
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * GiB, tensor_parallel_size=tp, max_model_len=K128,
                     kv_cache_memory_bytes=budget, **kw)
    return estimate(_spec(), dep)


def test_params_are_transformers_count_plus_the_fp32_expert_bias_vllm_holds_as_parameters() -> None:
    """transformers: 313,326,816,766 parameters + 12,096 buffer elements (e_score_correction_bias, 42 MoE layers x
    288). vLLM's Glm5NextMoE holds that bias as an fp32 Parameter: 313,326,828,862."""
    spec = _spec()
    assert CASE["hf_params"] == 313_326_816_766 and CASE["hf_buffers"] == 42 * 288
    assert spec.total_params == CASE["hf_params"] + 42 * 288 == 313_326_828_862
    kinds = [layer.attention.kind for layer in spec.layers]
    assert kinds.count("mamba") == 34 and kinds.count("mla") == 11
    assert [i for i, k in enumerate(kinds) if k == "mla"] == list(range(3, 45, 4))
    assert sum(1 for layer in spec.layers if layer.mlp.kind == "moe") == 42
    assert spec.residual_streams == 4


def test_each_layer_kind_matches_transformers_per_layer_count() -> None:
    """KDA + dense (layer 0): 289,521,910; MLA + MoE (layer 3): 7,399,813,430 + 288 bias; KDA + MoE (layer 4):
    7,412,629,750 + 288 bias. The hyper-connection mixers are 2 x (24 x 16384 + 24 + 3) fp32 per layer."""
    spec, hf = _spec(), CASE["hf_layer_params"]
    assert spec.layers[0].numel == hf["kda_dense_layer0"]
    assert spec.layers[3].numel == hf["mla_moe_layer3"] + 288
    assert spec.layers[4].numel == hf["kda_moe_layer4"] + 288
    hc = [t for t in spec.layers[0].tensors if ".hc_" in t.name]
    assert sum(t.numel for t in hc) == 2 * (24 * 16384 + 24 + 3) and {t.dtype for t in hc} == {"float32"}


def test_mtp_layer_is_in_the_checkpoint_but_not_loaded() -> None:
    """One MTP layer: an MLA + MoE block without hyper-connections (7,399,813,430 - 2 x 4096 norms counted again
    = its attention, indexer and MoE + 2 norms) + eh_proj 4096 x 8192 + enorm, hnorm, shared-head norm."""
    spec = _spec()
    mtp = sum(t.numel for t in spec.extra_not_loaded)
    block = CASE["hf_layer_params"]["mla_moe_layer3"] + 288 - 2 * (24 * 16384 + 24 + 3)
    assert mtp == block + 2 * 4096 * 4096 + 3 * 4096 == 7_432_593_952


def test_bf16_weights_per_gpu_at_tp1_and_tp8() -> None:
    """TP=1: 313,326,828,862 parameters, bf16 except fp32 ones (hc mixers 45 x 786,486; KDA convs 3 x 8192 x 4,
    dt_bias 8192, A_log 64 per KDA layer; indexer ape 16 x 128 and k_norm 2 x 128 per MLA layer; 42 x 288 bias),
    plus the topk_indices_buffer [8192, round_up(2048 + 15, 128) = 2176] int32 = 71,303,168 bytes. MLA's
    W_UK_T / W_UV are views of the bf16 kv_b_proj, so they add nothing (11 x 64 x 512 x 512 x 2 = 369,098,752 at
    TP=1 if they were copies). TP=8: the 304,405,807,104 expert parameters are 76,101,451,776 bytes a GPU alone."""
    r1, r8 = _run(1), _run(8)
    fp32 = 45 * 786_486 + 34 * (3 * 8192 * 4 + 8192 + 64) + 11 * (16 * 128 + 256) + 42 * 288
    spec = _spec()
    assert sum(t.numel for layer in spec.layers for t in layer.tensors if t.dtype == "float32") == fp32
    assert r1.weights_bytes == 627_172_164_344 - 369_098_752 == 626_803_065_592
    assert r8.weights_bytes == 79_038_006_584 - 369_098_752 // 8 == 78_991_869_240
    assert r8.per_stage[0]["weights_by_kind"]["experts"] == 304_405_807_104 * 2 // 8 == 76_101_451_776
    assert r8.per_stage[0]["weights_by_kind"]["buffers"] == 8192 * 2176 * 4


def test_kv_caches_per_layer_kind_at_tp8() -> None:
    """TP=8, bf16, prefix caching on (align mode), FlashKDA checkpoints on Hopper.
    KDA state: conv 3 x 8192 / 8 x 3 x 2 = 18,432 + recurrent 8 x 128 x 128 x 4 = 524,288 -> 542,720 bytes.
    Block: phase 1 takes 512 (the indexer's kernel blocks are 16 x 32 / 16 x 64); phase 2: a = max(512, 512, 128)
    lcm 16 = 512, 512 x cdiv(542,720, 512 x 1,024) = 1,024 tokens; the state is padded to 1,024 x 1,024.
    Per MLA layer: indexer 1,024 / 16 x 132 = 8,448 (no stride alignment: the block is one 1,024-entry kernel
    block), ring 2 x 16 x 128 x 2 = 8,192 (16 tokens), latent 1,024 x 1,024 = 1,048,576 (aligned to 1,024)."""
    r = _run(8)
    kv = r.kv
    assert kv.block_size == 1024
    pages = {g.kind: (g.page_bytes, g.block_size) for g in kv.groups}
    assert pages["kda"] == (1024 * 1024, 1024)
    assert pages["indexer+sparse_mla"] == (1024 * 1024, 1024)
    assert pages["kpool_tail"] == (2 * 16 * 128 * 2, 16)
    assert kv.bytes_per_token == 11 * (1024 + 132 // 16)


def test_groups_bytes_per_block_and_blocks_per_request_at_128k() -> None:
    """Buckets: 34 KDA states, 22 MLA caches (11 indexer + 11 latent, balanced), 11 rings. The MLA bucket is one
    group of 11 x (8,448 + 1,048,576) = 11,627,264 bytes, rounded up to the 1,024-byte row: 11,627,520 per block.
    That block holds 11 states, so the 34 KDA layers make cdiv(34, 11) = 4 groups (9, 9, 8, 8); the rings one.
    A 128K request: 4 x 3 states + cdiv(131,072, 1,024) = 128 + 1 ring = 141 blocks."""
    kv = _run(8).kv
    assert [(g.kind, g.num_layers) for g in kv.groups] == [
        ("kda", 9), ("kda", 9), ("kda", 8), ("kda", 8), ("indexer+sparse_mla", 22), ("kpool_tail", 11)]
    assert kv.bytes_per_block == 11_627_520 == -(-11 * (8448 + 1_048_576) // 1024) * 1024
    assert [g.blocks_per_request for g in kv.groups] == [3, 3, 3, 3, 128, 1]
    assert kv.blocks_per_request == 141


def test_tokens_for_a_20_gib_kv_budget_at_tp8() -> None:
    """20 GiB // 11,627,520 = 1,846 blocks; concurrency 1,846 / 141 = 13.09; tokens int(13.0922 x 131,072)."""
    r = _run(8)
    assert r.num_gpu_blocks == 20 * GiB // 11_627_520 == 1846
    assert r.kv_cache_tokens == int(1846 / 141 * K128) == 1_716_020
    assert r.kv.max_concurrency == 13.09


def test_tp1_state_raises_the_block_to_4608_tokens() -> None:
    """TP=1: state 147,456 + 4,194,304 = 4,341,760 bytes -> block 512 x cdiv(4,341,760, 524,288) = 4,608; indexer
    page 4,608 / 16 x 132 = 38,016, whose 1,024-entry kernel blocks (gcd(1,024, 4,608) = 512 tokens = 4,224 bytes)
    set the stride alignment: 11 x (38,016 + 4,718,592) = 52,322,688 rounded up to lcm(4,224, 1,024) = 33,792."""
    kv = _run(1).kv
    assert kv.block_size == 4608
    assert kv.bytes_per_block == -(-11 * (38_016 + 4608 * 1024) // 33_792) * 33_792 == 52_343_808
    assert kv.blocks_per_request == 4 * 3 + -(-K128 // 4608) + 1


def test_without_prefix_caching_each_kda_group_holds_one_state() -> None:
    kv = _run(8, enable_prefix_caching=False).kv
    assert kv.blocks_per_request == 4 * 1 + 128 + 1


def test_does_glm5_next_fit_on_8_h100s_at_128k() -> None:
    """BF16: no -- 313B parameters are 73.6 GiB of weights a GPU at TP=8, over a 0.92 x 79.19 GiB budget. The FP8
    checkpoint (block 128 x 128; experts, shared experts and dense MLPs in FP8, MLA and KDA kept bf16): yes, with
    about 2.87K blocks of 1,024 tokens, i.e. about 20 concurrent 128K requests."""
    bf16 = estimate_on(_spec(), gpu="H100", tensor_parallel_size=8, max_model_len=K128)
    assert not bf16.fits and "weights alone" in (bf16.reason or "")
    fp8 = estimate_on(_spec({**CFG, "quantization_config": FP8}), gpu="H100", tensor_parallel_size=8,
                      max_model_len=K128)
    assert fp8.fits
    assert fp8.weights_bytes == 40_761_735_480  # kv_b_proj stays bf16 in this checkpoint: no dequantized copy
    assert fp8.kv.bytes_per_block == 11_627_520
    assert fp8.kv_cache_tokens > 2_000_000 and fp8.kv.max_concurrency > 15


def test_refuses_what_vllm_cannot_build_or_gpuplan_has_not_read() -> None:
    cfg = {k: v for k, v in CFG.items() if k != "mhc"}
    with pytest.raises(ConfigError, match="mhc"):
        _spec(cfg)
    with pytest.raises(ConfigError, match="vision tower"):
        build_spec({"model_type": "glm5_next", "architectures": ["Glm5NextForConditionalGeneration"],
                    "text_config": CFG}, "zai-org/GLM-5.3-Flash")
    with pytest.raises(GpuplanError, match="16 bits"):
        _run(8, kv_cache_dtype="fp8")



def test_its_kda_state_follows_mamba_ssm_cache_dtype() -> None:
    """Glm5NextLinearAttention passes the flag to kda_state_dtype (0.32+; fp32 under auto, float16 refused): a bf16
    recurrent state shrinks every KDA layer's state, so more blocks fit the same budget."""
    auto, bf16 = _run(8, vllm_version="0.33"), _run(8, vllm_version="0.33", mamba_ssm_cache_dtype="bfloat16")
    assert bf16.kv.bytes_per_block < auto.kv.bytes_per_block and bf16.num_gpu_blocks > auto.num_gpu_blocks
    assert _run(8, vllm_version="0.33", mamba_ssm_cache_dtype="float32").num_gpu_blocks == auto.num_gpu_blocks
