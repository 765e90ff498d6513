"""Validate a Hugging Face repo id before anything is requested.

A reference that reaches the Hub must be a plain `owner/name[@revision]`. Rejecting everything else
up front means a user-supplied string can never turn into a request to an arbitrary URL or path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import GpuplanError

# The Hub's own limits: each part at most 96 characters of [A-Za-z0-9._-].
MAX_PART_LEN = 96
# Branch names, tags, commit hashes and "refs/pr/N" fit this; 255 is git's ref-name practical limit.
MAX_REVISION_LEN = 255

_PART = re.compile(r"[A-Za-z0-9._-]+")
_REVISION = re.compile(r"[A-Za-z0-9._/-]+")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class RepoId:
    owner: str
    name: str
    revision: str | None = None

    @property
    def repo_id(self) -> str:
        return f"{self.owner}/{self.name}"

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


def _bad(ref: str, why: str) -> GpuplanError:
    return GpuplanError("model", f"{ref!r} is not a Hugging Face model id ({why}); expected 'owner/name' "
                                 "or 'owner/name@revision'")


def _check_part(ref: str, part: str, what: str) -> None:
    if not part:
        raise _bad(ref, f"empty {what}")
    if len(part) > MAX_PART_LEN:
        raise _bad(ref, f"{what} longer than {MAX_PART_LEN} characters")
    if not _PART.fullmatch(part):
        raise _bad(ref, f"{what} may only contain letters, digits, '.', '_' and '-'")
    if ".." in part:
        raise _bad(ref, f"'..' in {what}")
    if part[0] in "-." or part[-1] in "-.":
        raise _bad(ref, f"{what} starts or ends with '-' or '.'")


def parse_repo_id(ref: str) -> RepoId:
    """Parse `owner/name[@revision]`, raising GpuplanError(field="model") for anything else."""
    if not isinstance(ref, str):
        raise GpuplanError("model", "a model id must be a string")
    text = ref.strip()
    # URLs are refused outright (not rewritten): fetching what a user typed is exactly what we avoid.
    if _SCHEME.match(text) or "://" in text or text.startswith("//"):
        raise _bad(ref, "URLs are not accepted")
    repo, sep, revision = text.partition("@")
    if sep:
        if not revision:
            raise _bad(ref, "empty revision after '@'")
        if len(revision) > MAX_REVISION_LEN or not _REVISION.fullmatch(revision):
            raise _bad(ref, "revision may only contain letters, digits, '.', '_', '-' and '/'")
        if ".." in revision or revision.startswith("/") or revision.endswith("/") or "//" in revision:
            raise _bad(ref, "malformed revision")
    parts = repo.split("/")
    if len(parts) != 2:
        raise _bad(ref, "need exactly one '/' between owner and name")
    owner, name = parts
    _check_part(ref, owner, "owner")
    _check_part(ref, name, "name")
    return RepoId(owner, name, revision or None)


def is_repo_id(ref: str) -> bool:
    try:
        parse_repo_id(ref)
    except GpuplanError:
        return False
    return True
