"""Memory vLLM's sparse-MLA path (DeepSeek-V3.2 / GLM-5 DSA indexer) allocates at start-up, per release.

Byte counts are hand arithmetic from the vLLM wheels (see gpuplan/engines/vllm/sparse_workspace.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.engines.vllm import sparse_workspace as w
from gpuplan.errors import GpuplanError
from gpuplan.model.adapters import build_spec

GIB = 1024**3
FIXTURE = Path(__file__).parent / "fixtures" / "vllm_logs" / "recent_public.jsonl"


def _rp006() -> dict:
    for line in FIXTURE.read_text().splitlines():
        row = json.loads(line)
        if row["id"] == "rp-006":
            return row
    raise AssertionError("rp-006 missing")


def test_glm52_at_819200_tokens_on_026_reserves_4_03_gib_of_indexer_workspace():
    """GLM-5.2, max_model_len 819200, vLLM 0.26: T = 40 x 819200 = 32,768,000 rows;
    fp8 values 32,768,000 x 128 = 4,194,304,000 + scales 32,768,000 x 4 = 131,072,000 + radix 1,048,576
    = 4,326,424,576 bytes (4.0293 GiB) = 819200 x 40 x 132 + 1 MiB."""
    got = w.indexer_workspace_request("0.26.0", max_model_len=819200)
    assert got == 4_326_424_576 == 819200 * 40 * 132 + 1024 * 1024
    assert round(got / GIB, 2) == 4.03


def test_033_shrinks_the_indexer_workspace_above_256k():
    """0.33 at 819200 (> 256K, factor 2): T = 819200 x (1152 // 132 = 8) x 2 = 13,107,200;
    13,107,200 x 132 + 1,048,576 = 1,731,198,976. At 163840 (factor 5): T = 6,553,600;
    6,553,600 x 132 + 1,048,576 = 866,123,776."""
    assert w.indexer_workspace_request("0.33.0", max_model_len=819200) == 1_731_198_976
    assert w.indexer_workspace_request("0.33.0", max_model_len=163840) == 866_123_776
    # an explicit --attention-config sparse_mla_prefill_workspace_factor=5 at 819200 restores 40 rows per token
    assert w.indexer_workspace_request("0.33.0", max_model_len=819200, factor=5) == 4_326_424_576


def test_019_deepseek_v32_matches_vllms_own_825_mb_comment_and_has_no_radix_workspace():
    """0.19, max_model_len 163840: 40 x 163840 x 132 = 865,075,200 bytes ("825 MB" in indexer.py); the 1 MiB radix
    workspace arrives in 0.20; the 512 MiB logits dummy (0.19 on) is transient."""
    assert w.indexer_workspace_request("0.19.0", max_model_len=163840) == 865_075_200
    assert w.indexer_workspace_request("0.20.0", max_model_len=163840) == 865_075_200 + 1024 * 1024
    assert w.profile_transient_bytes("0.19.0", max_model_len=163840, mnbt=8192, index_topk=2048, tp=8) == 512 * 2**20
    assert w.profile_transient_bytes("0.18.0", max_model_len=163840, mnbt=8192, index_topk=2048, tp=8) == 0


def test_012_has_no_workspace_manager_only_a_transient_flattened_kv():
    """0.12: no WorkspaceManager; the fake op holds [2 x 819200, 132] uint8 + a contiguous [., 128] fp8 copy + a
    [., 1] fp32 copy until it returns: 1,638,400 x 264 = 432,537,600 bytes, transient. No persistent request."""
    assert w.indexer_workspace_request("0.12.0", max_model_len=819200) == 0
    assert w.profile_transient_bytes("0.12.0", max_model_len=819200, mnbt=8192, index_topk=2048, tp=4) == 432_537_600
    # the MoE workspace stays what it was
    assert w.profile_workspace_bytes("0.12.0", backend="FLASHMLA_SPARSE", load_reservation=0, moe_request=GIB,
                                     max_model_len=819200) == GIB


def test_033_row_shard_exchange_is_a_tp_only_transient():
    """0.32 on, TP > 1 and the default FULL_AND_PIECEWISE graphs: 2 x 8192 x 2048 x 4 = 134,217,728 beside the
    536,870,912 logits dummy = 671,088,640. TP=1 or FULL mixed graphs: the dummy only."""
    kw = dict(max_model_len=819200, mnbt=8192, index_topk=2048)
    assert w.profile_transient_bytes("0.33.0", tp=4, **kw) == 671_088_640
    assert w.profile_transient_bytes("0.33.0", tp=1, **kw) == 536_870_912
    assert w.profile_transient_bytes("0.33.0", tp=4, cudagraph_mixed_full=True, **kw) == 536_870_912
    assert w.profile_transient_bytes("0.31.0", tp=4, **kw) == 536_870_912


def test_rp006_glm52_nvfp4_on_four_gb200s_vllm_026():
    """rp-006: FLASHINFER_MLA_SPARSE (no workspace reservation at init), mnbt 8192, index_topk 2048.
    Load: topk_indices_buffer 8192 x 2048 x 4 = 67,108,864 (no index groups before 0.30).
    Profile: the shared buffer grows to max(indexer 4,326,424,576, MoE 1 GiB) = 4,326,424,576, all paid here."""
    row = _rp006()
    spec = build_spec(row["hf_config"])
    assert w.index_layers(spec) == 21  # layers 0, 1, 2 and every 4th from 6 build an indexer; 57 reuse
    load = w.load_bytes("0.26.0", backend="FLASHINFER_MLA_SPARSE", heads_per_rank=16, index_layers=21,
                        index_topk=2048, mnbt=8192, max_num_seqs=1024, max_model_len=819200,
                        kv_dtype="fp8_e4m3", cc=10.0)
    assert load == 67_108_864
    grow = w.profile_workspace_bytes("0.26.0", backend="FLASHINFER_MLA_SPARSE", load_reservation=0,
                                     moe_request=GIB, max_model_len=819200)
    assert grow == 4_326_424_576


def test_glm52_same_deployment_on_033_blackwell():
    """0.33: 21 index groups x ((min(8192, 1024 x 1) + 1) x 2048 x 4 + 1025 x 4 = 8,400,900) = 176,418,900
    + topk buffer 67,108,864 = 243,527,764 at load. Profile workspace: 1,731,198,976 (factor 2 above 256K)."""
    load = w.load_bytes("0.33.0", backend="FLASHINFER_MLA_SPARSE", heads_per_rank=16, index_layers=21,
                        index_topk=2048, mnbt=8192, max_num_seqs=1024, max_model_len=819200,
                        kv_dtype="fp8_e4m3", cc=10.0)
    assert load == 243_527_764
    assert w.profile_workspace_bytes("0.33.0", backend="FLASHINFER_MLA_SPARSE", load_reservation=0,
                                     moe_request=GIB, max_model_len=819200) == 1_731_198_976
    # a MoE request larger than the indexer's takes the buffer instead (max, not sum)
    assert w.profile_workspace_bytes("0.33.0", backend="FLASHINFER_MLA_SPARSE", load_reservation=0,
                                     moe_request=2 * GIB, max_model_len=819200) == 2 * GIB


def test_deepseek_v32_tp8_on_hopper_019_flashmla_reservation_covers_the_indexer():
    """0.19, H100, DeepSeek-V3.2 TP=8 (16 heads/rank), fp8_ds_mla, mnbt 8192, max_model_len 163840:
    q_concat 8192 x 16 x 576 x 2 = 150,994,944 + prefill 5 x 163840 x 576 x 2 = 943,718,400 = 1,094,713,344 at
    load (+ topk buffer 67,108,864 = 1,161,822,208). The indexer's 865,075,200 fits: no growth. A 2 GiB MoE request
    grows it, and the old buffer stays pinned by FlashMLA's views: the profile pays the full 2 GiB."""
    res = w.flashmla_init_request("0.19.0", heads_per_rank=16, mnbt=8192, max_model_len=163840,
                                  kv_dtype="fp8_ds_mla", cc=9.0)
    assert res == 1_094_713_344
    assert w.load_bytes("0.19.0", backend="FLASHMLA_SPARSE", heads_per_rank=16, index_layers=61, index_topk=2048,
                        mnbt=8192, max_num_seqs=1024, max_model_len=163840, kv_dtype="fp8_ds_mla",
                        cc=9.0) == 1_161_822_208
    kw = dict(backend="FLASHMLA_SPARSE", load_reservation=res, max_model_len=163840)
    assert w.profile_workspace_bytes("0.19.0", moe_request=GIB, **kw) == 0
    assert w.profile_workspace_bytes("0.19.0", moe_request=2 * GIB, **kw) == 2 * GIB


def test_deepseek_v32_tp8_on_hopper_033():
    """0.33, same deployment: q_concat 150,994,944 + prefill 943,718,400 + [8192, 64, 576] 603,979,776
    + [8192, 64, 512] 536,870,912 + [8192, 16, 512] 134,217,728 = 2,369,781,760; index groups 61 x 8,400,900
    = 512,454,900; topk 67,108,864: load 2,949,345,524. Views are not kept: a 3 GiB MoE request costs
    3,221,225,472 - 2,369,781,760 = 851,443,712 in the profile."""
    res = w.flashmla_init_request("0.33.0", heads_per_rank=16, mnbt=8192, max_model_len=163840,
                                  kv_dtype="fp8_ds_mla", cc=9.0)
    assert res == 2_369_781_760
    assert w.load_bytes("0.33.0", backend="FLASHMLA_SPARSE", heads_per_rank=16, index_layers=61, index_topk=2048,
                        mnbt=8192, max_num_seqs=1024, max_model_len=163840, kv_dtype="fp8_ds_mla",
                        cc=9.0) == 2_949_345_524
    assert w.profile_workspace_bytes("0.33.0", backend="FLASHMLA_SPARSE", load_reservation=res,
                                     moe_request=3 * GIB, max_model_len=163840) == 851_443_712


def test_bf16_cache_pads_query_heads_128_on_blackwell_in_029_and_64_from_032():
    """bf16 cache (not quantized), 16 heads/rank, mnbt 8192: 0.29 pads to 128 heads on SM10x
    (8192 x 128 x 1152 = 1,207,959,552), to 64 on Hopper (603,979,776); 0.26 keeps 16 (150,994,944); 0.33 pads to
    64 everywhere. 0.13 - 0.17 reserve nothing without fp8_ds_mla."""
    kw = dict(heads_per_rank=16, mnbt=8192, max_model_len=163840, kv_dtype="auto")
    assert w.flashmla_init_request("0.29.0", cc=10.0, **kw) == 1_207_959_552
    assert w.flashmla_init_request("0.29.0", cc=9.0, **kw) == 603_979_776
    assert w.flashmla_init_request("0.26.0", cc=10.0, **kw) == 150_994_944
    assert w.flashmla_init_request("0.33.0", cc=10.0, **kw) == 603_979_776
    assert w.flashmla_init_request("0.17.0", cc=9.0, **kw) == 0
    assert w.flashmla_init_request("0.17.0", cc=9.0, **{**kw, "kv_dtype": "fp8_ds_mla"}) == 943_718_400


def test_before_011_there_is_no_sparse_mla():
    with pytest.raises(GpuplanError):
        w.indexer_rows("0.10.2", 4096)


def test_glm52_on_four_gb200s_logs_the_activation_the_indexer_workspace_explains():
    """rp-006 through the whole estimate (gpuplan validate): the 4.03 GiB indexer reservation replaces the 1.00 GiB
    MoE request in the shared buffer and stays beside the 2.30 GiB sampler, so the profile's peak is 6.33 GiB plus
    the 0.14 GiB cold-compile term, against 6.31 logged (3.44 before the indexer was counted); the KV cache that is
    left is within 2% of the 50.62 GiB logged (7.7% before)."""
    from gpuplan.validation import validate_file

    (rec,) = [r for r in validate_file(FIXTURE)["records"] if r["id"] == "rp-006"]
    assert abs(rec["predicted"]["activation_peak_gib"] - 6.47) < 0.01
    assert rec["abs_pct_error"]["available_kv_cache_gib"] < 2.0


def test_deepseek_v32_on_hopper_loads_flashmlas_reservation_and_the_topk_buffer():
    """Does DeepSeek-V3.2 (fp8 KV -> fp8_ds_mla on Hopper) leave room on 8 x H200 at 163,840 tokens? Its weights
    line now carries the sparse path's load-time buffers: the [8192, 2048] int32 top-k buffer (64 MiB) and, on
    0.19, FlashMLA-sparse's workspace reservation (1,094,713,344 bytes, test above), 1,161,822,208 in all."""
    from gpuplan.api_python import estimate

    base = dict(gpu="NVIDIA H200", tensor_parallel_size=8, max_model_len=163840, kv_cache_dtype="fp8",
                max_num_batched_tokens=8192)
    cfg = {**_v32_config(), "architectures": ["DeepseekV32ForCausalLM"], "model_type": "deepseek_v32"}
    r = estimate(cfg, vllm_version="0.19.0", **base)
    assert r.per_stage[0]["weights_by_kind"]["buffers"] == 1_161_822_208
    assert r.kv.kv_cache_dtype == "fp8_ds_mla"
    assert r.fits


def _v32_config() -> dict:
    from gpuplan.catalog import find_model

    cfg = dict(find_model("deepseek-ai/DeepSeek-V3").hf_config)
    return {**cfg, "index_topk": 2048, "index_head_dim": 128, "index_n_heads": 64}
