"""Which vLLM release first shipped a native implementation of each architecture, read from release wheels.

    python tools/vllm/first_native_release.py WHEEL_DIR > src/gpuplan/data/vllm_added_architectures.json

WHEEL_DIR holds vllm-<version>-*.whl files (`pip download vllm==X --no-deps`). Each wheel's model registry
(vllm/model_executor/models/registry.py, or models/__init__.py before 0.6.1) is parsed with `ast`, never imported.
For every architecture the output gives the first wheel that lists it and the newest wheel before it that does
not: the architecture arrived after `absent_in` and no later than `first_seen`. Architectures in the oldest wheel
are left out (no lower bound).
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from pathlib import Path

_REGISTRY_FILES = ("vllm/model_executor/models/registry.py", "vllm/model_executor/models/__init__.py")
# Registry tables of native models (the Transformers-backend and speculative tables are not native models).
_SKIP_TABLES = ("_TRANSFORMERS_BACKEND_MODELS", "_TRANSFORMERS_SUPPORTED_MODELS", "_PREVIOUSLY_SUPPORTED_MODELS")


def _version(name: str) -> tuple[int, ...]:
    m = re.match(r"vllm-(\d+(?:\.\d+)*)", name)
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()


def _architectures(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        src = next((z.read(f).decode() for f in _REGISTRY_FILES if f in names and z.getinfo(f).file_size > 2000), "")
    found: set[str] = set()
    for node in ast.walk(ast.parse(src)):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names_ = {t.id for t in targets if isinstance(t, ast.Name)}
        if not names_ or names_ & set(_SKIP_TABLES) or not any(n.startswith("_") and n.endswith("MODELS")
                                                              for n in names_):
            continue
        if isinstance(node.value, ast.Dict):
            found |= {k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return found


def main(wheel_dir: str) -> None:
    wheels = sorted((w for w in Path(wheel_dir).glob("vllm-*.whl") if _version(w.name)), key=lambda w: _version(w.name))
    seen: dict[str, tuple[str, str]] = {}
    previous: set[str] | None = None
    previous_version = ""
    versions = []
    for w in wheels:
        version = ".".join(map(str, _version(w.name)))
        archs = _architectures(w)
        if not archs:
            continue
        versions.append(version)
        if previous is not None:
            for a in sorted(archs - previous):
                seen.setdefault(a, (previous_version, version))
        previous, previous_version = archs, version
    out = {
        "_doc": "Architectures vLLM added after its oldest wheel read here: each arrived after `absent_in` and no "
                "later than `first_seen` (tools/vllm/first_native_release.py). An architecture that was removed and "
                "re-added keeps its first arrival.",
        "wheels": versions,
        "added": {a: {"absent_in": lo, "first_seen": hi} for a, (lo, hi) in sorted(seen.items())},
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
