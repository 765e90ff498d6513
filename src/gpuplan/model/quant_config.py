"""Normalise a checkpoint's quantization_config (config.json) into a QuantConfig."""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError
from .spec import ModuleQuant, QuantConfig


def _ignore_list(qc: dict) -> tuple[str, ...]:
    out: list[str] = []
    for key in ("ignore", "ignored_layers", "modules_to_not_convert", "not_convert_modules",
                "llm_int8_skip_modules", "exclude_modules"):
        v = qc.get(key)
        if isinstance(v, list):
            out.extend(str(x) for x in v)
    return tuple(out)


def _kv_fp8(qc: dict) -> bool:
    scheme = qc.get("kv_cache_scheme") or {}
    algo = str(qc.get("kv_cache_quant_algo") or (qc.get("quantization") or {}).get("kv_cache_quant_algo") or "")
    return (isinstance(scheme, dict) and scheme.get("num_bits") == 8 and scheme.get("type") == "float") \
        or algo.upper() == "FP8"


def parse_quant_config(qc: dict) -> QuantConfig:
    if not isinstance(qc, dict):
        raise ConfigError("quantization_config", "must be a JSON object")
    q = _parse(qc)
    return replace(q, kv_cache_fp8=True) if _kv_fp8(qc) else q


def _parse(qc: dict) -> QuantConfig:
    method = str(qc.get("quant_method") or qc.get("quant_algo") or "").lower().replace("_", "-")
    ignore = _ignore_list(qc)
    if method in ("awq", "awq-marlin"):
        return QuantConfig("awq", bits=int(qc.get("bits") or qc.get("w_bit") or 4),
                           group_size=int(qc.get("group_size") or qc.get("q_group_size") or 128),
                           symmetric=not qc.get("zero_point", True), ignore=ignore)
    if method in ("gptq", "gptq-marlin"):
        return QuantConfig("gptq", bits=int(qc.get("bits") or 4), group_size=max(int(qc.get("group_size") or 128), 0)
                           if int(qc.get("group_size") or 128) > 0 else 0,
                           desc_act=bool(qc.get("desc_act")), symmetric=bool(qc.get("sym", True)),
                           lm_head_quantized=bool(qc.get("lm_head")), ignore=ignore)
    if method == "fp8":
        block = qc.get("weight_block_size")
        return QuantConfig("fp8", bits=8, weight_block=tuple(block) if block else None, ignore=ignore)
    if method == "mxfp4":
        return QuantConfig("mxfp4", bits=4, group_size=32, experts_only=True, ignore=ignore)
    if method in ("bitsandbytes", "bnb"):
        bits = 4 if qc.get("load_in_4bit") else 8
        return QuantConfig("bitsandbytes", bits=bits, group_size=64,
                           symmetric=bool(qc.get("bnb_4bit_use_double_quant", False)), ignore=ignore)
    if method in ("compressed-tensors", "compressed_tensors"):
        return _compressed_tensors(qc, ignore)
    if method in ("modelopt", "nvfp4", "modelopt-fp4", "modelopt-mixed"):
        return _modelopt(qc, ignore)
    if method == "gguf":
        return QuantConfig("gguf", bits=4, ignore=ignore)
    if method == "fbgemm-fp8":
        # per-channel fp8 weights with fp32 scales: the same storage as compressed-tensors' channel FP8
        return QuantConfig("compressed-tensors", bits=8, scheme="w8a8_fp8", ignore=ignore)
    if method == "experts-int8":
        return QuantConfig("int8", bits=8, ignore=ignore)
    if method in ("auto-round", "autoround", "inc"):
        return _auto_round(qc, ignore)
    raise ConfigError("quantization_config", f"unsupported quant_method {qc.get('quant_method')!r}",
                      accepted=["awq", "gptq", "fp8", "mxfp4", "bitsandbytes", "compressed-tensors", "modelopt",
                                "gguf", "auto-round"])


