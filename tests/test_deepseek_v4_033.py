"""DeepSeek-V4's KV pool as vLLM 0.23-0.33 plans it (the 0.20-0.22 planning is pinned in tests/test_deepseek_v4.py).

Per-layer specs and pages do not change from 0.22 to 0.33 on the NVIDIA FlashMLA path (kv cache dtype fp8 ->
fp8_ds_mla, block size 256): the window cache (SlidingWindowMLASpec, block 64, 64 x 584 B -> 37,440 at the 576-byte
alignment), the compressed caches (MLAAttentionSpec, block 256: ratio 4 -> 64 x 584 -> 37,440, ratio 128 -> 2 x 584
-> 1,728), the ratio-4 indexer key cache (64 x 132 -> 8,640), and the compressor states (SlidingWindowMLASpec, fp32:
ratio 4: block 4, window 8, 4 x 2048 x 4 -> 32,832 and indexer 4 x 512 x 4 -> 8,640; ratio 128: block 8, window 128,
8 x 1024 x 4 -> 32,832). DeepSeek-V4-Flash has 21 ratio-4, 20 ratio-128 and 2 window-only layers, so the groups stay
full (62 caches), window 22 + 21, ratio-4 states 42, ratio-128 states 20. What changed is the pool:

* 0.23 (_bucket_layers_by_page_size): per page size, as many slots as the fullest group holds: 22 x 37,440 +
  20 x 1,728 + 21 x 8,640 = 1,039,680 B per block (0.22: 22 tuples x 47,808 = 1,051,776).
* 0.26 (SlidingWindowSpec.max_memory_usage_bytes): window caches hold window - 1 + max_in_flight_tokens, where
  max_in_flight_tokens = max_concurrent_batches (2 under the default async scheduling) x max_num_batched_tokens.
* 0.27 (_get_packed_kv_cache_layout): the state pages are no longer padded to 37,440; each group packs densely and
  the widest sets the block: full 21 x 37,440 + 20 x 1,728 + 21 x 8,640 = 1,002,240 (window 22 x 37,440 = 823,680;
  ratio-4 states 21 x (32,832 + 8,640) = 870,912; ratio-128 states 20 x 32,832 = 656,640). Concurrency
  (get_max_concurrency_for_kv_cache_config) becomes num_blocks / the groups' pages summed.
* 0.29 (_max_memory_usage_bytes_from_groups): the admission check is a request's pages x the pool's bytes per block
  (<= 0.28: x 22 tuples x 47,808), and the null block is held back from it (0.33 in gpuplan's profile, see below).

Every figure below was also reproduced by running the wheels' own planning functions on these specs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan
from gpuplan.errors import GpuplanError

FLASH = "deepseek-ai/DeepSeek-V4-Flash"
AVAILABLE = 22 * 47_808 * 5_554  # the pool of vllm#44376 (tests/test_deepseek_v4.py): 5,841,563,904 B
FULL_033 = 21 * 37_440 + 20 * 1_728 + 21 * 8_640  # 1,002,240


def _flash(version: str, **kw) -> gpuplan.MemoryReport:
    base = dict(gpu="GH200", tensor_parallel_size=2, enable_expert_parallel=True, max_model_len=30_000,
                gpu_memory_utilization=0.95, kv_cache_dtype="fp8", block_size=256, api_server=False,
                vllm_version=version, kv_cache_memory_bytes=AVAILABLE)
    return gpuplan.estimate(FLASH, **{**base, **kw})


def test_vllm_033_packs_flash_into_1_002_240_byte_blocks():
    """Widest group (the full one) = 1,002,240 B; 5,841,563,904 // 1,002,240 = 5,828 blocks (0.22: 5,554)."""
    r = _flash("0.33.0")
    assert r.kv.bytes_per_block == FULL_033 == 1_002_240
    assert r.num_gpu_blocks == AVAILABLE // FULL_033 == 5_828
    assert sorted(g.num_layers for g in r.kv.groups) == [20, 21, 22, 42, 62]


