"""DeepSeek-V4.1 (model_type deepseek_v41, vLLM 0.33's models/deepseek_v41): the per-layer attention topology.

The checkpoint's config nests the text model under text_config (vLLM's DeepseekV41Config flattens it onto the top
level). Each decoder layer has a compress ratio (compress_ratios: 0 = window only, 1 = full-length compressed
cache, 2 = one compressed entry per two tokens; entries past num_hidden_layers belong to the MTP/DSpark stages,
which the main model does not build). Compressors and compressed caches live only on kv_source_layer_ids, indexers
only on index_source_layer_ids; every other compressed layer reads the latest source at or below it. The caches
themselves are laid out by the deepseek_v41 cache recipe (engines/vllm/kv_recipes/deepseek_v41.py).

Only this topology is provided, and no model_type is registered: the weights vLLM 0.33 loads for this family on
Hopper depend on choices gpuplan has not read to the byte (the MXFP4 expert backend's repacking of the 288-row
per-rank slices at TP 8, wo_a's MXFP8 batched GEMM falling back to BF16 emulation on SM90, the shared-expert
padding, the engram tables' pinned-host placement, the vision tower), so deepseek_v41 stays refused until they are.
"""

from __future__ import annotations

from ..errors import ConfigError
from .spec import Attention


def text_config(outer: dict) -> dict:
    """The text fields as vLLM's DeepseekV41Config exposes them: text_config flattened onto the top level."""
    cfg = {k: v for k, v in outer.items() if k not in ("text_config", "vision_config")}
    cfg.update({k: v for k, v in (outer.get("text_config") or {}).items() if k != "model_type"})
    return cfg


def attention_layers(cfg: dict) -> list[Attention]:
    """One Attention per decoder layer, each naming the deepseek_v41 cache recipe and its role in it."""
    n = int(cfg["num_hidden_layers"])
    ratios = list(cfg.get("compress_ratios") or [])
    kv_src = set(cfg.get("kv_source_layer_ids") or ())
    idx_src = set(cfg.get("index_source_layer_ids") or ())
    hd, window = int(cfg["head_dim"]), int(cfg["sliding_window"])
    out: list[Attention] = []
    cache: dict[tuple[int, int, int], Attention] = {}
    for i in range(n):
        r = int(ratios[i]) if i < len(ratios) else 0  # vLLM: layers past the list are window-only
        if r not in (0, 1, 2):
            raise ConfigError("compress_ratios", f"layer {i}: compress ratio {r}; vLLM's DeepSeek-V4.1 takes 0, 1, 2")
        if r and (not any(s <= i for s in kv_src) or not any(s <= i for s in idx_src)):
            raise ConfigError("kv_source_layer_ids", f"layer {i} is compressed but no kv / index source is at or "
                              "below it; vLLM refuses the config")
        key = (r, int(r > 0 and i in kv_src), int(r > 0 and i in kv_src and i in idx_src))
        if key not in cache:
            cache[key] = Attention(
                "mla", int(cfg["num_attention_heads"]), 1, hd, window=window, kv_lora_rank=hd,
                qk_rope_head_dim=int(cfg["qk_rope_head_dim"]), qk_nope_head_dim=hd - int(cfg["qk_rope_head_dim"]),
                indexer_head_dim=int(cfg.get("index_head_dim") or 128) if key[2] else 0, sparse=r > 0,
                compress_ratio=r, block_outermost=True, recipe="deepseek_v41",
                recipe_args=(("ratio", key[0]), ("kv_source", key[1]), ("index_owner", key[2])))
        out.append(cache[key])
    return out
