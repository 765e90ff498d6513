"""Model specs built from HF configs. The adapter registry loads first: its modules import one another's builders,
so importing one of them before the registry would meet a half-initialised module."""

from . import adapters  # noqa: F401