def _modelopt_algo(algo: str, entry: dict, ignore: tuple[str, ...] = ()) -> QuantConfig:
    """How vLLM stores a linear of ModelOpt format `algo` (modelopt.py's linear methods). NVFP4 and W4A16_NVFP4
    share a layout (packed E2M1 pairs, an fp8 scale per 16 values, fp32 global scales); the W4A16 form runs it
    through the Marlin kernel."""
    a = algo.upper()
    if a in ("NVFP4", "W4A16_NVFP4"):
        return QuantConfig("nvfp4", bits=4, group_size=int(entry.get("group_size") or 16), scheme="nvfp4",
                           ignore=ignore)
    if a == "FP8":  # per-tensor: one fp32 weight scale and one static input scale
        return QuantConfig("fp8", bits=8, ignore=ignore)
    if a in ("FP8_PB_WO", "FP8_BLOCK_SCALES"):
        g = int(entry.get("group_size") or 128)
        return QuantConfig("fp8", bits=8, weight_block=(g, g), ignore=ignore)
    if a == "FP8_PER_CHANNEL_PER_TOKEN":  # an fp32 scale per output channel
        return QuantConfig("compressed-tensors", bits=8, scheme="w8a8_fp8", ignore=ignore)
    if a == "MXFP8":  # e4m3 weights, a uint8 E8M0 scale per 32 values
        return QuantConfig("mxfp8", bits=8, group_size=32, ignore=ignore)
    raise ConfigError("quantization_config.quant_algo", f"ModelOpt {algo!r} is not modelled",
                      accepted=[*MODELOPT_ALGOS, "MIXED_PRECISION"])


MODELOPT_ALGOS = ("FP8", "FP8_PER_CHANNEL_PER_TOKEN", "FP8_PB_WO", "NVFP4", "W4A16_NVFP4", "MXFP8")


def text_module(name: str) -> str:
    """A checkpoint module name as the text model's own ("model.layers.N..."): multimodal checkpoints spell it
    "model.language_model.*" or "language_model.model.*", and vLLM's prefix candidates accept both."""
    for prefix in ("model.language_model.", "language_model.model."):
        if name.startswith(prefix):
            return "model." + name[len(prefix):]
    return name


def _modelopt(qc: dict, ignore: tuple[str, ...]) -> QuantConfig:
    """ModelOpt checkpoints (quant_method "modelopt"; the legacy hf_quant_config.json nests it under
    "quantization"). A MIXED_PRECISION one names each quantized module's algorithm in `quantized_layers`;
    vLLM's ModelOptMixedPrecisionConfig gives every other module the model dtype."""
    inner = qc.get("quantization") if isinstance(qc.get("quantization"), dict) else {}
    algo = str(qc.get("quant_algo") or inner.get("quant_algo") or "").upper()
    group = qc.get("group_size") or inner.get("group_size")
    if algo != "MIXED_PRECISION":
        q = _modelopt_algo(algo or "NVFP4", {"group_size": group}, ignore)
        return replace(q, origin="modelopt")
    layers = qc.get("quantized_layers") or inner.get("quantized_layers") or {}
    if not isinstance(layers, dict) or not layers:
        raise ConfigError("quantization_config.quantized_layers", "a MIXED_PRECISION checkpoint must map each "
                          "quantized module to its quant_algo (vLLM refuses it otherwise)")
    entries: dict[str, tuple[str, QuantConfig]] = {}
    made: dict[tuple[str, int], QuantConfig] = {}
    for name, info in layers.items():
        if not isinstance(info, dict) or not info.get("quant_algo"):
            raise ConfigError("quantization_config.quantized_layers", f"{name!r} has no quant_algo",
                              accepted=list(MODELOPT_ALGOS))
        a = str(info["quant_algo"]).upper()
        key = (a, int(info.get("group_size") or 0))
        if key not in made:
            made[key] = _modelopt_algo(a, info)
        entries[text_module(str(name))] = (a, made[key])
    return QuantConfig("modelopt_mixed", bits=min(q.bits for q in made.values()), ignore=ignore,
                       modules=ModuleQuant(entries), origin="modelopt")