def test_one_30k_request_on_vllm_033_needs_11_49_gib_and_14192_tokens_fit():
    """Pages of one 30,000-token request, in-flight 2 x 16,384 = 32,768 tokens:
    window 2 x (cdiv(min(127 + 32,768, 30,000), 64) + 1 = 470), full cdiv(30,000, 256) = 118,
    ratio-4 states cdiv(30,000, 4) + 1 = 7,501, ratio-128 states cdiv(30,000, 8) + 1 = 3,751: 12,310 pages
    x 1,002,240 = 12,337,574,400 B = 11.49 GiB. The fit is checked against 5,841,563,904 - 1,002,240 (null block):
    14,192 tokens need 2 x 223 + 56 + 3,549 + 1,775 = 5,826 pages = 5,839,050,240 B, which fits; 14,193 need 5,828."""
    r = _flash("0.33.0")
    assert not r.fits
    assert "11.49 GiB KV cache is needed" in r.reason
    assert r.max_model_len_fit == 14_192


def test_vllm_033_concurrency_sums_the_groups_pages():
    """5,828 blocks / 12,310 pages = 0.4734 -> 0.47x; tokens int(0.4734 x 30,000) = 14,203."""
    r = _flash("0.33.0")
    assert r.kv.blocks_per_request == 12_310
    assert r.kv.max_concurrency == 0.47
    assert r.kv_cache_tokens == int(5_828 / 12_310 * 30_000) == 14_203


def test_vllm_023_cuts_the_pool_in_page_size_slots_but_checks_whole_tuples():
    """0.23: 1,039,680 B per block -> 5,618 blocks; the check still charges 6,800 pages x 22 x 47,808 = 6.66 GiB
    (window 2 x 259, full 118, states 4,099 + 2,065 at in-flight 16,384), so the fit stays 13,528."""
    r = _flash("0.23.0")
    assert r.kv.bytes_per_block == 22 * 37_440 + 20 * 1_728 + 21 * 8_640 == 1_039_680
    assert r.num_gpu_blocks == 5_618
    assert "6.66 GiB KV cache is needed" in r.reason
    assert r.max_model_len_fit == 13_528


def test_vllm_026_windows_hold_two_batches_of_tokens():
    """0.26: 12,310 pages (as above) x 1,051,776 (tuple check) = 12,947,362,560 B = 12.06 GiB."""
    assert "12.06 GiB KV cache is needed" in _flash("0.26.0").reason


def test_vllm_027_packs_blocks_but_still_checks_tuples():
    """0.27-0.28: 1,002,240 B per block (5,828 blocks), concurrency over summed pages (0.47x); the check still charges
    pages x 22 x 47,808 (12,310 x 1,051,776 = 12.06 GiB at 30,000) with no null block held back, so the longest
    length that fits is 0.22's 13,528 (below 32,768 in-flight tokens the window pages equal 0.22's)."""
    r = _flash("0.28.0")
    assert r.kv.bytes_per_block == 1_002_240
    assert r.kv.max_concurrency == 0.47
    assert "12.06 GiB KV cache is needed" in r.reason
    assert r.max_model_len_fit == 13_528


def test_pipeline_stage_two_of_flash_sets_the_033_block():
    """PP=2 (layers 0-21 | 22-42): vLLM projects the model-wide groups on each stage; stage 1's share of the full group
    (11 x 37,440 + 10 x 1,728 + 11 x 8,640 = 524,160) is the widest, 5,841,563,904 // 524,160 = 11,144 blocks, fewer
    than stage 0's 478,080-byte blocks (12,218), so the engine gets 11,144."""
    r = _flash("0.33.0", pipeline_parallel_size=2)
    assert r.kv.bytes_per_block == 11 * 37_440 + 10 * 1_728 + 11 * 8_640 == 524_160
    assert r.num_gpu_blocks == 11_144


def _pro() -> dict:
    """DeepSeek-V4-Pro's shape (61 layers, ratios [128, 128, 4, 128, ..., 4]: 30 ratio-4, 31 ratio-128, no
    window-only layer), other KV fields as Flash (window 128, head 512, indexer 128)."""
    flash = Path(gpuplan.__file__).parent / "data" / "models" / "deepseek-ai__DeepSeek-V4-Flash.json"
    c = json.loads(flash.read_text())["hf_config"]
    return dict(c, num_hidden_layers=61, hidden_size=7168, num_attention_heads=128, q_lora_rank=1536,
                o_lora_rank=1024, o_groups=16, n_routed_experts=384, moe_intermediate_size=3072, index_topk=1024,
                num_hash_layers=3, compress_ratios=[128, 128] + [4, 128] * 29 + [4, 0])


