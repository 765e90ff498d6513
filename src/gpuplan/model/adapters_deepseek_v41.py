"""DeepSeek-V4.1 (model_type deepseek_v41, vLLM 0.33's models/deepseek_v41): the per-layer attention topology.

The checkpoint's config nests the text model under text_config (vLLM's DeepseekV41Config flattens it onto the top
level). Each decoder layer has a compress ratio (compress_ratios: 0 = window only, 1 = full-length compressed
cache, 2 = one compressed entry per two tokens; entries past num_hidden_layers belong to the MTP/DSpark stages,
which the main model does not build). Compressors and compressed caches live only on kv_source_layer_ids, indexers
only on index_source_layer_ids; every other compressed layer reads the latest source at or below it. The caches
themselves are laid out by the deepseek_v41 cache recipe (engines/vllm/kv_recipes/deepseek_v41.py).

Only this topology is provided, and no model_type is registered: deepseek_v41 stays refused until the weights are
read to the byte. What is read so far (vLLM 0.33, SM90, TP 8):
- routed experts: Humming comes before Marlin on Hopper (fused_moe/oracle/mxfp4.py; humming-kernels 0.1.19 is a
  wheel requirement). The per-rank intermediate 2304/8 = 288 is rounded up to 320
  (mxfp4_round_up_hidden_size_and_intermediate_size), then Humming pads rows to 256 and columns to 128 and, with the
  checkpoint's MXFP8 activations run as block FP8, adds one fp32 scale per expert per matrix: gate-up 768 x 5120
  (1,966,080 B + 122,880 B of scales + 4), down 5120 x 384 (983,040 + 61,440 + 4) = 3,133,448 B per expert per
  rank, 44.82 GiB over 40 x 384 experts, 11.2 GiB above plain MXFP4 sizing;
- dense MXFP8 linears also go through Humming on Hopper (kernels/linear/__init__.py), padded the same way at one
  byte per weight plus 1/32 byte of scale (fused_wqa_wkv replicated 1792 x 5120; wq_b 4096 x 1280; wo_b 5120 x 1024;
  shared-expert gate-up 768 x 5120 and down 5120 x 384); _pad_shared_expert_weight adds nothing at TP 8;
- the fp32 attention sink is padded to 64 heads a rank; compressor linears are bf16 and replicated (2 x 512 rows
  at ratio 2, 512 at ratio 1); wk and k_norm only on layers that are both kv and index sources; the vision tower and
  aligner are bf16 and TP-split, image_start/end/newline fp32, and every MoE gate gains an fp32 bias_vl;
- still unread: wo_a's batched MXFP8 GEMM (DeepGEMM bmm or BF16 emulation on SM90), the engram tables
  (common/engram.py: shapes, the pinned-host split, wkv's per-rank padding), the model-level tensors and buffers
  of models/deepseek_v41/nvidia/model.py, and Blackwell's kernels (TRT-LLM MXFP8 experts, mega attention).
gpuplan would need per-rank padded byte counts for Humming's MXFP8 and MXFP4 layouts (weights.py sizes MXFP4
experts unpadded unless the method itself is mxfp4).
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
