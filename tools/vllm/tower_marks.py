"""Which multimodal vLLM architectures leave their encoder towers unbuilt in a text-only start-up, read from wheels.

    python tools/vllm/tower_marks.py WHEEL... > src/gpuplan/data/vllm_towers.json

With --limit-mm-per-prompt 0 for every modality a tower serves (or --language-model-only, 0.17+), vLLM builds no
weights for that tower:
- 0.10.1 - 0.14: some model classes build the tower under `if multimodal_config.get_limit_per_prompt(...)`;
- 0.15 on: classes build towers inside `with self._mark_tower_model(vllm_config, modalities)` (or
  `_mark_composite_model(..., tower_targets=...)`), which swaps them for empty placeholders; from 0.30 the same
  mark also leaves towers off pipeline stages after the first under Model Runner V2.

For each architecture of the multimodal registry the class that defines `__init__` is found (following bases through
model files) and its body parsed with `ast`, never imported. The modalities are the literal ones named by the marks
or the guards. An architecture is listed for the wheels where every tower it builds this way is covered.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from pathlib import Path

from wheel_models import MODELS, ModelFiles, base_name, registry


def _literal_modalities(node: ast.AST) -> set[str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, (ast.Set, ast.List, ast.Tuple)) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
        return {e.value for e in node.elts}
    return None


def _method(call: ast.Call) -> str | None:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else None


def _marks(init: ast.FunctionDef) -> tuple[str, set[str]] | None:
    """('marked' | 'guarded', modalities) when the __init__ builds its towers under marks or limit guards;
    None when it does neither (or names a modality that is not a literal)."""
    marked: set[str] = set()
    guarded: set[str] = set()
    for node in ast.walk(init):
        if isinstance(node, ast.Call) and _method(node) == "_mark_tower_model" and len(node.args) >= 2:
            mods = _literal_modalities(node.args[1])
            if mods is None:
                return None
            marked |= mods
        elif isinstance(node, ast.Call) and _method(node) == "_mark_composite_model":
            for kw in node.keywords:
                if kw.arg == "tower_targets" and isinstance(kw.value, ast.Dict):
                    for k in kw.value.keys:
                        if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                            return None
                        marked.add(k.value)
        elif isinstance(node, ast.If):
            for sub in ast.walk(node.test):
                if isinstance(sub, ast.Call) and _method(sub) == "get_limit_per_prompt" and sub.args:
                    mods = _literal_modalities(sub.args[0])
                    if mods is None:
                        return None
                    guarded |= mods
    if marked:
        return "marked", marked | guarded
    if guarded:
        return "guarded", guarded
    return None


def _calls_super_init(init: ast.FunctionDef, bases: set[str]) -> bool:
    """super().__init__(...) or Base.__init__(self, ...) for one of the class's own bases; nn.Module.__init__(self)
    skips the parents' __init__ (Gemma4Unified rebuilds the model without its parent's towers)."""
    for n in ast.walk(init):
        if isinstance(n, ast.Call) and _method(n) == "__init__":
            owner = n.func.value
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
                return True
            if ast.unparse(owner) in bases:
                return True
    return False


class _Files(ModelFiles):
    def class_flag(self, mod: str, cls: str, flag: str, depth: int = 0) -> bool | None:
        """A boolean class attribute, as the first class in the base chain that sets it has it (None: unset)."""
        info = self.module(mod)
        if info is None or depth > 12:
            return None
        classes, imports = info
        if cls not in classes:
            return self.class_flag(*imports[cls], flag, depth + 1) if cls in imports else None
        for node in classes[cls].body:
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets if isinstance(
                node, ast.Assign) else []
            if any(isinstance(t, ast.Name) and t.id == flag for t in targets) and isinstance(node.value, ast.Constant):
                return bool(node.value.value)
        for base in classes[cls].bases:
            name = base_name(base)
            if name in classes:
                sub = self.class_flag(mod, name, flag, depth + 1)
            elif name in imports and imports[name][0] != "interfaces":
                sub = self.class_flag(*imports[name], flag, depth + 1)
            else:
                continue
            if sub is not None:
                return sub
        return None

    def towers(self, mod: str, cls: str, depth: int = 0) -> tuple[str, set[str]] | None:
        info = self.module(mod)
        if info is None or depth > 12:
            return None
        classes, imports = info
        if cls not in classes:
            return self.towers(*imports[cls], depth + 1) if cls in imports else None
        node = classes[cls]
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if init is not None:
            found = _marks(init)
            if found is not None or not _calls_super_init(init, {base_name(b) for b in node.bases}):
                return found
        for base in node.bases:  # __init__ inherited, or delegated to super() with no towers of its own
            name = base_name(base)
            if name in classes:
                sub = self.towers(mod, name, depth + 1)
            elif name in imports and imports[name][0] != "interfaces":
                sub = self.towers(*imports[name], depth + 1)
            else:
                continue
            if sub is not None:
                return sub
        return None


def _skips_later_stages(z: zipfile.ZipFile) -> bool:
    """Whether interfaces.py's _mark_tower_model also leaves towers off pipeline stages after the first."""
    tree = ast.parse(z.read(MODELS + "interfaces.py").decode())
    fn = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_mark_tower_model"), None)
    return fn is not None and "is_first_rank" in ast.unparse(fn)


