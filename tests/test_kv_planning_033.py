"""KV planning of vLLM 0.33 (gpuplan's default version) on standard, layer-outermost models.

vLLM 0.33 moved the planner out of v1/core/kv_cache_utils.py into v1/core/kv_cache_planning.py and routed it through
a pluggable ``KVCacheConfigBuilder`` (kv_cache_config_builder.py; the CUDA platform returns
``DefaultKVCacheConfigBuilder``). Read function by function against the 0.32 wheel, the planning itself did not
change: get_kv_cache_groups, _get_kv_cache_groups_uniform_spec / _uniform_type / _uniform_page_size,
unify_kv_cache_spec_page_size, _promote_local_kv_cache_specs, _try_get_full_allocation_fallback_groups,
_ensure_min_page_size, _get_kv_cache_bytes_per_block and get_kv_cache_config_from_groups are byte-identical; the
per-spec max_memory_usage_bytes (kv_cache_interface.py) and the "GPU KV cache size" / "Maximum concurrency" lines
(kv_cache_utils.get_kv_cache_capacity: int(num_blocks / sum of per-group blocks x max_model_len)) too. What moved:

* num_blocks: 0.32 passed ``available_memory`` to get_kv_cache_config_from_groups, which took
  ``available // bytes_per_block``; 0.33 computes ``num_blocks = available // _pool_bytes_per_block_from_builder``
  first and the default builder hands ``num_blocks * bytes_per_block`` back to the same function. The pool bytes per
  block come from a one-block probe whose single device backing is ``KVCacheTensor.size = bytes_per_block * 1``:
  the same number (layer-outermost: the widest group's summed pages).
* the fit check, auto-fit and the null block: the same formula (bytes_per_block x sum of per-group blocks, against
  available memory less one pool block), with the probe's bytes per block.
* EAGLE groups, KV-transfer flags, lookahead block hashes: no standard start-up without a drafter sees them.

What does change a number on a standard model in 0.33 lives outside the planner:

* platforms/interface.py _align_hybrid_block_size: in mamba_cache_mode "align" the attention block becomes a
  multiple of the Mamba layers' prefill-checkpoint alignment (mamba/abstract.py
  get_mamba_prefill_checkpoint_alignment, an lcm, None unless every Mamba layer declares one). Only Qwen's Gated
  DeltaNet declares one (64, FLASHINFER_GDN_CHECKPOINT_ALIGNMENT, when FlashInfer prefills it: Hopper; Blackwell
  with 128-wide keys), and it also keeps a prefill-checkpoint state (num_prefill_checkpoint_blocks=1): 3 states a
  request instead of 2. Mamba-2 had its checkpoint already in 0.32 and declares no alignment. (gpuplan had this.)
* engine/arg_utils.py: GB10 (DGX Spark, compute capability 12.1) gets the small tier's max_num_batched_tokens /
  max_num_seqs defaults despite its 121.7 GiB, which changes the sliding-window blocks a request needs.
  (Added here: profile flag gb10_small_defaults_from 0.33.)

Configs: tests/fixtures/oracle/configs (the published config.json of each model), Nemotron-Nano-9B-v2 from
tests/fixtures/oracle/families/nemotron_h.json, DeepSeek-V3.2 from transformers' deepseek_v32 default
(tests/fixtures/oracle/defaults). The 0.32 oracle runs (tests/fixtures/oracle/kvspec, vllm_kvspec.py on vLLM 0.32's
own planner, 40e9 bytes of KV, --block-size 16) are the reference for every layout 0.33 plans the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.api_python import estimate as api_estimate
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

GiB = 1 << 30
ORACLE = Path(__file__).parent / "fixtures" / "oracle"
KVSPEC = sorted((ORACLE / "kvspec").glob("*.json"))
H100 = dict(gpu_name="H100", gpu_memory_bytes=85_029_158_912, compute_capability=9.0)
A100 = dict(gpu_name="A100-80GB", gpu_memory_bytes=85_089_583_104, compute_capability=8.0)
GB10 = dict(gpu_name="GB10", gpu_memory_bytes=130_663_642_563, compute_capability=12.1)
BUDGET = 40_000_000_000  # the oracle runs' KV budget


def _cfg(name: str) -> dict:
    return json.loads((ORACLE / "configs" / f"{name}.json").read_text())


def _plan(cfg: dict, version: str = "0.33.0", gpu: dict = H100, **kw):
    kw.setdefault("kv_cache_memory_bytes", BUDGET)
    kw.setdefault("max_model_len", 8192)
    return estimate(build_spec(cfg), Deployment(**gpu, vllm_version=version, **kw))


def _gdn(fx: dict) -> bool:
    return any(
        "qwen3_next" in str(fx.get(k, "")).lower() or "Qwen3-Next" in str(fx.get(k, ""))
        for k in ("model", "arch")
    )


@pytest.mark.parametrize("path", KVSPEC, ids=[p.stem for p in KVSPEC])
def test_033_plans_every_oracle_layout_as_032_did(path: Path) -> None:
    """vLLM 0.33's planner is 0.32's, so 0.33 must reproduce each 0.32 oracle run: bytes per block (the widest
    group's pages), num_blocks (40e9 // bytes per block) and the group count. Qwen3-Next is the exception (its
    Gated DeltaNet prefill checkpoints are new in 0.33; pinned below)."""
    fx = json.loads(path.read_text())
    if "bytes_per_block" not in fx:
        pytest.skip("oracle run failed")
    if any(str(g["spec"].get("dtypes", "")).startswith("(torch.float32") for g in fx["groups"]):
        pytest.skip("this CPU run kept Mamba state in float32 (GPU: model dtype)")
    cfg = json.loads((ORACLE / fx["model"]).read_text())
    if "no_quantization_config" in str(fx["_meta"].get("attempt", "")):
        cfg = {k: v for k, v in cfg.items() if k != "quantization_config"}
    kv = "fp8" if fx["_meta"].get("variant", "auto").startswith("fp8") else "auto"
    extra = fx["_meta"].get("engine_args_extra", {})
    r = estimate(
        build_spec(cfg, fx["_meta"].get("model_id")),
        Deployment(
            gpu_name="H100",
            gpu_memory_bytes=85_029_158_912,
            vllm_version="0.33.0",
            block_size=16,
            max_model_len=fx["max_model_len"],
            kv_cache_memory_bytes=int(fx["kv_budget_bytes"]),
            kv_cache_dtype=kv,
            enable_prefix_caching=extra.get("enable_prefix_caching"),
        ),
    )
    assert r.kv.num_groups == len(fx["groups"])
    if _gdn(fx):
        assert r.kv.bytes_per_block != fx["bytes_per_block"]
        return
    assert r.kv.bytes_per_block == fx["bytes_per_block"]
    assert r.num_gpu_blocks == fx["num_blocks"]
    kinds = {g["spec"]["class"] for g in fx["groups"]}
    if kinds <= {"FullAttentionSpec", "MambaSpec"} or kinds == {"MLAAttentionSpec"}:
        assert r.kv_cache_tokens == fx["kv_cache_size_tokens"]


def test_llama_3_1_8b_layout_and_the_longest_context_10_gib_holds() -> None:
    """Llama-3.1-8B, bf16, TP=1: 32 FullAttentionSpec layers of 8 KV heads x 128: 2 x 8 x 128 x 2 = 4096 bytes a
    token, 65,536 a 16-token page, one group of 32 -> 2,097,152 bytes a block; 40e9 // 2,097,152 = 19,073 blocks.
    At 8,192 tokens a request takes 512 blocks: 19,073 / 512 = 37.25x, int(37.2519 x 8192) = 305,168 tokens.

    "Does 128K fit in 10 GiB of KV?" The check needs (8,192 blocks + the null block) x 2,097,152 = 16.00 GiB: no.
    Auto-fit's longest length: (10 GiB - one block) // 2,097,152 = 5,119 blocks -> 5,119 x 16 = 81,904 tokens."""
    r = _plan(_cfg("meta-llama__Llama-3.1-8B"), block_size=16)
    assert (r.kv.bytes_per_block, r.num_gpu_blocks, r.kv.blocks_per_request) == (2_097_152, 19_073, 512)
    assert (r.kv_cache_tokens, r.max_concurrency) == (305_168, 37.25)
    big = _plan(
        _cfg("meta-llama__Llama-3.1-8B"), block_size=16, max_model_len=131072, kv_cache_memory_bytes=10 * GiB
    )
    assert not big.fits and "16.00 GiB KV cache is needed" in big.reason
    assert big.max_model_len_fit == 81_904


