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
Now read (model_spec below; pinned in tests/test_deepseek_v41_weights.py): compressors, indexers, the engram block
(tables host-only by default, so their primes do not matter on the GPU; EngramBatch is None without DP; staging rows
bf16 [mnbt, cdiv(24, tp), 256]; NgramHashState's int32 token_map [len(tokenizer)] and int64 primes / offsets /
multipliers), the two fp32 rotary caches, the vision tower a plain start builds (vllm_towers.json: 'marked'), and
the int32 lock buffer of every Humming layer (SMs x 8). The model_type is registered below: len(tokenizer), which
sizes one int32 buffer and is not in config.json, is taken as vocab_size (the tokenizer holds image_token_id 129,264,
so the two differ by at most 15 entries, 60 bytes). Pipeline parallelism is modelled: what each stage builds is read
(the comment block at the end of this module), and the spec places each rotary cache on the stages holding a layer
that uses it, each engram layer's staged rows on that layer's stage and the n-gram hash state on the stages holding
an engram layer (RopeCache.layers, TokenBuffer.layers, Tensor.on_layers), so the estimate's per-stage weights are
vLLM's (tests/test_deepseek_v41_pp.py, tests/test_deepseek_v41_pp_estimate.py).

Blackwell (compute capability 10.x, B200 / GB200 / B300) builds the same modules; only the kernels behind the
layout-tagged tensors change (engines/vllm/humming.py blackwell_layout_bytes): FlashInfer mm_mxfp8 for the dense
MXFP8 linears (fp8 weight plus a 128 x 4-tile swizzled scale), DeepGEMM's MXFP8 bmm for wo_a (fp8 plus packed UE8M0
scales, no bf16 copy), TRT-LLM MXFP4 x MXFP8 experts (intermediate rounded to 128, hidden to 256, no secondary
scales) with an fp32 gemm1_clamp_limit per local expert (swiglu_limit), and no Humming lock buffers. Nothing else
in models/deepseek_v41/nvidia differs by GPU at load: the gate stays bf16 (GateLinear keeps the model dtype), the
sink is padded to 64 heads by both FlashMLA and mega attention, whose wq_b / wo_a permutations are in place.
"""

from __future__ import annotations

from ..engines.vllm import humming as H
from ..errors import ConfigError
from ..units import cdiv, round_up
from .adapters import register
from .spec import Attention, Layer, Mlp, ModelSpec, MultimodalSpec, RopeCache, Tensor, TokenBuffer


def text_config(outer: dict) -> dict:
    """The text fields as vLLM's DeepseekV41Config exposes them: text_config flattened onto the top level."""
    cfg = {k: v for k, v in outer.items() if k not in ("text_config", "vision_config")}
    cfg.update({k: v for k, v in (outer.get("text_config") or {}).items() if k != "model_type"})
    # DeepseekV41Config also exposes the tower's depth as vision_n_layers (configs/deepseek_v41.py:52-53): the MoE
    # gates grow a bias_vl when it is non-zero
    cfg.setdefault("vision_n_layers", int((outer.get("vision_config") or {}).get("num_hidden_layers") or 0))
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
                # o_groups: Blackwell's mega attention (and so the NVFP4 compressed record) needs 8 local heads per
                # wo_a group (flash_mla_mega_attn.py is_available_for)
                recipe_args=(("ratio", key[0]), ("kv_source", key[1]), ("index_owner", key[2]),
                             ("o_groups", int(cfg.get("o_groups") or 0))))
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


# ----------------------------------------------------------------------------- the whole model (SM90, vLLM 0.33)


def _f32(name: str, *shape: int, kind: str = "other", parallel: str = "replicated", **kw) -> Tensor:
    return Tensor(name, kind, tuple(shape), parallel, dtype="float32", **kw)


def _bf16(name: str, kind: str, *shape: int, parallel: str = "replicated", **kw) -> Tensor:
    return Tensor(name, kind, tuple(shape), parallel, dtype="bfloat16", **kw)


