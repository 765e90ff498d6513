"""Checkpoints on disk: a model directory, a lone config.json, or a (split) GGUF file.

Only headers are read. A safetensors file starts with an 8-byte little-endian header length and a JSON
header naming every tensor's dtype, shape and byte span, so sizes are exact without touching the
weights; the readers here therefore also work on header-only files (the test fixtures rely on that).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

from ..model.mistral_params import config_from_mistral_params, is_mistral_params
from .checkpoint import CheckpointInfo, CheckpointTensor, dtype_nbytes, normalize_dtype
from .errors import ConfigError, ConfigMissing, ModelNotFound

# The safetensors format itself refuses headers above 100 MB (MAX_HEADER_SIZE in the reference
# implementation); anything larger is corrupt or hostile, and we would otherwise read it into memory.
MAX_SAFETENSORS_HEADER = 100_000_000
# A config.json is a few KB; a megabyte-scale one is not a model config.
MAX_JSON_FILE = 16_000_000

SAFETENSORS_INDEX = "model.safetensors.index.json"

# Side files some quantizers write instead of (or next to) config.json's quantization_config, with the
# quant_method they imply when the file does not say. vLLM looks for the same names.
QUANT_SIDE_FILES: tuple[tuple[str, str | None], ...] = (
    ("quantization_config.json", None),
    ("quantize_config.json", "gptq"),
    ("quant_config.json", "awq"),
    ("hf_quant_config.json", "modelopt"),
)

_GGUF_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


def _read_json(path: Path, what: str) -> Any:
    try:
        if path.stat().st_size > MAX_JSON_FILE:
            raise ConfigError("model", f"{path} is too large to be a {what}")
        with path.open("rb") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError("model", f"cannot read {what} {path}: {e}") from e


def _read_config(path: Path) -> dict[str, Any]:
    config = _read_json(path, "config.json")
    if not isinstance(config, dict):
        raise ConfigError("model", f"{path} does not hold a JSON object")
    return config


def parse_safetensors_header(header: dict[str, Any], where: str) -> list[CheckpointTensor]:
    """Turn a decoded safetensors header into tensors; sizes come from the byte spans, checked vs dtype."""
    tensors: list[tuple[int, CheckpointTensor]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            raw_dtype = entry["dtype"]
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(x) for x in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError("model", f"malformed safetensors header entry {name!r} in {where}") from e
        if end < begin or any(d < 0 for d in shape):
            raise ConfigError("model", f"malformed safetensors header entry {name!r} in {where}")
        dtype = normalize_dtype(str(raw_dtype))
        expected = dtype_nbytes(dtype, shape)
        # The span is the truth for bytes; a disagreement with dtype x shape means a corrupt header.
        if expected is not None and expected != end - begin:
            raise ConfigError("model", f"tensor {name!r} in {where}: {end - begin} bytes stored, "
                                       f"{expected} expected for {raw_dtype}{list(shape)}")
        tensors.append((begin, CheckpointTensor(name, dtype, shape, end - begin)))
    tensors.sort(key=lambda item: item[0])
    return [t for _, t in tensors]


def read_safetensors_header(path: str | Path) -> list[CheckpointTensor]:
    """Tensors of one .safetensors file, reading only its header (works on header-only files)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            prefix = f.read(8)
            if len(prefix) != 8:
                raise ConfigError("model", f"{path} is not a safetensors file (shorter than 8 bytes)")
            (size,) = struct.unpack("<Q", prefix)
            if size > MAX_SAFETENSORS_HEADER:
                raise ConfigError("model", f"{path}: safetensors header of {size} bytes exceeds the format's "
                                           f"{MAX_SAFETENSORS_HEADER}-byte limit")
            raw = f.read(size)
    except OSError as e:
        raise ConfigError("model", f"cannot read {path}: {e}") from e
    if len(raw) != size:
        raise ConfigError("model", f"{path}: safetensors header truncated")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError("model", f"{path}: safetensors header is not JSON") from e
    if not isinstance(header, dict):
        raise ConfigError("model", f"{path}: safetensors header is not a JSON object")
    return parse_safetensors_header(header, str(path))


