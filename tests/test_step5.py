"""Step5 (model_type step5, Step5ForCausalLM) as vLLM 0.33 builds and plans it (vllm/models/step5/nvidia).

The config is Step-5-Preview's geometry in vLLM 0.33's Step5Config keys (tests/fixtures/oracle/families/step5.json,
sources in its _meta): 92 decoder layers, full attention with the DSA sparse indexer on layers 3, 7, ..., 91 (23),
a 512-token sliding window on the other 69; 64 query heads, 4 KV groups, head_dim 192; MoE (352 experts of 1536,
top 8, fp32 router) on layers 3..90, dense MLPs of 13824 on 0, 1, 2 and 91; three MTP layers not loaded.
transformers 5.23 has no Step5 class: the parameter count is by hand from vLLM's modules."""

from __future__ import annotations

import json
from math import ceil
from pathlib import Path

import pytest

import gpuplan.engines.vllm.kv_recipes.step5  # noqa: F401
import gpuplan.model.adapters_step5  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.engines.vllm.weights import Sharding, stage_weights
from gpuplan.errors import ConfigError, GpuplanError
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "step5.json").read_text())
PREVIEW = FX["models"]["step5/step-5-preview"]
MNBT = 8192
GIB = 1 << 30
L = 131072
H = 4096


def _spec(**changes):
    return build_spec({**PREVIEW["config"], **changes}, "stepfun-ai/Step-5-Preview")


def _weights(tp: int, ep: int = 1) -> int:
    sh = Sharding(tp=tp, moe_tp=1 if ep > 1 else tp, ep=ep)
    (stage,) = stage_weights(_spec(), sh, None, 2, 1, mla_absorbed=False, mnbt=MNBT)
    return stage.total


def _kv(tp: int, gpu: str = "H100", **options):
    opts = {"max_model_len": L, "kv_cache_memory_bytes": 20 * GIB, **options}
    return estimate(_spec(), gpu=gpu, tensor_parallel_size=tp, **opts).kv


# per-layer parameter sums (vLLM's modules; the checkpoint holds the same tensors, q/k/v/g apart)
ATTN = 2 * 12288 * H + 2 * 768 * H + 64 * H + 2 * 192  # q, o, k, v, g_proj, q_norm, k_norm
DSA = 4096 * H + 2 * 256 * H + 16 * H + 3 * 256 + 64  # indexer q, k, z, w, q_norm, k_norm (w + b), ssmax_s
MOE = 352 * H + 352 + 352 * 3 * 1536 * H + 3 * 1536 * H  # fp32 gate + router_bias, experts, shared expert
DENSE = 3 * 13824 * H
NORMS = 2 * H
EMBED = 128896 * H


def test_parameters_by_hand() -> None:
    """92 x (attention 107,217,280 + norms 8,192) + 23 DSA x 18,940,736 + 88 MoE x 6,664,094,048 + 4 dense x
    169,869,312 + embedding and LM head 2 x 527,958,016 + final norm 4,096 = 598,476,053,952. The 3 MTP layers
    (each a sliding decoder layer with a dense MLP, eh_proj [4096, 8192], enorm, hnorm and its own shared head
    norm + [128896, 4096] output) hold 3 x 838,619,520 more, which the main model does not load."""
    spec = _spec()
    assert not spec.generic and spec.model_type == "step5" and spec.architecture == "Step5ForCausalLM"
    assert (ATTN, DSA, MOE, DENSE) == (107_217_280, 18_940_736, 6_664_094_048, 169_869_312)
    total = 92 * (ATTN + NORMS) + 23 * DSA + 88 * MOE + 4 * DENSE + 2 * EMBED + H
    assert spec.total_params == total == PREVIEW["hf_params"] == 598_476_053_952
    assert {k: v for k, v in spec.param_counts().items() if k != "total"} == PREVIEW["hf_by_category"]
    mtp = 3 * (ATTN + NORMS + DENSE + 2 * H * H + 3 * H + EMBED)
    assert sum(t.numel for t in spec.extra_not_loaded) == mtp == PREVIEW["mtp_params_not_loaded"] == 2_515_858_560


