"""DBRX-Instruct (132B MoE, 16 experts, top 4) as vLLM 0.33 builds it (model_executor/models/dbrx.py)."""

import json
from pathlib import Path

import pytest

from gpuplan.api_python import estimate
from gpuplan.errors import ConfigError
from gpuplan.model.adapters import build_spec

FIX = json.loads((Path(__file__).parent / "fixtures/oracle/families/dbrx.json").read_text())
DBRX = FIX["models"]["databricks/dbrx-instruct"]


def test_dbrx_parameters_equal_transformers():
    """131,596,523,520: the geometry read from attn_config / ffn_config, biases stripped as vLLM strips them."""
    spec = build_spec(DBRX["config"])
    assert not spec.generic
    assert spec.total_params == DBRX["hf_params"] == 131_596_523_520


def test_dbrx_fits_four_h100s_at_32k_but_not_two():
    """Per GPU at TP 4, by hand:
    vocab 100,352 (a multiple of 64) / 4 = 25,088 rows x 6,144 x 2 B = 308,281,344 for the embedding and again for
    the untied LM head; final norm 12,288; per block: Wqkv (48 + 2 x 8) x 128 / 4 = 2,048 rows x 6,144 x 2 =
    25,165,824, out_proj 6,144 x 1,536 x 2 = 18,874,368, two norms 24,576, bf16 router 16 x 6,144 x 2 = 196,608,
    experts 16 x 3 x 2,688 x 6,144 x 2 = 1,585,446,912: 1,629,708,288 x 40 = 65,188,331,520; rotary table
    32,768 x 128 x 2 = 8,388,608. Sum 65,813,295,104 B = 61.29 GiB."""
    r = estimate(DBRX["config"], gpu="H100", tensor_parallel_size=4, max_model_len=32768)
    assert r.weights_bytes == 65_813_295_104
    assert r.fits and r.kv_cache_tokens > 32768
    two = estimate(DBRX["config"], gpu="H100", tensor_parallel_size=2, max_model_len=32768)
    assert not two.fits


def test_dbrx_kv_per_token_at_tp8():
    """8 KV heads over 8 ranks: one head a rank, 16 tokens x 128 x 2 (K and V) x 2 B = 8,192 B a layer's page,
    x 40 layers = 327,680 B per block, one group of full attention."""
    r = estimate(DBRX["config"], gpu="H100", tensor_parallel_size=8, max_model_len=32768)
    assert r.kv.bytes_per_block == 16 * 128 * 2 * 2 * 40 == 327_680
    assert r.kv.num_groups == 1
    assert r.kv_cache_tokens == r.num_gpu_blocks * 16


def test_dbrx_with_tied_embeddings_is_refused():
    with pytest.raises(ConfigError, match="tie_word_embeddings"):
        build_spec({**DBRX["config"], "tie_word_embeddings": True})
