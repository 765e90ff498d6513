"""Which sampler takes the profile run's dummy batch (top_p 0.9, top_k vocab - 1): FlashInfer's top-k/top-p kernels
or the sort-based PyTorch path (vllm_profiles.json flashinfer_sampler, read in v1/sample/ops/topk_topp_sampler.py
and the wheels' requirements)."""

from __future__ import annotations

import pytest

from gpuplan.api_python import estimate, load_model
from gpuplan.engines.vllm import budget as B
from gpuplan.engines.vllm.profiles import flashinfer_sampler, get_profile

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.parametrize(("version", "env", "uses"), [
    ("0.11.2", None, False),    # 0.11.1+: opt-in only, though 0.11.1 made flashinfer-python a requirement
    ("0.11.1", None, False),
    ("0.11.2", True, True),
    ("0.10.1.1", False, False),  # VLLM_USE_FLASHINFER_SAMPLER=0 turns it off
    ("0.11.0", None, False),    # used wherever installed, an extra of the pip wheel: gpuplan assumes a pip install
    ("0.10.2", True, True),      # opting in where flashinfer was installed by hand or by the image
    ("0.16.0", None, False),    # 0.12-0.20: opt-in only
    ("0.21.0", True, False),     # 0.21+ default it on; their calibrated 'fused' figure already stands for it
    ("0.7.3", True, False),      # V0 has its own sampler
])
def test_which_releases_sample_the_profile_batch_with_flashinfer(version: str, env: bool | None, uses: bool) -> None:
    assert flashinfer_sampler(get_profile(version), env) is uses


def test_flashinfer_holds_14_bytes_per_logit_where_the_sort_path_holds_38() -> None:
    """bf16 logits (2) + the sampler's float32 copy (4) + FlashInfer's float32 top-k-masked copy (4) + its float32
    softmax (4) = 14 bytes per logit, against the sort path's calibrated 38.4: 256 rows x 128,256 logits."""
    spec = load_model(LLAMA)
    p = get_profile("0.11.2")
    kw = dict(last_stage=True, tokens=8192, sampler_rows=256, tp=1, moe_tp=1, ep=1, act_bytes=2, quant_method=None,
              profile=p)
    fi = B.activation(spec, 0, spec.num_layers, flashinfer_sampler=True, **kw)
    sort = B.activation(spec, 0, spec.num_layers, **kw)
    assert abs((sort.sampler - fi.sampler) - (38.4 - 14) * 256 * 128_256) <= 1


def test_opting_in_on_0_11_2_llama_3_1_8b_at_1024_sequences_keeps_about_3_gib_more_kv() -> None:
    """The profile peak is the sampler's at 1024 sequences on an H100: FlashInfer's is about 3 GiB smaller."""
    on = estimate(LLAMA, gpu="H100", vllm_version="0.11.2", max_num_seqs=1024,
                  env={"VLLM_USE_FLASHINFER_SAMPLER": "1"})
    off = estimate(LLAMA, gpu="H100", vllm_version="0.11.2", max_num_seqs=1024)
    gained = (on.available_kv_cache_bytes - off.available_kv_cache_bytes) / 2**30
    assert 2.5 < gained < 3.5


def test_on_0_10_an_estimate_says_what_an_installed_flashinfer_would_change() -> None:
    """0.8-0.11.0 sample with FlashInfer wherever it imports; gpuplan cannot see the install, so it assumes the pip
    wheel without it and names the difference (what the opt-in estimate gains)."""
    plain = estimate(LLAMA, gpu="A100 80GB", vllm_version="0.10.1.1")
    opted = estimate(LLAMA, gpu="A100 80GB", vllm_version="0.10.1.1", env={"VLLM_USE_FLASHINFER_SAMPLER": "1"})
    gain = (opted.available_kv_cache_bytes - plain.available_kv_cache_bytes) / 2**30
    note = next(w for w in plain.warnings if "FlashInfer" in w)
    assert f"{gain:.2f} GiB lower" in note  # one GPU: all of it goes to the KV cache
    assert not any("FlashInfer" in w for w in opted.warnings)
    assert not any("FlashInfer" in w for w in estimate(LLAMA, gpu="A100 80GB", vllm_version="0.12.0").warnings)


