"""The public start-up fixtures (tests/fixtures/vllm_logs): each file validated once per test session."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gpuplan.validation import load_records, validate_records

LOG_DIR = Path(__file__).parent / "fixtures" / "vllm_logs"


@cache
def validated(name: str) -> dict:
    """`gpuplan validate` of one fixture file (shared: tests must not change it)."""
    return validate_records(load_records(LOG_DIR / name))


def row(result: dict, rid: str) -> dict:
    """One record's line of a validation result."""
    return next(r for r in result["records"] if r["id"] == rid)
