"""Distinct failures of loading a checkpoint, so callers (catalog fallback, CLI, API) can react to each.

All carry field="model": every face reports them against the model input.
"""

from __future__ import annotations

from ..errors import ConfigError, GpuplanError, ModelNotFound


class RevisionNotFound(ModelNotFound):
    """The repository exists but not the requested revision."""


class GatedModel(GpuplanError):
    """The repository is gated or private and the request was not authorised."""


class ConfigMissing(ConfigError):
    """The repository or directory has no config.json, so there is nothing to build the model from."""


class NetworkUnavailable(ModelNotFound):
    """The Hub could not be reached (no connection, time-out, HF_HUB_OFFLINE) and nothing is cached.

    A kind of "not found": callers that fall back (catalog, estimation from a size) treat it as such."""


class HubError(GpuplanError):
    """Any other failure reported by the Hub (5xx, rate limit, malformed response)."""


__all__ = [
    "ConfigError",
    "ConfigMissing",
    "GatedModel",
    "GpuplanError",
    "HubError",
    "ModelNotFound",
    "NetworkUnavailable",
    "RevisionNotFound",
]
