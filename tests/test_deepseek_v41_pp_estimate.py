"""DeepSeek-V4.1-Flash through gpuplan's estimate under pipeline parallelism (vLLM 0.33, Hopper).

Config: tests/fixtures/oracle/families/deepseek_v41.json (deepseek-ai/DeepSeek-V4.1-Flash, 40 decoder layers; its
compress_ratios list has 43 entries, the last 3 for the MTP / DSpark stages the main model does not build).

Stage split. DeepseekV4Model calls make_layers(config.num_hidden_layers = 40, ...) (nvidia/model.py:820), which keeps
layers get_pp_indices(40, rank, pp) (distributed/utils.py:198-240): 40 // pp a stage, the remainder one each to
stages pp-2, pp-3, ... (VLLM_PP_LAYER_PARTITION overrides it; gpuplan does not read that variable).
  PP 2: 20 + 20 -> [0, 20), [20, 40).   PP 3: 13 rem 1 -> 13, 14, 13 -> [0, 13), [13, 27), [27, 40).
Had the 43 entries of compress_ratios been taken as the layer count, PP 2 would split 22 + 21: it is not.
For other layer counts the same rule gives (gpuplan's weights.pp_partition, checked below): 61 layers at PP 2 ->
31 + 30, at PP 4 -> 15 rem 1 -> 15, 15, 16, 15; 43 layers at PP 2 -> 22 + 21, at PP 4 -> 10 rem 3 -> 11, 11, 11, 10.

Weights per rank at TP 8, PP 2 on H200s (132 SMs; max_num_batched_tokens 8192): tests/test_deepseek_v41_pp.py adds
them up part by part: stage 0 25,947,213,472 B (both rotary caches 2 x 268,435,456, top-k 8192 x 512 x 4 =
16,777,216 + candidate blocks 8192 x 2048 x 4 = 67,108,864 + the engram staged rows of layers 1 and 14
2 x 8192 x cdiv(24, 8) x 256 x 2 = 2 x 12,582,912, NgramHashState 517,952, embedding, vision tower), stage 1
25,472,653,408 B (the YaRN cache only, top-k + candidate 83,886,080, final norm and lm_head). The estimate now
places them itself: the spec's RopeCache.layers / TokenBuffer.layers / Tensor.on_layers.

KV per stage at 1M tokens (tests/test_deepseek_v41_pp.py has the groups): bytes per block 98,304 on stage 0 (its
compressor rings, 3 x 32,768, are its widest group) and 57,024 on stage 1 (a window group, 3 x 19,008). With PP 2
vLLM 0.33 keeps pp + 1 = 3 batches in flight (config/vllm.py:588-598: async scheduling under Model Runner V2), so a
1,048,576-token request takes 7 window groups x (cdiv(127 + 3 x 8192, 32) + 1 = 773) + 1048576 / 64 = 16,384
compressed blocks + 1 ring block = 21,796 blocks, on either stage (a group keeps its spec on a stage without its
layers). Each stage gets available // its bytes per block blocks; the engine keeps the smallest count
(kv_cache_planning.py:1580-1594) and logs tokens = int(count / 21,796 x 1,048,576), concurrency = count / 21,796
(kv_cache_utils.py:1120-1155).
"""

import json
from pathlib import Path

import gpuplan.api_python as api
import gpuplan.engines.vllm.kv_recipes.deepseek_v41  # noqa: F401  (registers the cache recipe)
import gpuplan.model.adapters_deepseek_v41 as v41
from gpuplan.engines.vllm.weights import Sharding, pp_partition

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "deepseek_v41.json").read_text())
OUTER = FX["models"]["deepseek-ai/DeepSeek-V4.1-Flash"]["config"]
SPEC = v41.model_spec(OUTER, "deepseek-ai/DeepSeek-V4.1-Flash", 129280)
H200 = Sharding(8, 8, 1, compute_capability=9.0, sm_count=132)  # H100 SXM: the same 132 SMs
MILLION = 1_048_576  # max_position_embeddings
PER_REQUEST = 7 * 773 + 16_384 + 1  # 21,796 blocks for one 1M-token request at PP 2


def _pp(gpu: str, pp: int, length: int = MILLION):
    return api.estimate(SPEC, gpu=gpu, tensor_parallel_size=8, pipeline_parallel_size=pp, max_model_len=length)