def _safetensors_files(directory: Path) -> tuple[list[Path], list[str]]:
    notes: list[str] = []
    index = directory / SAFETENSORS_INDEX
    if index.is_file():
        data = _read_json(index, "safetensors index")
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict):
            raise ConfigError("model", f"{index} has no weight_map")
        names = sorted(set(weight_map.values()))
        files: list[Path] = []
        for name in names:
            # The index names files relative to its own folder; refuse anything that escapes it.
            if not isinstance(name, str) or "/" in name or "\\" in name or name in (".", ".."):
                raise ConfigError("model", f"{index} names an invalid shard file {name!r}")
            shard = directory / name
            if not shard.is_file():
                raise ConfigError("model", f"shard {name} listed in {index.name} is missing from {directory}")
            files.append(shard)
        notes.append(f"sharded checkpoint: {len(files)} safetensors files")
        return files, notes
    files = sorted(directory.glob("*.safetensors"))
    return files, notes


# Processor configs of vision-language repos, folded into the config under their own names.
PROCESSOR_FILES = ("preprocessor_config", "video_preprocessor_config")


def merge_side_configs(config: dict[str, Any], read: Any) -> list[str]:
    """Fold quantizer side files and generation_config.json into `config` (in place); return notes.

    `read(name)` returns the parsed file or None when absent; local and remote loaders share this logic.
    config.json's own quantization_config wins, as it does in vLLM.
    """
    notes: list[str] = []
    if not isinstance(config.get("quantization_config"), dict):
        for name, implied in QUANT_SIDE_FILES:
            side = read(name)
            if isinstance(side, dict):
                quant = dict(side)
                if implied and "quant_method" not in quant:
                    quant["quant_method"] = implied
                config["quantization_config"] = quant
                notes.append(f"quantization_config taken from {name}")
                break
    gen = read("generation_config.json")
    if isinstance(gen, dict) and "generation_config" not in config:
        # Kept for the faces (sampling defaults vLLM would apply); it does not change memory.
        config["generation_config"] = gen
    if isinstance(config.get("vision_config"), dict):
        # The processors' pixel limits size the image and video vLLM's profile run pushes through the tower.
        for name in PROCESSOR_FILES:
            side = read(name + ".json")
            if isinstance(side, dict) and name not in config:
                config[name] = side
                notes.append(f"image/video size limits read from {name}.json")
    return notes


def load_directory(directory: Path, ref: str) -> CheckpointInfo:
    config_path = directory / "config.json"
    if not config_path.is_file():
        ggufs = sorted(directory.glob("*.gguf"))
        if ggufs and len({_gguf_group(p) for p in ggufs}) == 1:
            return load_gguf(ggufs[0], ref)  # sorted: a split set starts at its -00001-of- file
        if ggufs:
            raise ConfigError("model", f"{directory} holds several GGUF models; pass one file: "
                                       + ", ".join(p.name for p in ggufs[:10]))
        params_path = directory / "params.json"
        if params_path.is_file():
            return checkpoint_from_mistral_params(_read_json(params_path, "params.json"), ref, "local")
        raise ConfigMissing("model", f"{directory} has no config.json")
    config = _read_config(config_path)

    def read_side(name: str) -> Any:
        p = directory / name
        return _read_json(p, name) if p.is_file() else None

    notes = merge_side_configs(config, read_side)
    files, more = _safetensors_files(directory)
    notes.extend(more)
    tensors: tuple[CheckpointTensor, ...] | None
    if files:
        collected: list[CheckpointTensor] = []
        for f in files:
            collected.extend(read_safetensors_header(f))
        tensors = tuple(collected)
    else:
        tensors = None
        if any(directory.glob("*.bin")) or any(directory.glob("*.pt")):
            # Pickled weights cannot be inspected without unpickling (i.e. running code); we never do.
            notes.append("weights are pickled (.bin/.pt), not safetensors: sizes come from config.json")
        else:
            notes.append("no weight files found: sizes come from config.json")
    quant = config.get("quantization_config")
    return CheckpointInfo(ref=ref, source="local", config=config, tensors=tensors, revision=None,
                          notes=tuple(notes), quantization_config=quant if isinstance(quant, dict) else None)


