"""Date a vLLM log from the file:line markers of its lines.

Python's logging prints where each line was logged ("[gpu_worker.py:298] Available KV cache memory: 6.51 GiB"),
and those places move from release to release. data/vllm_log_lines.json (tools/vllm/log_lines.py, read from the
release wheels) says which releases log which start-up format at which file and line, so a quoted log narrows
down the release that wrote it. Used by `gpuplan validate` for records that do not state their version.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .datafiles import data_json

# "[gpu_worker.py:298] Available ..." (0.6+) or "model_runner.py:1115] Loading ..." (older, no opening bracket).
_MARKER = re.compile(r"([A-Za-z_]\w*\.py):(\d+)\]\s*([^|]*)")
_PLACEHOLDER = re.compile(r"%[-+ #0]*\d*(?:\.\d+)?[sdifrxgGeE%]|\{[^{}]*\}")
_MIN_LITERAL = 8  # characters of a format's literal text a quoted line must show to count as that format


@lru_cache(maxsize=1)
def _table() -> tuple[tuple[str, ...], dict[tuple[str, int], tuple[tuple[re.Pattern, frozenset[str]], ...]],
                      tuple[tuple[re.Pattern, str], ...]]:
    data = data_json("vllm_log_lines.json")
    at: dict[tuple[str, int], list[tuple[re.Pattern, frozenset[str]]]] = {}
    formats: dict[str, re.Pattern] = {}
    for e in data["lines"]:
        pattern = formats.get(e["format"]) or _pattern(e["format"])
        formats[e["format"]] = pattern
        if pattern is not None:
            at.setdefault((e["file"], e["line"]), []).append((pattern, frozenset(e["releases"])))
    every = tuple((p, f) for f, p in formats.items() if p is not None)
    return tuple(data["releases"]), {k: tuple(v) for k, v in at.items()}, every


def _pattern(fmt: str) -> re.Pattern | None:
    """A regex matching the start of a line logged with `fmt`, placeholders free; None when the first line of
    the format has too little literal text to recognise."""
    first = fmt.split("\n", 1)[0]
    parts = _PLACEHOLDER.split(first)
    if sum(len(p.strip()) for p in parts) < _MIN_LITERAL:
        return None
    # a format that opens with a placeholder ("%s KV cache size: ...", 0.30+) matches after any text
    lead = r".*?" if not parts[0].strip() else ""
    return re.compile(r"\s*" + lead + r".*?".join(re.escape(p.strip()) for p in parts if p.strip()), re.DOTALL)


def _matches(pattern: re.Pattern, message: str) -> bool:
    return pattern.match(message.strip()) is not None


def releases_in_table() -> tuple[str, ...]:
    """The releases whose start-up lines the table holds, oldest first."""
    return _table()[0]


def releases_from_log(evidence: str) -> tuple[str, ...] | None:
    """The releases whose code logs every dated line of `evidence` at the place the log shows, oldest first.
    None when no quoted line can be dated, or when some line is a known start-up line at a place no release
    logs it (a development build or a patched copy)."""
    releases, at, every = _table()
    candidates: set[str] | None = None
    for m in _MARKER.finditer(evidence or ""):
        file, line, message = m.group(1), int(m.group(2)), m.group(3)
        here = {r for pattern, rs in at.get((file, line), ()) if _matches(pattern, message) for r in rs}
        if here:
            candidates = here if candidates is None else candidates & here
            if not candidates:
                return None
        elif any(_matches(pattern, message) for pattern, _ in every):
            return None
    if not candidates:
        return None
    return tuple(r for r in releases if r in candidates)


def version_from_log(evidence: str) -> str | None:
    """The newest release consistent with the log's dated lines (releases that log the same lines at the same
    places are patch releases apart, and gpuplan's version profiles do not split them)."""
    found = releases_from_log(evidence)
    return found[-1] if found else None


# A quoted line counts at most this many lines from a release's place for it, and this many where the release
# does not log that format in that file: code between releases drifts by tens of lines, so farther says only
# "not this release", and one line missing from a release does not outweigh the others.
_FAR_LINES = 400


@lru_cache(maxsize=1)
def _places() -> dict[str, tuple[tuple[re.Pattern, int, frozenset[str]], ...]]:
    """_table's places regrouped by file: (pattern, line, releases)."""
    by_file: dict[str, list[tuple[re.Pattern, int, frozenset[str]]]] = {}
    for (file, line), entries in _table()[1].items():
        by_file.setdefault(file, []).extend((pattern, line, rs) for pattern, rs in entries)
    return {f: tuple(v) for f, v in by_file.items()}


def nearest_release(evidence: str, among: tuple[str, ...] | None = None) -> str | None:
    """The release whose code is nearest to a development build's: the one that logs the quoted start-up lines
    closest to the lines the log shows them at (summed over the lines). Ties go to the newest. `among` limits the
    candidates (e.g. to what the build's own version string allows); None when no quoted line is a known start-up
    format, or none is nearer to one candidate than to another."""
    releases = tuple(r for r in releases_in_table() if among is None or r in among)
    if not releases:
        return None
    places = _places()
    distance = dict.fromkeys(releases, 0)
    dated = 0
    for m in _MARKER.finditer(evidence or ""):
        file, line, message = m.group(1), int(m.group(2)), m.group(3)
        where = [(at, rs) for pattern, at, rs in places.get(file, ()) if _matches(pattern, message)]
        if not where:
            continue
        dated += 1
        for r in releases:
            distance[r] += min([abs(line - at) for at, rs in where if r in rs] + [_FAR_LINES])
    best = min(distance.values())
    if not dated or best == max(distance.values()):
        return None  # no line tells the candidates apart
    return [r for r in releases if distance[r] == best][-1]
