"""Qwen3-VL, Qwen3-VL-MoE, Qwen3.5 and Qwen3.5-MoE: text tower, vision tower and the Gated-DeltaNet KV side.

Fixtures (tests/fixtures/oracle/families/<model_type>.json): real checkpoint configs (source recorded per case) and
transformers' default configs, with the parameter count transformers 5.23 builds for them on the meta device.
vLLM-specific facts are pinned below with the vLLM 0.19 source file they come from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec
from gpuplan.units import GiB

FAMILIES = Path(__file__).parent / "fixtures" / "oracle" / "families"
TYPES = ("qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe")
CASES = [(mt, c) for mt in TYPES for c in json.loads((FAMILIES / f"{mt}.json").read_text())["cases"]]
H100 = dict(gpu_name="H100", gpu_memory_bytes=85_029_158_912)


def _case(name: str) -> dict:
    return next(c for _, c in CASES if c["name"] == name)


@pytest.mark.parametrize("mt,case", CASES, ids=[c["name"] for _, c in CASES])
def test_qwen3_vl_and_qwen3_5_count_exactly_what_transformers_builds(mt: str, case: dict) -> None:
    spec = build_spec(case["config"])
    assert not spec.generic
    assert spec.model_type == mt
    assert spec.total_params == case["total_params"]
    assert spec.param_counts()["vision"] == case["visual_params"]
    assert spec.multimodal is not None and spec.multimodal.params == case["visual_params"]


def test_qwen3_vl_4b_counts_its_vision_tower_and_deepstack_mergers() -> None:
    cfg = _case("Qwen/Qwen3-VL-4B-Instruct")["config"]
    spec = build_spec(cfg)
    without_deepstack = build_spec({**cfg, "vision_config": {**cfg["vision_config"], "deepstack_visual_indexes": []}})
    # each deepstack merger: LayerNorm over the merged width (4 x 1024), fc1 4096 x 4096 (+bias), fc2 4096 -> 2560
    m = 4 * 1024
    assert spec.total_params - without_deepstack.total_params == 3 * (2 * m + m * m + m + 2560 * m + 2560)
    # models/qwen3_vl.py: Qwen3VLForConditionalGeneration.__init__ allocates deepstack_input_embeds, one
    # [max_num_batched_tokens, text hidden] buffer per deepstack level, at load time
    assert [(t.name, t.width) for t in spec.token_buffers] == [("deepstack_input_embeds", 3 * 2560)]
    assert not without_deepstack.token_buffers


def test_qwen3_vl_vision_tower_is_sharded_like_vllm_tensor_parallel_layers() -> None:
    """Each block's qkv and linear_fc1 are column-parallel, proj and linear_fc2 row-parallel (as are the mergers'
    fc1 / fc2); the column Linears' biases split with them; norms, row biases, the patch conv and the position
    embedding are whole on every rank."""
    spec = build_spec(_case("Qwen/Qwen3-VL-4B-Instruct")["config"])
    linears = {t.name.removesuffix(".weight").rsplit(".", 1)[-1]: t.parallel for t in spec.extra if t.linear}
    assert linears == {"qkv": "column", "proj": "row", "linear_fc1": "column", "linear_fc2": "row"}
    lumps = {t.name: t.parallel for t in spec.extra if not t.linear}
    assert lumps == {"visual.column_biases": "column", "visual.norms_biases_embeddings": "replicated"}


def test_a_text_only_qwen3_vl_config_is_the_qwen3_text_model() -> None:
    cfg = _case("Qwen/Qwen3-VL-30B-A3B-Instruct")["config"]
    spec = build_spec({k: v for k, v in cfg.items() if k != "vision_config"})
    assert spec.multimodal is None and spec.is_moe
    assert spec.total_params == _case("Qwen/Qwen3-VL-30B-A3B-Instruct")["total_params"] - 538_631_408


def test_qwen3_5_27b_interleaves_three_gated_deltanet_layers_with_one_full_attention_layer() -> None:
    spec = build_spec(_case("Qwen/Qwen3.5-27B")["config"])
    assert spec.attention_kinds == {"mamba": 48, "full": 16}
    full = next(la for la in spec.layers if la.attention.kind == "full")
    q = next(t for t in full.tensors if t.name.endswith("q_proj"))
    assert q.shape == (2 * 24 * 256, 5120)  # gated attention: q_proj also emits the output gate
    assert not spec.is_moe


def test_qwen3_5_mtp_layers_are_in_the_checkpoint_but_not_loaded() -> None:
    # models/qwen3_5.py: load_weights skips "mtp." (the MTP module is loaded only as a speculative drafter)
    spec = build_spec(_case("Qwen/Qwen3.5-35B-A3B")["config"])
    assert [t.kind for t in spec.extra_not_loaded] == ["mtp"]
    assert "mtp" not in spec.param_counts()


@pytest.mark.parametrize("tp,page", [(1, 2_162_688), (2, 1_081_344)])
def test_qwen3_5_35b_a3b_gdn_state_sets_a_1056_token_attention_block(tp: int, page: int) -> None:
    spec = build_spec(_case("Qwen/Qwen3.5-35B-A3B")["config"])
    r = estimate(spec, Deployment(**H100, tensor_parallel_size=tp, max_model_len=8192, kv_cache_memory_bytes=10 * GiB,
                                  vllm_version="0.19.0"))
    # mamba_utils.py gated_delta_net_state_shape: conv (3, (2*16*128 + 32*128)/tp) in bf16 and temporal
    # (32/tp, 128, 128) in fp32: models/config.py Qwen3_5ForConditionalGenerationConfig takes mamba_ssm_dtype
    # from the config
    state = (3 * 8192 * 2 + 32 * 128 * 128 * 4) // tp
    attn_per_token = max(1, 2 // tp) * 256 * 2 * 2
    assert r.kv.block_size == 16 * -(-state // (16 * attn_per_token)) == 1056
    assert {g.kind for g in r.kv.groups} == {"mamba", "full"}
    assert all(g.page_bytes == page for g in r.kv.groups)