def test_gemma_3_27b_sliding_groups_padding_and_concurrency() -> None:
    """gemma-3-27b-it: 62 layers, every 6th full (10) and 52 sliding (window 1024), 16 KV heads x 128 -> 8192 bytes
    a token, 131,072 a page. 52 >= 1.5 x 10, so groups of 10: 6 sliding groups (8 padding slots) + 1 full = 7,
    bytes per block 10 x 131,072 = 1,310,720; 40e9 // 1,310,720 = 30,517 blocks.
    H100, served: max_num_batched_tokens 8192, async scheduling -> 2 batches in flight. A sliding group holds
    cdiv(min(1023 + 2 x 8192, 8192), 16) + 1 = 513 blocks, a full one 512: 6 x 513 + 512 = 3,590 a request;
    30,517 / 3,590 = 8.50x, int(30,517 x 8192 / 3,590) = 69,636 tokens."""
    r = _plan(_cfg("google__gemma-3-27b-it"), block_size=16)
    assert (r.kv.num_groups, r.kv.group_size, r.kv.padding_layers) == (7, 10, 8)
    assert (r.kv.bytes_per_block, r.num_gpu_blocks) == (1_310_720, 30_517)
    assert [g.blocks_per_request for g in r.kv.groups] == [6 * 513, 512]
    assert (r.kv_cache_tokens, r.max_concurrency) == (69_636, 8.5)