def _auto_round(qc: dict, ignore: tuple[str, ...]) -> QuantConfig:
    """Intel AutoRound checkpoints. vLLM maps quant_method "auto-round" to its INC method
    (quantization/inc/inc.py override_quantization_method; auto_round.py before 0.15), which serves integer weights
    through GPTQ-Marlin (packing_format "auto_round:auto_gptq", the default) or AWQ-Marlin ("auto_round:auto_awq"),
    with desc_act off, and 8-bit block FP8 ("auto_round:fp8") as block FP8. A layer is quantized only under a prefix
    of block_name_to_quantize (often just the text decoder's layers) and, in extra_config, one whose entry has
    bits >= 16 stays in the model dtype (config_parser.py)."""
    data_type = str(qc.get("data_type") or "int").lower()
    bits = int(qc.get("bits") or 4)
    group = qc.get("group_size", 128)
    fmt = str(qc.get("packing_format") or "").lower()
    backend = str(qc.get("backend") or qc.get("vllm_backend") or "auto").lower()
    blocks = qc.get("block_name_to_quantize") or qc.get("to_quant_block_names") or ()
    only = tuple(b.strip() for b in (blocks.split(",") if isinstance(blocks, str) else blocks) if str(b).strip())
    extra = qc.get("extra_config") or {}
    if not isinstance(extra, dict):
        raise ConfigError("quantization_config.extra_config", "must be a JSON object of per-layer settings")
    skip: list[str] = []
    for name, layer in extra.items():
        layer_bits = int((layer or {}).get("bits", bits))
        if layer_bits >= 16:
            # keys with regex characters are searched for anywhere in the name (re.search)
            skip.append(("re:.*" + name) if any(c in name for c in "*+?^$()[]{}|\\") else name)
        elif layer_bits != bits or (layer or {}).get("group_size", group) != group:
            raise ConfigError("quantization_config.extra_config",
                              f"layer {name!r} has its own bit width or group size ({layer}): per-layer mixed "
                              "precision is not modelled", accepted=[f"bits {bits} (the default) or >= 16"])
    base = dict(ignore=ignore + tuple(skip), only=only, origin="auto-round")
    if "mx_fp" in data_type:
        raise ConfigError("quantization_config.data_type", f"AutoRound {data_type} (MXFP) checkpoints are not "
                          "modelled", accepted=["int", "fp (8-bit block FP8)"])
    if data_type.startswith("fp"):
        if bits != 8 or not isinstance(group, (list, tuple)) or len(group) != 2:
            raise ConfigError("quantization_config", f"AutoRound fp{bits} with group_size {group!r}: vLLM serves "
                              "only 8-bit block FP8", accepted=["bits 8 with a 2-D group_size"])
        return QuantConfig("fp8", bits=8, weight_block=(int(group[0]), int(group[1])), **base)
    if bits not in (4, 8):
        raise ConfigError("quantization_config.bits", f"AutoRound {bits}-bit integer weights: vLLM serves them "
                          "through Marlin, 4 and 8 bits only", accepted=["4", "8"])
    group = int(group)
    sym = bool(qc.get("sym", True))
    if "awq" in fmt or "awq" in backend:
        return QuantConfig("awq", bits=bits, group_size=group, symmetric=sym, **base)
    if not sym:
        raise ConfigError("quantization_config.sym", "AutoRound GPTQ-format weights must be symmetric for vLLM's "
                          "Marlin path (it raises otherwise)", accepted=["true"])
    return QuantConfig("gptq", bits=bits, group_size=max(group, 0), desc_act=False, symmetric=True, **base)


def _compressed_tensors(qc: dict, ignore: tuple[str, ...]) -> QuantConfig:
    groups = qc.get("config_groups") or {}
    fmt = str(qc.get("format") or "")
    for g in groups.values():
        w = (g or {}).get("weights") or {}
        a = (g or {}).get("input_activations") or {}
        bits = int(w.get("num_bits") or 8)
        wtype = str(w.get("type") or "int")
        gs = int(w.get("group_size") or 0)
        strategy = str(w.get("strategy") or "")
        sym = bool(w.get("symmetric", True))
        if wtype == "float" and bits == 4:
            # MXFP4 (group 32, uint8 E8M0 scales) or NVFP4 (group 16, fp8 scales + fp32 global scale)
            mx = "mxfp4" in fmt or gs == 32
            return QuantConfig("compressed-tensors", bits=4, group_size=gs or (32 if mx else 16),
                               scheme="mxfp4" if mx else "nvfp4", ignore=ignore)
        if wtype == "float":
            block = w.get("block_structure")
            return QuantConfig("compressed-tensors", bits=8, scheme="w8a8_fp8", ignore=ignore,
                               weight_block=tuple(block) if block else None,
                               group_size=0 if strategy != "group" else gs)
        if a and bits == 8:
            return QuantConfig("compressed-tensors", bits=8, scheme="w8a8_int8", ignore=ignore, symmetric=sym)
        return QuantConfig("compressed-tensors", bits=bits, group_size=gs if strategy == "group" else 0,
                           scheme=f"w{bits}a16", symmetric=sym, ignore=ignore, desc_act="pack" in fmt and False)
    return QuantConfig("compressed-tensors", bits=8, scheme="w8a8_int8", ignore=ignore)
