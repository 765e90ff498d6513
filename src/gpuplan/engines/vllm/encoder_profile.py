"""The multimodal encoder pass of vLLM's V1 profile run, for towers whose inputs vLLM sizes from max_pixels.

Before the language model's dummy batch, V1's profile_run (gpu_model_runner.py) pushes the largest item of one
modality through the vision tower, as many of them as the encoder budget holds, and keeps their outputs in the
encoder cache while the language model runs. The budget is max(max_num_batched_tokens, one item's tokens)
(encoder_cache_manager.compute_mm_encoder_budget, unchanged 0.8 - 0.33); the modality is the one whose item counts
the most tokens.

Qwen2-VL and Qwen2.5-VL (Qwen2VLProcessingInfo): the largest image is max_pixels split into merged patches, the
largest video as many frames of that image as max_model_len holds, at most 16 frames (14 from 0.11). At Qwen's
default max_pixels a 128k-context start-up profiles one 114,688-token video: 458,752 patches through every block.

Qwen3-VL and Qwen3.5 (Qwen3VLProcessingInfo) have a video processor with its own pixel budget over all frames:
- 0.11 - 0.14: frames are added while the video's tokens fit max_model_len (at most 24,576 frames), each frame
  shrinking to keep the budget; 0.11 - 0.12 count such a video as 12.5x its tokens (the timestamp text), so the
  video wins and the budget logs as 153,600 tokens at the default processor.
- 0.15 on: the video is two frames of half the video budget (12,288 tokens by default), so the 16,384-token image
  wins unless images are turned off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from ...model.spec import EncoderShape
from .profiles import Profile

DEFAULT_LIMIT = 999  # V1's default limit_mm_per_prompt for each modality
QWEN3_MAX_FRAMES = 24576  # qwen3_vl.py _MAX_FRAMES_PER_VIDEO, 0.11 - 0.14


@dataclass(frozen=True)
class Item:
    counted: int  # tokens vLLM budgets for one item (get_mm_max_tokens_per_item)
    tokens: int  # encoder outputs the profile's dummy item actually yields


@dataclass(frozen=True)
class EncoderPlan:
    modality: str
    item_tokens: int  # LLM tokens one item counts for
    items: int
    budget_tokens: int  # the encoder cache budget vLLM logs
    patches: int  # patches through the tower at once
    peak_bytes: int  # the encoder phase's allocated peak: the tower pass, or the copy into larger cache entries
    output_bytes: int  # encoder outputs held in the cache through the language model's dummy run
    tower_bytes: int = 0  # the tower pass alone


def _most_features(max_pixels: int, unit: int, square: bool) -> tuple[int, int]:
    """(height, width) in pixels of the image with most merged patches under max_pixels. From 0.13 vLLM factors
    max_pixels / unit^2 into the most nearly square pair, stepping down until the aspect ratio is at most 200; before,
    it resized a 9999999-pixel square, which keeps the largest square."""
    if square:
        side = max(1, math.isqrt(max_pixels) // unit)
        return side * unit, side * unit
    for seq in range(max(1, max_pixels // (unit * unit)), 0, -1):
        h = math.isqrt(seq)
        while seq % h:
            h -= 1
        if seq // h / h <= 200:
            return h * unit, seq // h * unit
    return unit, unit


def _tokens(height: int, width: int, patch: int, merge: int, pairs: int = 1) -> int:
    """LLM tokens of `pairs` temporal patches of a height x width frame: merge^2 patches make one token."""
    return pairs * (height // patch) * (width // patch) // merge ** 2


def _qwen2_items(shape: EncoderShape, profile: Profile, max_model_len: int, max_pixels: int) -> dict[str, Item]:
    h, w = _most_features(max_pixels, shape.patch_size * shape.merge, square=not profile.at_least("0.13.0"))
    image = _tokens(h, w, shape.patch_size, shape.merge)
    cap = 14 if profile.at_least("0.11.0") else 16  # qwen2_vl.py _MAX_FRAMES_PER_VIDEO

    def video(frames: int) -> int:
        return image * max((frames + frames % shape.temporal_patch) // shape.temporal_patch, 1)

    frames = 1
    while frames < cap and video(frames + 1) <= max_model_len:
        frames += 1
    return {"image": Item(image, image), "video": Item(video(frames), video(frames))}


def _video_resize(frames: int, height: int, width: int, t: int, unit: int, lo: int, hi: int) -> tuple[int, int]:
    """transformers' Qwen3-VL video smart_resize: the frames share one pixel budget, with the same float steps."""
    h_bar, w_bar = round(height / unit) * unit, round(width / unit) * unit
    t_bar = round(frames / t) * t
    if t_bar * h_bar * w_bar > hi:
        beta = math.sqrt((frames * height * width) / hi)
        h_bar = max(unit, math.floor(height / beta / unit) * unit)
        w_bar = max(unit, math.floor(width / beta / unit) * unit)
    elif t_bar * h_bar * w_bar < lo:
        beta = math.sqrt(lo / (frames * height * width))
        h_bar = math.ceil(height * beta / unit) * unit
        w_bar = math.ceil(width * beta / unit) * unit
    return h_bar, w_bar


