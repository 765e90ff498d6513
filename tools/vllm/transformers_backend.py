"""Which architectures vLLM runs through its Transformers modeling backend, and since which release.

    python tools/vllm/transformers_backend.py WHEEL_DIR > src/gpuplan/data/vllm_transformers_backend.json

WHEEL_DIR holds vllm-<version>-*.whl files (`pip download vllm==X --no-deps`). Each wheel's
vllm/model_executor/models/registry.py is parsed with `ast`, never imported: an architecture whose entry in
_TRANSFORMERS_SUPPORTED_MODELS names the `transformers` module is built by TransformersForCausalLM (that table is
merged last, so it wins over a native entry). For each architecture on the backend in the newest wheel, the output
gives the first wheel of its latest unbroken run there, and the wheel before it (`absent_in`).
"""

from __future__ import annotations

import ast
import json
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from first_native_release import _version  # noqa: E402

_REGISTRY = "vllm/model_executor/models/registry.py"
_TABLE = "_TRANSFORMERS_SUPPORTED_MODELS"
# Backend architectures whose transformers config has no base_model_tp_plan (transformers 5.23) and whose layers the
# backend's graph fusers do not all recognise, so some projections stay whole on every rank (models/transformers/
# base.py). HunYuanDenseV1 also lacks a plan, but running 0.33's fusers on its modules splits every projection
# (QKVFuser, GLUFuser: tests/test_hunyuan.py), so it is not listed.
_NO_TP_PLAN = ("GPTBigCodeForCausalLM",)


def _on_backend(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        if _REGISTRY not in z.namelist():
            return set()
        tree = ast.parse(z.read(_REGISTRY).decode())
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if _TABLE not in {t.id for t in targets if isinstance(t, ast.Name)} or not isinstance(node.value, ast.Dict):
            continue
        for key, value in zip(node.value.keys, node.value.values, strict=True):
            if (isinstance(key, ast.Constant) and isinstance(value, ast.Tuple) and value.elts
                    and isinstance(value.elts[0], ast.Constant) and value.elts[0].value == "transformers"):
                found.add(key.value)
    return found


def main(wheel_dir: str) -> None:
    wheels = sorted((w for w in Path(wheel_dir).glob("vllm-*.whl") if _version(w.name)), key=lambda w: _version(w.name))
    runs: dict[str, dict[str, str]] = {}
    versions: list[str] = []
    previous: set[str] = set()
    for w in wheels:
        version = ".".join(map(str, _version(w.name)))
        archs = _on_backend(w)
        for a in archs - previous:  # a new (or renewed) run starts here
            runs[a] = {"absent_in": versions[-1] if versions else "", "since": version}
        for a in previous - archs:
            runs.pop(a, None)
        versions.append(version)
        previous = archs
    out = {
        "_doc": "Architectures vLLM builds with its Transformers modeling backend (TransformersForCausalLM: the "
                "model's own transformers code with vLLM's parallel linears, embeddings and attention, and "
                "transformers' rotary embedding, so no vLLM rotary cache), each since the first wheel of its "
                "latest unbroken run in _TRANSFORMERS_SUPPORTED_MODELS and after `absent_in` "
                "(tools/vllm/transformers_backend.py).",
        "wheels": versions,
        "backend": {a: runs[a] for a in sorted(runs)},
        "no_tp_plan": list(_NO_TP_PLAN),
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
