"""Phi-4-multimodal in transformers' format (phi4_multimodal, Phi4MultimodalForCausalLM) as vLLM's native class built
it (phi4_multimodal.py, last shipped in 0.12.0; vLLM 0.33 lists it as previously supported): Phi-4-mini text model,
a 26-layer SigLIP tower split over TP, a 24-block conformer split over TP, and their projectors
(tests/fixtures/oracle/families/phi4_multimodal.json: transformers 5.23's default config)."""

from __future__ import annotations

import json
from pathlib import Path

import gpuplan.model.adapters_phi4_multimodal  # noqa: F401
from gpuplan.api_python import estimate
from gpuplan.model.adapters import build_spec

FX = json.loads((Path(__file__).parent / "fixtures" / "oracle" / "families" / "phi4_multimodal.json").read_text())
M = FX["models"]["phi4_multimodal/transformers-default"]
CFG = M["config"]

V, VI = 1152, 4304  # SigLIP width and MLP
VIT_LAYER = 4 * (V * V + V) + V * VI + VI + VI * V + V + 4 * V
D, F = 1024, 1536  # conformer width and feed-forward
HEAD = V + (3 * V * V + 3 * V) + (V * V + V) + 2 * V + (V * VI + VI) + (VI * V + V)  # SigLIP pooling head


def _spec():
    return build_spec(CFG, "microsoft/Phi-4-multimodal-instruct")


def _text():
    t = {k: v for k, v in CFG.items() if k not in ("vision_config", "audio_config")}
    return build_spec({**t, "model_type": "phi3", "architectures": ["Phi3ForCausalLM"]}, "text")


def test_parameters_are_transformers_minus_what_the_loader_skips() -> None:
    spec = _spec()
    assert not spec.generic and spec.architecture == "Phi4MultimodalForCausalLM"
    assert _text().total_params == M["text_phi3_params"] == 4_400_286_720
    skipped = sum(t.numel for t in spec.extra_not_loaded)
    # vision layer 27 (feature_layer -2 keeps 26) + post_layernorm + the attention-pooling head
    assert skipped == VIT_LAYER + 2 * V + HEAD == M["vllm_skipped_checkpoint_params"] == 30_480_160
    assert spec.total_params == M["vllm_params"] == 5_277_788_832
    assert spec.total_params + skipped == M["hf_params"] == 5_308_268_992


def test_weights_per_gpu_on_vllm_0_12_at_tp1_and_tp2() -> None:
    """bf16, vision kind at TP=1: SigLIP column part 26 x (3 x 1152^2 + 3 x 1152 + 4304 x 1152 + 4304) = 232,629,280,
    row part 26 x (1152^2 + 1152 x 4304) = 163,418,112, whole 2,037,888 (LayerNorms, row biases, patch conv, 1,024
    positions); conformer column 24 x (2 x (2 x 1536 x 1024 + 3072) + 3 x 1024^2 + 3072) = 226,713,600, row
    24 x (2 x 1536 x 1024 + 1024^2) = 100,663,296, whole 101,228,544 in the blocks + 12,648,704 (NeMo subsampling,
    relative bias table) + 160 (mean / invstd parameters): 839,339,584 x 2 = 1,678,679,168 B.
    Projector kind: extensors 2,304 + img_projection (3,542,016 + 9,437,184 + 3,072) + two audio projectors
    (3,148,800 + 9,437,184 + 3,072 each) = 38,162,688 x 2 = 76,325,376 B.
    TP=2 halves the column / row parts: vision (229,671,440 + 132,040,704 + 115,915,296) x 2 = 955,254,880 B;
    projector (4,919,808 + 14,155,776 + 11,520) x 2 = 38,174,208 B."""
    one = estimate(_spec(), gpu="H100", tensor_parallel_size=1, max_model_len=131072, vllm_version="0.12.0")
    two = estimate(_spec(), gpu="H100", tensor_parallel_size=2, max_model_len=131072, vllm_version="0.12.0")
    t1 = estimate(_text(), gpu="H100", tensor_parallel_size=1, max_model_len=131072, vllm_version="0.12.0")
    t2 = estimate(_text(), gpu="H100", tensor_parallel_size=2, max_model_len=131072, vllm_version="0.12.0")
    k1, k2 = one.per_stage[0]["weights_by_kind"], two.per_stage[0]["weights_by_kind"]
    assert (k1["vision"], k1["projector"]) == (1_678_679_168, 76_325_376)
    assert (k2["vision"], k2["projector"]) == (955_254_880, 38_174_208)
    assert one.weights_bytes == t1.weights_bytes + 1_678_679_168 + 76_325_376 == 10_580_743_808
    assert two.weights_bytes == t2.weights_bytes + 955_254_880 + 38_174_208 == 5_419_081_312


def test_can_i_serve_it_on_vllm_0_33_and_does_it_fit_one_h100_at_128k() -> None:
    """0.33 dropped the class (last native release 0.12.0): the estimate warns and follows the 0.12.0 build.
    On 0.12.0 it fits one H100 at 128K. KV (text model only, 32 full-attention layers, 8 KV heads x 96):
    2 x 8 x 96 x 2 B x 32 layers = 98,304 B per token; block 16 -> 1,572,864 B per block; a 128K request needs
    131,072 / 16 = 8,192 blocks."""
    r33 = estimate(_spec(), gpu="H100", tensor_parallel_size=1, max_model_len=131072)
    assert any("dropped its own Phi4MultimodalForCausalLM after v0.12.0" in w for w in r33.warnings)
    r = estimate(_spec(), gpu="H100", tensor_parallel_size=1, max_model_len=131072, vllm_version="0.12.0")
    assert r.fits is True and not any("dropped" in w for w in r.warnings)
    assert (r.kv.block_size, r.kv.bytes_per_block) == (16, 1_572_864)
    assert r.kv.num_gpu_blocks == r.available_kv_cache_bytes // 1_572_864
    assert r.kv.max_concurrency == round(r.kv.num_gpu_blocks / 8192, 2) > 4


def test_tp_must_divide_the_tower_heads() -> None:
    # vLLM asserts TP divides the 16 SigLIP heads (and divides the 16 conformer heads the same way)
    assert _spec().multimodal.tp_heads == 16
