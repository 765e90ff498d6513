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
        """(class name -> ClassDef, imported name -> (module, name)) of a model module; None if absent. `mod` is a
        module of models/ ("llama") or, for 0.33's per-family packages, a dotted path ("vllm.models.step5")."""
        if mod in self.cache:
            return self.cache[mod]
        if mod.startswith("vllm."):
            base = mod.replace(".", "/")
            path = next((p for p in (base + ".py", base + "/__init__.py") if p in self.names), None)
        else:
            path = MODELS + mod.replace(".", "/") + ".py"
            path = path if path in self.names else None
        if path is None:
            self.cache[mod] = None
            return None
        package = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        if not path.endswith("/__init__.py"):
            package = package.rsplit(".", 1)[0]
        tree = ast.parse(self.z.read(path).decode())
        classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        imports: dict[str, tuple[str, str]] = {}
        # 0.33's family packages pick an implementation per platform inside if/else blocks: take the CUDA one.
        other_platform = re.compile(r"\.(amd|xpu|cpu|rocm|tpu)\.|_stub$|\.vl_stub")
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                parts = package.split(".")
                source = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not source.startswith("vllm.model_executor.models.") and not source.startswith("vllm.models."):
                continue
            for a in node.names:
                name = a.asname or a.name
                if name in imports and other_platform.search(source):
                    continue
                imports[name] = (source.removeprefix("vllm.model_executor.models."), a.name)
        self.cache[mod] = (classes, imports)
        return self.cache[mod]
