from __future__ import annotations

from pathlib import Path

import pytest

from gpuplan.hub import CheckpointInfo, CheckpointTensor, checkpoint_tensors, load_reference, map_checkpoint
from gpuplan.hub.tensors import PREFIX_KINDS, ROLE_RULES, classify, layer_index
from gpuplan.model.spec import PARALLEL_KINDS, TENSOR_KINDS

FIX = Path(__file__).parent / "fixtures" / "hub"


@pytest.mark.parametrize(("name", "kind", "parallel"), [
    ("model.embed_tokens.weight", "embedding", "vocab"),
    ("transformer.wte.weight", "embedding", "vocab"),
    ("lm_head.weight", "lm_head", "vocab"),
    ("model.layers.3.input_layernorm.weight", "norm", "replicated"),
    ("model.layers.3.self_attn.q_norm.weight", "norm", "replicated"),
    ("model.layers.3.self_attn.q_proj.weight", "attention", "column"),
    ("model.layers.3.self_attn.k_proj.weight", "attention", "kv"),
    ("model.layers.3.self_attn.v_proj.bias", "attention", "kv"),
    ("model.layers.3.self_attn.o_proj.weight", "attention", "row"),
    ("model.layers.3.self_attn.qkv_proj.weight", "attention", "column"),
    ("gpt_neox.layers.0.attention.query_key_value.weight", "attention", "column"),
    ("gpt_neox.layers.0.attention.dense.weight", "attention", "row"),
    ("model.layers.0.self_attn.q_a_proj.weight", "attention", "replicated"),
    ("model.layers.0.self_attn.kv_a_proj_with_mqa.weight", "attention", "replicated"),
    ("model.layers.0.self_attn.kv_b_proj.weight", "attention", "column"),
    ("model.layers.0.self_attn.sinks", "attention", "head"),
    ("model.layers.0.mlp.gate_proj.weight", "mlp", "column"),
    ("model.layers.0.mlp.up_proj.qweight", "mlp", "column"),
    ("model.layers.0.mlp.down_proj.weight", "mlp", "row"),
    ("transformer.h.0.mlp.dense_4h_to_h.weight", "mlp", "row"),
    ("transformer.h.0.mlp.c_fc.weight", "mlp", "column"),
    ("model.layers.1.mlp.gate.weight", "router", "replicated"),
    ("model.layers.1.block_sparse_moe.gate.weight", "router", "replicated"),
    ("model.layers.1.mlp.gate.e_score_correction_bias", "router", "replicated"),
    ("model.layers.1.mlp.router.bias", "router", "replicated"),
    ("model.layers.1.block_sparse_moe.experts.7.w1.weight", "experts", "expert_col"),
    ("model.layers.1.block_sparse_moe.experts.7.w3.weight", "experts", "expert_col"),
    ("model.layers.1.block_sparse_moe.experts.7.w2.weight", "experts", "expert_row"),
    ("model.layers.1.mlp.experts.12.gate_proj.weight", "experts", "expert_col"),
    ("model.layers.1.mlp.experts.12.down_proj.weight_scale_inv", "experts", "expert_row"),
    ("model.layers.1.feed_forward.experts.gate_up_proj", "experts", "expert_col"),
    ("model.layers.1.feed_forward.experts.down_proj", "experts", "expert_row"),
    ("model.layers.1.mlp.experts.gate_up_proj_blocks", "experts", "expert_col"),
    ("model.layers.1.mlp.experts.down_proj_scales", "experts", "expert_row"),
    ("model.layers.1.mlp.shared_experts.gate_proj.weight", "shared_experts", "column"),
    ("model.layers.1.mlp.shared_expert.down_proj.weight", "shared_experts", "row"),
    ("model.layers.1.mlp.shared_expert_gate.weight", "shared_experts", "replicated"),
    ("model.layers.0.self_attn.rotary_emb.inv_freq", "other", "skip"),
    ("blk.0.attn_q.weight", "attention", "column"),
    ("blk.0.attn_k.weight", "attention", "kv"),
    ("blk.0.attn_output.weight", "attention", "row"),
    ("blk.0.ffn_gate_inp.weight", "router", "replicated"),
    ("blk.0.ffn_gate_exps.weight", "experts", "expert_col"),
    ("blk.0.ffn_down_exps.weight", "experts", "expert_row"),
    ("blk.0.ffn_up_shexp.weight", "shared_experts", "column"),
    ("token_embd.weight", "embedding", "vocab"),
    ("output.weight", "lm_head", "vocab"),
    ("output_norm.weight", "norm", "replicated"),
    ("model.L_module.layers.2.attn.gqkv_proj.weight", "attention", "column"),  # HRM-Text
    ("model.H_module.layers.2.self_attn.gate_proj.weight", "attention", "column"),
    ("model.gate_projections.17.weight", "attention", "column"),  # IQuest-Coder Loop
    ("model.gate_projections.17.bias", "attention", "column"),
    ("something.unheard_of", "other", "replicated"),
])
def test_classify(name: str, kind: str, parallel: str) -> None:
    assert classify(name) == (kind, parallel)


def test_tables_use_known_kinds() -> None:
    for _, kind, parallel in ROLE_RULES:
        assert kind in TENSOR_KINDS and (parallel in PARALLEL_KINDS or parallel == "skip")
    for _, kind in PREFIX_KINDS:
        assert kind in TENSOR_KINDS


