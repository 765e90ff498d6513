"""Shared bits of the API/CLI tests: an offline app, and a marker for tests that need the merged core."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

# The tests must never reach the Hugging Face Hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GPUPLAN_OFFLINE"] = "1"

CORE_MODULES = (
    "gpuplan.resolve",
    "gpuplan.catalog",
    "gpuplan.gpus",
    "gpuplan.arch_estimate",
    "gpuplan.engines.vllm.estimate",
    "gpuplan.engines.vllm.kv",
)


def _present(name: str) -> bool:
    # find_spec, not import: a core module that exists but fails to import must fail the test, not skip it.
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


MISSING = [m for m in CORE_MODULES if not _present(m)]
needs_core = pytest.mark.skipif(bool(MISSING), reason=f"core not merged yet: {', '.join(MISSING)}")


def planner_present() -> bool:
    try:
        from gpuplan.planner import plan  # noqa: F401
    except ImportError:
        return False
    return True


def catalog_spec(name: str, *, quantized: bool = True):
    """A catalog model's spec, optionally without its checkpoint's quantization block (to compare with vLLM's
    meta-device build, which the oracle runs unquantized)."""
    from gpuplan.catalog import find_model
    from gpuplan.model.adapters import build_spec

    entry = find_model(name)
    cfg = dict(entry.hf_config)
    if not quantized:
        cfg.pop("quantization_config")
    return build_spec(cfg, entry.id)
