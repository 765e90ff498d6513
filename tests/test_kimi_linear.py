"""Kimi-Linear-48B-A3B: KDA linear-attention layers (a per-request recurrent state) beside NoPE MLA layers.

The layout at TP=1 is pinned to vLLM 0.32's own planning by tests/fixtures/oracle/kvspec/moonshotai__Kimi-Linear-*
(test_oracle_fixtures.py) and the parameter count to transformers by tests/fixtures/oracle/params. Below: what
changes with the deployment, by hand from vLLM's source (models/kimi_linear.py, layers/kda.py, mamba_utils.py
kda_state_shape / kda_state_dtype; the hybrid block alignment in models/config.py up to 0.19 and
platforms/interface.py from 0.20).
"""

from __future__ import annotations

import pytest

from gpuplan.catalog import find_model
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.errors import GpuplanError
from gpuplan.model.adapters import build_spec
from gpuplan.units import GiB

H100 = dict(gpu_name="H100", gpu_memory_bytes=85_029_158_912)
MLA_BYTES_PER_TOKEN = (512 + 64) * 2  # the latent row, bf16, on every GPU


def _kimi(**dep):
    spec = build_spec(find_model("kimi-linear").hf_config, "moonshotai/Kimi-Linear-48B-A3B-Instruct")
    return estimate(spec, Deployment(**{**H100, "tensor_parallel_size": 2, "max_model_len": 131072, **dep}))


