"""Dating a vLLM log from the file:line markers of its lines (gpuplan.log_dating, data/vllm_log_lines.json read
from 91 release wheels, 0.2.0 to 0.33.0, by tools/vllm/log_lines.py). `gpuplan validate` uses it for records
that quote vLLM's lines but do not say which vLLM wrote them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gpuplan.datafiles import data_json
from gpuplan.engines.vllm.profiles import parse_version
from gpuplan.errors import GpuplanError
from gpuplan.log_dating import nearest_release, releases_from_log, version_from_log
from gpuplan.validation import development_release, predict, record_version

LOGS = Path(__file__).parent / "fixtures" / "vllm_logs"


def _records() -> list[dict]:
    return [json.loads(line) for f in sorted(LOGS.glob("*.jsonl")) for line in f.open() if line.strip()]


# Vendor builds that print an upstream release number over another release's code.
_RENUMBERED = {"gvd-009": "Red Hat OpenShift AI 2.23's vLLM prints 0.9.0.1; its file:line markers are 0.9.2's",
               "gvd-010": "the same service as gvd-009"}


def test_every_record_that_states_its_vllm_is_dated_to_a_range_holding_it() -> None:
    """The check that the table is right: on every public record that names its release and quotes datable
    lines, the stated release is among those the lines date it to (dev builds name no release and are skipped)."""
    checked = 0
    for rec in _records():
        if rec["id"] in _RENUMBERED:
            assert releases_from_log(rec.get("evidence") or "") in (None, ("0.9.2",)), rec["id"]
            continue
        stated = str(rec.get("engine_version") or "")
        if not re.fullmatch(r"\d+\.\d+\.\d+(\.\d+|\.post\d+)?", stated):
            continue
        found = releases_from_log(rec.get("evidence") or "")
        if found is None:
            continue
        checked += 1
        assert any(r == stated or r.startswith(stated + ".post") for r in found), (rec["id"], stated, found)
    assert checked >= 35


def test_a_v1_kv_line_dates_an_lmcache_log_to_0_10_2_or_0_11_0() -> None:
    """gt008 of the dev set (an LMCache issue) quotes '[gpu_worker.py:298] Available KV cache memory'."""
    line = "(EngineCore_0 pid=1) INFO 10-08 [gpu_worker.py:298] Available KV cache memory: 6.51 GiB"
    assert releases_from_log(line) == ("0.10.2", "0.11.0")
    assert version_from_log(line) == "0.11.0"


def test_a_v0_weights_line_without_an_opening_bracket_is_dated() -> None:
    """Before 0.6.5 the logger printed 'model_runner.py:1067] ...' with no opening bracket (heldout_public
    ghq-007, an oumi PR): only 0.6.3.post1 logs the weights there (0.6.3 at another line)."""
    line = "INFO 11-11 11:10:04 model_runner.py:1067] Loading model weights took 2.3185 GB"
    assert releases_from_log(line) == ("0.6.3.post1",)


def test_a_known_line_at_a_place_no_release_logs_it_is_a_development_build_and_is_not_dated() -> None:
    line = "INFO [gpu_worker.py:1] Available KV cache memory: 6.51 GiB"
    assert releases_from_log(line) is None


def test_lines_of_different_releases_contradict_each_other_and_date_nothing() -> None:
    kv_0_11 = "[gpu_worker.py:298] Available KV cache memory: 6.51 GiB"
    weights_0_6 = "model_runner.py:1067] Loading model weights took 2.3185 GB"
    assert releases_from_log(f"{kv_0_11} | {weights_0_6}") is None


def test_text_without_markers_or_with_unknown_messages_is_not_dated() -> None:
    assert releases_from_log("Available KV cache memory: 6.51 GiB") is None
    assert releases_from_log("[foo.py:12] something else entirely") is None


def test_the_table_covers_every_release_from_0_2_to_the_newest_profile() -> None:
    data = data_json("vllm_log_lines.json")
    releases = data["releases"]
    assert releases == sorted(releases, key=lambda v: (parse_version(v), v))
    assert {"0.2.0", "0.6.3", "0.8.5", "0.10.1", "0.11.2", "0.19.0", "0.33.0"} <= set(releases)


def test_validate_dates_a_record_that_quotes_lines_but_states_no_version() -> None:
    """A record without engine_version is predicted with the release its lines date it to, and says so;
    a vLLM issue number only bounds it (the log cannot postdate the issue)."""
    rec = next(r for r in _records() if r["id"] == "ip-001")  # vllm#13061: a V0 log on two RTX 4090s
    assert rec["engine_version"] is None
    version, how = record_version(rec)
    assert (version, how) == ("0.7.0", "log lines")  # model_runner.py:1115 is 0.7.0/0.7.2/0.7.3; the issue is 0.7.1's
    predicted = predict(rec)
    assert predicted["engine_version"] == "0.7.0" and predicted["engine_version_from"] == "log lines"


def test_a_record_without_lines_or_issue_keeps_the_newest_profile() -> None:
    rec = {"id": "x", "source_url": "https://example.org/blog", "evidence": "Model loading took 14.99 GiB"}
    assert record_version(rec) == (None, None)


def test_a_format_opening_with_a_placeholder_dates_its_line() -> None:
    """0.30+ log "%s KV cache size: ..." (the platform's name first): the line is 0.31.0's, not an unknown place."""
    line = ("(EngineCore pid=1) INFO [kv_cache_utils.py:2464] GPU KV cache size: 558,496 tokens, "
            "Maximum concurrency for 8,192 tokens per request: 68.18x")
    assert releases_from_log(line) == ("0.31.0",)


def test_the_nearest_release_of_a_release_log_is_the_newest_its_lines_date_it_to() -> None:
    """Where a log's lines date it exactly, the nearest release is the newest of those (distance 0), as
    version_from_log says; checked on every public record that quotes datable lines."""
    checked = 0
    for rec in _records():
        exact = releases_from_log(rec.get("evidence") or "")
        if exact:
            checked += 1
            assert nearest_release(rec["evidence"]) == exact[-1], rec["id"]
    assert checked >= 60


def test_a_development_build_is_dated_to_the_release_its_lines_are_nearest() -> None:
    """A main-branch build between 0.23 and 0.24 (rp-005: 0.23.1rc1.dev531) logs its start-up lines within a few
    lines of 0.24.0's places and hundreds from 0.23's: it runs 0.24's code."""
    rec = next(r for r in _records() if r["id"] == "rp-005")
    assert rec["engine_version"] == "0.23.1rc1.dev531+ga65f93fb2"
    assert record_version(rec) == ("0.24.0", "log lines (development build)")
    assert predict(rec)["engine_version"] == "0.24.0"


def test_a_development_build_chooses_only_among_its_series_and_the_next() -> None:
    line = "INFO [gpu_worker.py:298] Available KV cache memory: 6.51 GiB"  # 0.10.2 / 0.11.0's place
    assert development_release("0.11.1rc2.dev5+gabc", line) == ("0.11.0", "log lines (development build)")
    far = line.replace(":298]", ":2000]")  # no release of any series logs it within hundreds of lines
    assert development_release("0.19.1rc1.dev3+gabc", far) is None
    assert development_release("0.19.0", line) is None  # a release is not re-dated


def test_a_source_build_without_tags_is_dated_from_its_lines_not_read_as_vllm_0_1() -> None:
    """vLLM built from a tagless checkout calls itself 0.1.devN. hse-009 (Qwen3-32B on an H100, January 2026)
    was sized as a 2023 release until its lines dated it to 0.14: now its KV cache is within 1% of the log."""
    rec = next(r for r in _records() if r["id"] == "hse-009")
    assert rec["engine_version"].startswith("0.1.dev")
    version, how = record_version(rec)
    assert version in ("0.14.0", "0.14.1") and how == "log lines (source build)"
    predicted = predict(rec)
    assert abs(predicted["available_kv_cache_gib"] / rec["logged"]["available_kv_cache_gib"] - 1) < 0.01
    assert development_release("0.1.dev42", "no dated line") == (None, "source build, not dated")


def test_a_user_cannot_size_for_an_untagged_source_build() -> None:
    with pytest.raises(GpuplanError, match="vllm_version.*without release tags"):
        parse_version("0.1.dev13620+g98410807a")