def _version(wheel: Path) -> tuple[str, tuple[int, ...]]:
    v = re.match(r"vllm-(\d+(?:\.\d+)*)", wheel.name).group(1)
    return v, tuple(int(x) for x in v.split("."))


def main() -> None:
    wheels = sorted((Path(a) for a in sys.argv[1:]), key=lambda w: _version(w)[1])
    seen: list[str] = []
    pp_first_only: str | None = None  # first wheel whose _mark_tower_model also skips towers on later PP stages
    by_arch: dict[str, list[list]] = {}  # arch -> [[from, until, kind, modalities], ...]
    tp_data: dict[str, list[list]] = {}  # arch -> [[from, until], ...] where supports_encoder_tp_data is True
    for wheel in wheels:
        version = _version(wheel)[0]
        seen.append(version)
        with zipfile.ZipFile(wheel) as z:
            files = _Files(z)
            # 0.33 lists some towered families (Inkling) among the text-generation models
            archs = registry(z, ("_MULTIMODAL_MODELS", "_TEXT_GENERATION_MODELS"))
            found = {arch: files.towers(mod, cls) for arch, (mod, cls) in archs.items()}
            data_mode = {arch for arch, (mod, cls) in archs.items()
                         if files.class_flag(mod, cls, "supports_encoder_tp_data")}
            if pp_first_only is None and _skips_later_stages(z):
                pp_first_only = version
        for arch, ranges in by_arch.items():  # close ranges that this wheel no longer continues
            last = ranges[-1]
            now = found.get(arch)
            if last[1] is None and (now is None or [now[0], sorted(now[1])] != last[2:]):
                last[1] = version
        for arch, now in found.items():
            if now is None:
                continue
            ranges = by_arch.setdefault(arch, [])
            if not ranges or ranges[-1][1] is not None:
                ranges.append([version, None, now[0], sorted(now[1])])
        for arch, ranges in tp_data.items():
            if ranges[-1][1] is None and arch not in data_mode:
                ranges[-1][1] = version
        for arch in data_mode:
            ranges = tp_data.setdefault(arch, [])
            if not ranges or ranges[-1][1] is not None:
                ranges.append([version, None])
    json.dump({"_doc": "Multimodal architectures whose towers vLLM does not build when every modality they serve has "
                       "--limit-mm-per-prompt 0 (or --language-model-only): [from, until, how, modalities], 'until' "
                       "the first scanned wheel where that stops holding (null: still holds). 'guarded': the class "
                       "builds the tower under a get_limit_per_prompt test (0.10.1 - 0.14); 'marked': inside "
                       "_mark_tower_model (0.15+), which from 0.30 also leaves towers off later pipeline stages under "
                       "Model Runner V2. Read by tools/vllm/tower_marks.py (ast, never imported).",
               "wheels": seen, "later_pp_stages_skip_marked_towers_mrv2_from": pp_first_only,
               "architectures": dict(sorted(by_arch.items())),
               "_encoder_tp_data_doc": "Architectures whose class sets supports_encoder_tp_data: with "
                                       "--mm-encoder-tp-mode data (0.10.2+) their towers keep full weights on every "
                                       "TP rank and split the profile's items over the ranks; other classes fall "
                                       "back to 'weights' (config/model.py). [from, until] as above.",
               "encoder_tp_data": dict(sorted(tp_data.items()))}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
