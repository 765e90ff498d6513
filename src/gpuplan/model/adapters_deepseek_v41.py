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

Since then (engines/vllm/humming.py has the padded-byte rules; hopper_layer_bytes / hopper_model_level_bytes below
give the read parts per rank, pinned in tests/test_deepseek_v41_weights.py):
- wo_a is read: it is re-selected after loading from [DeepGEMM MXFP8 bmm, emulation]; DeepGEMM's bmm is
  Blackwell-only, so on Hopper the emulation kernel dequantizes it to bf16 at load and keeps its e8m0 scale
  (twice the MXFP8 bytes, no padding);
- the model level is read: bf16 embedding and LM head (no quant method for either), the final norm, an fp32 copy of
  the first layer's hc_attn_fn summed over the streams (hc_attn_fn_broadcast, made after loading), int32 top-k
  [mnbt, index_topk] and candidate-block [mnbt, candidate_topk_blocks] buffers; V4.1 has no hc_head tensors; the
  MTP hidden buffer exists only with speculative decoding;
- the engram block is partly read: wkv is an MXFP8 ColumnParallelLinear [hc_mult + 1 = 5 x 5120 rows, 3 x 8 x 256
  = 6144 columns] (Humming pads 3200 rows a rank to 3328 at TP 8), q_weight / k_weight bf16 [4, 5120], a bf16
  staging buffer [mnbt, cdiv(24 hash heads, tp), 256]; the fp8 tables (256 B + 8 B of scales a row) live in pinned
  host memory by default (EngramConfig.cpu_offload), split by hash heads over TP; their row counts come from
  EngramLayout's primes, and EngramBatch / NgramHashState hold further GPU buffers: not read to the byte.
"""

from __future__ import annotations

from ..engines.vllm import humming as H
from ..errors import ConfigError
from ..units import cdiv, round_up
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


def _i(cfg: dict, key: str) -> int:
    return int(cfg[key])


def hopper_layer_bytes(cfg: dict, tp: int, ep: bool = False, compute_capability: float | None = 9.0) -> dict[str, int]:
    """The parts of one decoder layer's weights on one TP rank that are read to the byte for vLLM 0.33 on Hopper
    (FlashMLA sparse attention, Humming MXFP8 linears and MXFP4 experts), by module. Not included: the compressor,
    the indexer (wq_b, weights_proj, wk, k_norm), and the engram block, whose shapes are not all read.
    `ep`: expert parallelism over the TP ranks (no data parallelism): whole experts, 1/tp of them per rank."""
    H.require_hopper(compute_capability, "DeepSeek-V4.1")
    hidden, heads, hd = _i(cfg, "hidden_size"), _i(cfg, "num_attention_heads"), _i(cfg, "head_dim")
    qlr, olr, groups = _i(cfg, "q_lora_rank"), _i(cfg, "o_lora_rank"), _i(cfg, "o_groups")
    e, mi, hc = _i(cfg, "n_routed_experts"), _i(cfg, "moe_intermediate_size"), int(cfg.get("hc_mult") or 1)
    shared = int(cfg.get("n_shared_experts") or 0) * mi
    if heads % tp or groups % tp:
        raise ConfigError("num_attention_heads", f"{heads} heads / {groups} output groups do not split over TP {tp} "
                          "(vLLM asserts the heads divide; fewer groups than ranks is not modelled)")
    if ep and e % tp:
        raise ConfigError("n_routed_experts", f"{e} experts do not split over {tp} expert-parallel ranks")
    local_heads = heads // tp
    # FlashMLA's decode kernel takes 64 or 128 query heads: the fp32 sink is padded to that (nvidia/flashmla.py).
    sink_heads = 64 if local_heads <= 64 else 128
    mix, hc_dim = (2 + hc) * hc, hc * hidden
    ep_size, moe_tp = (tp, 1) if ep else (1, tp)
    return {
        "attn_sink": 4 * sink_heads,
        # replicated (disable_tp) fused q_a + kv projection: 1280 + 512 rows
        "fused_wqa_wkv": H.mxfp8_linear_bytes(qlr + hd, hidden),
        "wq_b": H.mxfp8_linear_bytes(heads * hd // tp, qlr),
        # batched MXFP8 GEMM: DeepGEMM bmm is Blackwell-only, so the emulation kernel holds it in bf16
        "wo_a": H.mxfp8_emulated_bytes(groups * olr // tp, heads * hd // groups),
        "wo_b": H.mxfp8_linear_bytes(hidden, groups * olr // tp),
        "norms": 2 * (qlr + hd + 2 * hidden),  # q_norm, kv_norm, attn_norm, ffn_norm: bf16 RMSNorm weights
        "hc": 4 * 2 * (mix * hc_dim + mix + 3),  # hc_{attn,ffn}_{fn,base,scale}, fp32
        # GateLinear built without quant_config: bf16 weight; fp32 e_score_correction_bias and bias_vl (vision
        # checkpoints put bias_vl on every MoE layer)
        "gate": 2 * e * hidden + 4 * e + 4 * e,
        "routed_experts": cdiv(e, ep_size) * H.mxfp4_w4a8_expert_bytes(hidden, cdiv(mi, moe_tp)),
        "shared_experts": (H.mxfp8_linear_bytes(2 * cdiv(shared, tp), hidden)
                           + H.mxfp8_linear_bytes(hidden, cdiv(shared, tp))) if shared else 0,
    }


def hopper_model_level_bytes(cfg: dict, tp: int, mnbt: int, compute_capability: float | None = 9.0) -> dict[str, int]:
    """Model-level tensors and persistent buffers of models/deepseek_v41/nvidia/model.py on one rank (one pipeline
    stage): bf16 vocab-parallel embedding and LM head (vocabulary padded to 64), the final bf16 norm, the first
    layer's fp32 hc_attn_fn_broadcast (finalize_mhc_broadcast_weights: hc_attn_fn summed over the hc streams), and
    the int32 top-k index and candidate-block buffers sized by max_num_batched_tokens. Rotary caches, engram buffers
    and the vision tower are not included."""
    H.require_hopper(compute_capability, "DeepSeek-V4.1")
    hidden, vocab, hc = _i(cfg, "hidden_size"), _i(cfg, "vocab_size"), int(cfg.get("hc_mult") or 1)
    rows = cdiv(round_up(vocab, 64), tp)
    cand = int(cfg.get("candidate_topk_blocks") or 0) if int(cfg.get("candidate_source_layer_id", -1)) >= 0 else 0
    return {
        "embedding": 2 * rows * hidden,
        "lm_head": 2 * rows * hidden,
        "norm": 2 * hidden,
        "hc_attn_fn_broadcast": 4 * (2 + hc) * hc * hidden,
        "topk_indices_buffer": 4 * mnbt * int(cfg.get("index_topk") or 512),
        "candidate_block_buffer": 4 * mnbt * cand,
    }