def checkpoint_from_mistral_params(params: Any, ref: str, source: str, revision: str | None = None) -> CheckpointInfo:
    """A Mistral-format params.json (no config.json): converted as vLLM converts it. Its consolidated
    safetensors use Mistral's tensor names, so sizes come from the converted config."""
    config, notes = config_from_mistral_params(params)
    quant = config.get("quantization_config")
    return CheckpointInfo(ref=ref, source=source, config=config, tensors=None, revision=revision,
                          notes=(*notes, "sizes come from params.json"),
                          quantization_config=quant if isinstance(quant, dict) else None)


def load_config_file(path: Path, ref: str) -> CheckpointInfo:
    config = _read_config(path)
    if is_mistral_params(config) and "model_type" not in config:
        return checkpoint_from_mistral_params(config, ref, "config")
    quant = config.get("quantization_config")
    return CheckpointInfo(ref=ref, source="config", config=config, tensors=None,
                          notes=("config.json only: weight sizes are derived from it",),
                          quantization_config=quant if isinstance(quant, dict) else None)


# --- GGUF -----------------------------------------------------------------------------------------

# general.architecture (llama.cpp's names) -> (HF model_type, HF architecture class). Only families
# whose GGUF metadata maps onto a llama-like HF config are listed; others are refused, not guessed.
GGUF_ARCHITECTURES: dict[str, tuple[str, str]] = {
    "llama": ("llama", "LlamaForCausalLM"),
    "mistral3": ("mistral", "MistralForCausalLM"),
    "qwen2": ("qwen2", "Qwen2ForCausalLM"),
    "qwen2moe": ("qwen2_moe", "Qwen2MoeForCausalLM"),
    "qwen3": ("qwen3", "Qwen3ForCausalLM"),
    "qwen3moe": ("qwen3_moe", "Qwen3MoeForCausalLM"),
    "gemma": ("gemma", "GemmaForCausalLM"),
    "gemma2": ("gemma2", "Gemma2ForCausalLM"),
    "gemma3": ("gemma3_text", "Gemma3ForCausalLM"),
    "phi3": ("phi3", "Phi3ForCausalLM"),
    "starcoder2": ("starcoder2", "Starcoder2ForCausalLM"),
    "deepseek2": ("deepseek_v2", "DeepseekV2ForCausalLM"),
    "command-r": ("cohere", "CohereForCausalLM"),
    "cohere2": ("cohere2", "Cohere2ForCausalLM"),
    "olmo": ("olmo", "OlmoForCausalLM"),
    "olmo2": ("olmo2", "Olmo2ForCausalLM"),
    "stablelm": ("stablelm", "StableLmForCausalLM"),
    "granite": ("granite", "GraniteForCausalLM"),
    "granitemoe": ("granitemoe", "GraniteMoeForCausalLM"),
    "exaone": ("exaone", "ExaoneForCausalLM"),
    "internlm2": ("internlm2", "InternLM2ForCausalLM"),
    "nemotron": ("nemotron", "NemotronForCausalLM"),
    "gpt-oss": ("gpt_oss", "GptOssForCausalLM"),
    "llama4": ("llama4_text", "Llama4ForCausalLM"),
    "falcon": ("falcon", "FalconForCausalLM"),
    "gpt2": ("gpt2", "GPT2LMHeadModel"),
    "gptneox": ("gpt_neox", "GPTNeoXForCausalLM"),
    "bloom": ("bloom", "BloomForCausalLM"),
    "starcoder": ("gpt_bigcode", "GPTBigCodeForCausalLM"),
}

