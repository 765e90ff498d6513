from __future__ import annotations

import pytest

from gpuplan.errors import GpuplanError
from gpuplan.hub import RepoId, is_repo_id, parse_repo_id


@pytest.mark.parametrize(("ref", "expected"), [
    ("meta-llama/Llama-3.1-8B", RepoId("meta-llama", "Llama-3.1-8B")),
    ("Qwen/Qwen2.5-0.5B-Instruct", RepoId("Qwen", "Qwen2.5-0.5B-Instruct")),
    ("TheBloke/Llama-2-7B-AWQ@main", RepoId("TheBloke", "Llama-2-7B-AWQ", "main")),
    ("a/b@refs/pr/12", RepoId("a", "b", "refs/pr/12")),
    ("org/m@0123456789abcdef0123456789abcdef01234567", RepoId("org", "m", "0123456789abcdef0123456789abcdef01234567")),
    ("  org_1/model.v2_final  ", RepoId("org_1", "model.v2_final")),
    ("o" * 96 + "/" + "n" * 96, RepoId("o" * 96, "n" * 96)),
])
def test_good_ids(ref: str, expected: RepoId) -> None:
    assert parse_repo_id(ref) == expected
    assert is_repo_id(ref)


def test_str_roundtrip() -> None:
    assert str(parse_repo_id("a/b@v1")) == "a/b@v1"
    assert parse_repo_id("a/b@v1").repo_id == "a/b"


@pytest.mark.parametrize("ref", [
    "https://huggingface.co/meta-llama/Llama-3.1-8B",
    "http://example.com/a/b",
    "hf://a/b",
    "file:///etc/passwd",
    "//evil.example/a",
    "../etc/passwd",
    "a/../b",
    "a/b..c",
    "../a",
    "a/b/c",
    "llama",
    "/b",
    "a/",
    "-a/b",
    "a/b-",
    ".a/b",
    "a/b.",
    "a b/c",
    "a/b?x=1",
    "a/b#frag",
    "a/b%2e",
    "o" * 97 + "/b",
    "a/" + "n" * 97,
    "a/b@",
    "a/b@../../x",
    "a/b@x y",
    "a/b@/x",
    "ü/b",
    "",
])
def test_bad_ids(ref: str) -> None:
    with pytest.raises(GpuplanError) as e:
        parse_repo_id(ref)
    assert e.value.field == "model"
    assert not is_repo_id(ref)


def test_url_message_says_urls_are_refused() -> None:
    with pytest.raises(GpuplanError, match="URLs are not accepted"):
        parse_repo_id("https://huggingface.co/a/b")