def _hm(name: str, kind: str, n: int, k: int, parallel: str) -> Tensor:
    """A dense MXFP8 linear that Humming serves on SM90 ([n, k] before the TP split)."""
    return Tensor(name, kind, (n, k), parallel, linear=True, layout="humming_mxfp8")


def layer_tensors(cfg: dict, i: int) -> tuple[Tensor, ...]:
    """Every parameter and per-layer buffer vLLM 0.33 allocates for decoder layer i (NVIDIA path, FlashMLA sparse
    attention, Humming MXFP8 / MXFP4 kernels), with its TP split; weights.py sizes them per rank."""
    hidden, heads, hd = _i(cfg, "hidden_size"), _i(cfg, "num_attention_heads"), _i(cfg, "head_dim")
    qlr, olr, groups = _i(cfg, "q_lora_rank"), _i(cfg, "o_lora_rank"), _i(cfg, "o_groups")
    e, mi, hc = _i(cfg, "n_routed_experts"), _i(cfg, "moe_intermediate_size"), int(cfg.get("hc_mult") or 1)
    shared = int(cfg.get("n_shared_experts") or 0) * mi
    if olr % 4:
        # DeepGEMM's wo_a scale aligns each group's o_lora_rank rows to 4 on Blackwell; humming.py sizes it for a
        # multiple of 4 (every published V4.1 config: 1024)
        raise ConfigError("o_lora_rank", f"o_lora_rank {olr} is not a multiple of 4; gpuplan does not size "
                          "DeepGEMM's row-aligned wo_a scale for it")
    ratios = list(cfg.get("compress_ratios") or [])
    r = int(ratios[i]) if i < len(ratios) else 0
    kv_src = r > 0 and i in set(cfg.get("kv_source_layer_ids") or ())
    idx_src = i in set(cfg.get("index_source_layer_ids") or ())
    A, F, L = "model.layers.{i}.attn.", "model.layers.{i}.ffn.", "model.layers.{i}."
    mix, hc_dim = (2 + hc) * hc, hc * hidden
    # the sink is padded per rank to FlashMLA's 64 or 128 query heads (nvidia/flashmla.py get_padded_num_q_heads);
    # the rank count does not change it while 64 / tp <= 64: a replicated [64] fp32 vector on every rank
    t: tuple[Tensor, ...] = (_f32(A + "attn_sink", 64 if heads <= 64 else 128, kind="attention"),)
    t += (_hm(A + "fused_wqa_wkv", "attention", qlr + hd, hidden, "replicated"),  # disable_tp (attention.py:371)
          _bf16(A + "q_norm.weight", "norm", qlr), _bf16(A + "kv_norm.weight", "norm", hd),
          _hm(A + "wq_b", "attention", heads * hd, qlr, "column"),
          # is_bmm (attention.py:398): emulation kernel on SM90, bf16 plus its e8m0 scale
          Tensor(A + "wo_a", "attention", (groups * olr, heads * hd // groups), "column", linear=True,
                 layout="mxfp8_emulated"),
          _hm(A + "wo_b", "attention", hidden, groups * olr, "row"))
    if kv_src:  # compressor.py:292-304: bf16 (quant_config=None), replicated (disable_tp); gate only at ratio 2
        t += (_bf16(A + "compressor.fused_wkv_wgate.weight", "attention", (2 if r > 1 else 1) * hd, hidden),
              _bf16(A + "compressor.norm.weight", "norm", hd))
    if idx_src:  # attention.py:1385-1425: wq_b MXFP8 replicated, weights_proj bf16; wk / k_norm on kv sources
        ihd, ih = int(cfg.get("index_head_dim") or 128), int(cfg.get("index_n_heads") or 64)
        t += (_hm(A + "indexer.wq_b", "attention", ih * ihd, qlr, "replicated"),
              _bf16(A + "indexer.weights_proj.weight", "attention", ih, hidden))
        if kv_src:
            t += (_bf16(A + "indexer.wk.weight", "attention", ihd, hd), _bf16(A + "indexer.k_norm.weight", "norm", ihd))
    if i in tuple(cfg.get("engram_layer_ids") or ()):
        # engram.py:1629-1645: wkv an MXFP8 ColumnParallelLinear [(hc + 1) x hidden, n_hash_cols x head_dim];
        # q_weight / k_weight bf16 [hc, hidden]; the fp8 hash table lives in pinned host memory (EngramConfig
        # cpu_offload defaults to True), no GPU bytes; the staging rows are a token buffer (engram_buffers)
        cols = (_i(cfg, "engram_max_ngram_size") - 1) * _i(cfg, "engram_n_heads") * _i(cfg, "engram_head_dim")
        t += (_hm(L + "engram.wkv", "other", (hc + 1) * hidden, cols, "column"),
              _bf16(L + "engram.q_weight", "other", hc, hidden), _bf16(L + "engram.k_weight", "other", hc, hidden))
    t += (_bf16(L + "attn_norm.weight", "norm", hidden), _bf16(L + "ffn_norm.weight", "norm", hidden))
    for part in ("attn", "ffn"):  # nvidia/model.py:440-484
        t += (_f32(L + f"hc_{part}_fn", mix, hc_dim), _f32(L + f"hc_{part}_base", mix), _f32(L + f"hc_{part}_scale", 3))
    # GateLinear without quant_config: bf16 weight; fp32 e_score_correction_bias; fp32 bias_vl on vision checkpoints
    t += (_bf16(F + "gate.weight", "router", e, hidden), _f32(F + "gate.e_score_correction_bias", e, kind="router"))
    if int(cfg.get("vision_n_layers") or 0) > 0:
        t += (_f32(F + "gate.bias_vl", e, kind="router"),)
    t += (Tensor(F + "experts.w13", "experts", (e, 2 * mi, hidden), "expert_col", linear=True,
                 layout="humming_mxfp4_w4a8"),
          Tensor(F + "experts.w2", "experts", (e, hidden, mi), "expert_row", linear=True, layout="humming_mxfp4_w4a8"))
    if cfg.get("swiglu_limit") is not None:
        # RoutedExperts.swiglu_limit -> gemm1_clamp_limit: Blackwell's TRT-LLM experts keep it as an fp32 tensor of
        # the local experts, made when the weights are processed (trtllm_mxfp4_moe.py:83-89); Humming keeps none
        t += (Tensor(F + "experts.gemm1_clamp_limit", "experts", (e,), dtype="float32", in_checkpoint=False,
                     layout="trtllm_clamp_limit"),)
    if shared:
        t += (_hm(F + "shared_experts.gate_up_proj", "shared_experts", 2 * shared, hidden, "column"),
              _hm(F + "shared_experts.down_proj", "shared_experts", hidden, shared, "row"))
    return t


def rope_caches(cfg: dict) -> tuple[RopeCache, ...]:
    """common/rope.py: compressed layers take DeepSeek-YaRN at compress_rope_theta, window-only layers plain RoPE
    (factor 1) at rope_theta; DeepseekV4ScalingRotaryEmbedding keeps an fp32 cos/sin cache of
    original_max_position x factor rows of rope_dim (rotary_embedding/deepseek_scaling_rope.py:241-255), one per
    distinct parameter set (get_rope's _ROPE_DICT): 65536 x 16 and 1048576 x 1 positions here. Each attention layer
    builds its own (attention.py: build_deepseek_v4_rope in DeepseekV4Attention.__init__), so under pipeline
    parallelism a cache exists only on the stages holding a layer that asks for it (RopeCache.layers)."""
    n, rope_d = _i(cfg, "num_hidden_layers"), _i(cfg, "qk_rope_head_dim")
    rs = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
    if isinstance(rs.get("main"), dict) or rs.get("rope_type", rs.get("type", "default")) == "default":
        raise ConfigError("rope_scaling", "gpuplan reads DeepSeek-V4.1's flat YaRN rope_scaling only",
                          accepted=["{rope_type: yarn, factor, original_max_position_embeddings}"])
    mpe = _i(cfg, "max_position_embeddings")
    ratios = [int(x) for x in (cfg.get("compress_ratios") or [])[:n]] + [0] * max(0, n - len(cfg.get("compress_ratios") or []))
    out = []
    plain, yarn = tuple(i for i, r in enumerate(ratios) if r == 0), tuple(i for i, r in enumerate(ratios) if r > 0)
    if plain:
        out.append(RopeCache(mpe, rope_d, "float32", theta=float(cfg.get("rope_theta") or 10000), layers=plain))
    if yarn:
        out.append(RopeCache(int(rs["original_max_position_embeddings"] * float(rs["factor"])), rope_d, "float32",
                             theta=float(cfg.get("compress_rope_theta") or cfg.get("rope_theta") or 10000),
                             layers=yarn))
    return tuple(out)


def vision_tensors(outer: dict, hidden: int) -> tuple[Tensor, ...]:
    """DeepseekV41ForCausalLM (nvidia/vl_model.py:155-171) builds the ViT and aligner of models/deepseek_v4/common/
    vision.py inside _mark_tower_model, then casts both to the model dtype (its fp32 RMSNorm weights included); the
    image_start / image_end / image_newline vectors stay fp32. Attention and MLP are TP-split when TP divides the
    heads (is_vit_use_data_parallel), else whole on every rank; the patch embedding is replicated."""
    v = outer.get("vision_config") or {}
    if not int(v.get("num_hidden_layers") or 0):
        return ()
    d, nh, inter = int(v.get("hidden_size", 1024)), int(v.get("num_attention_heads", 16)), int(v.get("intermediate_size", 2816))
    p, ds, n = int(v.get("patch_size", 14)), int(v.get("downsample_ratio", 3)), int(v["num_hidden_layers"])

    def w(name: str, kind: str, *shape: int, parallel: str = "replicated") -> Tensor:
        return Tensor(name, kind, tuple(shape), parallel, dtype="bfloat16",
                      split_if_tp_divides=nh if parallel != "replicated" else 0)

    t = [w("vision.patch_embed.proj.weight", "vision", d, 3 * p * p), w("vision.patch_embed.proj.bias", "vision", d),
         w("vision.norm.weight", "vision", d)]
    per_block = (w("norm1", "vision", d), w("norm2", "vision", d),
                 w("wqkv.weight", "vision", 3 * d, d, parallel="column"), w("wqkv.bias", "vision", 3 * d, parallel="column"),
                 w("wo.weight", "vision", d, d, parallel="row"), w("wo.bias", "vision", d),
                 w("w1.weight", "vision", 2 * inter, d, parallel="column"), w("w2.weight", "vision", d, inter, parallel="row"))
    # n identical blocks: one tensor per block part with a leading block dimension keeps the split rules (shape[0]
    # is the split dimension for column tensors), so list them per block
    for b in range(n):
        t += [Tensor(f"vision.blocks.{b}.{x.name}", x.kind, x.shape, x.parallel, dtype=x.dtype,
                     split_if_tp_divides=x.split_if_tp_divides) for x in per_block]
    t += [w("aligner.w1.weight", "projector", hidden, d * ds * ds, parallel="column"),
          w("aligner.w1.bias", "projector", hidden, parallel="column"),
          w("aligner.w2.weight", "projector", hidden, hidden, parallel="row"), w("aligner.w2.bias", "projector", hidden)]
    t += [_f32(f"image_{x}", hidden, kind="projector") for x in ("start", "end", "newline")]
    return tuple(t)


def engram_buffers(cfg: dict) -> tuple[TokenBuffer, ...]:
    """Engram._init_staging (engram.py:1665-1671): bf16 staged rows [mnbt, cdiv(n_hash_cols, tp), head_dim] per
    engram layer (EngramBatch.create returns None without data parallelism, so they stay); made inside the decoder
    layer, so only on the pipeline stage holding it."""
    cols = (_i(cfg, "engram_max_ngram_size") - 1) * _i(cfg, "engram_n_heads")
    return tuple(TokenBuffer(f"engram_staged_rows_{i}", _i(cfg, "engram_head_dim"), "bfloat16", tp_units=cols,
                             layers=(int(i),))
                 for i in cfg.get("engram_layer_ids") or ())


def ngram_hash_buffers(cfg: dict, tokenizer_len: int) -> tuple[Tensor, ...]:
    """NgramHashState's GPU buffers (engram.py:466-472), built in DeepseekV4Model.__init__ under the CUDA device
    context: token_map int32 [len(tokenizer)] (build_compressed_token_map: one entry per tokenizer id), primes int64
    [engram layers, max_ngram - 1, heads], offsets int64 [engram layers, n_hash_cols] (EngramLayout.offsets, the same
    tensor), multipliers int64 [engram layers, max_ngram_size]. len(tokenizer) is not in config.json. Only the
    pipeline stages holding an engram layer build it (nvidia/model.py:899-925), each sized by the whole EngramLayout:
    Tensor.on_layers."""
    ids = tuple(int(i) for i in cfg.get("engram_layer_ids") or ())
    nl = len(ids)
    if not nl:
        return ()
    g, h = _i(cfg, "engram_max_ngram_size"), _i(cfg, "engram_n_heads")
    kw = {"dtype": "int64", "in_checkpoint": False, "on_layers": ids}
    return (Tensor("model.engram_hash.token_map", "other", (tokenizer_len,), **{**kw, "dtype": "int32"}),
            Tensor("model.engram_hash.primes", "other", (nl, g - 1, h), **kw),
            Tensor("model.engram_hash.offsets", "other", (nl, (g - 1) * h), **kw),
            Tensor("model.engram_hash.multipliers", "other", (nl, g), **kw))


def model_spec(outer: dict, name: str, tokenizer_len: int) -> ModelSpec:
    """DeepSeek-V4.1 as vLLM 0.33 builds it on Hopper and Blackwell (humming.py sizes the layout-tagged tensors per
    GPU). `tokenizer_len` (len(tokenizer)) sizes NgramHashState's
    int32 token map, the one GPU buffer config.json does not determine."""
    from .adapters import _spec

    cfg = text_config(outer)
    hidden, vocab, n = _i(cfg, "hidden_size"), _i(cfg, "vocab_size"), _i(cfg, "num_hidden_layers")
    hc = int(cfg.get("hc_mult") or 1)
    atts = attention_layers(cfg)
    moe = Mlp("moe", 0, _i(cfg, "n_routed_experts"), _i(cfg, "num_experts_per_tok"), _i(cfg, "moe_intermediate_size"),
              int(cfg.get("n_shared_experts") or 0) * _i(cfg, "moe_intermediate_size"))
    layers: list[Layer] = []
    shared: dict[tuple, Layer] = {}
    for i in range(n):
        ts = layer_tensors(cfg, i)
        key = (atts[i], tuple(x.name for x in ts))
        if key not in shared:
            shared[key] = Layer(atts[i], moe, ts)
        layers.append(shared[key])
    emb = (Tensor("model.embed_tokens.weight", "embedding", (vocab, hidden), "vocab"),
           # finalize_mhc_broadcast_weights (nvidia/model.py:1485-1498): layer 0's hc_attn_fn summed over the streams
           _f32("model.layers.0.hc_attn_fn_broadcast", (2 + hc) * hc, hidden, in_checkpoint=False))
    head = (_bf16("model.norm.weight", "norm", hidden), Tensor("lm_head.weight", "lm_head", (vocab, hidden), "vocab"))
    cand = int(cfg.get("candidate_topk_blocks") or 0) if int(cfg.get("candidate_source_layer_id", -1)) >= 0 else 0
    buffers = (TokenBuffer("topk_indices_buffer", int(cfg.get("index_topk") or 512), "int32"),
               *((TokenBuffer("candidate_block_buffer", cand, "int32"),) if cand else ()),
               *engram_buffers(cfg))
    vision = vision_tensors(outer, hidden)
    v = outer.get("vision_config") or {}
    mm = MultimodalSpec(params=sum(x.numel for x in vision), tokens_per_item=int(v.get("max_image_tokens", 1024)),
                        hidden_size=hidden, tp_heads=0) if vision else None
    spec = _spec(name, cfg, outer, layers, hidden=hidden, vocab=vocab, heads=_i(cfg, "num_attention_heads"),
                 head_dim=_i(cfg, "head_dim"), inter=_i(cfg, "moe_intermediate_size"), tie=False, embedding=emb,
                 head=head, rope=rope_caches(cfg), extra=vision + ngram_hash_buffers(cfg, tokenizer_len),
                 multimodal=mm, token_buffers=buffers, residual_streams=hc, notes=(
                     "DeepSeek-V4.1 on Hopper and Blackwell: weights are vLLM 0.33's per-rank allocations (Hopper: "
                     "Humming MXFP8 / MXFP4 padding; Blackwell: FlashInfer MXFP8 with swizzled scales, DeepGEMM's "
                     "wo_a, TRT-LLM MXFP4 experts; the engram tables in pinned host memory); the encoder's "
                     "profile-run activation is gpuplan's calibrated multimodal term, not read from the source",))
    return spec


@register("deepseek_v41")
def _deepseek_v41(cfg: dict, outer: dict, name: str) -> ModelSpec:
    # len(tokenizer) is not in config.json; vocab_size bounds it (see the module docstring)
    return model_spec(outer, name, tokenizer_len=_i(text_config(outer), "vocab_size"))


# ----------------------------------------------------------------------------- pipeline stages (vLLM 0.33, read)
# What each pipeline stage builds besides its own decoder layers (make_layers keeps layers [start, end) of
# get_pp_indices, or VLLM_PP_LAYER_PARTITION; the rest are PPMissingLayer):
# - first stage: embed_tokens (nvidia/model.py:780-788) and layer 0's hc_attn_fn_broadcast
#   (finalize_mhc_broadcast_weights, model.py:1485-1498: first rank only); last stage: the final norm
#   (model.py:926-929) and lm_head (model.py:1648-1655);
# - every stage: topk_indices_buffer and candidate_block_buffer (model.py:756-778, built before make_layers);
# - the stage of each engram layer: its wkv / q / k weights, its host table and its staged rows
#   (engram.py:1629-1671, built inside the decoder layer); NgramHashState (model.py:899-925) on every stage that
#   holds an engram layer, sized by the whole EngramLayout (all engram layers), not by the stage's;
# - rotary caches: each attention layer calls get_rope (attention.py:417-425, common/rope.py), whose process-wide
#   _ROPE_DICT builds a cache only for parameter sets a local layer asks for: the plain one (rope_theta) where the
#   stage holds a window-only layer (ratio 0), the YaRN one (compress_rope_theta) where it holds a compressed layer;
# - the vision tower and aligner sit outside make_layers (vl_model.py:155-171, _mark_tower_model): towers.py says
#   on which stages (the first only under Model Runner V2 from 0.33, else every stage).
# The spec carries these placements (RopeCache.layers, TokenBuffer.layers, Tensor.on_layers), which the generic
# per-stage sizing (engines/vllm/weights.py stage_weights) honours. `stage_residents` / `pipeline_stage_weights` below
# are a second, independent reading of the same rules (from the config, on a spec stripped of the placements), which
# the tests compare with the estimate's per-stage weights.


def stage_residents(outer: dict, lo: int, hi: int) -> dict[str, object]:
    """What a stage holding decoder layers [lo, hi) builds that is tied to particular layers: the rotary caches (by
    theta), the engram layers (staged rows) and whether it keeps an NgramHashState."""
    cfg = text_config(outer)
    n = _i(cfg, "num_hidden_layers")
    ratios = [int(x) for x in (cfg.get("compress_ratios") or [])[:n]]
    ratios += [0] * (n - len(ratios))
    here = range(lo, hi)
    thetas = []
    if any(ratios[i] == 0 for i in here):
        thetas.append(float(cfg.get("rope_theta") or 10000))
    if any(ratios[i] > 0 for i in here):
        thetas.append(float(cfg.get("compress_rope_theta") or cfg.get("rope_theta") or 10000))
    engram = tuple(i for i in cfg.get("engram_layer_ids") or () if lo <= i < hi)
    return {"rope_thetas": tuple(thetas), "engram_layers": engram, "ngram_hash_state": bool(engram)}


def pipeline_stage_weights(outer: dict, spec: ModelSpec, sh, pp: int, mnbt: int, *, towers: str = "first",
                           at_least=lambda version: True) -> list:
    """One rank's weights on each of `pp` stages as vLLM 0.33 builds DeepSeek-V4.1, read independently of the spec's
    placements: the generic per-stage sizing of a spec whose rotary caches and token buffers sit on every stage and
    whose NgramHashState sits on the first (weights.stage_weights' defaults), then each moved to the stages that
    build them by `stage_residents` (see the comment above). `sh`: weights.Sharding."""
    from dataclasses import replace

    from ..engines.vllm.weights import stage_weights
    from ..units import DTYPE_BYTES

    spec = replace(spec, rope_caches=tuple(replace(r, layers=()) for r in spec.rope_caches),
                   token_buffers=tuple(replace(b, layers=()) for b in spec.token_buffers),
                   extra=tuple(replace(t, on_layers=()) for t in spec.extra))

    rope_bytes = {r.theta: r.cached_positions(at_least) * r.rotary_dim * DTYPE_BYTES[r.dtype or "bfloat16"]
                  for r in spec.rope_caches}
    if len(rope_bytes) != len(spec.rope_caches):
        raise ConfigError("compress_rope_theta", "the window-only and compressed layers share one rope theta; which "
                          "stage builds which rotary cache is then not told apart here")
    staged = {int(b.name.rsplit("_", 1)[1]): mnbt * b.width * cdiv(b.tp_units, sh.tp) * DTYPE_BYTES[b.dtype]
              for b in spec.token_buffers if b.name.startswith("engram_staged_rows_")}
    ngram = sum(t.numel * DTYPE_BYTES[t.dtype] for t in spec.extra if t.name.startswith("model.engram_hash."))
    generic = stage_weights(spec, sh, spec.quant, 2, pp, mla_absorbed=True, mnbt=mnbt, towers=towers,
                            at_least=at_least)
    out = []
    for w in generic:
        lo, hi = w.layers
        have = stage_residents(outer, lo, hi)
        fix = {
            "rope_cache": sum(rope_bytes[t] for t in have["rope_thetas"]) - sum(rope_bytes.values()),
            "buffers": sum(staged[i] for i in have["engram_layers"]) - sum(staged.values()),
            "other": (ngram if have["ngram_hash_state"] else 0) - (ngram if w.stage == 0 else 0),
        }
        by = dict(w.by_kind)
        for k, d in fix.items():
            if d:
                by[k] = by.get(k, 0) + d
        out.append(replace(w, by_kind=tuple(by.items()), total=w.total + sum(fix.values())))
    return out
