"""ModelOpt MIXED_PRECISION checkpoints: each module in the format its `quantized_layers` entry names.

NVIDIA's 2026 NVFP4 releases of hybrid models (nvidia/Qwen3.6-27B-NVFP4 and kin) keep attention in FP8 and put only
the MLPs and lm_head in NVFP4; the vision tower is not listed and stays bf16. Reading the whole checkpoint as NVFP4
under-counts it by ~2 GiB. vLLM's ModelOptMixedPrecisionConfig resolves the format per module, and its support grew
release by release (W4A16_NVFP4 from 0.22, a quantized lm_head from 0.23, GPUs below compute capability 8.9 from 0.24).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuplan.api_python import estimate
from gpuplan.errors import GpuplanError
from gpuplan.validation import predict

RECENT = Path(__file__).parent / "fixtures" / "vllm_logs" / "recent_public.jsonl"

# A small Llama: q/k/v/o 1024/256/256/1024 wide on a 1024 hidden size, MLP 2816, vocab 1000 (padded to 1024).
TINY = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 1024,
        "intermediate_size": 2816, "num_attention_heads": 8, "num_key_value_heads": 2, "num_hidden_layers": 2,
        "vocab_size": 1000, "max_position_embeddings": 4096, "torch_dtype": "bfloat16"}
ATTN = {"q_proj": (1024, 1024), "k_proj": (256, 1024), "v_proj": (256, 1024), "o_proj": (1024, 1024)}
MLP = {"gate_proj": (2816, 1024), "up_proj": (2816, 1024), "down_proj": (1024, 2816)}


def _nvfp4(n: int, k: int) -> int:
    # packed E2M1 pairs + an fp8 scale per 16 values (swizzled to 128 x 4 tiles) + fp32 global scales
    return n * k // 2 + (-(-n // 128) * 128) * (-(-(k // 16) // 4) * 4) + 8


def _mixed(*, lm_head: bool = True, mlp_algo: str = "W4A16_NVFP4", legacy: bool = False) -> dict:
    layers: dict[str, dict] = {}
    for i in range(2):
        for m in ATTN:
            layers[f"model.layers.{i}.self_attn.{m}"] = {"quant_algo": "FP8"}
        for m in MLP:
            layers[f"model.layers.{i}.mlp.{m}"] = {"quant_algo": mlp_algo, "group_size": 16}
    if lm_head:
        layers["lm_head"] = {"quant_algo": "W4A16_NVFP4", "group_size": 16}
    if legacy:  # hf_quant_config.json's layout
        return {"quant_method": "modelopt", "quantization": {"quant_algo": "MIXED_PRECISION",
                                                             "quantized_layers": layers}}
    return {"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION", "quantized_layers": layers,
            "producer": {"name": "modelopt"}}


def _weights(qc: dict | None, *, gpu: str = "H100", version: str = "0.33.0") -> int:
    cfg = {**TINY, "quantization_config": qc} if qc else TINY
    rep = estimate(cfg, gpu=gpu, vllm_version=version, max_model_len=4096)
    assert rep.fits, rep.reason
    return rep.weights_bytes


def _saving(*, lm_head: bool = True) -> int:
    """bf16 bytes the mixed checkpoint saves: FP8 attention (weight + two fp32 scales per module), NVFP4 MLPs."""
    per_layer = sum(n * k * 2 - (n * k + 8) for n, k in ATTN.values())
    per_layer += sum(n * k * 2 - _nvfp4(n, k) for n, k in MLP.values())
    head = 1024 * 1024 * 2 - _nvfp4(1024, 1024) if lm_head else 0
    return 2 * per_layer + head


def test_fp8_attention_and_nvfp4_mlps_are_each_sized_in_their_own_format() -> None:
    assert _weights(None) - _weights(_mixed()) == _saving()


def test_the_legacy_hf_quant_config_layout_reads_the_same() -> None:
    assert _weights(_mixed(legacy=True)) == _weights(_mixed())


def test_a_module_the_checkpoint_does_not_list_stays_in_bf16() -> None:
    qc = _mixed()
    del qc["quantized_layers"]["model.layers.1.mlp.down_proj"]
    n, k = MLP["down_proj"]
    assert _weights(qc) - _weights(_mixed()) == n * k * 2 - _nvfp4(n, k)


def test_vllm_0_22_cannot_load_a_checkpoint_whose_lm_head_is_nvfp4() -> None:
    rep = estimate({**TINY, "quantization_config": _mixed()}, gpu="H100", vllm_version="0.22.0", max_model_len=4096)
    assert not rep.fits and "lm_head" in rep.reason and "0.23" in rep.reason
    # without a quantized lm_head it loads, and the lm_head stays bf16
    assert _weights(None, version="0.22.0") - _weights(_mixed(lm_head=False), version="0.22.0") == \
        _saving(lm_head=False)


def test_vllm_0_21_builds_no_w4a16_nvfp4_layer_in_a_mixed_checkpoint() -> None:
    rep = estimate({**TINY, "quantization_config": _mixed(lm_head=False)}, gpu="H100", vllm_version="0.21.0",
                   max_model_len=4096)
    assert not rep.fits and "W4A16_NVFP4" in rep.reason and "0.22" in rep.reason
    # NVFP4 (W4A4) MLPs were there from the start of the mixed config (0.17)
    assert _weights(_mixed(lm_head=False, mlp_algo="NVFP4"), version="0.21.0") == \
        _weights(_mixed(lm_head=False), version="0.33.0")


def test_vllm_0_16_has_no_mixed_precision_config() -> None:
    rep = estimate({**TINY, "quantization_config": _mixed(lm_head=False, mlp_algo="NVFP4")}, gpu="H100",
                   vllm_version="0.16.0", max_model_len=4096)
    assert not rep.fits and "MIXED_PRECISION" in rep.reason


def test_an_a100_needs_vllm_0_24_for_a_mixed_checkpoint_and_then_runs_its_fp8_through_marlin() -> None:
    rep = estimate({**TINY, "quantization_config": _mixed()}, gpu="A100-80GB", vllm_version="0.23.0",
                   max_model_len=4096)
    assert not rep.fits and "8.9" in rep.reason
    # From 0.24 it loads; FP8 Marlin keeps one bf16 scale row per FP8 module instead of two fp32 scalars.
    marlin_extra = 2 * sum(n * 2 - 8 for n, _ in ATTN.values())
    assert _weights(_mixed(), gpu="A100-80GB", version="0.24.0") - _weights(_mixed(), version="0.24.0") == \
        marlin_extra


def test_a_fused_moe_module_takes_the_format_listed_under_it() -> None:
    moe = {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 1024,
           "intermediate_size": 2816, "moe_intermediate_size": 512, "num_experts": 8, "num_experts_per_tok": 2,
           "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 128, "num_hidden_layers": 2,
           "vocab_size": 1000, "max_position_embeddings": 4096, "torch_dtype": "bfloat16", "decoder_sparse_step": 1,
           "mlp_only_layers": []}
    layers = {f"model.layers.{i}.mlp.experts.{e}.{m}": {"quant_algo": "NVFP4", "group_size": 16}
              for i in range(2) for e in range(8) for m in ("gate_proj", "up_proj", "down_proj")}
    qc = {"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION", "quantized_layers": layers}
    bf16 = estimate(moe, gpu="H100", max_model_len=4096).weights_bytes
    mixed = estimate({**moe, "quantization_config": qc}, gpu="H100", max_model_len=4096).weights_bytes
    per_expert = (2 * 512 * 1024 * 2 - _nvfp4(2 * 512, 1024)) + (1024 * 512 * 2 - _nvfp4(1024, 512))
    assert bf16 - mixed == 2 * 8 * per_expert


def test_mxfp8_modules_carry_one_e8m0_scale_per_32_values() -> None:
    qc = _mixed(lm_head=False)
    for name in qc["quantized_layers"]:
        if ".mlp." in name:
            qc["quantized_layers"][name] = {"quant_algo": "MXFP8"}
    attn = sum(n * k * 2 - (n * k + 8) for n, k in ATTN.values())
    mlp = sum(n * k * 2 - (n * k + n * (k // 32)) for n, k in MLP.values())
    assert _weights(None) - _weights(qc) == 2 * (attn + mlp)


def test_an_unknown_per_module_algorithm_is_a_config_error_naming_the_field() -> None:
    qc = _mixed()
    qc["quantized_layers"]["model.layers.0.mlp.up_proj"] = {"quant_algo": "W4A8_AWQ"}
    with pytest.raises(GpuplanError) as err:
        estimate({**TINY, "quantization_config": qc}, gpu="H100", max_model_len=4096)
    assert err.value.field.startswith("quantization_config") and "W4A8_AWQ" in err.value.message


def _record(rid: str) -> dict:
    return next(r for r in map(json.loads, RECENT.read_text().splitlines()) if r["id"] == rid)


def test_qwen3_6_27b_nvfp4_weighs_what_vllm_logged_on_a_dgx_spark() -> None:
    """The checkpoint's FP8 attention (6.8 GiB), NVFP4 MLPs and lm_head, and bf16 vision tower and embedding:
    19.75 GiB against "Model loading took 19.78 GiB" (vLLM 0.23.1 dev). Read as NVFP4 throughout it was 17.87."""
    rec = _record("rp-005")
    got = predict(rec)["weights_gib"]
    assert got == pytest.approx(rec["logged"]["weights_gib"], rel=0.005)
