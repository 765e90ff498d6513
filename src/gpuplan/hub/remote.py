"""Checkpoints on the Hugging Face Hub, read through `huggingface_hub` (headers and config only).

huggingface_hub already honours HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE and the local HF cache, so this
module adds only what it lacks for us: time-outs, and failures mapped to distinct errors that name the
"model" field and tell the user what to do. Requests go only to the configured Hub endpoint for an id
that `ids.parse_repo_id` accepted; no user-supplied URL is ever fetched and no remote code is run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointInfo, CheckpointTensor, normalize_dtype
from .errors import (
    ConfigError,
    ConfigMissing,
    GatedModel,
    HubError,
    ModelNotFound,
    NetworkUnavailable,
    RevisionNotFound,
)
from .ids import RepoId
from .local import MAX_JSON_FILE, checkpoint_from_mistral_params, merge_side_configs

# Seconds to wait for the Hub before giving up on one request; a planner should fail fast, not hang.
DEFAULT_TIMEOUT = 10.0

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def _map_error(e: BaseException, repo: RepoId, what: str) -> Exception:
    """Translate a huggingface_hub / httpx failure into one of our GpuplanErrors (or None to re-raise)."""
    from huggingface_hub import errors as hf

    rid = str(repo)
    if isinstance(e, hf.GatedRepoError):
        return GatedModel("model", f"{rid} is gated: request access on its Hub page, then set HF_TOKEN "
                                   "(or run `hf auth login`) with a token of an account that has access")
    if isinstance(e, hf.RepositoryNotFoundError):
        # The Hub answers 401 for private and missing repos alike, so mention both.
        return ModelNotFound("model", f"{rid} was not found on the Hub (if it is private, set HF_TOKEN)")
    if isinstance(e, hf.RevisionNotFoundError):
        return RevisionNotFound("model", f"revision {repo.revision!r} of {repo.repo_id} was not found on the Hub")
    if isinstance(e, hf.RemoteEntryNotFoundError):
        return ConfigMissing("model", f"{rid} has no {what} on the Hub, so it is not a transformers model "
                                      "gpuplan can read")
    if isinstance(e, hf.LocalEntryNotFoundError) and isinstance(e.__cause__, hf.HfHubHTTPError):
        # hf_hub_download reports a refused HEAD (403, 5xx) as "not cached"; the cause says what happened.
        return _map_error(e.__cause__, repo, what)
    if isinstance(e, hf.OfflineModeIsEnabled | hf.LocalEntryNotFoundError):
        # LocalEntryNotFoundError is what hf_hub_download raises when it could not reach the Hub
        # (offline mode, connection refused, time-out) and nothing was cached.
        return NetworkUnavailable("model", f"cannot reach the Hugging Face Hub for {rid} and it is not in "
                                           "the local HF cache (check the connection, HF_ENDPOINT, "
                                           "HF_HUB_OFFLINE)")
    if isinstance(e, hf.HfHubHTTPError):
        status = e.response.status_code if getattr(e, "response", None) is not None else None
        if status in (401, 403):
            return GatedModel("model", f"access to {rid} was refused (HTTP {status}): set HF_TOKEN to a "
                                       "token that can read it, and request access if it is gated")
        return HubError("model", f"the Hub failed for {rid} (HTTP {status}) while fetching {what}")
    if isinstance(e, _httpx().TransportError | ConnectionError | TimeoutError):
        return NetworkUnavailable("model", f"cannot reach the Hugging Face Hub for {rid}: {type(e).__name__}")
    return HubError("model", f"unexpected failure fetching {what} of {rid}: {type(e).__name__}: {e}")


def _revision_from_cache_path(path: str) -> str | None:
    # hf_hub_download returns .../snapshots/<commit>/<file>: the resolved commit, for reproducibility.
    parent = Path(path).parent.name
    return parent if _COMMIT.match(parent) else None


def _download_json(repo: RepoId, filename: str, timeout: float, cache_only: bool = False) -> tuple[Any, str]:
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(repo.repo_id, filename, revision=repo.revision, etag_timeout=timeout,
                           local_files_only=cache_only)
    p = Path(path)
    if p.stat().st_size > MAX_JSON_FILE:
        raise ConfigError("model", f"{filename} of {repo} is too large to be a config")
    try:
        return json.loads(p.read_text(encoding="utf-8")), path
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError("model", f"{filename} of {repo} is not valid JSON") from e


def _httpx() -> Any:
    try:
        import httpx2 as httpx_mod  # huggingface_hub >= 2 uses httpx2
    except ImportError:  # pragma: no cover - older huggingface_hub versions use httpx
        import httpx as httpx_mod  # type: ignore[no-redef]
    return httpx_mod


def _probe(repo: RepoId, filename: str, timeout: float) -> BaseException | None:
    """One HEAD without retries: the Hub's answer, or the reason it could not be reached.

    hf_hub_download retries an unreachable Hub with back-off (about 25 s, plus time-outs) before it
    gives up; a planner answering a web request must fail in seconds, so we look first. HTTP errors
    that have a meaning (404, 401/403, gated) are raised; transport failures and 5xx/429 are returned,
    and the caller falls back to the local HF cache.
    """
    from huggingface_hub import errors as hf
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo.repo_id, filename, revision=repo.revision)
    try:
        get_hf_file_metadata(url, timeout=timeout)
    except (_httpx().TransportError, hf.OfflineModeIsEnabled) as e:
        return e
    except hf.HfHubHTTPError as e:
        status = e.response.status_code if getattr(e, "response", None) is not None else None
        if status is not None and (status >= 500 or status == 429):
            return e
        raise
    return None


def _optional_json(repo: RepoId, filename: str, timeout: float, cache_only: bool) -> Any:
    """A side file that most repos lack: absent (or not cached) means None."""
    from huggingface_hub import errors as hf

    try:
        data, _ = _download_json(repo, filename, timeout, cache_only)
    except (hf.RemoteEntryNotFoundError, hf.LocalEntryNotFoundError, ConfigError):
        return None
    return data


def fetch_tensors(repo: RepoId, timeout: float = DEFAULT_TIMEOUT) -> tuple[tuple[CheckpointTensor, ...] | None, str]:
    """Tensors from the safetensors headers on the Hub (HTTP range requests; sharded repos too)."""
    from huggingface_hub import errors as hf
    from huggingface_hub import get_safetensors_metadata

    try:
        meta = get_safetensors_metadata(repo.repo_id, revision=repo.revision, timeout=timeout)
    except hf.NotASafetensorsRepoError:
        return None, "no safetensors weights on the Hub (pickled .bin?): sizes come from config.json"
    except hf.SafetensorsParsingError as e:
        raise ConfigError("model", f"a safetensors header of {repo} could not be parsed: {e}") from e
    tensors: list[CheckpointTensor] = []
    for filename in sorted(meta.files_metadata):
        file_meta = meta.files_metadata[filename]
        entries = sorted(file_meta.tensors.items(), key=lambda kv: kv[1].data_offsets[0])
        for name, info in entries:
            begin, end = info.data_offsets
            tensors.append(CheckpointTensor(name, normalize_dtype(info.dtype), tuple(info.shape), end - begin))
    files = len(meta.files_metadata)
    return tuple(tensors), f"safetensors headers read from the Hub ({files} file{'s' if files > 1 else ''})"


def load_remote(repo: RepoId, ref: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                cache_only: bool = False) -> CheckpointInfo:
    """config.json (+ side files) and the safetensors headers of `repo`. Raises the errors in hub.errors.

    cache_only: use only the local HF cache (no request at all); tensor headers are then unavailable,
    because huggingface_hub does not cache them.
    """
    ref = ref if ref is not None else str(repo)
    unreachable: BaseException | None = None
    try:
        if not cache_only:
            unreachable = _probe(repo, "config.json", timeout)
            cache_only = unreachable is not None
        config, path = _download_json(repo, "config.json", timeout, cache_only)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - every other failure is mapped to a named error below
        # When the probe failed, the cache miss is secondary: report why the Hub was unreachable.
        mapped = _map_error(unreachable or e, repo, "config.json")
        if isinstance(mapped, ConfigMissing):
            # vLLM falls back to a Mistral-format params.json when a repository has no config.json.
            params = _optional_json(repo, "params.json", timeout, cache_only)
            if params is not None:
                return checkpoint_from_mistral_params(params, ref, "hub", repo.revision or "main")
        raise mapped from e
    if not isinstance(config, dict):
        raise ConfigError("model", f"config.json of {repo} is not a JSON object")
    notes: list[str] = []
    try:
        notes.extend(merge_side_configs(config, lambda name: _optional_json(repo, name, timeout, cache_only)))
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001
        raise _map_error(e, repo, "quantization / generation config") from e
    tensors: tuple[CheckpointTensor, ...] | None = None
    if unreachable is not None:
        mapped = _map_error(unreachable, repo, "config.json")
        notes.append(f"Hub unreachable ({mapped.message}); config.json from the local HF cache, "
                     "sizes come from it")
    elif cache_only:
        notes.append("read from the local HF cache without network: sizes come from config.json")
    else:
        try:
            tensors, note = fetch_tensors(repo, timeout)
            notes.append(note)
        except ConfigError:
            raise
        except Exception as e:  # noqa: BLE001
            mapped = _map_error(e, repo, "safetensors headers")
            if not isinstance(mapped, NetworkUnavailable | HubError):
                raise mapped from e
            # config.json came from the cache or the Hub; an estimate from it still beats failing.
            notes.append(f"safetensors headers unavailable ({mapped.message}); sizes come from config.json")
    commit = _revision_from_cache_path(path)
    if commit:
        notes.append(f"Hub commit {commit}")
    quant = config.get("quantization_config")
    return CheckpointInfo(ref=ref, source="hub", config=config, tensors=tensors,
                          revision=commit or repo.revision or "main", notes=tuple(notes),
                          quantization_config=quant if isinstance(quant, dict) else None)