def test_layers_are_sliding_or_dsa_by_layer_types() -> None:
    spec = _spec()
    roles = [dict(x.attention.recipe_args)["role"] for x in spec.layers]
    assert [i for i, r in enumerate(roles) if r == "dsa"] == list(range(3, 92, 4))
    assert roles.count("sliding") == 69 and all(x.attention.block_outermost for x in spec.layers)
    assert {x.attention.window for x in spec.layers if roles[spec.layers.index(x)] == "sliding"} == {512}
    assert [i for i, x in enumerate(spec.layers) if x.mlp.kind == "moe"] == list(range(3, 91))


def test_weights_per_gpu_at_tp1_by_hand() -> None:
    """bf16 everywhere but the fp32 parameters vLLM allocates: q/k norms, layer and final norms (norm_dtype float32:
    92 x (384 + 8192) + 4096 = 793,088), ssmax_s (23 x 64) and the MoE router and router_bias (88 x 1,442,144).
    The indexer's norms and sparse_indexer_w are built in the model dtype (the checkpoint stores them fp32).
    Plus the rotary caches of 1,048,576 positions, bf16: sliding (192 wide, theta 1e4), full (64 = 192 / 3, llama3,
    theta 1e7) and the indexer's (32 of 256): 1,048,576 x 288 x 2 = 603,979,776; and FlashInfer's 128 MiB workspace."""
    fp32 = 92 * (384 + 8192) + 4096 + 23 * 64 + 88 * (352 * H + 352)
    assert fp32 == 127_703_232
    rope = 1_048_576 * (192 + 64 + 32) * 2
    assert _weights(1) == 2 * PREVIEW["hf_params"] + 2 * fp32 + rope + (128 << 20) == 1_197_945_711_872


