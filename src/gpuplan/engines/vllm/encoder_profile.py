"""The multimodal encoder pass of vLLM's V1 profile run, for towers whose inputs vLLM sizes from max_pixels.

Before the language model's dummy batch, V1's profile_run (gpu_model_runner.py) pushes the largest item of one
modality through the vision tower, as many of them as the encoder budget holds, and keeps their outputs in the
encoder cache while the language model runs. The budget is max(max_num_batched_tokens, one item's tokens)
(encoder_cache_manager.compute_mm_encoder_budget, unchanged 0.8 - 0.33). For Qwen2-VL and Qwen2.5-VL
(Qwen2VLProcessingInfo) the largest image is max_pixels split into merged patches, and the largest video is as many
frames of that image as max_model_len holds, at most 16 frames (14 from 0.11). At Qwen's default max_pixels a
128k-context start-up profiles one 114,688-token video: 458,752 patches through every block of the tower.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...model.spec import EncoderShape
from .profiles import Profile

DEFAULT_LIMIT = 999  # V1's default limit_mm_per_prompt for each modality


@dataclass(frozen=True)
class EncoderPlan:
    modality: str
    item_tokens: int  # LLM tokens one item becomes
    items: int
    budget_tokens: int  # the encoder cache budget vLLM logs
    patches: int  # patches through the tower at once
    peak_bytes: int  # the tower's allocated peak during that pass
    output_bytes: int  # encoder outputs held in the cache through the language model's dummy run


def _grid(max_pixels: int, unit: int) -> int:
    """Merged-patch count of the image with most features under max_pixels: vLLM factors max_pixels / unit^2 into
    the most nearly square height x width, stepping down until the aspect ratio is at most 200."""
    n = max(1, max_pixels // (unit * unit))
    for seq in range(n, 0, -1):
        h = math.isqrt(seq)
        while seq % h:
            h -= 1
        if seq // h / h <= 200:
            return seq
    return 1


def item_tokens(shape: EncoderShape, profile: Profile, max_model_len: int, max_pixels: int) -> dict[str, int]:
    image = _grid(max_pixels, shape.patch_size * shape.merge)
    cap = 14 if profile.at_least("0.11.0") else 16  # qwen2_vl.py _MAX_FRAMES_PER_VIDEO

    def video(frames: int) -> int:
        return image * max((frames + frames % shape.temporal_patch) // shape.temporal_patch, 1)

    frames = 1
    while frames < cap and video(frames + 1) <= max_model_len:
        frames += 1
    return {"image": image, "video": video(frames)}


def plan(shape: EncoderShape, profile: Profile, *, max_model_len: int, mnbt: int, max_num_seqs: int, tp: int,
         act_bytes: int, text_hidden: int, limits: dict[str, int], max_pixels: int | None) -> EncoderPlan | None:
    per_item = item_tokens(shape, profile, max_model_len, max_pixels or shape.max_pixels)
    live = {m: t for m, t in per_item.items() if limits.get(m, DEFAULT_LIMIT) > 0}
    if not live:
        return None  # every modality disabled: vLLM initialises no encoder cache
    # The modality with the most tokens per item; on a tie the later name (video) wins, as in max() over (tokens, name).
    modality, tokens = max(live.items(), key=lambda kv: (kv[1], kv[0]))
    budget = max(mnbt, tokens)
    per_prompt = max(1, min(limits.get(modality, DEFAULT_LIMIT), max_model_len // tokens))
    items = max(1, min(budget // tokens, max_num_seqs * per_prompt))
    patches = items * tokens * shape.merge ** 2
    per_patch = (4 * shape.patch_input + shape.rotary_bytes
                 + act_bytes * (shape.hidden_live * shape.hidden + shape.mlp_live * math.ceil(shape.intermediate / tp)))
    return EncoderPlan(modality, tokens, items, budget, patches, patches * per_patch,
                       items * tokens * text_hidden * act_bytes)


# --skip-mm-profiling: no encoder pass and an empty encoder cache in the profile run.
SKIPPED = EncoderPlan("none", 0, 0, 0, 0, 0, 0)