def test_gpt_oss_20b_sliding_and_full_groups() -> None:
    """gpt-oss-20b: 24 layers alternating sliding (128) and full, 8 KV heads x 64: 2048 bytes a token, 32,768 a page;
    12 + 12 -> two groups of 12, 393,216 bytes a block; 40e9 // 393,216 = 101,725 blocks. A request at 8,192:
    full 512 + sliding cdiv(min(127 + 16,384, 8,192), 16) + 1 = 513 -> 1,025 blocks; 101,725 / 1,025 = 99.24x,
    int(101,725 x 8192 / 1,025) = 813,006 tokens."""
    r = _plan(_cfg("openai__gpt-oss-20b"), block_size=16)
    assert (r.kv.bytes_per_block, r.num_gpu_blocks, r.kv.blocks_per_request) == (393_216, 101_725, 1_025)
    assert (r.kv_cache_tokens, r.max_concurrency) == (813_006, 99.24)


def test_llama_4_scout_chunked_local_attention() -> None:
    """Llama-4-Scout: 36 ChunkedLocalAttentionSpec layers (chunk 8192) and 12 full, 8 KV heads x 128 -> 65,536-byte
    pages; groups of 12: 3 chunked + 1 full, 786,432 bytes a block, 40e9 // 786,432 = 50,862 blocks (the 0.32 oracle's
    number). A chunked group at 8,192 holds cdiv(min(8192 + 16,384, 8192), 16) = 512 blocks: 4 x 512 = 2,048 a
    request, 50,862 / 2,048 = 24.83x, int(50,862 x 8192 / 2,048) = 203,448 tokens (the oracle's too)."""
    r = _plan(_cfg("meta-llama__Llama-4-Scout-17B-16E-Instruct"), block_size=16)
    assert [g.kind for g in r.kv.groups] == ["chunked_local", "full"]
    assert (r.kv.num_groups, r.kv.bytes_per_block, r.num_gpu_blocks) == (4, 786_432, 50_862)
    assert (r.kv_cache_tokens, r.max_concurrency) == (203_448, 24.83)


