"""vLLM 0.11's Qwen2-VL / Qwen2.5-VL vision-tower profile peak is the attention's float32 rotary step, not the MLP.

fam-102 (families_public.jsonl): Qwen2.5-VL-3B-Instruct on an L4, vLLM 0.11.0, max_model_len 8192,
max_num_batched_tokens 2048, every multimodal option at its default. vLLM logged "Encoder cache will be initialized
with a budget of 16384 tokens, and profiled with 1 image items", 7.1550 GiB of weights and 9.26 GiB of KV cache.

The profile image: 16,384 tokens (128 x 128 merged patches at max_pixels 12845056), so 65,536 patches of
3 x 2 x 14 x 14 = 1176 values go through all 32 blocks at once (hidden 1280, 16 heads of 80, intermediate 3420).

What is alive at the peak, in bytes per patch (read in vLLM 0.11.0's qwen2_5_vl.py / qwen2_vl.py; bf16 = 2 bytes):
- outside the blocks: pixel_values 2 x 1176 = 2352 (call_hf_processor casts the processor output to the model dtype
  since 0.9.1; the tower's x.to(dtype) is then a no-op), the float32 rotary table 4 x 40 = 160, window_index and
  reverse_indices (int64, one per merged token) 2 x 8 / 4 = 4: 2516;
- in Qwen2_5_VisionAttention.forward, at type_as in apply_rotary_pos_emb_vision: the block input 2 x 1280, norm1's
  output 2 x 1280 (an argument the caller holds), qkv 6 x 1280, the contiguous q, k, v 6 x 1280, torch.cat([q, k])
  4 x 1280, its float32 copy t_ 8 x 1280, the vllm_flash_attn Triton kernel's float32 output (empty_like) 8 x 1280,
  the bf16 copy type_as makes 4 x 1280: 40 x 1280 = 51200, plus cos and sin (float32 [n, 40] each) 320: 51520.
The MLP phase is smaller: 8 x 1280 + 8 x 3420 = 37600 at most (vLLM's native SiLU-and-mul, used with torch.compile on).
Peak 2516 + 51520 = 54036 bytes per patch x 65,536 = 3,541,303,296 bytes = 3.298 GiB.

gpuplan used to count the MLP phase with float32 pixels: 4 x 1176 + 320 + 2 x (4 x 1280 + 3 x 3420) = 35784 bytes
per patch, 2,345,140,224 bytes = 2.184 GiB: 1.114 GiB short.

Check against the log: the L4's 22.05 GiB x 0.9 = 19.845 GiB budget, less the logged 7.155 GiB of weights and 9.26
GiB of KV cache, leaves 3.430 GiB for the activation peak and non-torch memory; 3.298 + gpuplan's 0.13 GiB of
non-torch memory = 3.428. gpuplan's remaining KV error is its weights figure (7.12 against the logged 7.155).

0.11.1 - 0.11.2 rotate a view of qkv instead (Qwen2.5-VL: 2 + 2 + 6 + 8 + 8 + 4 = 30 x hidden), and from 0.12 the
rotary runs in bf16, so the MLP phase is the peak again and gpuplan's count there is unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import gpuplan.model.adapters  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.engines.vllm import encoder_profile as E
from gpuplan.engines.vllm.profiles import get_profile
from gpuplan.model.adapters import build_spec
from gpuplan.units import GiB
from gpuplan.validation import deployment_of

LOGS = Path(__file__).parent / "fixtures" / "vllm_logs"


def _fam102() -> dict:
    for line in (LOGS / "families_public.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["id"] == "fam-102":
            return rec
    raise AssertionError("fam-102 is not in families_public.jsonl")


@pytest.fixture(scope="module")
def fam102() -> dict:
    return _fam102()


@pytest.fixture(scope="module")
def qwen25vl_3b(fam102):
    return build_spec(fam102["hf_config"], name="Qwen/Qwen2.5-VL-3B-Instruct")


def _plan(spec, version: str, *, act_bytes: int = 2, tp: int = 1) -> E.EncoderPlan:
    return E.plan(spec.multimodal.encoder, get_profile(version), max_model_len=8192, mnbt=2048, max_num_seqs=128,
                  tp=tp, act_bytes=act_bytes, text_hidden=spec.hidden_size, limits={}, max_pixels=None)


def test_vllm_0_11_0_profiles_one_16384_token_image_of_65536_patches(qwen25vl_3b) -> None:
    plan = _plan(qwen25vl_3b, "0.11.0")
    assert (plan.modality, plan.items, plan.budget_tokens, plan.patches) == ("image", 1, 16384, 65536)


def test_the_0_11_0_tower_peak_is_the_float32_rotary_step(qwen25vl_3b) -> None:
    """2516 bytes per patch outside the blocks + 51520 in the attention's rotary step = 54036 per patch."""
    plan = _plan(qwen25vl_3b, "0.11.0")
    assert plan.tower_bytes == 65536 * (2 * 1176 + 4 * 40 + 4 + 40 * 1280 + 320) == 3_541_303_296
    assert plan.tower_bytes / GiB == pytest.approx(3.298, abs=0.001)


