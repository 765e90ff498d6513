"""Checkpoints from the Hugging Face Hub or from disk, read from headers only.

`load_reference` turns a user's model reference into a `CheckpointInfo` (config + stored tensors);
`checkpoint_tensors` turns those tensors into `gpuplan.model.spec.Tensor`s sharded the way vLLM shards
them. Catalog names are not handled here: the caller tries the catalog when this raises ModelNotFound or
NetworkUnavailable.
"""

from __future__ import annotations

from pathlib import Path

from .checkpoint import CheckpointInfo, CheckpointTensor, dtype_nbytes, normalize_dtype
from .errors import (
    ConfigError,
    ConfigMissing,
    GatedModel,
    HubError,
    ModelNotFound,
    NetworkUnavailable,
    RevisionNotFound,
)
from .ids import RepoId, is_repo_id, parse_repo_id
from .tensors import TensorMapping, checkpoint_tensors, layer_index, map_checkpoint, tensor_nbytes


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~")) or ref.endswith((".json", ".gguf")) or "\\" in ref


def load_reference(ref: str, allow_network: bool = True) -> CheckpointInfo:
    """A checkpoint from an existing path (dir / config.json / .gguf) or a Hub id `owner/name[@rev]`.

    Paths win over ids: "org/model" that exists on disk is read from disk, as vLLM itself does.
    """
    from ..errors import GpuplanError

    if not isinstance(ref, str) or not ref.strip():
        raise GpuplanError("model", "empty model reference")
    ref = ref.strip()
    path = Path(ref).expanduser()
    try:
        exists = path.exists()
    except (OSError, ValueError):  # e.g. a component longer than the OS allows: not a path
        exists = False
    if exists:
        from .local import load_local

        return load_local(path, ref)
    if _looks_like_path(ref):
        raise ModelNotFound("model", f"no such file or directory: {ref}")
    repo = parse_repo_id(ref)  # raises GpuplanError(field="model") for URLs and malformed ids
    from .remote import load_remote

    # Without network the local HF cache may still hold the config (NetworkUnavailable if it does not).
    return load_remote(repo, ref, cache_only=not allow_network)


__all__ = [
    "CheckpointInfo",
    "CheckpointTensor",
    "ConfigError",
    "ConfigMissing",
    "GatedModel",
    "HubError",
    "ModelNotFound",
    "NetworkUnavailable",
    "RepoId",
    "RevisionNotFound",
    "TensorMapping",
    "checkpoint_tensors",
    "dtype_nbytes",
    "is_repo_id",
    "layer_index",
    "load_reference",
    "map_checkpoint",
    "normalize_dtype",
    "parse_repo_id",
    "tensor_nbytes",
]
