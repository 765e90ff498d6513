"""Which architectures the newest vLLM wheel implements natively, and which no wheel read here ever did.

    python tools/vllm/native_architectures.py WHEEL_DIR > src/gpuplan/data/vllm_native_architectures.json
    HF_HUB_OFFLINE=1 /work/oracle-venv-hf/bin/python tools/vllm/native_architectures.py WHEEL_DIR --transformers \
        > src/gpuplan/data/vllm_native_architectures.json

WHEEL_DIR holds vllm-<version>-*.whl files. Each wheel's model registry is parsed with `ast`, never imported (the
same tables first_native_release.py reads). The output lists, per registry table, the architectures of the newest
wheel; `earlier_only` the ones some older wheel had natively but the newest neither has nor lists in
_PREVIOUSLY_SUPPORTED_MODELS (vllm_removed_architectures.json has those); `out_of_tree` the newest wheel's
_OOT_SUPPORTED_MODELS (served only through a plugin).

With --transformers (run it with a Python that has transformers installed) it also records, for each
architecture that transformers' auto classes name and that no vLLM wheel here implements natively or through
_TRANSFORMERS_SUPPORTED_MODELS, what the newest vLLM's Transformers modeling backend does with it under
model_impl "auto" (model_executor/models/registry.py `_try_resolve_transformers`, models/transformers/base.py):
  * "incompatible": the class reports neither `is_backend_compatible()` nor `_can_set_attn_implementation()`, so
    the registry does not fall back to the backend and raises "not supported";
  * "non_attention_layers": built on the meta device from transformers' default config, some decoder layer index
    has no module (carrying that `layer_idx`) whose forward makes exactly one call through ALL_ATTENTION_FUNCTIONS,
    which the backend refuses at construction ("does not dispatch through the Transformers attention interface").
Architectures that pass both checks are left out: the backend may run them.
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
import textwrap
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from first_native_release import _REGISTRY_FILES, _SKIP_TABLES, _version  # noqa: E402

_OOT = "_OOT_SUPPORTED_MODELS"
_BACKEND = "_TRANSFORMERS_SUPPORTED_MODELS"


def _tables(wheel: Path) -> dict[str, set[str]]:
    """Every `_...MODELS` dict of string keys in the wheel's registry, by table name."""
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        src = next((z.read(f).decode() for f in _REGISTRY_FILES if f in names and z.getinfo(f).file_size > 2000), "")
    out: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(src)):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or not isinstance(node.value, ast.Dict):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            if isinstance(t, ast.Name) and t.id.startswith("_") and t.id.endswith("MODELS"):
                keys = {k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
                out.setdefault(t.id, set()).update(keys)
    return out


def _native(tables: dict[str, set[str]]) -> set[str]:
    return set().union(*(v for k, v in tables.items() if k not in _SKIP_TABLES and k != _OOT))


def _one_interface_call(forward) -> bool:
    """vLLM 0.33's AttentionFuser test: the forward reads ALL_ATTENTION_FUNCTIONS into a local name and calls that
    name exactly once."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(forward))))
    except (AttributeError, OSError, SyntaxError, TypeError):
        return False

    def lookup(node):
        node = node.func if isinstance(node, ast.Call) else node
        return isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.value, ast.Name) \
            and node.value.id == "ALL_ATTENTION_FUNCTIONS"

    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and lookup(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id in names]
    return len(calls) == 1


def _backend_verdicts(known: set[str]) -> tuple[str, dict[str, dict]]:
    import torch
    import transformers
    from transformers.models.auto import modeling_auto as ma

    mappings = ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",
                "MODEL_FOR_VISION_2_SEQ_MAPPING_NAMES")
    candidates: dict[str, str] = {}
    for m in mappings:
        for model_type, arch in getattr(ma, m, {}).items():
            for a in (arch if isinstance(arch, (list, tuple)) else (arch,)):
                if a not in known:
                    candidates.setdefault(a, model_type)
    out: dict[str, dict] = {}
    for arch, model_type in sorted(candidates.items()):
        cls = getattr(transformers, arch, None)
        if cls is None:
            continue
        if not (cls.is_backend_compatible() or cls._can_set_attn_implementation()):
            out[arch] = {"model_type": model_type, "refused": "incompatible"}
            continue
        try:
            config = transformers.AutoConfig.for_model(model_type)
            layers = int(config.get_text_config().num_hidden_layers)
            with torch.device("meta"):
                model = cls._from_config(config)
        except Exception:  # noqa: BLE001  (a default config some classes cannot build: no verdict)
            continue
        covered = {getattr(mod, "layer_idx", None) for mod in model.modules()
                   if isinstance(getattr(mod, "layer_idx", None), int) and _one_interface_call(type(mod).forward)}
        missing = [i for i in range(layers) if i not in covered]
        if missing:
            types = getattr(config.get_text_config(), "layer_types", None) or ()
            first = missing[0]
            kind = types[first] if first < len(types) else None
            out[arch] = {"model_type": model_type, "refused": "non_attention_layers", "first_layer": first,
                         **({"layer_type": str(kind)} if kind is not None else {})}
    return transformers.__version__, out


def main(wheel_dir: str, with_transformers: bool) -> None:
    wheels = sorted((w for w in Path(wheel_dir).glob("vllm-*.whl") if _version(w.name)), key=lambda w: _version(w.name))
    read = [(".".join(map(str, _version(w.name))), _tables(w)) for w in wheels]
    read = [(v, t) for v, t in read if _native(t)]
    newest_version, newest = read[-1]
    native = _native(newest)
    previously = newest.get("_PREVIOUSLY_SUPPORTED_MODELS", set())
    last_seen: dict[str, str] = {}
    for version, tables in read:
        for a in _native(tables):
            last_seen[a] = version
    earlier = {a: v for a, v in last_seen.items() if a not in native and a not in previously}
    out = {
        "_doc": "Architectures the newest vLLM wheel read here registers natively (model_executor/models/registry.py, "
                "parsed with ast by tools/vllm/native_architectures.py from the release wheels listed): `native` by "
                "registry table; `earlier_only` native in an older wheel (the last one given) and neither registered "
                "nor listed as previously supported in the newest; `out_of_tree` served only by a plugin. With "
                "vllm_added_architectures.json and vllm_removed_architectures.json this answers whether any release "
                "read here has a native implementation. `transformers_backend` (read with transformers "
                "`transformers_version`; vLLM 0.33 requires transformers>=5.16.1,<5.21.0) lists architectures no "
                "wheel implements that vLLM's Transformers modeling backend refuses under model_impl auto: "
                "`incompatible` (the class supports no attention-interface switch, so the registry never falls back "
                "to the backend) or `non_attention_layers` (a decoder layer that does not dispatch through "
                "ALL_ATTENTION_FUNCTIONS: recurrent / SSM layers; the backend raises at construction, checked in "
                "models/transformers/base.py from 0.30).",
        "wheels": [v for v, _ in read],
        "newest": newest_version,
        "native": {k: sorted(v) for k, v in sorted(newest.items())
                   if k not in _SKIP_TABLES and k != _OOT and v},
        "earlier_only": dict(sorted(earlier.items())),
        "out_of_tree": sorted(newest.get(_OOT, ())),
    }
    if with_transformers:
        known = set(last_seen) | set().union(*(t.get(_BACKEND, set()) for _, t in read))
        version, verdicts = _backend_verdicts(known)
        out["transformers_version"] = version
        out["transformers_backend"] = verdicts
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], "--transformers" in sys.argv[2:])
