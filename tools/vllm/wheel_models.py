"""Reading a vLLM wheel's model registry and model files with `ast`, never importing them (shared by the tools
that turn a wheel's per-class facts into gpuplan data files)."""

from __future__ import annotations

import ast
import re
import zipfile

MODELS = "vllm/model_executor/models/"


def registry(z: zipfile.ZipFile, tables: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """architecture -> (models module, class name) from the named tables of models/registry.py."""
    tree = ast.parse(z.read(MODELS + "registry.py").decode())
    out: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if not any(isinstance(t, ast.Name) and t.id in tables for t in targets) or not isinstance(node.value, ast.Dict):
            continue
        for k, v in zip(node.value.keys, node.value.values, strict=True):
            if isinstance(k, ast.Constant) and isinstance(v, ast.Tuple) and len(v.elts) == 2:
                mod, cls = (e.value for e in v.elts if isinstance(e, ast.Constant))
                out[k.value] = (mod, cls)
    return out


def base_name(base: ast.expr) -> str:
    """A base class as written, without subscripts (`Foo[Bar]` -> `Foo`)."""
    return re.sub(r"\[.*", "", ast.unparse(base))


class ModelFiles:
    """The model files of one wheel, parsed on demand."""

    def __init__(self, z: zipfile.ZipFile) -> None:
        self.z, self.names = z, set(z.namelist())
        self.cache: dict[str, tuple[dict[str, ast.ClassDef], dict[str, tuple[str, str]]] | None] = {}

    def module(self, mod: str) -> tuple[dict[str, ast.ClassDef], dict[str, tuple[str, str]]] | None:
        """(class name -> ClassDef, imported name -> (module, name)) of models/<mod>.py; None if absent."""
        if mod in self.cache:
            return self.cache[mod]
        path = MODELS + mod.replace(".", "/") + ".py"
        if path not in self.names:
            self.cache[mod] = None
            return None
        tree = ast.parse(self.z.read(path).decode())
        classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        imports: dict[str, tuple[str, str]] = {}
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                for a in node.names:
                    imports[a.asname or a.name] = (node.module, a.name)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vllm.model_executor.models."):
                for a in node.names:
                    imports[a.asname or a.name] = (node.module.removeprefix("vllm.model_executor.models."), a.name)
        self.cache[mod] = (classes, imports)
        return self.cache[mod]