def test_qwen3_next_gated_deltanet_checkpoints_are_new_in_033() -> None:
    """Qwen3-Next-80B, TP=1, H100: 12 full layers (2 KV heads x 256: 2048 bytes a token) and 36 Gated DeltaNet layers
    whose state is conv (2 x 16 x 128 + 32 x 128 = 8192 channels x 3 x 2 bytes = 49,152) + recurrent
    (32 x 128 x 128 x 2 bytes = 1,048,576) = 1,097,728 bytes. Prefix caching is on (align).

    0.32: block = 16 x cdiv(1,097,728, 16 x 2048) = 16 x 34 = 544 (the oracle's page 544 x 2048 = 1,114,112).
    0.33: FlashInfer prefills GDN on Hopper, so the block is also a multiple of 64: 64 x cdiv(1,097,728, 64 x 2048)
    = 64 x 9 = 576; page 576 x 2048 = 1,179,648; groups of 12: 1 full + 3 GDN, 12 x 1,179,648 = 14,155,776 bytes a
    block, 40e9 // 14,155,776 = 2,825 blocks. A request: cdiv(8192, 576) = 15 full blocks + 3 groups x 3 states
    (running, last block-aligned, prefill checkpoint) = 24; 2,825 / 24 = 117.71x, int(2,825 x 8192 / 24) = 964,266.
    An A100 prefills GDN with Triton: no checkpoint, the 0.32 layout (544, 2 states: 16 + 6 = 22 a request)."""
    cfg = _cfg("Qwen__Qwen3-Next-80B-A3B-Instruct")
    r = _plan(cfg)
    assert (r.kv.block_size, r.kv.bytes_per_block, r.num_gpu_blocks) == (576, 14_155_776, 2_825)
    assert [g.blocks_per_request for g in r.kv.groups] == [9, 15]
    assert (r.kv_cache_tokens, r.max_concurrency) == (964_266, 117.71)
    old = _plan(cfg, "0.32.0")
    assert (old.kv.block_size, old.kv.bytes_per_block, old.num_gpu_blocks, old.kv.blocks_per_request) == (
        544,
        13_369_344,
        2_991,
        22,
    )
    a100 = _plan(cfg, gpu=A100)
    assert (a100.kv.block_size, a100.kv.blocks_per_request) == (544, 22)


def test_nemotron_nano_9b_v2_mamba2_hybrid_unchanged_from_032() -> None:
    """NVIDIA-Nemotron-Nano-9B-v2: 4 attention layers (8 KV heads x 128: 4096 bytes a token) and 27 Mamba-2 layers,
    state = conv (128 x 80 + 2 x 8 x 128 = 12,288 channels x 3 x 2 bytes = 73,728) + ssm (128 x 80 x 128 float32 =
    5,242,880) = 5,316,608 bytes. MambaMixer2 declares no checkpoint alignment, so the block stays on the attention
    backend's 16: 16 x cdiv(5,316,608, 16 x 4096) = 16 x 82 = 1,312; page 1,312 x 4096 = 5,373,952. Groups of 4:
    7 Mamba groups (1 padding slot) + 1 attention = 8, 4 x 5,373,952 = 21,495,808 bytes a block, 40e9 // that = 1,860.
    A request: cdiv(8192, 1312) = 7 + 7 groups x 3 states (prefill checkpoint from 0.32) = 28; 1,860 / 28 = 66.43x,
    int(1,860 x 8192 / 28) = 544,182 tokens. The same numbers as 0.32."""
    cfg = json.loads((ORACLE / "families" / "nemotron_h.json").read_text())["models"][
        "nvidia/NVIDIA-Nemotron-Nano-9B-v2"
    ]["config"]
    r = _plan(cfg)
    assert (r.kv.block_size, r.kv.num_groups, r.kv.padding_layers) == (1312, 8, 1)
    assert (r.kv.bytes_per_block, r.num_gpu_blocks, r.kv.blocks_per_request) == (21_495_808, 1_860, 28)
    assert (r.kv_cache_tokens, r.max_concurrency) == (544_182, 66.43)
    old = _plan(cfg, "0.32.0")
    assert (old.kv.bytes_per_block, old.num_gpu_blocks, old.kv_cache_tokens) == (21_495_808, 1_860, 544_182)


def test_deepseek_v3_mla_and_v3_2_sparse_mla() -> None:
    """DeepSeek-V3 (MLA), TP=8, Hopper: FLASH_ATTN_MLA (kernel blocks MultipleOf(16)) keeps the default 16-token block;
    a token is the 512 + 64 latent in bf16 = 1152 bytes, a page 18,432, 61 layers -> 1,124,352 bytes a block,
    40e9 // 1,124,352 = 35,576 blocks; 512 a request: 69.48x, 569,216 tokens.
    DeepSeek-V3.2 (sparse MLA): every sparse backend pages in MultipleOf(64) (0.33's new FA4 sparse backend too), so
    64-token blocks; a token holds the 1152-byte latent plus the indexer's 132-byte key (128 fp8 + one fp32 scale):
    64 x 1284 = 82,176 bytes a layer, 61 layers -> 5,012,736 bytes a block, 40e9 // 5,012,736 = 7,979 blocks; 128
    blocks a request: 62.34x, int(7,979 x 8192 / 128) = 510,656 tokens."""
    r = _plan(_cfg("deepseek-ai__DeepSeek-V3"), tensor_parallel_size=8)
    assert (r.kv.block_size, r.kv.bytes_per_block, r.num_gpu_blocks, r.kv_cache_tokens) == (
        16,
        1_124_352,
        35_576,
        569_216,
    )
    v32 = json.loads((ORACLE / "defaults" / "deepseek_v32.json").read_text())["config"]
    v32 = {**v32, "architectures": ["DeepseekV32ForCausalLM"], "torch_dtype": "bfloat16"}
    s = _plan(v32, tensor_parallel_size=8)
    assert (s.kv.block_size, s.kv.bytes_per_block, s.num_gpu_blocks) == (64, 5_012_736, 7_979)
    assert (s.kv.blocks_per_request, s.kv_cache_tokens, s.max_concurrency) == (128, 510_656, 62.34)


