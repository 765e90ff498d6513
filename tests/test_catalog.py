"""Model catalog lookups and data hygiene."""

from __future__ import annotations

import pytest

from gpuplan.catalog import CatalogEntry, find_model, list_models


def test_lookup_by_id_alias_short_name_and_case() -> None:
    assert find_model("meta-llama/Llama-3.1-8B").id == "meta-llama/Llama-3.1-8B"
    assert find_model("META-LLAMA/LLAMA-3.1-8B").id == "meta-llama/Llama-3.1-8B"
    assert find_model("Llama-3.1-8B").id == "meta-llama/Llama-3.1-8B"
    for spelling in ("llama-3.1-8b", "Llama 3.1 8B", "llama3.1-8b", "LLAMA_3.1_8B"):
        assert find_model(spelling).id == "meta-llama/Llama-3.1-8B", spelling
    assert find_model("meta-llama/Llama-3.1-8B-Instruct").id == "meta-llama/Llama-3.1-8B"
    assert find_model("meta-llama/Llama-3.1-8B@main").id == "meta-llama/Llama-3.1-8B"


def test_unknown_and_foreign_repo_do_not_resolve() -> None:
    assert find_model("no-such-model-xyz") is None
    assert find_model("") is None
    # Another owner's repo with our repo's name may be a quantized copy: it must not match.
    assert find_model("someone/Llama-3.1-8B") is None


SEED_FAMILIES = [
    "Llama 2 7B",
    "Llama 2 13B",
    "Llama 2 70B",
    "Llama 3 8B",
    "Llama 3 70B",
    "Llama 3.1 8B",
    "Llama 3.1 70B",
    "Llama 3.1 405B",
    "Llama 3.2 1B",
    "Llama 3.2 3B",
    "Llama 3.3 70B",
    "Mistral 7B",
    "Mixtral 8x7B",
    "Mixtral 8x22B",
    "Mistral Large",
    "Mistral Medium",
    "GPT-3.5-Turbo",
    "GPT-4",
    "GPT-4o",
    "Qwen1.5-0.5B",
    "Qwen1.5-1.8B",
    "Qwen1.5-4B",
    "Qwen1.5-7B",
    "Qwen1.5-14B",
    "Qwen1.5-32B",
    "Qwen1.5-72B",
    "Qwen1.5-110B",
    "Gemma 2B",
    "Gemma 7B",
    "Claude 3 Haiku",
    "Claude 3 Sonnet",
    "Claude 3 Opus",
    "Gemini Nano",
    "Gemini Pro",
    "Gemini Ultra",
    "Yi 6B",
    "Yi 9B",
    "Yi 34B",
    "Falcon 7B",
    "Falcon 40B",
    "Falcon 180B",
    "StableLM",
    "MPT 7B",
    "MPT 30B",
    "Pythia",
    "OpenChat",
    # Families the project serves beyond the seed list.
    "gemma-2-9b",
    "gemma-3-27b",
    "Qwen2.5-7B",
    "Qwen3-8B",
    "Qwen3-30B-A3B",
    "Qwen2.5-Coder-32B",
    "Qwen3-Next",
    "DeepSeek-V2-Lite",
    "DeepSeek-V3",
    "DeepSeek-R1",
    "Phi-3-mini",
    "phi-4",
    "gpt-oss-20b",
    "gpt-oss-120b",
    "Llama 4 Scout",
    "Llama 4 Maverick",
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    "Qwen/Qwen3-30B-A3B-Instruct-2507",
    "google/gemma-2-2b-it",
    "mistralai/Mistral-7B-Instruct-v0.3",
]


@pytest.mark.parametrize("name", SEED_FAMILIES)
def test_every_seed_family_resolves(name: str) -> None:
    assert isinstance(find_model(name), CatalogEntry), name


def test_every_entry_has_a_model_type_and_unique_names() -> None:
    seen: dict[str, str] = {}
    for entry in list_models():
        assert entry.hf_config.get("model_type"), entry.id
        for name in (entry.id, *entry.aliases):
            key = name.lower()
            assert seen.setdefault(key, entry.id) == entry.id, f"{name} names two entries"
            assert find_model(name).id == entry.id, name


def test_estimated_entries_say_so() -> None:
    estimated = [e for e in list_models() if not e.exact]
    assert {"openai/gpt-4", "anthropic/claude-3-opus", "google/gemini-ultra"} <= {e.id for e in estimated}
    for entry in estimated:
        assert entry.note, entry.id
        if entry.hf_config.get("_name_or_path") == entry.id:  # produced by config_from_params
            assert "ESTIMATED" in entry.note
            assert (
                "estimate" in entry.params_source
                or "guess" in entry.params_source
                or "report" in entry.params_source
            )
            assert entry.total_params


def test_exact_entries_with_totals_name_their_source() -> None:
    for entry in list_models():
        if entry.total_params is not None:
            assert entry.params_source and entry.params_source != "not verified", entry.id


def test_an_entry_whose_name_says_quantized_carries_its_quantization_config() -> None:
    """A catalog config without its checkpoint's quantization block is sized at 16 bits: 2-4x too large."""
    marks = ("fp8", "gptq", "awq", "int4", "int8", "nvfp4", "mxfp4", "w4a16", "w8a8", "bnb")
    for entry in list_models():
        if not entry.exact or not any(m in entry.id.lower() for m in marks):
            continue
        cfg = entry.hf_config
        assert cfg.get("quantization_config") or (cfg.get("text_config") or {}).get("quantization_config"), entry.id


def test_the_70b_int4_checkpoints_the_deployment_guide_names_fit_one_a100_80gb_offline() -> None:
    # A user's 70B quantization guide (seed 004) names these three repos; without Hub access they come from the
    # catalog. The 4-bit weights (~33-37 GiB) leave room for KV cache on one A100 80GB, but not for Llama 3.1's
    # whole 131k context.
    from gpuplan.api_python import estimate

    awq31 = estimate("casperhansen/llama-3.1-70b-instruct-awq", gpu="A100-80GB")
    assert 36 < awq31.weights_bytes / 2**30 < 38
    assert awq31.fits is False and 100_000 < awq31.max_model_len_fit < 131_072
    for repo in ("TheBloke/Llama-2-70B-Chat-AWQ", "TheBloke/Llama-2-70B-Chat-GPTQ"):
        r = estimate(repo, gpu="A100-80GB")
        assert r.fits and 32 < r.weights_bytes / 2**30 < 35, repo