def test_how_many_128k_requests_does_an_80_gib_pool_hold_for_pro_on_vllm_033():
    """Repeats: approximate gcd of the balanced buckets [61 window, 30 ratio-4 states, 31 ratio-128 states] from 30
    -> 31: window split 31 + 30. Widest group = full: 30 x 37,440 + 31 x 1,728 + 30 x 8,640 = 1,435,968 B
    (0.22: 31 x 47,808 = 1,482,048); 85,899,345,920 // 1,435,968 = 59,819 blocks. A 131,072-token request:
    window 2 x (cdiv(32,895, 64) + 1 = 515), full 512, ratio-4 states cdiv(32,775, 4) + 1 = 8,195, ratio-128 states
    cdiv(32,895, 8) + 1 = 4,113: 13,850 pages; 59,819 / 13,850 = 4.32x, int(4.319 x 131,072) = 566,108 tokens."""
    r = gpuplan.estimate(_pro(), gpu="GH200", tensor_parallel_size=2, enable_expert_parallel=True,
                         max_model_len=131_072, kv_cache_dtype="fp8", block_size=256, api_server=False,
                         vllm_version="0.33.0", kv_cache_memory_bytes=80 * 1024**3)
    assert r.kv.bytes_per_block == 1_435_968
    assert sorted(g.num_layers for g in r.kv.groups) == [30, 31, 31, 60, 91]
    assert r.num_gpu_blocks == 59_819
    assert r.kv.blocks_per_request == 13_850
    assert r.kv.max_concurrency == 4.32
    assert r.kv_cache_tokens == 566_108


def test_from_vllm_0_30_kv_cache_dtype_auto_means_fp8_and_plans_the_same_pool():
    """models/deepseek_v4/attention.py (_resolve_dsv4_kv_cache_dtype) maps auto to fp8_ds_mla on the FlashMLA path
    from 0.30; 0.29 still asserts an fp8 cache, so auto there cannot start."""
    auto, fp8 = _flash("0.33.0", kv_cache_dtype="auto"), _flash("0.33.0")
    assert auto.kv.bytes_per_block == fp8.kv.bytes_per_block == FULL_033
    assert auto.max_model_len_fit == fp8.max_model_len_fit
    assert any("auto means fp8" in w for w in auto.warnings)
    old = _flash("0.29.0", kv_cache_dtype="auto")
    assert not old.fits and "fp8" in (old.reason or "")


def test_deepseek_v4_on_an_sm12_gpu_from_0_28_is_flashinfers_plain_rows_which_gpuplan_does_not_plan():
    """From 0.28 nvidia/model.py gives SM 12.x GPUs FlashInfer's plain-row attention by default (a bf16 or per-tensor
    fp8 row per token, not fp8_ds_mla): a different cache layout, so gpuplan answers with an error naming the GPU.
    0.24-0.27 serve SM 12.x through FlashInfer's SM120 sparse-MLA kernels on the fp8_ds_mla rows (flashinfer_sparse.py
    DeepseekV4FlashInferSM120Attention, use_fp8_ds_mla_layout), sized like the FlashMLA path, with a warning that they
    need FlashInfer's sparse MLA decode API (a 0.25.0 start on two RTX PRO 6000s ran so, gap_versions_public gvb-001).
    Before 0.24 only FlashMLA existed, which is not built for SM 12.x: a verdict that it cannot start."""
    with pytest.raises(GpuplanError) as e:
        _flash("0.33.0", gpu="RTX PRO 6000", tensor_parallel_size=2, kv_cache_memory_bytes=None)
    assert e.value.field == "gpu"
    mid = _flash("0.27.1", gpu="RTX PRO 6000", tensor_parallel_size=2, kv_cache_memory_bytes=None)
    assert mid.failure != "refused" and any("SM120 sparse-MLA" in w for w in mid.warnings)
    assert mid.kv.bytes_per_block == _flash("0.27.1", tensor_parallel_size=2).kv.bytes_per_block
    old = _flash("0.23.0", gpu="RTX PRO 6000", tensor_parallel_size=2, kv_cache_memory_bytes=None)
    assert not old.fits and old.failure == "refused" and "9.x and 10.x" in (old.reason or "")


