"""Errors that every face (API, CLI, web) turns into a clear message naming the field."""

from __future__ import annotations

from collections.abc import Sequence


class GpuplanError(ValueError):
    """Bad input or an unsupported case. `field` names the offending input; `accepted` lists valid values."""

    def __init__(self, field: str, message: str, accepted: Sequence[str] | None = None):
        self.field = field
        self.message = message
        self.accepted = list(accepted) if accepted else None
        text = f"{field}: {message}"
        if self.accepted:
            shown = ", ".join(self.accepted[:25]) + (", ..." if len(self.accepted) > 25 else "")
            text += f" (accepted: {shown})"
        super().__init__(text)

    def to_dict(self) -> dict:
        return {"field": self.field, "message": self.message, "accepted": self.accepted, "detail": str(self)}


class ModelNotFound(GpuplanError):
    """The model reference resolves to nothing (catalog, Hub, disk)."""


class ConfigError(GpuplanError):
    """A config.json that cannot be interpreted; never guessed around."""


class UnservableDeployment(GpuplanError):
    """A deployment vLLM itself refuses at start-up (a model that cannot be split over this TP or PP size):
    bad input to the API and CLI, and a predicted failed start to `gpuplan validate`."""