@lru_cache(maxsize=64)
def _qwen3_frames(max_model_len: int, height: int, width: int, t: int, patch: int, merge: int, lo: int,
                  hi: int) -> tuple[int, int, int]:
    """0.11 - 0.14: Qwen2VLProcessingInfo._get_max_video_frames from two frames, capped at 24,576. Returns the frame
    count and the resized frame (height, width)."""
    unit = patch * merge

    def tokens(frames: int) -> int:
        return _tokens(*_video_resize(frames, height, width, t, unit, lo, hi), patch, merge, (frames + frames % t) // t)

    frames = 2
    while frames < QWEN3_MAX_FRAMES and tokens(frames + 1) <= max_model_len:
        frames += 1
    return frames, *_video_resize(frames, height, width, t, unit, lo, hi)


def _qwen3_items(shape: EncoderShape, profile: Profile, max_model_len: int, max_pixels: int | None) -> dict[str, Item]:
    unit, p, t, m = shape.patch_size * shape.merge, shape.patch_size, shape.temporal_patch, shape.merge
    image_px = max_pixels or shape.max_pixels
    ih, iw = _most_features(image_px, unit, square=not profile.at_least("0.13.0"))
    image = _tokens(ih, iw, p, m)
    if profile.at_least("0.15.0"):
        # Two frames at half the video budget. A max_pixels processor kwarg leaves the video alone in 0.15 - 0.16,
        # resizes those two frames to fit it in 0.17 - 0.31 (_get_vision_info), and is the video budget from 0.32.
        video_px = max_pixels if max_pixels and profile.at_least("0.32.0") else shape.video_max_pixels
        vh, vw = _most_features(video_px // t, unit, square=False)
        if max_pixels and profile.at_least("0.17.0"):
            vh, vw = _video_resize(2, vh, vw, t, unit, shape.video_min_pixels, max_pixels)
        video = _tokens(vh, vw, p, m)
        return {"image": Item(image, image), "video": Item(video, video)}
    frames, vh, vw = _qwen3_frames(max_model_len, ih, iw, t, p, m, shape.video_min_pixels, shape.video_max_pixels)
    pairs = (frames + frames % t) // t
    counted = _tokens(vh, vw, p, m, pairs)
    if profile.at_least("0.12.0"):
        # The HF processor resizes the dummy frames again (0.11 passed do_resize=False).
        vh, vw = _video_resize(frames, vh, vw, t, unit, shape.video_min_pixels, shape.video_max_pixels)
    real = _tokens(vh, vw, p, m, pairs)
    if not profile.at_least("0.13.0"):
        counted = int(counted * 12.5)  # "<{timestamp} seconds>" text budgeted around every video token
    return {"image": Item(image, image), "video": Item(counted, real)}


def largest_items(shape: EncoderShape, profile: Profile, max_model_len: int, max_pixels: int | None) -> dict[str, Item]:
    if shape.processor == "qwen3_vl":
        return _qwen3_items(shape, profile, max_model_len, max_pixels)
    return _qwen2_items(shape, profile, max_model_len, max_pixels or shape.max_pixels)


def plan(shape: EncoderShape, profile: Profile, *, max_model_len: int, mnbt: int, max_num_seqs: int, tp: int,
         act_bytes: int, text_hidden: int, limits: dict[str, int], max_pixels: int | None) -> EncoderPlan | None:
    per_item = largest_items(shape, profile, max_model_len, max_pixels)
    live = {m: it for m, it in per_item.items() if limits.get(m, DEFAULT_LIMIT) > 0}
    if not live:
        return None  # every modality disabled: vLLM initialises no encoder cache
    # The modality counting the most tokens per item. On a tie, up to 0.16 the first one listed (image) wins, from
    # 0.17 the later name (video): max() over (tokens, name), since the modalities came to be kept in a set.
    if profile.at_least("0.17.0"):
        modality, item = max(live.items(), key=lambda kv: (kv[1].counted, kv[0]))
    else:
        modality, item = max(live.items(), key=lambda kv: kv[1].counted)
    budget = max(mnbt, item.counted)
    per_prompt = max(1, min(limits.get(modality, DEFAULT_LIMIT), max_model_len // item.counted))
    items = max(1, min(budget // item.counted, max_num_seqs * per_prompt))
    tokens = items * item.tokens
    patches = tokens * shape.merge ** 2
    per_patch = _per_patch(shape, profile, tp, act_bytes)
    width = text_hidden * shape.outputs * act_bytes  # bytes of encoder output per token
    # Deepstack outputs taken from earlier blocks stay alive through the last ones.
    tower = patches * per_patch + (shape.outputs - 1) * tokens * text_hidden * act_bytes
    rows = _cached_rows(profile, item, budget)
    # The copy into larger cache entries holds both for a moment.
    peak = max(tower, items * (item.tokens + rows) * width) if rows > item.tokens else tower
    return EncoderPlan(modality, item.counted, items, budget, patches, peak, items * rows * width, tower)


def _per_patch(shape: EncoderShape, profile: Profile, tp: int, act_bytes: int) -> int:
    """Bytes per patch at the tower pass's peak. By default the MLP phase: float32 pixel values, the rotary table and
    the block's live hidden- and intermediate-width tensors.

    vLLM 0.11.0 - 0.11.2 on an unsharded Qwen2-VL / Qwen2.5-VL tower in half precision, read tensor by tensor
    (qwen2_vl.py / qwen2_5_vl.py, the default flash-attention path, no compiled encoder): the peak is the attention's
    rotary step, which runs in float32. apply_rotary_pos_emb_vision copies q and k to float32 (t.float()), the
    vllm_flash_attn Triton kernel writes a new float32 output (empty_like) and type_as copies that back, while the
    block input, norm1's output (held by the caller), the qkv projection and cos / sin ([n, head_dim / 2] float32 each)
    are alive. In bytes per patch per unit of hidden (bf16): block input 2 + norm1 2 + qkv 6 + float32 copy 8 +
    float32 output 8 + bf16 copy 4 = 30 on 0.11.1 - 0.11.2's Qwen2.5-VL, which rotates a view of qkv; Qwen2-VL there
    still concatenates its (non-contiguous) q and k, + 4 = 34; 0.11.0 also holds contiguous q, k, v and their
    concatenation, + 6 + 4 = 40. Outside the block: the pixel values, already in
    the model dtype since 0.9.1 (the processor output cast in call_hf_processor), the float32 rotary table and, for
    Qwen2.5-VL, window_index and reverse_indices (int64, one per merged token). The MLP phase (at most 8 + 8 x
    intermediate / hidden half-widths with vLLM's native SiLU-and-mul) stays below it for the published towers."""
    mlp = act_bytes * (shape.hidden_live * shape.hidden + shape.mlp_live * math.ceil(shape.intermediate / tp))
    rotary_dim = shape.rotary_bytes // 8  # head_dim / 2: rotary_bytes is cos + sin in float32
    fp32_rotary = (shape.block in ("qwen2_5_vl", "qwen2_vl") and tp == 1 and act_bytes == 2
                   and profile.at_least("0.11.0") and not profile.at_least("0.12.0"))
    if not fp32_rotary:
        return 4 * shape.patch_input + shape.rotary_bytes + mlp
    if not profile.at_least("0.11.1"):
        halves = 40
    else:
        halves = 30 if shape.block == "qwen2_5_vl" else 34
    attention = halves * shape.hidden + shape.rotary_bytes
    windows = 2 * 8 // shape.merge ** 2 if shape.block == "qwen2_5_vl" else 0
    return act_bytes * shape.patch_input + 4 * rotary_dim + windows + max(attention, mlp)


def _cached_rows(profile: Profile, item: Item, budget: int) -> int:
    """Rows one item's outputs take in the profile's encoder cache. 0.11 copied each output shorter than the encoder
    budget into a budget-long zero tensor, 0.12 into one as long as the item counts (the placeholder text included);
    before and after, the outputs are cached as they are (gpu_model_runner.profile_run)."""
    if profile.at_least("0.13.0") or not profile.at_least("0.11.0"):
        return item.tokens
    return max(item.tokens, item.counted if profile.at_least("0.12.0") else budget)


# --skip-mm-profiling: no encoder pass and an empty encoder cache in the profile run.
SKIPPED = EncoderPlan("none", 0, 0, 0, 0, 0, 0)