# "{arch}.<key>" GGUF metadata -> HF config key.
_GGUF_KEYS: tuple[tuple[str, str], ...] = (
    ("context_length", "max_position_embeddings"),
    ("embedding_length", "hidden_size"),
    ("block_count", "num_hidden_layers"),
    ("feed_forward_length", "intermediate_size"),
    ("attention.head_count", "num_attention_heads"),
    ("attention.head_count_kv", "num_key_value_heads"),
    ("attention.key_length", "head_dim"),
    ("attention.layer_norm_rms_epsilon", "rms_norm_eps"),
    ("attention.layer_norm_epsilon", "layer_norm_eps"),
    ("attention.sliding_window", "sliding_window"),
    ("rope.freq_base", "rope_theta"),
    ("vocab_size", "vocab_size"),
    ("expert_count", "num_local_experts"),
    ("expert_used_count", "num_experts_per_tok"),
    ("expert_feed_forward_length", "moe_intermediate_size"),
    ("expert_shared_count", "n_shared_experts"),
    ("leading_dense_block_count", "first_k_dense_replace"),
    ("attention.kv_lora_rank", "kv_lora_rank"),
    ("attention.q_lora_rank", "q_lora_rank"),
    ("rope.dimension_count", "qk_rope_head_dim"),
)


def _gguf_group(path: Path) -> str:
    m = _GGUF_SPLIT.match(path.name)
    return m.group("stem") if m else path.name


