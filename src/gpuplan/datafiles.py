"""Reading the package's data files (src/gpuplan/data): one place for the path and the encoding."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def data_json(name: str) -> Any:
    """A JSON file under gpuplan/data, e.g. "gpus.json" or "vllm_profiles.json"."""
    return json.loads((resources.files("gpuplan") / "data" / name).read_text(encoding="utf-8"))
