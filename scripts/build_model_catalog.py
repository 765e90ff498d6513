"""Regenerate src/gpuplan/data/models/*.json from the project's shared reference data.

Run from the repository root:  python scripts/build_model_catalog.py /path/to/shared
Every fact lands in the JSON files; gpuplan.catalog only reads them. The alias table below is the one
place where names people type are tied to checkpoints, and each tie says why it is safe.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from gpuplan.arch_estimate import config_from_params  # noqa: E402

OUT = ROOT / "src" / "gpuplan" / "data" / "models"

SAME_ARCH = "same architecture as {base}: its config.json differs at most in token ids"

# base id -> (family, extra aliases, note). Aliases that are other checkpoints carry an entry in
# VARIANTS below so the note can say what was compared.
FAMILY_ALIASES: dict[str, tuple[str, list[str]]] = {
    "01-ai/Yi-34B": ("yi", ["yi-34b"]),
    "01-ai/Yi-6B": ("yi", ["yi-6b"]),
    "01-ai/Yi-9B": ("yi", ["yi-9b"]),
    "EleutherAI/pythia-1.4b": ("pythia", []),
    "EleutherAI/pythia-12b": ("pythia", ["pythia"]),
    "EleutherAI/pythia-160m": ("pythia", []),
    "EleutherAI/pythia-1b": ("pythia", []),
    "EleutherAI/pythia-2.8b": ("pythia", []),
    "EleutherAI/pythia-410m": ("pythia", []),
    "EleutherAI/pythia-6.9b": ("pythia", ["pythia-7b"]),
    "EleutherAI/pythia-70m": ("pythia", []),
    "Qwen/Qwen1.5-0.5B": ("qwen", []),
    "Qwen/Qwen1.5-1.8B": ("qwen", []),
    "Qwen/Qwen1.5-110B": ("qwen", []),
    "Qwen/Qwen1.5-14B": ("qwen", []),
    "Qwen/Qwen1.5-32B": ("qwen", []),
    "Qwen/Qwen1.5-4B": ("qwen", []),
    "Qwen/Qwen1.5-72B": ("qwen", []),
    "Qwen/Qwen1.5-7B": ("qwen", []),
    "Qwen/Qwen2.5-0.5B": ("qwen", []),
    "Qwen/Qwen2.5-1.5B": ("qwen", []),
    "Qwen/Qwen2.5-14B": ("qwen", []),
    "Qwen/Qwen2.5-32B": ("qwen", []),
    "Qwen/Qwen2.5-3B": ("qwen", []),
    "Qwen/Qwen2.5-72B": ("qwen", []),
    "Qwen/Qwen2.5-7B": ("qwen", []),
    "Qwen/Qwen2.5-Coder-32B-Instruct": ("qwen", ["qwen2.5-coder-32b", "qwen-2.5-coder-32b"]),
    "Qwen/Qwen3-0.6B": ("qwen", []),
    "Qwen/Qwen3-1.7B": ("qwen", []),
    "Qwen/Qwen3-14B": ("qwen", []),
    "Qwen/Qwen3-235B-A22B": ("qwen", ["qwen3-235b"]),
    "Qwen/Qwen3-30B-A3B": ("qwen", ["qwen3-30b", "qwen3-moe-30b"]),
    "Qwen/Qwen3-32B": ("qwen", []),
    "Qwen/Qwen3-4B": ("qwen", []),
    "Qwen/Qwen3-8B": ("qwen", []),
    "Qwen/Qwen3-Next-80B-A3B-Instruct": ("qwen", ["qwen3-next", "qwen3-next-80b", "qwen3-next-80b-a3b"]),
    "TheBloke/Llama-2-70B-GPTQ": ("llama", ["llama-2-70b-gptq"]),
    "ai21labs/Jamba-v0.1": ("jamba", ["jamba"]),
    "deepseek-ai/DeepSeek-R1": ("deepseek", ["deepseek-r1", "r1"]),
    "deepseek-ai/DeepSeek-V2-Lite": ("deepseek", ["deepseek-v2-lite"]),
    "deepseek-ai/DeepSeek-V3": ("deepseek", ["deepseek-v3"]),
    "google/gemma-2-27b": ("gemma", []),
    "google/gemma-2-2b": ("gemma", []),
    "google/gemma-2-9b": ("gemma", []),
    "google/gemma-2b": ("gemma", ["gemma-1-2b"]),
    "google/gemma-3-12b-it": ("gemma", ["gemma-3-12b"]),
    "google/gemma-3-1b-it": ("gemma", ["gemma-3-1b"]),
    "google/gemma-3-27b-it": ("gemma", ["gemma-3-27b"]),
    "google/gemma-3-4b-it": ("gemma", ["gemma-3-4b"]),
    "google/gemma-7b": ("gemma", ["gemma-1-7b"]),
    "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4": ("llama", ["llama-3.1-70b-awq"]),
    "meta-llama/Llama-2-13b-hf": ("llama", ["llama-2-13b", "llama2-13b"]),
    "meta-llama/Llama-2-70b-hf": ("llama", ["llama-2-70b", "llama2-70b"]),
    "meta-llama/Llama-2-7b-hf": ("llama", ["llama-2-7b", "llama2-7b", "meta-llama/Llama-2-7b"]),
    "meta-llama/Llama-3.1-405B": ("llama", []),
    "meta-llama/Llama-3.1-70B": ("llama", ["meta-llama/Meta-Llama-3.1-70B"]),
    "meta-llama/Llama-3.1-8B": ("llama", ["meta-llama/Meta-Llama-3.1-8B"]),
    "meta-llama/Llama-3.2-1B": ("llama", []),
    "meta-llama/Llama-3.2-3B": ("llama", []),
    "meta-llama/Llama-3.3-70B-Instruct": ("llama", ["llama-3.3-70b", "llama3.3-70b"]),
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8": ("llama", ["llama-4-maverick-fp8"]),
    "meta-llama/Llama-4-Maverick-17B-128E": ("llama", ["llama-4-maverick", "llama4-maverick"]),
    "meta-llama/Llama-4-Scout-17B-16E": ("llama", []),
    "meta-llama/Meta-Llama-3-70B": ("llama", ["llama-3-70b", "llama3-70b"]),
    "meta-llama/Meta-Llama-3-8B": ("llama", ["llama-3-8b", "llama3-8b"]),
    "microsoft/Phi-3-medium-4k-instruct": ("phi", ["phi-3-medium", "phi3-medium"]),
    "microsoft/Phi-3-mini-4k-instruct": ("phi", ["phi-3-mini", "phi3-mini", "phi-3"]),
    "microsoft/phi-4": ("phi", []),
    "mistralai/Mistral-7B-v0.1": ("mistral", ["mistral-7b", "mistral"]),
    "mistralai/Mistral-7B-v0.3": ("mistral", []),
    "mistralai/Mistral-Large-Instruct-2407": (
        "mistral",
        ["mistral-large", "mistral-large-2", "mistral-large-123b"],
    ),
    "mistralai/Mistral-Small-24B-Base-2501": ("mistral", ["mistral-small-24b", "mistral-small-3"]),
    "mistralai/Mixtral-8x22B-v0.1": ("mistral", ["mixtral-8x22b"]),
    "mistralai/Mixtral-8x7B-v0.1": ("mistral", ["mixtral-8x7b", "mixtral"]),
    "mosaicml/mpt-30b": ("mpt", []),
    "mosaicml/mpt-7b": ("mpt", ["mpt"]),
    "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8": ("llama", ["llama-3.1-8b-fp8"]),
    "openai/gpt-oss-120b": ("gpt-oss", []),
    "openai/gpt-oss-20b": ("gpt-oss", []),
    "openchat/openchat_3.5": ("openchat", ["openchat", "openchat-3.5"]),
    "stabilityai/stablelm-2-1_6b": ("stablelm", ["stablelm-2", "stablelm-2-1.6b"]),
    "stabilityai/stablelm-3b-4e1t": ("stablelm", ["stablelm", "stablelm-3b"]),
    "tiiuae/falcon-180B": ("falcon", []),
    "tiiuae/falcon-40b": ("falcon", []),
    "tiiuae/falcon-7b": ("falcon", []),
}

# Other checkpoints that resolve to a base entry: alias -> (base, why it is safe).
VARIANTS: dict[str, tuple[str, str]] = {
    "meta-llama/Llama-3.1-8B-Instruct": ("meta-llama/Llama-3.1-8B", "config compared: identical (dev.jsonl)"),
    "meta-llama/Meta-Llama-3.1-8B-Instruct": (
        "meta-llama/Llama-3.1-8B",
        "old repo name of Llama-3.1-8B-Instruct",
    ),
    "meta-llama/Llama-3.1-70B-Instruct": (
        "meta-llama/Llama-3.1-70B",
        "Instruct release of the same weights layout",
    ),
    "meta-llama/Meta-Llama-3.1-70B-Instruct": (
        "meta-llama/Llama-3.1-70B",
        "old repo name of Llama-3.1-70B-Instruct",
    ),
    "meta-llama/Llama-3.1-405B-Instruct": (
        "meta-llama/Llama-3.1-405B",
        "Instruct release of the same weights layout",
    ),
    "meta-llama/Llama-3.2-1B-Instruct": ("meta-llama/Llama-3.2-1B", "config compared: identical (dev.jsonl)"),
    "meta-llama/Llama-3.2-3B-Instruct": (
        "meta-llama/Llama-3.2-3B",
        "Instruct release of the same weights layout",
    ),
    "meta-llama/Meta-Llama-3-8B-Instruct": (
        "meta-llama/Meta-Llama-3-8B",
        "Instruct config differs only in eos_token_id",
    ),
    "meta-llama/Meta-Llama-3-70B-Instruct": (
        "meta-llama/Meta-Llama-3-70B",
        "Instruct config differs only in eos_token_id",
    ),
    "meta-llama/Llama-2-7b-chat-hf": ("meta-llama/Llama-2-7b-hf", "chat fine-tune, same weights layout"),
    "meta-llama/Llama-2-13b-chat-hf": ("meta-llama/Llama-2-13b-hf", "chat fine-tune, same weights layout"),
    "meta-llama/Llama-2-70b-chat-hf": ("meta-llama/Llama-2-70b-hf", "chat fine-tune, same weights layout"),
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct": (
        "meta-llama/Llama-4-Maverick-17B-128E",
        "BF16 Instruct release of the same weights layout",
    ),
    "mistralai/Mistral-7B-Instruct-v0.1": (
        "mistralai/Mistral-7B-v0.1",
        "Instruct fine-tune, same weights layout",
    ),
    "mistralai/Mistral-7B-Instruct-v0.3": (
        "mistralai/Mistral-7B-v0.3",
        "Instruct fine-tune, same weights layout",
    ),
    "mistralai/Mixtral-8x7B-Instruct-v0.1": (
        "mistralai/Mixtral-8x7B-v0.1",
        "Instruct fine-tune, same weights layout",
    ),
    "mistralai/Mixtral-8x22B-Instruct-v0.1": (
        "mistralai/Mixtral-8x22B-v0.1",
        "Instruct fine-tune; its tokenizer adds control tokens (vocab 32768)",
    ),
    "mistralai/Mistral-Small-24B-Instruct-2501": (
        "mistralai/Mistral-Small-24B-Base-2501",
        "Instruct fine-tune, same weights layout",
    ),
    "Qwen/Qwen3-30B-A3B-Instruct-2507": (
        "Qwen/Qwen3-30B-A3B",
        "same weights layout; the 2507 release raises max_position_embeddings to 262,144, so pass "
        "max_model_len for contexts beyond 40,960",
    ),
    "Qwen/Qwen3-235B-A22B-Instruct-2507": (
        "Qwen/Qwen3-235B-A22B",
        "same weights layout; the 2507 release raises max_position_embeddings to 262,144",
    ),
    "Qwen/Qwen1.5-7B-Chat": ("Qwen/Qwen1.5-7B", "config compared: identical (dev.jsonl)"),
    "Qwen/Qwen1.5-14B-Chat": ("Qwen/Qwen1.5-14B", "config compared: identical (dev.jsonl)"),
    "google/gemma-2-2b-it": ("google/gemma-2-2b", "config compared: identical (dev.jsonl)"),
    "google/gemma-2-9b-it": ("google/gemma-2-9b", "instruction-tuned, same weights layout"),
    "google/gemma-2-27b-it": ("google/gemma-2-27b", "instruction-tuned, same weights layout"),
    "google/gemma-7b-it": ("google/gemma-7b", "instruction-tuned, same weights layout"),
    "google/gemma-2b-it": ("google/gemma-2b", "instruction-tuned, same weights layout"),
    "deepseek-ai/DeepSeek-V2-Lite-Chat": (
        "deepseek-ai/DeepSeek-V2-Lite",
        "config compared: identical (dev.jsonl)",
    ),
    "deepseek-ai/DeepSeek-V3-0324": ("deepseek-ai/DeepSeek-V3", "re-trained V3 with the same config"),
    "deepseek-ai/DeepSeek-R1-0528": ("deepseek-ai/DeepSeek-R1", "update of R1 with the same config"),
    "microsoft/Phi-3-mini-128k-instruct": (
        "microsoft/Phi-3-mini-4k-instruct",
        "same weights layout; 128k variant adds LongRoPE scaling",
    ),
    "microsoft/Phi-3-medium-128k-instruct": (
        "microsoft/Phi-3-medium-4k-instruct",
        "same weights layout; 128k variant adds LongRoPE scaling",
    ),
    "01-ai/Yi-34B-Chat": ("01-ai/Yi-34B", "chat fine-tune, same weights layout"),
    "01-ai/Yi-6B-Chat": ("01-ai/Yi-6B", "chat fine-tune, same weights layout"),
    "tiiuae/falcon-7b-instruct": ("tiiuae/falcon-7b", "instruct fine-tune, same weights layout"),
    "tiiuae/falcon-40b-instruct": ("tiiuae/falcon-40b", "instruct fine-tune, same weights layout"),
    "tiiuae/falcon-180B-chat": ("tiiuae/falcon-180B", "chat fine-tune, same weights layout"),
    "mosaicml/mpt-7b-instruct": ("mosaicml/mpt-7b", "instruct fine-tune, same weights layout"),
    "mosaicml/mpt-30b-instruct": ("mosaicml/mpt-30b", "instruct fine-tune, same weights layout"),
}

# Shared configs that miss keys the engine needs. The values below come from the public config.json
# files as remembered, not from a stored copy, so those entries are marked exact=false and say so.
FILL_UNVERIFIED: dict[str, dict] = {
    "mosaicml/mpt-7b": {
        "expansion_ratio": 4,
        "vocab_size": 50432,
        "max_seq_len": 2048,
        "torch_dtype": "bfloat16",
    },
    "mosaicml/mpt-30b": {
        "expansion_ratio": 4,
        "vocab_size": 50432,
        "max_seq_len": 8192,
        "torch_dtype": "bfloat16",
    },
    "openchat/openchat_3.5": {
        "vocab_size": 32002,
        "max_position_embeddings": 8192,
        "torch_dtype": "bfloat16",
    },
}

# Dev-log models that get their own entry: family and short aliases.
DEV_EXTRA: dict[str, tuple[str, list[str]]] = {
    "Qwen/Qwen2.5-7B-Instruct": ("qwen", []),
    "google/gemma-4-26B-A4B": ("gemma", ["gemma-4-26b"]),
    "nvidia/Gemma-4-31B-IT-NVFP4": ("gemma", ["gemma-4-31b-nvfp4"]),
    "sail/Sailor-4B-Chat": ("sailor", ["sailor-4b"]),
    "deepseek-ai/DeepSeek-V4-Flash": ("deepseek", ["deepseek-v4-flash"]),
    "ibm-granite/granite-3.1-2b-instruct": ("granite", ["granite-3.1-2b"]),
    "microsoft/phi-2": ("phi", []),
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503": (
        "mistral",
        ["mistral-small-3.1", "mistral-small-3.1-24b"],
    ),
    "Qwen/Qwen1.5-MoE-A2.7B": ("qwen", ["qwen1.5-moe"]),
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": (
        "llama",
        ["llama-4-scout", "llama4-scout", "llama-4-scout-17b"],
    ),
}

# Closed or unpublished models from seed 002's list. Sizes are outside estimates, never vendor facts
# (except Gemini Nano, whose sizes Google published). context = the vendor's published context window.
ESTIMATED: list[dict] = [
    {
        "id": "openai/gpt-3.5-turbo",
        "aliases": ["gpt-3.5-turbo", "gpt-3.5", "gpt3.5", "chatgpt"],
        "family": "openai",
        "params": 175e9,
        "context": 16385,
        "source": "outside estimate: GPT-3 davinci's published 175B (Brown et al. 2020), the model GPT-3.5 descends "
        "from; OpenAI has not disclosed GPT-3.5-Turbo's size (a withdrawn 2023 Microsoft paper listed 20B)",
    },
    {
        "id": "openai/gpt-4",
        "aliases": ["gpt-4", "gpt4"],
        "family": "openai",
        "params": 1.8e12,
        "context": 8192,
        "source": "widely cited outside estimate (~1.8T total, reportedly a mixture of experts; SemiAnalysis 2023 "
        "report); not disclosed by OpenAI",
    },
    {
        "id": "openai/gpt-4o",
        "aliases": ["gpt-4o", "gpt4o"],
        "family": "openai",
        "params": 200e9,
        "context": 128000,
        "source": "outside estimate (~200B) quoted in a Dec 2024 Microsoft/UW paper (MEDEC, arXiv:2412.19260); "
        "not disclosed by OpenAI",
    },
    {
        "id": "anthropic/claude-3-haiku",
        "aliases": ["claude-3-haiku", "claude-haiku", "claude 3 haiku"],
        "family": "claude",
        "params": 20e9,
        "context": 200000,
        "source": "widely cited outside estimate (~20B, e.g. LifeArchitect.ai model tables); not disclosed by Anthropic",
    },
    {
        "id": "anthropic/claude-3-sonnet",
        "aliases": ["claude-3-sonnet", "claude-sonnet"],
        "family": "claude",
        "params": 70e9,
        "context": 200000,
        "source": "widely cited outside estimate (~70B, e.g. LifeArchitect.ai model tables); not disclosed by Anthropic",
    },
    {
        "id": "anthropic/claude-3-opus",
        "aliases": ["claude-3-opus", "claude-opus"],
        "family": "claude",
        "params": 2e12,
        "context": 200000,
        "source": "widely cited outside estimate (~2T, e.g. LifeArchitect.ai model tables); not disclosed by Anthropic",
    },
    {
        "id": "google/gemini-nano-1",
        "aliases": ["gemini-nano-1"],
        "family": "gemini",
        "params": 1.8e9,
        "context": 8192,
        "source": "Gemini 1.0 technical report (Google DeepMind, Dec 2023): Nano-1 has 1.8B parameters; its "
        "architecture is not published",
    },
    {
        "id": "google/gemini-nano-2",
        "aliases": ["gemini-nano", "gemini-nano-2"],
        "family": "gemini",
        "params": 3.25e9,
        "context": 8192,
        "source": "Gemini 1.0 technical report (Google DeepMind, Dec 2023): Nano-2 has 3.25B parameters; its "
        "architecture is not published",
    },
    {
        "id": "google/gemini-pro",
        "aliases": ["gemini-pro", "gemini-1.0-pro"],
        "family": "gemini",
        "params": 175e9,
        "context": 32768,
        "source": "rough order-of-magnitude guess by gpuplan (no vendor figure and no widely agreed outside "
        "estimate); treat the result as illustrative only",
    },
    {
        "id": "google/gemini-ultra",
        "aliases": ["gemini-ultra", "gemini-1.0-ultra"],
        "family": "gemini",
        "params": 1e12,
        "context": 32768,
        "source": "rough order-of-magnitude guess by gpuplan (no vendor figure and no widely agreed outside "
        "estimate); treat the result as illustrative only",
    },
    {
        "id": "mistralai/mistral-medium",
        "aliases": ["mistral-medium"],
        "family": "mistral",
        "params": 70e9,
        "context": 32768,
        "source": "outside estimate: the leaked 'miqu-1-70b' was acknowledged by Mistral's CEO (Jan 2024) as an "
        "early version of a model close to Mistral Medium, retrained from Llama 2 70B; not disclosed "
        "by Mistral",
    },
]

# quantization_config of checkpoints whose stored copy lacks it, reconstructed from the documented format.
QUANT_RECONSTRUCTED = {
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8": (
        {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0,
         "modules_to_not_convert": ["re:.*self_attn.*", "re:.*vision.*", "re:.*router.*",
                                    "re:.*multi_modal_projector.*", "lm_head"]},
        "quantization_config: quant_method fbgemm_fp8 as documented; its modules_to_not_convert (attention, "
        "vision tower, routers, projector, lm_head kept in bf16) is reconstructed, not copied from the repo.",
    ),
}

# Dev-log records whose checkpoint is quantized but whose quantization_config was not recorded. A
# catalog entry would silently describe them as BF16, so they are left out.
SKIP_INCOMPLETE = "config_complete is false in dev.jsonl"

# Keys that do not change the weights; two configs equal on everything else share a parameter count.
NON_ARCH_KEYS = {
    "max_position_embeddings",
    "sliding_window",
    "use_sliding_window",
    "eos_token_id",
    "bos_token_id",
    "_name_or_path",
    "transformers_version",
    "use_mrope",
    "max_window_layers",
    "rope_theta",
    "rope_scaling",
    "use_cache",
    "torch_dtype",
}


def _file_name(model_id: str) -> str:
    return model_id.replace("/", "__") + ".json"


def _arch_equal(a: dict, b: dict) -> bool:
    keys = (set(a) | set(b)) - NON_ARCH_KEYS
    return all(a.get(k) == b.get(k) for k in keys)


def main(shared: Path) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    entries: dict[str, dict] = {}
    for path in sorted((shared / "data" / "models").glob("*.json")):
        rec = json.loads(path.read_text())
        mid = rec["model_id"]
        family, aliases = FAMILY_ALIASES[mid]
        config = dict(rec["config_recorded"])
        exact = True
        notes = [
            "config.json as recorded in the project's reference data ("
            + "; ".join(rec.get("sources", []))[:300]
            + ")"
        ]
        fill = FILL_UNVERIFIED.get(mid)
        if fill:
            config.update(fill)
            exact = False
            notes.append(
                "keys " + ", ".join(sorted(fill)) + " were missing from the stored copy and were filled "
                "from the published config.json as remembered, not verified"
            )
        if mid in QUANT_RECONSTRUCTED:
            config["quantization_config"], quant_note = QUANT_RECONSTRUCTED[mid]
            notes.append(quant_note)
        params = rec["params"]
        entries[mid] = {
            "id": mid,
            "aliases": list(aliases),
            "family": family,
            "exact": exact,
            "hf_config": config,
            "total_params": params.get("total_params"),
            "params_source": params.get("total_params_source") or "not verified",
            "note": " ".join(notes),
        }
    skipped: list[str] = []
    for line in (shared / "data" / "vllm-logs" / "dev.jsonl").read_text().splitlines():
        rec = json.loads(line)
        mid = rec["model_id"]
        if mid in entries or mid in VARIANTS:
            if mid in VARIANTS and not _arch_equal(rec["hf_config"], entries[VARIANTS[mid][0]]["hf_config"]):
                raise SystemExit(f"{mid}: dev.jsonl config differs from its alias target")
            continue
        if not rec.get("config_complete", True):
            skipped.append(mid)
            continue
        family, aliases = DEV_EXTRA[mid]
        config = rec["hf_config"]
        total, source = None, "not verified"
        for other in list(entries.values()):
            if other["total_params"] and _arch_equal(config, other["hf_config"]):
                total = other["total_params"]
                source = f"same weight shapes as {other['id']} (configs differ only in non-weight keys)"
        entries[mid] = {
            "id": mid,
            "aliases": aliases,
            "family": family,
            "exact": True,
            "hf_config": config,
            "total_params": total,
            "params_source": source,
            "note": "config.json from the vLLM start-up record in dev.jsonl ("
            + rec.get("config_source", "")[:300]
            + ")",
        }
    for alias, (base, why) in VARIANTS.items():
        entries[base]["aliases"].append(alias)
        entries[base]["note"] += f" Alias {alias}: {why}."
    for est in ESTIMATED:
        config = config_from_params(est["params"], est["id"])
        # The context window is public even where the size is not; it sets vLLM's default max_model_len.
        config["max_position_embeddings"] = est["context"]
        entries[est["id"]] = {
            "id": est["id"],
            "aliases": est["aliases"],
            "family": est["family"],
            "exact": False,
            "hf_config": config,
            "total_params": int(est["params"]),
            "params_source": est["source"],
            "note": "ESTIMATED: the architecture is not published; hf_config is a Llama-style dense stand-in "
            "produced by gpuplan.arch_estimate.config_from_params from the estimated size, with the "
            "vendor's published context window. The real model cannot be served with vLLM.",
        }
    for entry in entries.values():
        (OUT / _file_name(entry["id"])).write_text(json.dumps(entry, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(entries)} entries; skipped ({SKIP_INCOMPLETE}): {sorted(set(skipped))}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared"))