def _kda_state_bytes(tp: int) -> int:
    """One request's KDA state on one GPU: a 3-position short-conv window over q, k and v (bf16) and a
    [heads, 128, 128] float32 recurrent state, heads split over TP."""
    return 3 * (3 * 32 * 128 // tp) * 2 + (32 // tp) * 128 * 128 * 4


def test_kimi_linear_has_20_kda_and_7_mla_layers() -> None:
    spec = build_spec(find_model("kimi-linear").hf_config)
    kinds = [layer.attention.kind for layer in spec.layers]
    assert kinds.count("mamba") == 20 and kinds.count("mla") == 7
    assert [i + 1 for i, k in enumerate(kinds) if k == "mla"] == [4, 8, 12, 16, 20, 24, 27]
    assert not spec.generic


@pytest.mark.parametrize("version,step", [("0.19.0", 64), ("0.24.0", 16), ("0.32.0", 128)])
def test_kimi_linear_mla_block_grows_to_hold_one_kda_state(version: str, step: int) -> None:
    """At TP=2 one KDA state is 1,085,440 bytes; vLLM raises the MLA block to the smallest multiple of its
    alignment step whose page holds it: 64 (0.12-0.19), the backend's kernel block (FlashAttention-MLA: 16) on
    0.20-0.26, at least 128 from 0.27."""
    r = _kimi(vllm_version=version, enable_prefix_caching=False)
    state = _kda_state_bytes(2)
    assert state == 1_085_440
    assert r.kv.block_size % step == 0
    assert r.kv.block_size * MLA_BYTES_PER_TOKEN >= state > (r.kv.block_size - step) * MLA_BYTES_PER_TOKEN
    assert r.kv.block_size == {"0.19.0": 960, "0.24.0": 944, "0.32.0": 1024}[version]
    # four groups of seven layers (3 KDA groups of 7/7/6 + one padding slot, one MLA group); a block id spans one
    # page in each of the seven per-position tensors, every page padded to the MLA one
    assert r.kv.num_groups == 4 and r.kv.group_size == 7 and r.kv.padding_layers == 1
    assert r.kv.bytes_per_block == 7 * r.kv.block_size * MLA_BYTES_PER_TOKEN


def test_a_larger_block_size_than_the_state_needs_is_kept() -> None:
    r = _kimi(vllm_version="0.19.0", block_size=2048, enable_prefix_caching=False)
    assert r.kv.block_size == 2048


def test_prefix_caching_on_by_default_keeps_two_kda_states_per_request() -> None:
    on = _kimi(vllm_version="0.32.0")
    off = _kimi(vllm_version="0.32.0", enable_prefix_caching=False)
    # three KDA groups: one state block each without prefix caching, two (running + last aligned) with it
    assert {g.kind: g.blocks_per_request for g in off.kv.groups}["mamba"] == 3
    assert {g.kind: g.blocks_per_request for g in on.kv.groups}["mamba"] == 6
    assert on.kv.blocks_per_request > off.kv.blocks_per_request


def test_kimi_linear_cannot_split_32_heads_over_3_gpus() -> None:
    with pytest.raises(GpuplanError) as e:
        _kimi(tensor_parallel_size=3)
    assert e.value.field == "tensor_parallel_size"


def test_kimi_linear_at_tp4_needs_far_less_kv_per_token_than_an_all_mla_model() -> None:
    """Only the 7 MLA layers grow with context: per GPU, 7 x 1,152 bytes per token, whatever the TP size."""
    r = _kimi(tensor_parallel_size=4, vllm_version="0.32.0", enable_prefix_caching=False)
    mla_groups = [g for g in r.kv.groups if g.kind == "mla"]
    assert sum(g.num_layers for g in mla_groups) == 7
    assert r.fits


def test_vllm_before_kimi_linear_says_it_has_no_implementation() -> None:
    r = _kimi(vllm_version="0.10.2")
    assert any("no implementation of KimiLinearForCausalLM" in w and "v0.12.0" in w for w in r.warnings)
    assert not any("no implementation" in w for w in _kimi(vllm_version="0.12.0").warnings)


def test_kimi_linear_awq_on_two_3090s_matches_vllm_28228() -> None:
    """vllm#28228 (2x RTX 3090, TP=2, max_model_len 120000, a 0.11 nightly that turned prefix caching off for the
    hybrid): 'Setting attention block size to 960 tokens', 'Padding mamba page size by 1.89%', 'Add 1 padding
    layers', and with 'Available KV cache memory: 2.30 GiB': 'GPU KV cache size: 75,840 tokens', 'Maximum
    concurrency for 120,000 tokens per request: 2.48x'. The available memory is the log's (2.30 GiB, rounded; 2.48x
    puts it below 319 blocks); the layout from it is exact and does not depend on the weight format."""
    r = _kimi(gpu_name="RTX 3090", gpu_memory_bytes=25_318_832_210, compute_capability=8.6, vllm_version="0.12.0",
              max_model_len=120_000, max_num_seqs=8, max_num_batched_tokens=64_000, enable_prefix_caching=False,
              kv_cache_memory_bytes=int(2.297 * GiB))
    assert r.kv.block_size == 960 and r.kv.padding_layers == 1
    assert round(100 * (960 * MLA_BYTES_PER_TOKEN / _kda_state_bytes(2) - 1), 2) == 1.89
    assert r.kv.kv_cache_tokens == 75_840
    assert r.kv.max_concurrency == 2.48


def test_kimi_linear_bf16_on_one_gpu_sets_1920_token_blocks_as_vllm_30092_logs() -> None:
    """vllm#30092 (0.11.2 nightly, TP=1): 'Setting attention block size to 1920 tokens' (64 x 30: one 2,170,880-byte
    KDA state over 1,152-byte MLA rows)."""
    r = _kimi(tensor_parallel_size=1, vllm_version="0.12.0", max_model_len=32768, enable_prefix_caching=False)
    assert r.kv.block_size == 1920


# ----------------------------------------------------------------------------- Kimi K3


def _k3(**dep):
    spec = build_spec(find_model("kimi-k3").hf_config, "moonshotai/Kimi-K3")
    base = dict(gpu_name="B300", gpu_memory_bytes=308_367_327_232, compute_capability=10.3, vllm_version="0.32.0",
                tensor_parallel_size=8, max_model_len=12_800)
    return spec, estimate(spec, Deployment(**{**base, **dep}))


def test_kimi_k3_counts_the_hubs_parameters_but_the_padded_a_log() -> None:
    """The Hub's safetensors.total is 2,779,931,837,184. The checkpoint stores each KDA layer's A_log as [128]
    (its weight table); vLLM builds one per head (96): 69 x 32 = 2,208 fewer, everything else equal."""
    spec, _ = _k3()
    assert not spec.generic
    assert spec.total_params == 2_779_931_837_184 - 69 * 32
    assert [i + 1 for i, layer in enumerate(spec.layers) if layer.attention.kind == "mla"] == [
        *range(4, 93, 4), 93]


def test_kimi_k3_experts_take_the_checkpoints_mxfp4_bytes() -> None:
    """Routed experts are compressed-tensors MXFP4 over the 3,584-wide latent: per expert w1/w3 packed [3072, 1792]
    + uint8 scales [3072, 112] and w2 packed [3584, 1536] + scales [3584, 96] (the checkpoint's weight table).
    With EP over 8 GPUs each holds 112 experts of each of the 92 MoE layers."""
    _, r = _k3(enable_expert_parallel=True)
    per_expert = 2 * (3072 * 1792 + 3072 * 112) + 3584 * 1536 + 3584 * 96
    assert r.per_stage[0]["weights_by_kind"]["experts"] == 92 * 112 * per_expert


def test_kimi_k3_at_tp8_sets_768_token_blocks_and_pads_the_kda_state_by_8_68_percent() -> None:
    """8x MI355X deployment notes (vLLM 0.27+ alignment): 'Setting attention block size to 768 tokens', 'pads the
    mamba page by 8.68%'. One KDA state per GPU: 12 heads x 128 x 128 float32 + 3 x 4,608 bf16 conv = 814,080
    bytes; the MLA block is the smallest multiple of 128 tokens whose 1,152-byte rows hold it."""
    _, r = _k3(enable_prefix_caching=False)
    assert r.kv.block_size == 768
    state = 12 * 128 * 128 * 4 + 3 * (3 * 12288 // 8) * 2
    assert round(100 * (768 * 1152 / state - 1), 2) == 8.68


def test_kimi_k3_weights_on_8_gpus_with_ep_are_close_to_the_logged_192_gib() -> None:
    """The same MI355X notes give 192.29 GiB for weights at TP=8 with expert parallelism (their summary of the
    loading line, ROCm build); gpuplan's CUDA-side inventory is within 1% of it."""
    _, r = _k3(enable_expert_parallel=True)
    assert abs(r.weights_bytes / GiB - 192.29) / 192.29 < 0.01


def test_kimi_k3_keeps_a_flashkda_checkpoint_state_with_prefix_caching_from_0_31() -> None:
    """KimiK3DeltaAttention prefills with FlashKDA on SM90/SM10x/SM12x (bounded gate, head_dim 128, bf16) and then
    keeps a prefill-checkpoint state: three per request in each KDA group under prefix caching (align), not two."""
    kda = {}
    for version, cc in (("0.32.0", 10.0), ("0.30.0", 10.0), ("0.32.0", 8.0)):
        _, r = _k3(vllm_version=version, compute_capability=cc)
        kda[(version, cc)] = {g.kind: g.blocks_per_request for g in r.kv.groups}["mamba"]
    assert kda == {("0.32.0", 10.0): 9, ("0.30.0", 10.0): 6, ("0.32.0", 8.0): 6}  # three KDA groups


def test_kimi_k3_does_not_fit_eight_b200s() -> None:
    """191 GiB of weights per GPU at TP=8 exceed a B200's 178 GiB (vLLM's recipe asks for 1,680 GB in all)."""
    _, r = _k3(gpu_name="B200", gpu_memory_bytes=191_514_017_792, compute_capability=10.0)
    assert not r.fits


def test_kimi_k3_experts_need_180_8_gb_per_gpu_at_tp8_and_120_5_gb_at_tp16() -> None:
    """vllm#51124: 'TP=8 needs 180.8 GB, TP>=16 needs 120.5 GB' for the routed experts. Split over TP without
    EP, each partition keeps at least 256 of the 3,072 intermediate rows (kimi_k3 model code, 0.27+): at TP=16
    192 rows are padded to 256, a third more than an even split."""
    gb = {}
    for tp in (8, 16):
        _, r = _k3(tensor_parallel_size=tp)
        gb[tp] = round(r.per_stage[0]["weights_by_kind"]["experts"] / 1e9, 1)
    assert gb == {8: 180.8, 16: 120.5}
    _, before = _k3(tensor_parallel_size=16, vllm_version="0.26.0")
    assert round(before.per_stage[0]["weights_by_kind"]["experts"] / 1e9, 1) == 90.4  # no floor before kimi_k3