def test_estimate_at_tp8_pp2_on_h200_holds_each_stages_own_weights():
    r = _pp("H200", 2)
    s0, s1 = r.per_stage
    assert (tuple(s0["layers"]), tuple(s1["layers"])) == ((0, 20), (20, 40))
    assert (s0["weights_bytes"], s1["weights_bytes"]) == (25_947_213_472, 25_472_653_408)
    assert r.weights_bytes == 25_947_213_472  # "Model loading took" of the first worker
    b0, b1 = s0["weights_by_kind"], s1["weights_by_kind"]
    assert (b0["rope_cache"], b1["rope_cache"]) == (2 * 268_435_456, 268_435_456)
    assert (b0["buffers"], b1["buffers"]) == (16_777_216 + 67_108_864 + 2 * 12_582_912, 16_777_216 + 67_108_864)
    assert "embedding" in b0 and "vision" in b0 and "lm_head" not in b0
    assert "lm_head" in b1 and "embedding" not in b1 and "vision" not in b1
    # the independent reading of what each stage builds (stage_residents) agrees
    assert [st["weights_bytes"] for st in r.per_stage] == [
        w.total for w in v41.pipeline_stage_weights(OUTER, SPEC, H200, 2, r.max_num_batched_tokens)]


def test_kv_is_planned_per_stage_and_the_engine_keeps_the_smaller_block_count():
    r = _pp("H200", 2)
    s0, s1 = r.per_stage
    assert s0["num_blocks"] == s0["available_bytes"] // 98_304
    assert s1["num_blocks"] == s1["available_bytes"] // 57_024
    assert s0["num_blocks"] < s1["num_blocks"]  # stage 0's wider blocks limit the engine
    kv = r.kv
    assert kv.num_gpu_blocks == min(s0["num_blocks"], s1["num_blocks"]) == s0["num_blocks"]
    assert kv.bytes_per_block == 98_304 and kv.blocks_per_request == PER_REQUEST == 21_796
    assert kv.kv_cache_tokens == int(kv.num_gpu_blocks / PER_REQUEST * MILLION)
    assert round(kv.max_concurrency, 2) == round(kv.num_gpu_blocks / PER_REQUEST, 2)


def test_three_stages_split_40_layers_13_14_13_as_vllm_does():
    r = _pp("H200", 3)
    assert [tuple(st["layers"]) for st in r.per_stage] == [(0, 13), (13, 27), (27, 40)]
    assert [st["weights_bytes"] for st in r.per_stage] == [
        w.total for w in v41.pipeline_stage_weights(OUTER, SPEC, H200, 3, r.max_num_batched_tokens)]
    # stage 0 (layers 0-12) keeps both rotary caches, stages 1 and 2 (all compressed) the YaRN one only
    assert [st["weights_by_kind"]["rope_cache"] for st in r.per_stage] == [536_870_912, 268_435_456, 268_435_456]


def test_default_split_for_61_and_43_layers_is_get_pp_indices():
    assert pp_partition(40, 2) == [(0, 20), (20, 40)]
    assert pp_partition(61, 2) == [(0, 31), (31, 61)]
    assert pp_partition(61, 4) == [(0, 15), (15, 30), (30, 46), (46, 61)]
    assert pp_partition(43, 2) == [(0, 22), (22, 43)]
    assert pp_partition(43, 4) == [(0, 11), (11, 22), (22, 33), (33, 43)]


def test_does_v41_flash_fit_2_nodes_of_8_h100_at_tp8_pp2_with_1m_context():
    """Yes, with room for about 22 concurrent 1M-token requests (one node, TP 8, PP 1: about 9.7).

    Per H100 (85,029,158,912 B, gpu_memory_utilization 0.92: a 78,226,826,200 B budget), stage 0 holds
    25,947,213,472 B of weights; after its activation peak and CUDA graphs (gpuplan's calibrated terms, ~3.7 GB)
    about 47.9 GB are left for KV: ~486,800 blocks of 98,304 B. Stage 1 (weights 25,472,653,408 B) has about the same
    left but blocks of 57,024 B: ~840,900 blocks. The engine keeps stage 0's count: 486,800 / 21,796 = ~22.3
    requests of 1,048,576 tokens. At PP 1 the single stage holds 51,067,545,344 B of weights, its blocks are 116,928 B
    and a request takes 20,004 of them (two batches in flight): ~194,500 blocks, ~9.7 requests."""
    two_nodes = _pp("H100", 2)
    assert two_nodes.fits and two_nodes.num_gpus == 16
    assert two_nodes.weights_bytes == 25_947_213_472
    assert two_nodes.kv.num_gpu_blocks == two_nodes.per_stage[0]["num_blocks"]  # stage 0 limits
    assert 20 < two_nodes.kv.max_concurrency < 25
    one_node = _pp("H100", 1)
    assert one_node.fits and one_node.weights_bytes == 51_067_545_344
    assert one_node.kv.bytes_per_block == 116_928 and one_node.kv.blocks_per_request == 20_004
    assert 8 < one_node.kv.max_concurrency < 11 < 2 * one_node.kv.max_concurrency < two_nodes.kv.max_concurrency
