"""Which registered vLLM architectures refuse pipeline parallelism, read from a release wheel.

    python tools/vllm/pp_support.py WHEEL > src/gpuplan/data/vllm_no_pipeline_parallel.json

vLLM starts a model with --pipeline-parallel-size > 1 only if its class implements the SupportsPP interface
(config/model.py: registry.is_pp_supported_model). The wheel's registry and model files are parsed with `ast`,
never imported: a class supports PP when SupportsPP appears among its bases, followed through classes of the same
file and classes imported from other model files. An architecture is listed only when every base in its chain
was resolved (to a model class, nn.Module or an interface), so a class built some other way is never listed.
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path

from wheel_models import ModelFiles, base_name, registry

# Registry tables whose classes are served as generative models (pooling and speculative tables are not).
_TABLES = ("_TEXT_GENERATION_MODELS", "_MULTIMODAL_MODELS")
# Bases that end a chain without adding PP support.
_NEUTRAL = {"nn.Module", "Module", "Protocol", "Generic", "object"}


class _Files(ModelFiles):
    def supports_pp(self, mod: str, cls: str, depth: int = 0) -> bool | None:
        """True/False when the whole base chain resolves; None when some base cannot be followed."""
        info = self.module(mod)
        if info is None or depth > 12:
            return None
        classes, imports = info
        if cls not in classes:
            if cls in imports and imports[cls][0] != "interfaces":
                return self.supports_pp(*imports[cls], depth + 1)
            return None
        verdict: bool | None = False
        for base in classes[cls].bases:
            name = base_name(base)
            if name.split(".")[-1] == "SupportsPP":
                return True
            if name in _NEUTRAL or name.startswith("Supports") or name.startswith("Has") or name in (
                    "MixtureOfExperts", "IsHybrid", "IsAttentionFree", "SupportsMRoPE"):
                continue
            if name in classes or name in imports:
                sub = self.supports_pp(mod, name, depth + 1) if name in classes else (
                    self.supports_pp(*imports[name], depth + 1) if imports[name][0] != "interfaces" else False)
                if sub:
                    return True
                if sub is None:
                    verdict = None
            else:
                verdict = None
        return verdict


def main() -> None:
    wheel = Path(sys.argv[1])
    version = re.match(r"vllm-(\d+(?:\.\d+)*)", wheel.name).group(1)
    with zipfile.ZipFile(wheel) as z:
        files = _Files(z)
        refuse = sorted(arch for arch, (mod, cls) in registry(z, _TABLES).items()
                        if files.supports_pp(mod, cls) is False)
    json.dump({"_doc": "Architectures in vLLM's generative registry whose class does not implement SupportsPP: vLLM "
                       "refuses --pipeline-parallel-size > 1 for them (config/model.py). Read from the wheel by "
                       "tools/vllm/pp_support.py (ast, never imported); classes whose base chain could not be "
                       "followed are left out.",
               "wheel": version, "architectures": refuse}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
