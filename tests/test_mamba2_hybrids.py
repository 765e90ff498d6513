"""Mamba-2 hybrids (Granite-4.0-H, Nemotron-H, Bamba, Falcon-H1): exact weights, and one recurrent state per
request in place of per-token KV on their Mamba layers.

Fixtures: tests/fixtures/oracle/families/{granitemoehybrid,nemotron_h,bamba,falcon_h1}.json hold real configs
(sources in each entry) and transformers defaults, transformers 5.23's exact parameter count for each
(`hf_params`, meta device) and, where vLLM 0.32's meta-device oracle could build the model, what vLLM loads and
the per-layer Mamba state it allocates (`vllm_meta`). State sizes follow vLLM 0.19's
vllm/model_executor/layers/mamba/mamba_utils.py (MambaStateShapeCalculator.mamba2_state_shape).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.engines.vllm.weights import Sharding, shard_numel
from gpuplan.model.adapters import build_spec
from gpuplan.units import GiB, cdiv

FAMILIES = Path(__file__).parent / "fixtures" / "oracle" / "families"
FAMILY_LOGS = Path(__file__).parent / "fixtures" / "vllm_logs" / "families_public.jsonl"
TYPES = ("granitemoehybrid", "nemotron_h", "bamba", "falcon_h1")
CASES = [(mt, key, entry) for mt in TYPES
         for key, entry in json.loads((FAMILIES / f"{mt}.json").read_text())["models"].items()]
VLLM = [c for c in CASES if "vllm_meta" in c[2]]
H100 = dict(gpu_name="H100", gpu_memory_bytes=85_029_158_912)
KV = dict(**H100, max_model_len=32_768, kv_cache_memory_bytes=20 * GiB, vllm_version="0.19.0")


def _config(key: str) -> dict:
    return dict(next(e["config"] for _, k, e in CASES if k == key))


def _run(cfg: dict, **kw):
    return estimate(build_spec(cfg), Deployment(**{**KV, **kw}))


def mamba2_state_bytes(tp: int, inner: int, groups: int, heads: int, head_dim: int, d_state: int, d_conv: int,
                       conv_bytes: int = 2, ssm_bytes: int = 2) -> int:
    """mamba_utils.py: groups are padded to tp when tp does not divide them; conv (d_conv - 1, conv_dim / tp),
    ssm (heads / tp, head_dim, d_state)."""
    if groups % tp:
        groups += tp - groups
    conv = (d_conv - 1) * (inner + 2 * groups * d_state) // tp
    return conv * conv_bytes + heads // tp * head_dim * d_state * ssm_bytes


@pytest.mark.parametrize(("model_type", "key", "entry"), CASES, ids=[c[1] for c in CASES])
def test_each_config_counts_exactly_what_transformers_builds(model_type: str, key: str, entry: dict) -> None:
    spec = build_spec(entry["config"])
    assert spec.model_type == model_type and not spec.generic
    assert spec.total_params == entry["hf_params"]


@pytest.mark.parametrize(("model_type", "key", "entry"), VLLM, ids=[c[1] for c in VLLM])
def test_weights_and_mamba_state_equal_what_vllm_builds(model_type: str, key: str, entry: dict) -> None:
    spec = build_spec(entry["config"])
    r = estimate(spec, Deployment(**H100, max_model_len=8192, kv_cache_memory_bytes=GiB, vllm_version="0.19.0",
                                  enable_prefix_caching=False))
    v = entry["vllm_meta"]
    # vLLM's weights_meta counts parameters only; Falcon-H1 also holds its rotary cos/sin cache buffer.
    rope = sum(c.positions * c.rotary_dim * 2 for c in spec.rope_caches)
    assert r.weights_bytes == v["bytes"] + rope
    mamba = next(g for g in r.kv.groups if g.kind == "mamba")
    assert sum(g.num_layers for g in r.kv.groups if g.kind == "mamba") == v["mamba_layers"]
    assert sum(g.num_layers for g in r.kv.groups if g.kind == "full") == v.get("attention_layers", 0)
    assert r.kv.num_groups == len(v["groups"]) and r.kv.group_size == max(v["groups"])
    # the page is the attention block's page, padded up from the state (vLLM: mamba_page_size_padded)
    assert mamba.page_bytes >= v["state_bytes_tp1"]
    if "attention_layers" in v:
        per_token = v["num_kv_heads"] * v["head_size"] * 2 * 2
        assert r.kv.block_size == 16 * cdiv(v["state_bytes_tp1"], 16 * per_token)


def test_granite_4_h_small_keeps_one_mamba2_state_per_sequence_not_per_token() -> None:
    r = _run(_config("ibm-granite/granite-4.0-h-small"), enable_prefix_caching=False)
    state = mamba2_state_bytes(1, 8192, 1, 128, 64, 128, 4)
    assert state == 3 * 8448 * 2 + 128 * 64 * 128 * 2 == 2_147_840  # vLLM 0.32's MambaSpec for this config
    # 4 NoPE attention layers of 8 KV heads x 128: 4 KiB a token each; the block grows until its page holds a state
    assert r.kv.block_size == 16 * cdiv(state, 16 * 4096) == 528
    assert {g.kind: g.num_layers for g in r.kv.groups} == {"mamba": 36, "full": 4}
    mamba = next(g for g in r.kv.groups if g.kind == "mamba")
    full = next(g for g in r.kv.groups if g.kind == "full")
    assert mamba.blocks_per_request == 9  # 36 Mamba layers in 9 groups of 4: one state block each, at any length
    assert full.blocks_per_request == cdiv(32_768, 528)
    assert not build_spec(_config("ibm-granite/granite-4.0-h-small")).rope_caches  # position_embedding_type nope


def test_granite_4_h_small_at_tp2_replicates_its_single_group_on_each_rank() -> None:
    r = _run(_config("ibm-granite/granite-4.0-h-small"), tensor_parallel_size=2, enable_prefix_caching=False)
    state = mamba2_state_bytes(2, 8192, 1, 128, 64, 128, 4)
    assert state == 3 * (8192 // 2 + 2 * 128) * 2 + 64 * 64 * 128 * 2
    attn_per_token = 4 * 128 * 2 * 2
    assert r.kv.block_size == 16 * cdiv(state, 16 * attn_per_token)
    # in_proj: z, x and dt split by heads; the B/C rows of the one group stay whole on every rank
    spec = build_spec(_config("ibm-granite/granite-4.0-h-small"))
    mixer = {t.name.rsplit("mamba.", 1)[1]: t for t in spec.layers[0].tensors if ".mamba." in t.name}
    sh = Sharding(tp=2, moe_tp=2, ep=1)
    assert shard_numel(mixer["in_proj"], sh) == (2 * 8192 + 128) // 2 * 4096
    assert shard_numel(mixer["in_proj.bc"], sh) == 2 * 128 * 4096
    assert mixer["A_log"].dtype == "float32"  # MambaMixer2.A is an fp32 parameter


def test_nemotron_nano_9b_v2_splits_its_eight_groups_and_keeps_the_configs_fp32_ssm_state() -> None:
    cfg = _config("nvidia/NVIDIA-Nemotron-Nano-9B-v2")
    assert build_spec(cfg).mamba_ssm_dtype == "float32"  # mamba_ssm_cache_dtype (NemotronHForCausalLMConfig)
    r = _run(cfg, tensor_parallel_size=2, enable_prefix_caching=False)
    state = mamba2_state_bytes(2, 10240, 8, 128, 80, 128, 4, ssm_bytes=4)
    assert state == 3 * (10240 + 2 * 8 * 128) // 2 * 2 + 64 * 80 * 128 * 4
    assert r.kv.block_size == 16 * cdiv(state, 16 * (4 * 128 * 2 * 2))
    # M, *, - and E are separate layers: only the 27 M and 4 * layers hold cache
    assert {g.kind: g.num_layers for g in r.kv.groups} == {"mamba": 27, "full": 4}
    assert build_spec(cfg).num_layers == 56


def _mamba_page(cfg: dict, version: str) -> tuple[int, int]:
    r = estimate(build_spec(cfg), Deployment(gpu_name="H100", gpu_memory_bytes=85_029_158_912, vllm_version=version,
                                             max_model_len=8192))
    g = next(g for g in r.kv.groups if g.kind == "mamba")
    return g.page_bytes, g.block_size


@pytest.mark.parametrize(("version", "page", "block"), [
    # conv state 12,288 x 3 x 2 = 73,728 B beside the SSM state 128 heads x 80 x 128 (2,621,440 B at 2 bytes);
    # the attention block grows until its page holds the state: 672 tokens x 4,096 B
    ("0.12.0", 672 * 4096, 672),  # no NemotronH config hook yet: the model dtype (bf16)
    ("0.19.0", 672 * 4096, 672),  # the hook's float16
    # float32 from 0.20: 73,728 + 5,242,880 = 5,316,608 B, 1,298 blocks of 4,096 B rounded up to 1,312
    ("0.20.0", 1312 * 4096, 1312),
])
def test_nemotron_h_without_an_ssm_cache_dtype_gets_the_release_default(version: str, page: int, block: int) -> None:
    cfg = {k: v for k, v in _config("nvidia/NVIDIA-Nemotron-Nano-9B-v2").items() if k != "mamba_ssm_cache_dtype"}
    assert build_spec(cfg).mamba_ssm_dtype is None
    assert _mamba_page(cfg, version) == (page, block)


def test_nemotron_h_whose_config_names_an_ssm_dtype_keeps_it_from_0_13() -> None:
    cfg = {**_config("nvidia/NVIDIA-Nemotron-Nano-9B-v2"), "mamba_ssm_cache_dtype": "bfloat16"}
    assert _mamba_page(cfg, "0.33.0") == _mamba_page(cfg, "0.13.0") == (672 * 4096, 672)


def test_before_0_13_vllm_ignores_the_configs_fp32_ssm_dtype_and_keeps_the_model_dtype() -> None:
    """No NemotronHForCausalLMConfig hook before 0.13, so cache_config's "auto" (the model dtype) stands. 0.12.0
    logged it for Nemotron-3-Nano-30B-A3B, whose config says float32 (test below)."""
    cfg = _config("nvidia/NVIDIA-Nemotron-Nano-9B-v2")
    assert cfg["mamba_ssm_cache_dtype"] == "float32"
    assert _mamba_page(cfg, "0.12.0") == (672 * 4096, 672)  # bf16, as without any dtype in the config
    assert _mamba_page(cfg, "0.13.0") == (1312 * 4096, 1312)  # the config's float32


@pytest.mark.parametrize("kv_gib", [7.365, 7.37])  # the logged 7.37 GiB (4.82x puts it below 7.375)
def test_nemotron_3_nano_on_0_12_caches_what_nvidias_cookbook_logged_from_its_kv_budget(kv_gib: float) -> None:
    """fam-105 (tests/fixtures/vllm_logs/families_public.jsonl, GPU not named): given the 7.37 GiB vLLM 0.12.0 made
    available, 23 Mamba-2 and 6 attention layers in 5 groups of 6 (one padding layer, as logged), 1,072-token blocks
    (a bf16 state: 64 x 64 x 128 x 2 + 3 x 6,144 x 2 bytes on 1,024-byte tokens; float32 would need 2,096): 257,280
    tokens and 4.82x at 262,144, as logged."""
    rec = next(json.loads(x) for x in FAMILY_LOGS.read_text().splitlines() if '"fam-105"' in x)
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=85_029_158_912, vllm_version=rec["engine_version"],
                     max_model_len=rec["deployment"]["max_model_len"], kv_cache_memory_bytes=int(kv_gib * 2**30),
                     api_server=False, max_num_batched_tokens=16384)
    r = estimate(build_spec(rec["hf_config"]), dep)
    assert (r.kv.block_size, r.kv.group_size, r.kv.num_groups, r.kv.padding_layers) == (1072, 6, 5, 1)
    assert r.kv_cache_tokens == rec["logged"]["kv_cache_tokens"] == 257_280
    assert round(r.max_concurrency, 2) == rec["logged"]["max_concurrency"] == 4.82


def test_nemotron_3_nano_counts_non_gated_experts_and_the_shared_expert() -> None:
    spec = build_spec(_config("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"))
    counts = spec.param_counts()
    # 23 MoE layers of 128 ReLU^2 experts, up [1856, 2688] and down [2688, 1856], no gate
    assert counts["experts"] == 23 * 128 * 2 * 1856 * 2688
    assert counts["shared_experts"] == 23 * 2 * 3712 * 2688
    assert spec.is_moe and spec.attention_kinds == {"mamba": 23, "none": 23, "full": 6}


def test_bamba_9b_v2_puts_attention_only_at_its_attn_layer_indices() -> None:
    spec = build_spec(_config("ibm-ai-platform/Bamba-9B-v2"))
    assert [i for i, layer in enumerate(spec.layers) if layer.attention.kind == "full"] == [9, 18, 27]
    assert spec.rope_caches[0].rotary_dim == 64  # attn_rotary_emb of the 128-wide head
    r = _run(_config("ibm-ai-platform/Bamba-9B-v2"), enable_prefix_caching=False)
    state = mamba2_state_bytes(1, 8192, 1, 128, 64, 128, 4)
    assert r.kv.block_size == 16 * cdiv(state, 16 * (8 * 128 * 2 * 2))
    assert sum(g.num_layers for g in r.kv.groups if g.kind == "mamba") == 29


def test_falcon_h1_layers_hold_a_kv_page_and_a_mamba_state_side_by_side() -> None:
    cfg = _config("falcon_h1/default")
    r = _run(cfg, enable_prefix_caching=False)
    # vLLM registers each layer's mixer as a cache layer of its own: 32 attention + 32 Mamba, two groups of 32
    assert {g.kind: g.num_layers for g in r.kv.groups} == {"full": 32, "mamba": 32}
    assert r.kv.num_groups == 2 and r.kv.group_size == 32
    state = mamba2_state_bytes(1, 1024, 1, 128, 8, 256, 4)
    assert state == 533_504  # vLLM 0.32's MambaSpec for this config
    assert r.kv.block_size == 16 * cdiv(state, 16 * (8 * 128 * 2 * 2))
    assert r.kv.blocks_per_request == cdiv(32_768, r.kv.block_size) + 1


def test_falcon_h1_prefix_caching_from_0_28_keeps_two_states_per_request() -> None:
    off = _run(_config("falcon_h1/default"), vllm_version="0.28.0", enable_prefix_caching=False)
    on = _run(_config("falcon_h1/default"), vllm_version="0.28.0")
    assert on.kv.mamba_cache_mode == "align" and off.kv.mamba_cache_mode == "none"
    assert on.kv.blocks_per_request == off.kv.blocks_per_request + 1


@pytest.mark.parametrize("gpu", [dict(gpu_name="H100", gpu_memory_bytes=85_029_158_912),
                                 dict(gpu_name="A100-80GB", gpu_memory_bytes=85_093_089_280)], ids=["H100", "A100"])
def test_from_0_32_every_mamba2_mixer_keeps_a_third_state_for_its_prefill_checkpoint(gpu: dict) -> None:
    # vLLM 0.32 mamba_mixer2.py (not 0.31): get_kv_cache_spec adds num_prefill_checkpoint_blocks=1 (alignment 1,
    # so the block size is unchanged), on any GPU; in align mode a request then holds 2 + 1 states per group.
    cfg = _config("ibm-granite/granite-4.0-h-small")
    old, new = (_run(cfg, vllm_version=v, **gpu) for v in ("0.31.0", "0.32.0"))
    assert new.kv.mamba_cache_mode == old.kv.mamba_cache_mode == "align"
    assert new.kv.block_size == old.kv.block_size
    assert new.num_gpu_blocks == old.num_gpu_blocks
    def mamba(r) -> int:  # blocks one request holds across all Mamba groups
        return next(g.blocks_per_request for g in r.kv.groups if g.kind == "mamba")

    groups = new.kv.num_groups - 1  # 36 Mamba layers in 9 groups of 4, beside the 4 attention layers
    assert (mamba(old), mamba(new)) == (2 * groups, 3 * groups)
    assert new.kv.blocks_per_request == old.kv.blocks_per_request + groups
    assert new.max_concurrency < old.max_concurrency
    off = _run(cfg, vllm_version="0.32.0", enable_prefix_caching=False, **gpu)
    assert mamba(off) == groups  # without prefix caching: one state, no checkpoint


def test_prefix_caching_in_mode_all_aligns_blocks_to_the_mamba2_chunk_not_2048() -> None:
    # 0.22 with --enable-prefix-caching: a state per block, blocks a multiple of the config's mamba_chunk_size
    r = _run(_config("ibm-granite/granite-4.0-h-small"), vllm_version="0.22.0", enable_prefix_caching=True)
    assert r.kv.mamba_cache_mode == "all"
    assert r.kv.block_size == 256 * cdiv(cdiv(2_147_840, 4096), 256) == 768


def test_nemotron_3_nano_refuses_tp16_because_its_eight_mamba_groups_cannot_be_split_sixteen_ways() -> None:
    # mamba_mixer2.py asserts n_groups % tp == 0 or n_groups == 1; attention (32 heads, 2 KV heads) would allow 16.
    from gpuplan.errors import UnservableDeployment

    with pytest.raises(UnservableDeployment) as err:
        _run(_config("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"), tensor_parallel_size=16)
    assert err.value.field == "tensor_parallel_size" and "8 Mamba-2 groups" in str(err.value)
    assert "8" in err.value.accepted and "16" not in err.value.accepted


def test_granite_4_h_single_group_still_serves_at_tp8_but_48_mamba_heads_refuse_tp32() -> None:
    cfg = _config("ibm-granite/granite-4.0-h-small")
    assert _run(cfg, tensor_parallel_size=8).fits is not None
    from gpuplan.errors import UnservableDeployment

    odd = {**cfg, "mamba_n_heads": 48, "num_attention_heads": 32, "num_key_value_heads": 8,
           "mamba_d_head": cfg["hidden_size"] * 2 // 48}
    with pytest.raises(UnservableDeployment, match="48 Mamba-2 heads"):
        _run(odd, tensor_parallel_size=32)


def test_a_nemotron_h_puzzle_checkpoint_is_labelled_an_estimate_because_its_blocks_vary() -> None:
    cfg = _config("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16")
    assert not build_spec(cfg).generic
    puzzle = build_spec({**cfg, "architectures": ["NemotronHPuzzleForCausalLM"],
                         "block_configs": [{"block_type": "moe", "n_routed_experts": 64}]})
    assert puzzle.generic and any("block_configs" in n for n in puzzle.notes)
