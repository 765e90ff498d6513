"""The GPT-2-era decoders vLLM still serves (OPT, GPT-2, GPT-BigCode, BLOOM, GPT-J) are sized from their own
layouts, not the generic Llama fallback.

Fixtures: tests/fixtures/oracle/families/{opt,gpt2,gpt_bigcode,bloom,gptj}.json hold real configs (sources in
each entry), transformers 5.23's exact parameter count for each (`hf_params`, meta device) and, where vLLM's
meta-device oracle could build the model, what vLLM loads (`vllm_meta`: weight bytes with the vocabulary padded
to 64, KV heads / head size / page bytes per layer at block 16). Layout details are from vLLM 0.19's
vllm/model_executor/models/{opt,gpt2,gpt_bigcode,bloom,gpt_j}.py.
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
TYPES = ("opt", "gpt2", "gpt_bigcode", "bloom", "gptj")
CASES = [(mt, key, entry) for mt in TYPES
         for key, entry in json.loads((FAMILIES / f"{mt}.json").read_text())["models"].items()]
VLLM = [c for c in CASES if "vllm_meta" in c[2]]
H100 = dict(gpu_name="H100", gpu_memory_bytes=85_029_158_912)


def _config(key: str) -> dict:
    return next(e["config"] for _, k, e in CASES if k == key)


def _tensor(spec, name: str):
    tensors = list(spec.embedding) + list(spec.head) + [t for layer in spec.layers[:1] for t in layer.tensors]
    return next(t for t in tensors if t.name == name)


@pytest.mark.parametrize(("model_type", "key", "entry"), CASES, ids=[c[1] for c in CASES])
def test_each_real_config_counts_exactly_what_transformers_builds(model_type: str, key: str, entry: dict) -> None:
    spec = build_spec(entry["config"])
    assert spec.model_type == model_type and not spec.generic
    assert spec.total_params == entry["hf_params"]


@pytest.mark.parametrize(("model_type", "key", "entry"), VLLM, ids=[c[1] for c in VLLM])
def test_weights_and_kv_pages_equal_what_vllm_builds(model_type: str, key: str, entry: dict) -> None:
    spec = build_spec(entry["config"])
    r = estimate(spec, Deployment(**H100, max_model_len=1024, kv_cache_memory_bytes=GiB, vllm_version="0.19.0"))
    v = entry["vllm_meta"]
    assert r.dtype == v["dtype"]
    # vLLM's weights_meta counts parameters only; GPT-J also holds its rotary cos/sin cache buffer.
    rope = sum(c.positions * c.rotary_dim * 2 for c in spec.rope_caches)
    assert r.weights_bytes == v["bytes"] + rope
    assert spec.num_kv_heads == v["num_kv_heads"] and spec.head_dim == v["head_size"]
    assert r.kv.bytes_per_block == v["num_kv_layers"] * v["page_size_bytes_block16"]


def test_opt_125m_counts_its_learned_positions_with_the_offset_of_two_rows() -> None:
    spec = build_spec(_config("facebook/opt-125m"))
    # opt.py OPTLearnedPositionalEmbedding: num_embeddings + 2, a plain (replicated) nn.Embedding
    pos = _tensor(spec, "model.decoder.embed_positions.weight")
    assert pos.shape == (2048 + 2, 768) and pos.parallel == "replicated"
    assert spec.tie_word_embeddings and spec.total_params == 125_239_296
    assert spec.max_model_len_limit == 2048


def test_opt_350m_projects_its_512_wide_embeddings_in_and_out_and_has_no_final_layernorm() -> None:
    spec = build_spec(_config("facebook/opt-350m"))
    names = {t.name for t in spec.embedding + spec.head}
    assert _tensor(spec, "model.decoder.embed_tokens.weight").shape == (50272, 512)
    assert _tensor(spec, "model.decoder.project_in").shape == (1024, 512)
    assert _tensor(spec, "model.decoder.project_out").shape == (512, 1024)
    # do_layer_norm_before is false: OPTDecoder builds no final_layer_norm (its layers still have two each)
    assert "model.decoder.final_layer_norm.weight" not in names
    assert _tensor(spec, "lm_head.weight").shape == (50272, 512)  # tied to embed_tokens


def test_opt_switches_drop_biases_layernorm_affines_and_the_final_norm() -> None:
    base = build_spec(_config("facebook/opt-125m"))
    bare = build_spec(_config("opt-125m/no-bias-no-affine"))
    assert not any(t.name.endswith(".bias") for t in bare.layers[0].tensors)
    assert not any(t.kind == "norm" for t in bare.layers[0].tensors + bare.head)
    removed = build_spec(_config("opt-125m/_remove_final_layer_norm"))
    assert base.total_params - removed.total_params == 2 * 768


def test_gpt2_counts_its_positions_and_ties_its_head() -> None:
    spec = build_spec(_config("openai-community/gpt2"))
    assert _tensor(spec, "transformer.wpe.weight").shape == (1024, 768)
    assert spec.tie_word_embeddings and spec.total_params == 124_439_808
    # GPT2Config maps max_position_embeddings onto n_positions; vLLM's key list tries that name first
    assert spec.max_len_limit.derived == 1024 and spec.max_len_limit.key == "max_position_embeddings"


@pytest.mark.parametrize("key", [k for _, k, _ in CASES])
def test_every_legacy_decoder_has_a_plain_two_matrix_mlp(key: str) -> None:
    spec = build_spec(_config(key))
    layer = spec.layers[0]
    mlp = [t for t in layer.tensors if t.kind == "mlp" and t.linear]
    assert len(mlp) == 2 and [t.parallel for t in mlp] == ["column", "row"]
    assert layer.mlp.kind == "dense" and mlp[0].shape[0] == layer.mlp.intermediate_size


def test_starcoder_caches_one_kv_head_per_layer_replicated_over_tp() -> None:
    spec = build_spec(_config("bigcode/starcoder"))
    assert spec.num_kv_heads == 1 and spec.head_dim == 128 and spec.total_params == 15_517_456_384
    for tp in (1, 4):
        r = estimate(spec, Deployment(**H100, tensor_parallel_size=tp, max_model_len=8192,
                                      kv_cache_memory_bytes=GiB, vllm_version="0.19.0"))
        # the config says float32; vLLM's "auto" serves a float32 checkpoint in bfloat16
        assert r.dtype == "bfloat16" and r.kv.bytes_per_token == 2 * 40 * 1 * 128 * 2
    multi = build_spec(_config("santacoder/multi-head"))
    assert multi.num_kv_heads == 16


def test_starcoder_at_tp4_warns_that_vllm_0_25_runs_it_without_a_tensor_parallel_plan() -> None:
    # vLLM 0.25 moved GPTBigCode to its Transformers backend, and transformers gives GPTBigCode no TP plan.
    spec = build_spec(_config("bigcode/starcoder"))
    dep = Deployment(**H100, tensor_parallel_size=4, max_model_len=8192)
    new = estimate(spec, dep.with_(vllm_version="0.25.0")).warnings
    old = estimate(spec, dep.with_(vllm_version="0.24.0")).warnings
    one = estimate(spec, dep.with_(vllm_version="0.25.0", tensor_parallel_size=1)).warnings
    assert any("no tensor-parallel plan" in w for w in new)
    assert not any("tensor-parallel plan" in w for w in old + one)


def test_bloom_uses_alibi_and_normalises_its_word_embeddings() -> None:
    spec = build_spec(_config("bigscience/bloom-560m"))
    assert spec.rope_caches == ()
    assert _tensor(spec, "transformer.word_embeddings_layernorm.bias").shape == (1024,)
    assert spec.layers[0].mlp.intermediate_size == 4 * 1024
    # bloom's config names no length: vLLM assumes 2048 when --max-model-len is not given
    assert spec.max_len_limit is None
    r = estimate(spec, Deployment(**H100, kv_cache_memory_bytes=GiB, vllm_version="0.19.0"))
    assert r.max_model_len == 2048
    assert r.kv.bytes_per_token == 2 * 24 * 16 * 64 * 2


def test_gpt_j_has_an_untied_biased_head_and_a_rotary_cache_of_rotary_dim() -> None:
    spec = build_spec(_config("EleutherAI/gpt-j-6b"))
    assert not spec.tie_word_embeddings
    assert _tensor(spec, "lm_head.bias").shape[0] == 50400
    assert [(c.positions, c.rotary_dim) for c in spec.rope_caches] == [(2048, 64)]
    assert not any(t.name.endswith(".bias") for t in spec.layers[0].tensors if t.kind == "attention")
    assert spec.total_params == 6_050_882_784
    narrow = build_spec(_config("gpt-j-6b/rotary_dim-32"))
    assert narrow.rope_caches[0].rotary_dim == 32
