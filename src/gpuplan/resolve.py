"""One resolver for every face: a model reference -> ModelSpec.

Order: a ModelSpec or config dict as given; an existing path (dir, config.json, .gguf); the catalog
(exact published configs, offline); then the Hugging Face Hub (config.json + safetensors headers).
When the Hub cannot be reached or refuses, the catalog is tried once more under the repo's short name.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from pathlib import Path

from .errors import GpuplanError, ModelNotFound
from .model.adapters import build_spec
from .model.spec import ModelSpec


def _exists(ref: str) -> bool:
    """Whether ref names an existing path; names too long or malformed for the OS are simply not paths."""
    try:
        return Path(ref).expanduser().exists()
    except (OSError, ValueError):
        return False


def _from_checkpoint(info, source: str) -> ModelSpec:
    from .hub import checkpoint_tensors

    spec = build_spec(info.config, info.ref)
    tensors = checkpoint_tensors(info, spec) if info.tensors else None
    notes = tuple(info.notes)
    if tensors:
        notes += ("weights computed from the checkpoint's tensor headers (exact bytes)",)
    return replace(spec, checkpoint=tuple(tensors) if tensors else None, source=source,
                   notes=spec.notes + notes)


def _from_catalog(name: str) -> ModelSpec | None:
    from .catalog import find_model

    entry = find_model(name)
    if entry is None:
        return None
    spec = build_spec(entry.hf_config, entry.id)
    note = () if entry.exact else (f"{entry.id}: architecture not published; estimated ({entry.params_source})",)
    return replace(spec, source="catalog" if entry.exact else "catalog-estimated", notes=spec.notes + note)


def suggestions(name: str, n: int = 5) -> list[str]:
    from .catalog import list_models

    names = [e.id for e in list_models()]
    low = {x.lower(): x for x in names}
    hits = difflib.get_close_matches(name.lower(), list(low), n=n, cutoff=0.4)
    return [low[h] for h in hits]


def resolve_model(ref: str | dict | ModelSpec, allow_network: bool = True) -> ModelSpec:
    if isinstance(ref, ModelSpec):
        return ref
    if isinstance(ref, dict):
        return replace(build_spec(ref), source="config")
    if not isinstance(ref, str) or not ref.strip():
        raise GpuplanError("model", "give a catalog name, an HF repo id (owner/name), a local directory, "
                                    "a config.json path or a .gguf file")
    ref = ref.strip()
    if len(ref) > 512:
        raise GpuplanError("model", "model reference is too long (512 characters at most)")
    from . import hub

    if _exists(ref):
        info = hub.load_reference(ref, allow_network=False)
        return _from_checkpoint(info, "gguf" if info.source == "gguf" else "local")
    spec = _from_catalog(ref)
    if spec is not None:
        return spec
    if hub.is_repo_id(ref):
        try:
            info = hub.load_reference(ref, allow_network=allow_network)
        except (hub.ModelNotFound, hub.NetworkUnavailable, hub.GatedModel) as exc:
            short = ref.split("@")[0].split("/")[-1]
            fallback = _from_catalog(short)
            if fallback is not None:
                return replace(fallback, notes=fallback.notes + (
                    f"{ref}: {exc.message}; using the catalog's {fallback.name} instead",))
            raise
        return _from_checkpoint(info, "hub")
    hint = suggestions(ref)
    raise ModelNotFound("model", f"unknown model {ref!r}: not in the catalog, not a local path, not an HF id "
                                 "(owner/name)" + (f"; did you mean {', '.join(hint)}?" if hint else ""),
                        accepted=hint or None)


def draft_config(ref: str, allow_network: bool = True) -> dict:
    """The config.json of the draft checkpoint speculative_config's "model" names (EAGLE, EAGLE-3, a draft model):
    a local path, a catalog name or an HF repo id, read as the target's is. Errors name speculative_config.model."""
    from . import hub
    from .catalog import find_model

    field = "speculative_config.model"
    ref = (ref or "").strip()
    if not ref or len(ref) > 512:
        raise GpuplanError(field, "name the draft checkpoint: a catalog name, an HF repo id or a local path")
    try:
        if _exists(ref):
            return dict(hub.load_reference(ref, allow_network=False).config)
        entry = find_model(ref)
        if entry is not None:
            return dict(entry.hf_config)
        if hub.is_repo_id(ref):
            return dict(hub.load_reference(ref, allow_network=allow_network).config)
    except GpuplanError as exc:
        raise GpuplanError(field, exc.message, exc.accepted) from None
    raise GpuplanError(field, f"unknown draft model {ref!r}: not in the catalog, not a local path, not an HF id "
                              "(owner/name)")


def with_draft(dep, allow_network: bool = True):
    """`dep` with its separate draft checkpoint's config resolved, where its speculative method needs one."""
    from .engines.vllm.drafter import MTP_METHODS, SEPARATE_DRAFT

    method = (dep.speculative_method or "").strip().lower()
    if dep.speculative_draft_config is not None or not dep.speculative_model or \
            method not in SEPARATE_DRAFT + MTP_METHODS:
        return dep
    try:
        return replace(dep, speculative_draft_config=draft_config(dep.speculative_model, allow_network))
    except GpuplanError:
        if method in SEPARATE_DRAFT:
            raise
        # An MTP method names a model only for a separate MTP checkpoint (Gemma-4's assistant); otherwise the
        # drafter is the target's own modules, so a draft that cannot be read leaves the target's to size.
        return dep