def gguf_split_files(path: Path) -> list[Path]:
    """All files of a split GGUF (`name-0000K-of-0000N.gguf`), in order; [path] for a single file."""
    m = _GGUF_SPLIT.match(path.name)
    if not m:
        return [path]
    count = int(m.group("count"))
    files = [path.with_name(f"{m.group('stem')}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ConfigError("model", f"split GGUF {path.name} is incomplete; missing: {', '.join(missing)}")
    return files


def _field(reader: Any, key: str) -> Any:
    f = reader.fields.get(key)
    if f is None:
        return None
    value = f.contents()
    if isinstance(value, float) and f.types and f.types[0].name == "FLOAT32":
        # Print float32 metadata at float32 precision (1e-05, not 9.999999747378752e-06).
        import numpy as np

        value = float(str(np.float32(value)))
    return value


def _array_len(reader: Any, key: str) -> int | None:
    f = reader.fields.get(key)
    return len(f.data) if f is not None else None


def _gguf_tensors(reader: Any, where: str) -> list[CheckpointTensor]:
    out: list[CheckpointTensor] = []
    for t in reader.tensors:
        type_name = t.tensor_type.name
        # GGUF stores dims innermost-first (ne0 = row length); reversed gives PyTorch's [out, in].
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        nbytes = dtype_nbytes(type_name, shape)
        if nbytes is None:
            raise ConfigError("model", f"{where}: tensor {t.name} has GGML type {type_name} "
                                       f"with no known block size")
        if nbytes != int(t.n_bytes):
            raise ConfigError("model", f"{where}: tensor {t.name} size {t.n_bytes} disagrees with "
                                       f"{type_name} blocks ({nbytes})")
        out.append(CheckpointTensor(t.name, type_name, shape, nbytes))
    return out


def gguf_config(reader: Any, names: set[str]) -> tuple[str, dict[str, Any], list[str]]:
    """An HF-style config dict from GGUF metadata, so the model builder treats GGUF like any checkpoint."""
    arch = _field(reader, "general.architecture")
    if not isinstance(arch, str):
        raise ConfigError("model", "GGUF file has no general.architecture")
    notes: list[str] = []
    config: dict[str, Any] = {}
    for gguf_key, hf_key in _GGUF_KEYS:
        value = _field(reader, f"{arch}.{gguf_key}")
        if value is not None and not isinstance(value, list):
            config[hf_key] = value
    if "vocab_size" not in config:
        n_tokens = _array_len(reader, "tokenizer.ggml.tokens")
        if n_tokens:
            config["vocab_size"] = n_tokens
    if arch not in GGUF_ARCHITECTURES:
        raise ConfigError("model", f"GGUF architecture {arch!r} is not supported",
                          accepted=sorted(GGUF_ARCHITECTURES))
    model_type, hf_arch = GGUF_ARCHITECTURES[arch]
    if arch == "llama" and config.get("num_local_experts"):
        # llama.cpp files Mixtral under "llama"; vLLM builds it as Mixtral.
        model_type, hf_arch = "mixtral", "MixtralForCausalLM"
    if model_type in ("qwen2_moe", "qwen3_moe") and "num_local_experts" in config:
        config["num_experts"] = config.pop("num_local_experts")
    if model_type.startswith("deepseek") and "num_local_experts" in config:
        config["n_routed_experts"] = config.pop("num_local_experts")
    if "qk_rope_head_dim" in config and "kv_lora_rank" not in config:
        config.pop("qk_rope_head_dim")  # rope.dimension_count means partial rotary outside MLA
    config["model_type"] = model_type
    config["architectures"] = [hf_arch]
    # No output.weight in the file: llama.cpp ties the head to token_embd, as HF does with this flag.
    config["tie_word_embeddings"] = "output.weight" not in names
    name = _field(reader, "general.name")
    if name:
        notes.append(f"GGUF model name: {name}")
    notes.append(f"config synthesised from GGUF metadata (architecture {arch!r} -> {model_type})")
    notes.append("GGUF carries no compute dtype; vLLM's --dtype decides it")
    return arch, config, notes


def load_gguf(path: Path, ref: str) -> CheckpointInfo:
    try:
        from gguf import GGUFReader
    except ImportError as e:  # pragma: no cover - gguf is a declared dependency
        raise ConfigError("model", "reading GGUF needs the 'gguf' package") from e
    files = gguf_split_files(path)
    tensors: list[CheckpointTensor] = []
    first_reader: Any = None
    for f in files:
        try:
            # GGUFReader memory-maps the file and parses only metadata and tensor infos.
            reader = GGUFReader(str(f), "r")
        except (OSError, ValueError) as e:
            raise ConfigError("model", f"cannot read GGUF {f}: {e}") from e
        if first_reader is None:
            first_reader = reader
        tensors.extend(_gguf_tensors(reader, f.name))
    arch, config, notes = gguf_config(first_reader, {t.name for t in tensors})
    if len(files) > 1:
        notes.insert(0, f"split GGUF: {len(files)} files")
    type_counts: dict[str, int] = {}
    for t in tensors:
        type_counts[t.dtype] = type_counts.get(t.dtype, 0) + 1
    quant: dict[str, Any] = {"quant_method": "gguf", "tensor_types": dict(sorted(type_counts.items()))}
    file_type = _field(first_reader, "general.file_type")
    if file_type is not None:
        quant["file_type"] = file_type
    return CheckpointInfo(ref=ref, source="gguf", config=config, tensors=tuple(tensors), revision=None,
                          notes=tuple(notes), quantization_config=quant, gguf_arch=arch)


def load_local(path: str | Path, ref: str | None = None) -> CheckpointInfo:
    """Dispatch on what `path` is: model directory, config.json (or any .json config), or .gguf file."""
    p = Path(path).expanduser()
    ref = ref if ref is not None else str(path)
    if p.is_dir():
        return load_directory(p, ref)
    if p.is_file():
        if p.suffix == ".gguf":
            return load_gguf(p, ref)
        if p.suffix == ".json":
            return load_config_file(p, ref)
        if p.suffix == ".safetensors":
            raise ConfigError("model", f"{p} is a weights file; pass its directory (with config.json)")
        raise ConfigError("model", f"{p} is neither a model directory, a config.json nor a .gguf file")
    raise ModelNotFound("model", f"no such file or directory: {p}")
