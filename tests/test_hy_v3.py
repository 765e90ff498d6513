"""Tencent Hy3 (hy_v3) as vLLM builds it (models/hy_v3.py): 80 full-attention layers with q/k norms, a dense first
layer, 79 MoE layers of 192 experts with a shared MLP, an fp32 router and fp32 expert bias; the MTP layer stays
in the checkpoint (tests/fixtures/oracle/families/hy_v3.json, config source inside)."""

from __future__ import annotations

import json
from pathlib import Path

from gpuplan.api_python import estimate as estimate_on
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "hy_v3.json").read_text())
HY3 = FX["models"]["hy_v3/Hy3"]
META = HY3["vllm_meta"]
ROPE = 262144 * 128 * 2  # one bf16 cos/sin cache: max_position_embeddings x head_dim


def _oracle_run():
    spec = build_spec(HY3["config"], "tencent/Hy3")
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=80 * 2**30, vllm_version="0.32.0", block_size=16,
                     max_model_len=META["max_model_len"], kv_cache_memory_bytes=META["kv_budget_bytes"])
    return spec, estimate(spec, dep)


def test_hy3_is_the_295b_of_its_model_card_with_the_expert_bias_vllm_loads() -> None:
    spec, _ = _oracle_run()
    assert not spec.generic
    # transformers keeps the 79 x 192 expert biases as buffers; vLLM holds them as float32 parameters
    assert spec.total_params == META["params"] == HY3["hf_params"] + 79 * 192 == 295_033_543_488
    assert sum(1 for layer in spec.layers if layer.mlp.kind == "moe") == 79


def test_hy3_mtp_layer_is_in_the_checkpoint_but_not_in_plain_serving() -> None:
    # The hub index holds 298,786,140,416 BF16 + 15,360 F32 parameters; the difference is layer 80, the MTP block.
    spec, _ = _oracle_run()
    mtp = sum(t.numel for t in spec.extra_not_loaded)
    assert mtp == 3_752_612_288  # a MoE layer + eh_proj 4096 x 8192 + three 4096 norms ("+3.8B MTP" on the card)
    assert spec.total_params + mtp == 298_786_140_416 + 15_360


def test_hy3_weights_at_tp1_are_vllms_parameter_bytes_plus_its_rotary_cache() -> None:
    spec, r = _oracle_run()
    # fp32 router (79 x 192 x 4096) and expert bias are in vLLM's 590,191,373,568 bytes
    assert r.weights_bytes == META["bytes"] + ROPE
    router = [t for t in spec.layers[-1].tensors if t.kind == "router"]
    assert {t.dtype for t in router} == {"float32"}


def test_hy3_kv_is_80_full_layers_of_8_heads_of_128_320_kib_per_token() -> None:
    spec, r = _oracle_run()
    assert spec.attention_kinds == {"full": 80}
    assert r.kv.bytes_per_block == META["bytes_per_block"] == 16 * 80 * 2 * 8 * 128 * 2  # 327,680 bytes a token
    assert r.num_gpu_blocks == META["num_blocks"]
    assert r.kv.num_groups == len(META["groups"]) == 1
    assert r.kv_cache_tokens == META["kv_cache_size_tokens"]


def test_hy3_in_bf16_needs_eight_h200s_for_its_256k_context_eight_h100s_hold_69_gib_of_weights_each() -> None:
    """Per rank at TP=8 (bf16, 2 bytes; router and expert bias fp32, 4 bytes):
    embedding + LM head 2 x 120832/8 x 4096; final norm 4096;
    80 x attention: q 8192/8 x 4096, k and v one KV head (8/8) x 128 x 4096, o 4096 x 8192/8, q/k norms 2 x 128,
    two norms 2 x 4096; layer 0's MLP 3 x 13312/8 x 4096;
    79 x MoE: experts 192 x 3 x 1536/8 x 4096, shared 3 x 1536/8 x 4096, router 192 x 4096 (fp32), bias 192 (fp32);
    rotary cache 262144 x 128.
    = 74,059,721,984 bytes."""
    spec = build_spec(HY3["config"], "tencent/Hy3")
    h100 = estimate_on(spec, gpu="H100", tensor_parallel_size=8, max_model_len=32768)
    assert h100.weights_bytes == 74_059_721_984
    # one KV head per rank: 80 layers x (K + V) x 128 x 2 bytes = 40 KiB a token; 32K tokens need 1.25 GiB per GPU,
    # more than an 80 GiB card keeps after 69 GiB of weights
    assert h100.kv.bytes_per_block == 16 * 80 * 2 * 128 * 2
    assert not h100.fits
    h200 = estimate_on(spec, gpu="H200", tensor_parallel_size=8, max_model_len=262144)
    assert h200.weights_bytes == h100.weights_bytes and h200.fits


def test_transformers_default_hy_v3_config_follows_vllm_where_it_differs() -> None:
    # HYV3Config() spells the dense layer as mlp_layer_types and has no qk_norm: vLLM builds no q/k norms then.
    cfg = {k: v for k, v in HY3["config"].items() if k not in ("first_k_dense_replace", "qk_norm")}
    spec = build_spec({**cfg, "mlp_layer_types": ["dense"] + ["sparse"] * 79})
    assert [layer.mlp.kind for layer in spec.layers[:2]] == ["dense", "moe"]
    assert spec.total_params == META["params"] - 80 * 2 * 128


def test_hy3_mtp_drafts_with_one_more_moe_layer_and_a_bf16_eh_proj_and_caches_an_81st_layer() -> None:
    """hy_v3_mtp.py (0.20+) at TP=8: the draft layer costs what an 81st MoE layer of the target costs per GPU, plus
    enorm, hnorm, final_layernorm and the plain nn.Linear eh_proj [4096, 8192] whole in bf16; its LM head and
    embedding are the target's. Its attention caches KV beside the 80 target layers."""
    def run(cfg: dict, **kw):
        return estimate_on(build_spec(cfg, "tencent/Hy3"), gpu="H200", tensor_parallel_size=8, max_model_len=32768,
                           vllm_version="0.33", **kw)

    base, mtp = run(HY3["config"]), run(HY3["config"], speculative_config={"method": "mtp"})
    longer = run({**HY3["config"], "num_hidden_layers": 81})
    own = 2 * (3 * 4096 + 4096 * 8192)
    assert mtp.weights_bytes - base.weights_bytes == longer.weights_bytes - base.weights_bytes + own
    assert base.kv.bytes_per_token * 81 == mtp.kv.bytes_per_token * 80
    # the module is the checkpoint's layer 80 (the hub index's count, above)
    module = build_spec(HY3["config"]).mtp
    assert module is not None
    assert sum(t.numel for x in module.layers for t in x.tensors) + sum(t.numel for t in module.tensors) \
        == 3_752_612_288