def test_layer_index() -> None:
    assert layer_index("model.layers.12.mlp.up_proj.weight") == 12
    assert layer_index("blk.3.attn_q.weight") == 3
    assert layer_index("transformer.h.0.attn.c_attn.weight") == 0
    assert layer_index("lm_head.weight") is None


def _info(tensors: list[tuple[str, str, tuple[int, ...]]], **config: object) -> CheckpointInfo:
    from gpuplan.hub import dtype_nbytes

    ts = tuple(CheckpointTensor(n, d, s, dtype_nbytes(d, s) or 0) for n, d, s in tensors)
    return CheckpointInfo(ref="x", source="local", config=dict(config), tensors=ts)


def test_tiny_llama_mapping() -> None:
    info = load_reference(str(FIX / "tiny-llama"))
    m = map_checkpoint(info)
    by = {t.name: t for t in m.tensors}
    k = by["model.layers.0.self_attn.k_proj.weight"]
    assert (k.parallel, k.heads, k.dtype, k.stored, k.linear) == ("kv", 2, "float16", True, True)
    assert by["model.layers.0.input_layernorm.weight"].linear is False
    assert {t.name for t in m.skipped} == {f"model.layers.{i}.self_attn.rotary_emb.inv_freq" for i in (0, 1)}
    assert all(t.stored for t in m.tensors)
    assert checkpoint_tensors(info) == m.tensors


def test_row_biases_and_scalar_scales_are_replicated() -> None:
    info = _info([
        ("model.layers.0.self_attn.o_proj.weight", "fp8", (64, 64)),
        ("model.layers.0.self_attn.o_proj.weight_scale", "float32", ()),
        ("model.layers.0.self_attn.o_proj.bias", "bfloat16", (64,)),
        ("model.layers.0.mlp.down_proj.weight_scale", "float32", (64, 1)),
        ("model.layers.0.mlp.down_proj.g_idx", "int32", (128,)),
        ("model.layers.0.self_attn.q_proj.bias", "bfloat16", (64,)),
        ("model.layers.0.self_attn.q_proj.input_scale", "float32", (1,)),
    ], num_hidden_layers=1, num_key_value_heads=2)
    par = {t.name.split(".", 3)[-1]: t.parallel for t in checkpoint_tensors(info)}
    assert par == {
        "self_attn.o_proj.weight": "row",
        "self_attn.o_proj.weight_scale": "replicated",
        "self_attn.o_proj.bias": "replicated",
        "mlp.down_proj.weight_scale": "replicated",
        "mlp.down_proj.g_idx": "row",
        "self_attn.q_proj.bias": "column",
        "self_attn.q_proj.input_scale": "replicated",
    }


def test_deepseek_mtp_layers_are_skipped() -> None:
    info = _info([
        ("model.layers.0.self_attn.kv_a_proj_with_mqa.weight", "fp8", (576, 7168)),
        ("model.layers.61.eh_proj.weight", "fp8", (7168, 14336)),
        ("model.layers.61.self_attn.kv_a_proj_with_mqa.weight", "fp8", (576, 7168)),
    ], num_hidden_layers=61, num_nextn_predict_layers=1, kv_lora_rank=512)
    m = map_checkpoint(info)
    assert [t.name for t in m.tensors] == ["model.layers.0.self_attn.kv_a_proj_with_mqa.weight"]
    assert {t.kind for t in m.skipped} == {"mtp"}
    assert any("MTP" in n for n in m.notes)


def test_pangu_num_mtp_layers_marks_the_extra_layers_as_mtp() -> None:
    info = _info([
        ("model.layers.0.mlp.down_proj.weight", "bfloat16", (4096, 11008)),
        ("model.layers.4.mlp.down_proj.weight", "bfloat16", (4096, 11008)),
    ], num_hidden_layers=4, num_mtp_layers=1)
    m = map_checkpoint(info)
    assert [t.name for t in m.tensors] == ["model.layers.0.mlp.down_proj.weight"]
    assert {t.kind for t in m.skipped} == {"mtp"}


def test_tied_lm_head_is_skipped_and_noted() -> None:
    info = _info([("model.embed_tokens.weight", "bfloat16", (128, 16)),
                  ("lm_head.weight", "bfloat16", (128, 16))], tie_word_embeddings=True)
    m = map_checkpoint(info)
    assert [t.name for t in m.skipped] == ["lm_head.weight"]
    assert any("tied" in n for n in m.notes)


def test_vision_tower_and_nested_text_config() -> None:
    info = _info([
        ("vision_tower.vision_model.encoder.layers.0.self_attn.k_proj.weight", "bfloat16", (1152, 1152)),
        ("multi_modal_projector.linear_1.weight", "bfloat16", (4096, 1152)),
        ("language_model.model.layers.0.self_attn.k_proj.weight", "bfloat16", (1024, 4096)),
    ], text_config={"num_key_value_heads": 8, "num_hidden_layers": 1})
    by = {t.name.split(".")[0]: t for t in checkpoint_tensors(info)}
    assert (by["vision_tower"].kind, by["vision_tower"].parallel, by["vision_tower"].heads) == ("vision", "column", 0)
    assert by["multi_modal_projector"].kind == "projector"
    assert (by["language_model"].kind, by["language_model"].parallel, by["language_model"].heads) == \
        ("attention", "kv", 8)


def test_config_only_has_no_tensors() -> None:
    info = CheckpointInfo(ref="x", source="config", config={})
    assert checkpoint_tensors(info) == ()