def test_weights_per_gpu_at_tp8_by_hand() -> None:
    """TP=8, per GPU: q, o and g split 8 ways; 4 KV groups on 8 GPUs: one whole KV head (192 rows of k and v) each;
    the indexer's q and w by provider group (4 groups on 8 GPUs: one group, 1024 q rows and 4 w rows); indexer k
    and z whole. Experts and shared experts 1/8 (with EP=8: 44 whole experts a GPU, the same bytes); router, norms,
    ssmax_s, rotary caches and the workspace whole; embedding and LM head 128896 / 8 rows."""
    attn = 12288 * H // 8 * 2 + 2 * 192 * H + 64 * H // 8
    dsa = 1024 * H + 2 * 256 * H + 4 * H
    bf16 = (92 * attn + 23 * dsa + 88 * (352 * 3 * 1536 * H + 3 * 1536 * H) // 8 + 4 * DENSE // 8
            + 2 * EMBED // 8 + 23 * 3 * 256)
    fp32 = 92 * (384 + 8192) + 4096 + 23 * 64 + 88 * (352 * H + 352)
    rope = 1_048_576 * 288 * 2
    assert _weights(8) == 2 * bf16 + 4 * fp32 + rope + (128 << 20) == 151_162_088_704
    assert _weights(8, ep=8) == _weights(8)


def test_kv_layout_at_tp8_is_five_groups_of_16_token_blocks() -> None:
    """Block size 16 (FLASH_ATTN and STEP5_DSA take MultipleOf(16), the summary and ring backends any size).
    Pages at TP=8 (1 KV head a GPU): sliding and DSA K/V 16 x 1 x 2 x 192 x 2 = 12,288; summary 16 / 8 x 256 = 512;
    ring = the main page, 12,288 (12 rows of 1 KiB >= 7). Buckets in registration order: sliding 69 (one page
    size), DSA K/V + summary 23 + 23 (both FullAttentionSpec), rings 23; repeats = _approximate_gcd([69, 23, 23],
    lower 23) = 23: 3 sliding groups of 23, one DSA group of 46, one ring group (the anchor block 23 x 12,800 =
    294,400 holds the 23 ring pages). Bytes per block: 294,400 rounded up to lcm(8-token DSA page 6,144, ring
    alignment 1,024) = 294,912. A request at 131,072 tokens: the window keeps cdiv(511 + 16,384 in flight, 16) + 1
    = 1,057 blocks in each sliding group, 8,192 DSA blocks and one ring: 3 x 1,057 + 8,192 + 1 = 11,364.
    20 GiB: 21,474,836,480 // 294,912 = 72,817 blocks; 72,817 / 11,364 x 131,072 = 839,868 tokens."""
    kv = _kv(8)
    assert (kv.block_size, kv.bytes_per_block, kv.num_groups, kv.group_size) == (16, 294_912, 5, 46)
    assert [(g.kind, g.num_layers, g.page_bytes, g.blocks_per_request) for g in kv.groups] == [
        ("sliding", 23, 12288, 1057)] * 3 + [("dsa+dsa_summary", 46, 12288, 8192), ("csa_ring", 23, 12288, 1)]
    assert kv.blocks_per_request == 3 * (ceil((511 + 16384) / 16) + 1) + L // 16 + 1 == 11_364
    assert kv.num_gpu_blocks == 20 * GIB // 294_912 == 72_817
    assert kv.kv_cache_tokens == int(72_817 / 11_364 * L) == 839_868
    # per token: 69 sliding x 768 (K and V of 192, bf16) + 23 DSA x (768 + 256 / 8 of summaries)
    assert kv.bytes_per_token == 69 * 768 + 23 * (768 + 32) == 71_392


def test_kv_layout_at_tp1() -> None:
    """TP=1: 4 KV heads, page 16 x 4 x 768 = 49,152; DSA group 23 x (49,152 + 512) = 1,142,272, rounded up to the
    8-token DSA page 24,576: 1,155,072. Same groups and blocks per request; 20 GiB // 1,155,072 = 18,591 blocks."""
    kv = _kv(1)
    assert (kv.block_size, kv.bytes_per_block, kv.num_groups) == (16, 1_155_072, 5)
    assert kv.blocks_per_request == 11_364 and kv.num_gpu_blocks == 18_591
    assert kv.kv_cache_tokens == int(18_591 / 11_364 * L)


def test_fp8_kv_needs_32_token_blocks_at_tp8() -> None:
    """FP8 at TP=8 halves the main page to 6,144 bytes: 6 ring rows < 7, and vLLM stops asking for a larger
    --block-size. At 32: pages 12,288, summary 1,024; 23 x 13,312 = 306,176 rounded up to lcm(3,072, 1,024) =
    307,200; a request 3 x (cdiv(16,895, 32) + 1) + 4,096 + 1 = 5,684 blocks."""
    with pytest.raises(GpuplanError, match="tail ring"):
        _kv(8, kv_cache_dtype="fp8")
    kv = _kv(8, kv_cache_dtype="fp8", block_size=32)
    assert (kv.block_size, kv.bytes_per_block, kv.blocks_per_request) == (32, 307_200, 5_684)
    assert kv.num_gpu_blocks == 20 * GIB // 307_200


def test_options_vllm_refuses() -> None:
    with pytest.raises(GpuplanError, match="kv_cache_dtype"):
        _kv(8, kv_cache_dtype="float16")  # Step5DSAAttentionImpl refuses a float16 KV cache
    with pytest.raises(GpuplanError, match="multiple of 16"):
        _kv(8, block_size=24)
    with pytest.raises(GpuplanError, match="SM 9.0"):
        _kv(8, gpu="A100")  # Step5DSAAttentionBackend: SM90, SM100, SM103 only
    with pytest.raises(GpuplanError, match="query heads per"):
        _kv(32)  # 64 heads / 32 = 2 per KV group: below the DSA kernels' 4


def test_does_step5_fit_on_8_h100s_at_128k() -> None:
    """No: 140.8 GiB of weights per GPU at TP=8 (598B parameters in bf16), more than an H100 holds. On 8 B200s it
    fits, with room for about 4.8 requests of 128K."""
    r = estimate(_spec(), gpu="H100", tensor_parallel_size=8, max_model_len=L)
    assert not r.fits and "weights" in (r.reason or "")
    assert r.weights_bytes == 151_162_088_704
    b = estimate(_spec(), gpu="B200", tensor_parallel_size=8, max_model_len=L)
    assert b.fits and b.kv.bytes_per_block == 294_912 and 4 < b.kv.max_concurrency < 6


def test_configs_vllm_cannot_read_are_refused() -> None:
    with pytest.raises(ConfigError, match="sparse_config"):
        _spec(sparse_config=None)
    with pytest.raises(ConfigError, match="layer_types"):
        _spec(layer_types=PREVIEW["config"]["layer_types"][:92])  # the 3 MTP entries are required
    with pytest.raises(ConfigError, match="need_fp32_gate"):
        _spec(need_fp32_gate=False)
    with pytest.raises(ConfigError, match="moe_layers_enum"):
        _spec(moe_layer_list=[3, 4])


def test_sparse_disabled_is_a_plain_layer_outermost_model() -> None:
    """sparse_config.enabled=false: no DSA backend, so no block-outermost layout and no indexer weights."""
    spec = _spec(sparse_config={**PREVIEW["config"]["sparse_config"], "enabled": False})
    assert not any(x.attention.block_outermost or x.attention.recipe for x in spec.layers)
    assert spec.total_params == PREVIEW["hf_params"] - 23 * DSA
    assert {x.attention.kind for x in spec.layers} == {"full", "sliding_window"}


def test_step5_vl_is_the_text_model_plus_step3p7s_perception_encoder() -> None:
    """Step5ForConditionalGeneration inherits Step3p7's frontend: PerceptionEncoder defaults (width 1536, 47 blocks,
    MLP 8960, patch 14, 728 px: 52 x 52 positions) and a bias-free column-parallel projector 6144 -> 4096."""
    w, n, m = 1536, 47, 8960
    tower = (n * (3 * w * w + 3 * w + m * w + m) + n * (w * w + m * w)
             + n * 8 * w + 3 * 14 * 14 * w + 2 * w + 52 * 52 * w + 9 * w * 2 * w + 2 * w + 9 * 2 * w * 4 * w + 4 * w
             + 4 * w * H)
    outer = {"model_type": "step5_vl", "architectures": ["Step5ForConditionalGeneration"],
             "text_config": PREVIEW["config"]}
    vl = build_spec(outer, "stepfun-ai/Step-5-Preview")
    assert vl.total_params == PREVIEW["hf_params"] + tower
    assert vl.multimodal is not None and vl.model_type == "step5_vl"


def test_step5_vl_text_only_start_leaves_the_perception_encoder_unbuilt() -> None:
    """Step5ForConditionalGeneration builds Step3p7's vision model and projector inside _mark_tower_model (0.33,
    models/step5/nvidia/vl.py via step3p7.py): with --language-model-only neither is allocated."""
    outer = {"model_type": "step5_vl", "architectures": ["Step5ForConditionalGeneration"],
             "text_config": PREVIEW["config"]}
    vl, text = build_spec(outer, "stepfun-ai/Step-5-Preview"), build_spec(PREVIEW["config"], "stepfun-ai/Step-5")
    both = estimate(vl, gpu="B200", tensor_parallel_size=8, max_model_len=32768)
    only = estimate(vl, gpu="B200", tensor_parallel_size=8, max_model_len=32768, language_model_only=True)
    plain = estimate(text, gpu="B200", tensor_parallel_size=8, max_model_len=32768)
    assert both.weights_bytes > only.weights_bytes == plain.weights_bytes