def test_gb10_gets_the_small_batch_defaults() -> None:
    """A DGX Spark (GB10, compute capability 12.1, 121.7 GiB) runs the small tier: 2048 batched tokens and 256
    sequences. 0.33 (arg_utils.py, is_gb10) says so outright; before it the tier came from NVML's memory total, which
    a GB10 does not report, and every public GB10 log (0.11-0.18) shows the small tier (test_unified_memory.py).
    gemma-3-27b-it with 40e9 bytes of KV (the 30,517-block layout above): a sliding group holds
    cdiv(min(1023 + 2 x 2048, 8192), 16) + 1 = 320 + 1 = 321 blocks, so a request takes 6 x 321 + 512 = 2,438:
    30,517 / 2,438 = 12.52x and int(30,517 x 8192 / 2,438) = 102,541 tokens (an H100's tier: 3,590, 8.50x)."""
    cfg = _cfg("google__gemma-3-27b-it")
    old, new = _plan(cfg, "0.32.0", gpu=GB10), _plan(cfg, gpu=GB10)
    assert (old.max_num_batched_tokens, old.max_num_seqs, old.kv.blocks_per_request) == (2048, 256, 2438)
    assert (new.max_num_batched_tokens, new.max_num_seqs) == (2048, 256)
    assert [g.blocks_per_request for g in new.kv.groups] == [6 * 321, 512]
    assert (new.num_gpu_blocks, new.kv_cache_tokens, new.max_concurrency) == (30_517, 102_541, 12.52)
    # an H100-class GPU keeps the large tier in 0.33
    assert _plan(cfg).max_num_batched_tokens == 8192


