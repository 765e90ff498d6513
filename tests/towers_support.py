"""Shared bits of the quantized-tower tests: a family fixture's config and one GPU's weights by kind."""

from __future__ import annotations

import json
from pathlib import Path

from gpuplan.api_python import estimate
from gpuplan.model.adapters import build_spec

FIX = Path(__file__).parent / "fixtures"


def family_config(file: str, key: str) -> dict:
    """A config from tests/fixtures/oracle/families/<file>, by its key there."""
    return json.loads((FIX / "oracle" / "families" / file).read_text())["models"][key]["config"]


def weights_by_kind(cfg: dict, name: str, gpu: str = "H100", tp: int = 1, **options) -> dict:
    """The first stage's weight bytes on one GPU at 8K context: "total" and one entry per tensor kind."""
    stage = estimate(build_spec(cfg, name=name), gpu=gpu, tensor_parallel_size=tp, max_model_len=8192,
                     **options).per_stage[0]
    return {"total": stage["weights_bytes"], **stage["weights_by_kind"]}
