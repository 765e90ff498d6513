"""List the architectures each vLLM wheel keeps on the V0 engine (SupportsV0Only), for 0.8 - 0.10.

From 0.8 to 0.10 vLLM shipped both engines and fell back to V0 for models whose class inherits
SupportsV0Only (EngineArgs._is_v1_supported_oracle -> ModelConfig.is_v1_compatible). This reads the
registry and the model sources of each wheel with `ast` (nothing is imported) and prints JSON
{version: [architecture, ...]} for src/gpuplan/data/vllm_profiles.json's "v1_fallback" block.

    pip download vllm==0.9.2 --no-deps -d wheels/
    python tools/oracle/v0_only_architectures.py wheels/vllm-0.9.2-*.whl ...
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile

MODELS = "vllm/model_executor/models/"


def _registry(src: str) -> dict[str, tuple[str, str]]:
    """Architecture -> (module, class) from the registry's dict literals."""
    out: dict[str, tuple[str, str]] = {}
    for node in ast.walk(ast.parse(src)):
        if not isinstance(node, ast.Dict):
            continue
        for k, v in zip(node.keys, node.values, strict=False):
            if (isinstance(k, ast.Constant) and isinstance(k.value, str) and isinstance(v, ast.Tuple)
                    and len(v.elts) >= 2 and all(isinstance(e, ast.Constant) for e in v.elts[:2])):
                out[k.value] = (v.elts[0].value, v.elts[1].value)
    return out


def _classes(zf: zipfile.ZipFile) -> dict[tuple[str, str], list[str]]:
    """(module, class) -> base names, for every class in the models package."""
    out: dict[tuple[str, str], list[str]] = {}
    for name in zf.namelist():
        if not (name.startswith(MODELS) and name.endswith(".py")) or name.count("/") != 3:
            continue
        module = name[len(MODELS):-3]
        try:
            tree = ast.parse(zf.read(name))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else ""
                         for b in node.bases]
                out[(module, node.name)] = bases
    return out


def v0_only(wheel: str) -> tuple[str, list[str]]:
    version = re.search(r"vllm-([0-9.]+)-", wheel).group(1)
    with zipfile.ZipFile(wheel) as zf:
        registry = _registry(zf.read(MODELS + "registry.py").decode())
        classes = _classes(zf)
    by_name: dict[str, list[tuple[str, str]]] = {}
    for key in classes:
        by_name.setdefault(key[1], []).append(key)

    def is_v0(key: tuple[str, str], seen: frozenset = frozenset()) -> bool:
        if key in seen or key not in classes:
            return False
        for base in classes[key]:
            if base == "SupportsV0Only":
                return True
            # a base defined in the same module first, else any module that defines that name
            cands = [(key[0], base)] if (key[0], base) in classes else by_name.get(base, [])
            if any(is_v0(c, seen | {key}) for c in cands):
                return True
        return False

    return version, sorted(arch for arch, key in registry.items() if is_v0(key))


if __name__ == "__main__":
    print(json.dumps(dict(v0_only(w) for w in sys.argv[1:]), indent=1))
