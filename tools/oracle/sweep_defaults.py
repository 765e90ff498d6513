#!/usr/bin/env python3
"""How close gpuplan's parameter inventory is to transformers' for every decoder model_type transformers knows.

    HF_HUB_OFFLINE=1 /work/oracle-venv-hf/bin/python tools/oracle/sweep_defaults.py [MODEL_TYPE ...] > sweep.jsonl

For each model_type (default: every one with a causal-LM or image-text-to-text class), builds transformers'
default config on the meta device, counts its unique parameters, builds gpuplan's ModelSpec from the same
config and prints one JSON line: hf, ours, err_pct, and whether gpuplan used an adapter or the generic
fallback. A triage tool for finding families that need an adapter; development only (needs torch and
transformers, which the runtime never imports). Default configs are not real checkpoints: quirks such as a
top-level tie_word_embeddings that the text config contradicts show up as differences here.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

import torch  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText  # noqa: E402
from transformers.models.auto.modeling_auto import (  # noqa: E402
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
)

from gpuplan.model.adapters import build_spec  # noqa: E402


def hf_count(mt: str) -> tuple[int, dict]:
    cfg = AutoConfig.for_model(mt)
    image_text = mt in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES and mt not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    auto = AutoModelForImageTextToText if image_text else AutoModelForCausalLM
    signal.alarm(60)  # a few default configs are enormous; the meta device keeps them cheap, but not free
    with torch.device("meta"):
        model = auto.from_config(cfg)
    signal.alarm(0)
    unique = {id(p): p.numel() for p in model.parameters()}
    return sum(unique.values()), json.loads(json.dumps(cfg.to_dict(), default=str))


def main() -> None:
    types = sys.argv[1:] or sorted(set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) | set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES))
    for mt in types:
        rec: dict = {"model_type": mt}
        try:
            rec["hf"], config = hf_count(mt)
        except Exception as e:  # transformers cannot build some defaults (missing extras, broken defaults)
            rec["hf_err"] = f"{type(e).__name__}: {str(e)[:150]}"
            print(json.dumps(rec), flush=True)
            continue
        try:
            spec = build_spec(config)
            rec.update(ours=spec.total_params, generic=spec.generic,
                       err_pct=round(100 * (spec.total_params - rec["hf"]) / rec["hf"], 3))
        except Exception as e:  # gpuplan's own ConfigError: the type needs an adapter
            rec["ours_err"] = f"{type(e).__name__}: {str(e)[:150]}"
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