def test_0_11_1_rotates_a_view_of_qkv_so_the_step_holds_30_not_40_halves(qwen25vl_3b) -> None:
    for version in ("0.11.1", "0.11.2"):
        assert _plan(qwen25vl_3b, version).tower_bytes == 65536 * (2516 + 30 * 1280 + 320) == 2_702_442_496


def test_qwen2_vl_0_11_0_has_the_same_rotary_step_and_0_11_1_concatenates_q_and_k() -> None:
    """Qwen2-VL-2B's tower (embed_dim 1280, 16 heads): 0.11.0 holds 40 half-width hiddens at the rotary step like
    Qwen2.5-VL; 0.11.1's Qwen2VisionAttention still concatenates its (now non-contiguous) q and k: 34. No window
    index: 2352 + 160 outside the blocks."""
    cfg = {"architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl", "hidden_size": 1536,
           "intermediate_size": 8960, "num_attention_heads": 12, "num_hidden_layers": 28, "num_key_value_heads": 2,
           "vocab_size": 151936, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
           "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
           "vision_config": {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "mlp_ratio": 4, "num_heads": 16,
                             "in_chans": 3, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}}
    spec = build_spec(cfg, name="Qwen2-VL-2B-like")
    assert _plan(spec, "0.11.0").tower_bytes == 65536 * (2352 + 160 + 40 * 1280 + 320)
    assert _plan(spec, "0.11.1").tower_bytes == 65536 * (2352 + 160 + 34 * 1280 + 320)


def test_other_releases_keep_the_mlp_phase_count(qwen25vl_3b) -> None:
    """Before 0.11 and from 0.12 (bf16 rotary) gpuplan's MLP-phase count stands: 4 x 1176 + 320 + 2 x (4 x 1280 +
    3 x 3420) = 35784 bytes per patch. So do a TP-split tower and a float32 model, whose rotary step is not read."""
    mlp = 65536 * 35784
    for version in ("0.10.2", "0.12.0", "0.23.0", "0.33.0"):
        assert _plan(qwen25vl_3b, version).tower_bytes == mlp
    assert _plan(qwen25vl_3b, "0.11.0", tp=2).tower_bytes == 65536 * (4 * 1176 + 320 + 2 * (4 * 1280 + 3 * 1710))


def test_qwen25_vl_3b_on_an_l4_at_8k_gets_the_logged_kv_cache(fam102, qwen25vl_3b) -> None:
    """How much KV cache does Qwen2.5-VL-3B get on one L4 with vLLM 0.11 at 8K context? The log says 9.26 GiB
    (269,568 tokens). gpuplan: 19.845 - 7.12 (weights) - 3.298 (tower pass) - 0.13 (non-torch) = 9.30 GiB; it said
    10.42 GiB (+12.5%) before the rotary step was counted."""
    report = estimate(qwen25vl_3b, deployment=deployment_of(fam102))
    assert report.activation_peak_bytes == 3_541_303_296
    kv = report.available_kv_cache_bytes / GiB
    assert kv == pytest.approx(fam102["logged"]["available_kv_cache_gib"], rel=0.01)
    assert report.kv.kv_cache_tokens == pytest.approx(fam102["logged"]["kv_cache_tokens"], rel=0.01)
