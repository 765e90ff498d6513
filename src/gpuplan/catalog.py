"""The model catalog: named models with their config.json, read once from gpuplan/data/models/*.json.

Lookup accepts what people type: the HF id, any alias, the repo name without its owner, and loose
spellings of either ("Llama 3.1 8B", "llama3.1-8b", "LLAMA_3.1_8B"). All facts live in the JSON files;
this module only indexes them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["CatalogEntry", "list_models", "find_model", "normalize_name"]


@dataclass(frozen=True)
class CatalogEntry:
    """One catalog model. `exact` is False when hf_config is a stand-in (estimated or partly filled)."""

    id: str
    aliases: tuple[str, ...]
    family: str
    exact: bool
    hf_config: dict[str, Any] = field(hash=False, compare=False)
    total_params: int | None
    params_source: str
    note: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CatalogEntry:
        return cls(
            id=data["id"],
            aliases=tuple(data.get("aliases", ())),
            family=data["family"],
            exact=bool(data["exact"]),
            hf_config=data["hf_config"],
            total_params=data.get("total_params"),
            params_source=data.get("params_source", ""),
            note=data.get("note", ""),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "aliases": list(self.aliases),
            "family": self.family,
            "exact": self.exact,
            "hf_config": self.hf_config,
            "total_params": self.total_params,
            "params_source": self.params_source,
            "note": self.note,
        }


_SEPARATORS = re.compile(r"[\s_\-]+")


def normalize_name(name: str) -> str:
    """Loose key: lower case, without spaces, underscores and dashes. Dots stay: "qwen2.5-7b" and
    "qwen2-57b" are different models."""
    return _SEPARATORS.sub("", name.strip().lower())


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


@lru_cache(maxsize=1)
def _load() -> tuple[tuple[CatalogEntry, ...], tuple[dict[str, CatalogEntry], ...]]:
    files = resources.files("gpuplan") / "data" / "models"
    entries = tuple(
        CatalogEntry.from_dict(json.loads(f.read_text(encoding="utf-8")))
        for f in sorted(files.iterdir(), key=lambda p: p.name)
        if f.name.endswith(".json")
    )
    # Three tiers, tried in order, so an exact spelling always beats a loose match that happens to
    # collide with it (e.g. an alias that another entry's repo name normalises to).
    exact: dict[str, CatalogEntry] = {}
    short: dict[str, CatalogEntry] = {}
    loose: dict[str, CatalogEntry] = {}
    for entry in entries:
        for name in (entry.id, *entry.aliases):
            exact.setdefault(name.lower(), entry)
            short.setdefault(_short(name).lower(), entry)
            loose.setdefault(normalize_name(name), entry)
            loose.setdefault(normalize_name(_short(name)), entry)
    return entries, (exact, short, loose)


def list_models() -> list[CatalogEntry]:
    """All catalog entries, sorted by id."""
    return sorted(_load()[0], key=lambda e: e.id.lower())


def find_model(name: str) -> CatalogEntry | None:
    """The entry for an HF id, alias or short name (case-insensitive, loose on separators), or None."""
    if not name or not name.strip():
        return None
    exact, short, loose = _load()[1]
    key = name.strip().lower()
    key = key.split("@", 1)[0]  # "org/model@revision": the revision does not change the catalog entry
    if "/" in key:
        # A full repo id names one checkpoint. Another owner's repo of the same name is often a
        # quantized or modified copy, so it must not silently resolve to ours.
        return exact.get(key) or loose.get(normalize_name(key))
    return exact.get(key) or short.get(key) or loose.get(normalize_name(key))
