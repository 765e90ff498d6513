"""The planner's data: search space, weight formats, throughput constants (gpuplan/data/planner.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ..datafiles import data_json


@dataclass(frozen=True)
class WeightFormat:
    """One weight format the planner tries. `key` goes to Deployment.quantization (None: as stored)."""

    key: str | None
    label: str
    bits: int
    kind: str  # native | online | assumed | checkpoint
    flag: str | None  # the --quantization value vLLM needs; None when vLLM reads it from the checkpoint
    min_cc: float
    native_cc: float | None = None
    below_native_label: str | None = None

    @property
    def assumed(self) -> bool:
        return self.kind == "assumed"

    def label_for(self, cc: float | None, dtype: str) -> str:
        if self.native_cc is not None and cc is not None and cc < self.native_cc and self.below_native_label:
            return self.below_native_label
        return self.label.format(dtype=_short_dtype(dtype))


def _short_dtype(dtype: str) -> str:
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(dtype, dtype)


@cache
def data() -> dict[str, Any]:
    return data_json("planner.json")


def nodes(num_gpus: int) -> int:
    """How many nodes `num_gpus` GPUs take (planner.json's gpus_per_node each)."""
    return -(-num_gpus // data()["gpus_per_node"])


def multi_node_note(num_gpus: int) -> str | None:
    """How to launch across nodes, or None on one node."""
    if nodes(num_gpus) == 1:
        return None
    return data()["multi_node_note"].format(nodes=nodes(num_gpus), per_node=data()["gpus_per_node"])


@cache
def weight_formats() -> tuple[WeightFormat, ...]:
    return tuple(
        WeightFormat(key=q["key"], label=q["label"], bits=q["bits"], kind=q["kind"], flag=q["flag"],
                     min_cc=q["min_cc"], native_cc=q.get("native_cc"), below_native_label=q.get("below_native_label"))
        for q in data()["quantizations"]
    )


def normalize_quantization(name: str | None) -> str | None:
    """A user's spelling ("int4", "bf16", "AWQ") -> a Deployment.quantization key (None: as stored)."""
    if name is None:
        return None
    key = name.strip().lower()
    aliases = data()["quantization_aliases"]
    return aliases[key] if key in aliases else key


@cache
def vllm_flags() -> dict[str, Any]:
    """vLLM's EngineArgs/front-end argument list, kept as data (one file per recorded version)."""
    root = resources.files("gpuplan") / "data" / "vllm_flags"
    files = sorted(f for f in root.iterdir() if f.name.endswith(".json"))
    return json.loads(files[-1].read_text(encoding="utf-8"))