def test_does_gemma_3_27b_serve_32k_on_a_dgx_spark_with_033() -> None:
    """The user's question on vLLM 0.33's defaults: gemma-3-27b-it at 32K on one DGX Spark. It starts (the name alone
    finds the GB10 and its compute capability), and with the small tier's 2048-token batches a request needs far
    fewer sliding blocks than on an H100-class tier of 8192, so the same KV memory serves more 32K requests."""
    spec = build_spec(_cfg("google__gemma-3-27b-it"))
    new = api_estimate(spec, gpu="GB10", max_model_len=32768, vllm_version="0.33.0")
    big = api_estimate(spec, gpu="GB10", max_model_len=32768, vllm_version="0.33.0", max_num_batched_tokens=8192,
                       max_num_seqs=1024)
    assert new.fits and new.max_num_batched_tokens == 2048
    assert new.kv.groups[0].blocks_per_request == 6 * 321  # cdiv(min(1023 + 4096, 32768), 16) + 1 per group
    assert big.kv.groups[0].blocks_per_request == 6 * (-(-(1023 + 16384) // 16) + 1)  # 6 x 1089
    assert new.max_concurrency > big.max_concurrency


def test_gemma_3_27b_at_128k_needs_its_padding_slots_too() -> None:
    """The one-request check counts every group's pages in all group_size pools, padding slots included
    (_max_memory_usage_bytes_from_groups, 0.14-0.33): gemma-3-27b-it at 131,072 tokens on an H100 (8192 batched
    tokens, 2 batches in flight) takes 6 x (cdiv(1023 + 16,384, 16) + 1) + 8192 = 6 x 1089 + 8192 = 14,726 blocks of
    1,310,720 bytes, plus the null block 0.29+ holds back: 14,727 x 1,310,720 = 19,302,973,440 bytes (17.98 GiB).
    Summing the 62 real layers instead gives 16.91 GiB, so an 18.0 GiB budget looked big enough; it is not. 0.13
    still summed real layers (check_enough_kv_cache_memory)."""
    cfg = _cfg("google__gemma-3-27b-it")
    need = 14_727 * 1_310_720
    tight = _plan(cfg, max_model_len=131_072, kv_cache_memory_bytes=need - 1)
    assert not tight.fits and "17.98 GiB KV cache is needed" in tight.reason
    assert _plan(cfg, max_model_len=131_072, kv_cache_memory_bytes=need).fits
    old = _plan(cfg, "0.13.0", max_model_len=131_072, kv_cache_memory_bytes=need - 1)
    assert old.fits  # 0.13 summed real layers: 16.91 GiB


def test_a_b200_gets_the_largest_batch_defaults_from_0_28() -> None:
    """engine/arg_utils.py: a GPU of >= 160 GiB defaults to 16,384 batched tokens and 1024 sequences, served or
    offline, from 0.28 (0.27.1 knew only the >= 70 GiB tier: 8192 served)."""
    cfg = _cfg("meta-llama__Llama-3.1-8B-Instruct")
    b200 = dict(gpu_name="B200", gpu_memory_bytes=191_000_000_000, compute_capability=10.0)
    assert _plan(cfg, "0.27.1", gpu=b200).max_num_batched_tokens == 8192
    assert (_plan(cfg, "0.28.0", gpu=b200).max_num_batched_tokens, _plan(cfg, "0.28.0", gpu=b200).max_num_seqs) \
        == (16384, 1024)


def test_a_single_user_server_with_a_short_context_profiles_only_one_context() -> None:
    """engine/arg_utils.py (0.11.1+): a defaulted max_num_batched_tokens stops at max_num_seqs x max_model_len, and
    a defaulted max_num_seqs at max_num_batched_tokens. --max-num-seqs 1 --max-model-len 4096 on an H100 server
    profiles 4096 tokens, not the tier's 8192 (0.11.0 still took 8192); --max-num-batched-tokens 512 leaves 512
    sequences of the tier's 1024."""
    cfg = _cfg("meta-llama__Llama-3.1-8B-Instruct")
    single = _plan(cfg, max_num_seqs=1, max_model_len=4096, api_server=True)
    assert (single.max_num_seqs, single.max_num_batched_tokens) == (1, 4096)
    assert _plan(cfg, "0.11.0", max_num_seqs=1, max_model_len=4096, api_server=True).max_num_batched_tokens == 8192
    small_batches = _plan(cfg, max_num_batched_tokens=512, api_server=True)
    assert (small_batches.max_num_seqs, small_batches.max_num_batched_tokens) == (512, 512)
    assert _plan(cfg, "0.11.0", max_num_batched_tokens=512, api_server=True).max_num_seqs == 1024


def test_pipeline_stages_on_the_v2_runner_keep_one_more_batch_of_sliding_blocks() -> None:
    """VllmConfig.max_concurrent_batches with async scheduling: the V2 model runner keeps pp + 1 batches in flight,
    the V1 runner pp (it does not overlap with pipeline stages). gpt-oss-20b, PP=2, 32K, 8192 batched tokens: a
    sliding layer (window 128) holds cdiv(127 + 3 x 8192, 16) + 1 = 1545 blocks on the V2 runner (vLLM's default
    for it in 0.33) and cdiv(127 + 2 x 8192, 16) + 1 = 1033 on the V1 runner (VLLM_USE_V2_MODEL_RUNNER=0)."""
    cfg = _cfg("openai__gpt-oss-20b")
    v2 = _plan(cfg, pipeline_parallel_size=2, max_model_len=32768, block_size=16)
    v1 = _plan(cfg, pipeline_parallel_size=2, max_model_len=32768, block_size=16,
               env=(("VLLM_USE_V2_MODEL_RUNNER", "0"),))
    sliding = [g.blocks_per_request for g in v2.kv.groups if g.kind == "sliding_window"]
    assert sliding and all(b % 1545 == 0 for b in sliding)
    assert all(b % 1033 == 0 for g in v1.kv.groups if g.kind == "sliding_window" for b in [g.blocks_per_request])
    assert v2.max_concurrency < v1.max_concurrency
