"""Architectures that no vLLM release implements natively: what vLLM does with them instead.

With model_impl "auto" (gpuplan's only mode) vLLM 0.33's registry (model_executor/models/registry.py,
`inspect_model_cls` / `_try_resolve_transformers`) hands an architecture it has no class for to its Transformers
modeling backend, provided transformers exports a class of that name (or, when it does not, the checkpoint's auto_map
names one, loaded with trust_remote_code) and that class passes `is_backend_compatible()` or
`_can_set_attn_implementation()` (it can swap in vLLM's attention); otherwise the registry raises "Model
architectures [...] are not supported for now". The backend then builds vLLM attention only for the modules that
call transformers' attention interface, and refuses at construction any decoder layer with none ("does not dispatch
through the Transformers attention interface": recurrent, convolution and SSM layers) (models/transformers/base.py).
data/vllm_native_architectures.json holds both verdicts, read with transformers; a config whose architecture is on it
is refused for the newest release, the others get a warning.
"""

from __future__ import annotations

from ...errors import UnservableDeployment
from .profiles import Profile, backend_refusal, never_native, registry_read


def no_native_warning(profile: Profile, architecture: str) -> str | None:
    """The warning for an architecture no vLLM release read here registers; raises when the newest release's
    Transformers backend certainly refuses it."""
    span = never_native(architecture)
    if span is None:
        return None
    first, last = span
    why = backend_refusal(profile, architecture)
    if why is not None:
        tf = f"transformers {why['transformers_version']}'s {architecture}"
        if why["refused"] == "incompatible":
            how = (f"{tf} cannot switch to vLLM's attention (neither is_backend_compatible nor "
                   "_can_set_attn_implementation), so vLLM does not fall back to its Transformers backend and raises "
                   "'not supported'")
        else:
            kind = f", typed {why['layer_type']!r} there" if "layer_type" in why else ""
            how = (f"{tf} has decoder layers that do not call transformers' attention interface (layer "
                   f"{why['first_layer']} of transformers' default config{kind}), which vLLM's Transformers backend "
                   "refuses at construction")
        raise UnservableDeployment("model", f"vLLM {profile.version} cannot start {architecture}: no vLLM release "
                                   f"from v{first} to v{last} implements it natively, and {how}")
    if registry_read(profile):
        tail = (f"vLLM {profile.version} hands it to its Transformers modeling backend, which starts it only if "
                f"transformers (or the checkpoint's auto_map code, with --trust-remote-code) defines {architecture} "
                "with swappable attention and every decoder layer calls transformers' attention interface, and "
                "refuses it otherwise")
    else:
        tail = f"what vLLM {profile.version} does with it instead (Transformers backend or refusal) was not read"
    return (f"no vLLM release from v{first} to v{last} has a native implementation of {architecture}: {tail}; "
            "these numbers follow gpuplan's reading of the config, not a vLLM implementation")

