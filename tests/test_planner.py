"""The planner, read like the users' questions (shared/seeds 000, 001, 003, 004). Every verdict and number
here is the engine's: each test re-runs `engines.vllm.estimate` and compares."""

from __future__ import annotations

import ast
import json
import shlex
from importlib import resources
from pathlib import Path

import pytest

import gpuplan
from gpuplan.errors import GpuplanError
from gpuplan.planner import context_table, gpu_time_cost, plan, render_plan
from gpuplan.planner.types import Option

SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
MAVERICK = "meta-llama/Llama-4-Maverick-17B-128E-Instruct"
L70 = "meta-llama/Llama-3.1-70B-Instruct"
L70_AWQ = "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4"
L405 = "meta-llama/Llama-3.1-405B"
HYBRID = "VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE"


def _engine(model: str, o: Option, **kw) -> gpuplan.MemoryReport:
    """The same deployment straight through the public estimate: the planner must agree with it."""
    return gpuplan.estimate(model, gpu=o.gpu, tensor_parallel_size=o.tensor_parallel_size,
                            pipeline_parallel_size=o.pipeline_parallel_size, quantization=o.quantization,
                            kv_cache_dtype=o.kv_cache_dtype, max_model_len=o.launch_max_model_len,
                            vllm_version=o.vllm_version, gpu_memory_utilization=o.gpu_memory_utilization,
                            max_num_seqs=o.max_num_seqs, env=tuple(o.env), **kw)


# ----------------------------------------------------------------------------- seed 000: Scout on one A100


@pytest.mark.parametrize("quantization", ["int8", "fp8"])
def test_scout_int8_does_not_fit_one_a100_80gb_because_of_the_weights(quantization):
    r = plan(SCOUT, gpus=["A100-80GB"], num_gpus=1, quantization=quantization, max_model_len=8192)
    req = r.requested
    assert req is not None and not req.fits
    assert req.option.reason.startswith("weights alone")
    assert req.option.weights_bytes > 100 * 2**30  # 8-bit experts: ~106 GiB, not the seed's "120 GB+"
    assert req.nearest, "a deployment that does not fit must come with ones that do"


def test_scout_awq_int4_with_fp8_kv_fits_one_a100_80gb_at_8k():
    # The seed's "single A100 works with INT4 + FP8 KV": the engine agrees. Weights 59.1 GiB (int4 experts
    # with fp16 scales/zeros, bf16 attention and the 10M-position rope cache) + activation + non-torch sit
    # inside 0.9 x 79.15 GiB and leave ~14 GiB of fp8 KV: ~14 requests of 8k.
    r = plan(SCOUT, gpus=["A100-80GB"], num_gpus=1, quantization="awq", kv_cache_dtype="fp8", max_model_len=8192)
    o = r.requested.option
    assert o.fits and o.assumed_checkpoint
    rep = _engine(SCOUT, o)
    assert rep.fits and rep.weights_bytes == o.weights_bytes
    assert 55 * 2**30 < o.weights_bytes < 62 * 2**30
    assert o.max_concurrency == rep.max_concurrency > 1
    assert "--quantization" not in o.commands.vllm  # a pre-quantized checkpoint: vLLM reads its config
    assert o.commands.vllm.startswith("vllm serve /path/to/Llama-4-Scout-17B-16E-Instruct-AWQ-INT4 ")


# ----------------------------------------------------------------------------- seed 004: Llama-3.1-70B


def test_llama31_70b_bf16_needs_at_least_two_80gb_gpus():
    r = plan(L70, gpus=["A100-80GB", "H100"], quantization="bf16", max_model_len=8192)
    fitting = [o for o in r.options if o.fits]
    assert fitting and min(o.num_gpus for o in fitting) >= 2
    assert all(o.reason.startswith("weights alone") for o in r.options if o.num_gpus == 1)
    two = next(o for o in fitting if o.num_gpus == 2)
    assert _engine(L70, two).fits


def test_llama31_70b_awq_fits_one_a100_at_the_engines_longest_context():
    r = plan(L70_AWQ, gpus=["A100-80GB"], num_gpus=1)
    one = next(o for o in r.options if o.num_gpus == 1 and o.kv_cache_dtype == "auto")
    # With no length asked for, the full 131,072 does not fit in bf16 KV; the engine's longest does.
    full = gpuplan.estimate(L70_AWQ, gpu="A100-80GB")
    assert not full.fits and full.max_model_len_fit
    # ...or, where a first start's compile scratch would not leave room for that, the first start's longest.
    at_longest = gpuplan.estimate(L70_AWQ, gpu="A100-80GB", max_model_len=full.max_model_len_fit)
    first = at_longest.first_start
    want = first["max_model_len_fit"] if first is not None and not first["fits"] else full.max_model_len_fit
    assert one.fits and one.launch_max_model_len == want and one.max_model_len == full.max_model_len_fit
    assert _engine(L70_AWQ, one).fits
    assert f"--max-model-len {want}" in one.commands.vllm
    # The named deployment (vLLM's default context) does not fit; shorter context and fp8 KV both do.
    changes = {n.change for n in r.requested.nearest}
    assert {"shorter context", "fp8 KV cache"} <= changes


# ----------------------------------------------------------------------------- seed 003: Scout, 2M on 8xH200


def test_scout_2m_on_8_h200_bf16_kv_follows_the_hybrid_manager_switch():
    kw = dict(gpus=["H200"], num_gpus=8, max_model_len=2_097_152, vllm_version="0.12.0", kv_cache_dtype="auto")
    default = plan(SCOUT, **kw).requested.option
    on = plan(SCOUT, env={HYBRID: "1"}, **kw).requested.option
    d_rep, on_rep = _engine(SCOUT, default), _engine(SCOUT, on)
    assert not d_rep.kv.hybrid_manager and on_rep.kv.hybrid_manager
    assert default.fits == d_rep.fits and on.fits == on_rep.fits
    assert default.max_concurrency == d_rep.max_concurrency
    assert on.max_concurrency > 3 * default.max_concurrency  # 12 of 48 layers keep the full 2M
    assert f"{HYBRID}=1 vllm serve" in on.commands.vllm and HYBRID not in default.commands.vllm
    # The seed's 5M test needed the switch: without it vLLM refuses (0.78x); the nearest fix names it.
    five = plan(SCOUT, **{**kw, "max_model_len": 5_000_000}).requested
    assert not five.fits and "max seq len" in five.option.reason
    fix = next(n for n in five.nearest if HYBRID in n.change)
    assert fix.option.fits and _engine(SCOUT, fix.option).fits


def test_context_table_reports_llama4_with_and_without_the_switch():
    t = context_table(SCOUT, gpus=["H200"], counts=[8], kv_dtypes=["auto", "fp8"], vllm_version="0.12.0",
                      lengths=[2_097_152, 10_000_000])
    rows = {(r.kv_cache_dtype, bool(r.env)): r for r in t.rows}
    assert set(rows) == {("auto", False), ("auto", True), ("fp8", False), ("fp8", True)}
    off, on = rows[("auto", False)], rows[("auto", True)]
    assert off.hybrid_manager is False and on.hybrid_manager is True
    rep = gpuplan.estimate(SCOUT, gpu="H200", tensor_parallel_size=8, vllm_version="0.12.0")
    assert off.max_model_len == rep.max_model_len_fit
    assert on.max_model_len == 10_485_760  # the model's own maximum
    assert dict(on.concurrency)[10_000_000] is not None and dict(off.concurrency)[10_000_000] is None
    fp8_on = dict(rows[("fp8", True)].concurrency)[10_000_000]
    assert fp8_on == pytest.approx(3.12, abs=0.05)  # the seed's logged 3.12x
    # The newest vLLM turns the manager on by default: no extra rows.
    newest = context_table(SCOUT, gpus=["H200"], counts=[8], kv_dtypes=["auto"], lengths=[2_097_152])
    assert len(newest.rows) == 1


# ----------------------------------------------------------------------------- seed 001: Maverick, 2x RTX 3090


def test_maverick_does_not_fit_two_rtx_3090_in_any_format_vllm_can_load():
    r = plan(MAVERICK, gpus=["RTX 3090"], num_gpus=2, max_model_len=4096)
    assert r.options and not any(o.fits for o in r.options)
    assert all(o.reason.startswith("weights alone") for o in r.options)
    tried = {o.quantization for o in r.options}
    assert {None, "fp8", "int8", "awq", "gptq"} == tried  # fp8 as Marlin weight-only on Ampere
    assert r.requested is not None and not r.requested.fits and r.requested.nearest == ()


def test_gpu_time_cost_for_the_fine_tuning_scenarios():
    catalog = [gpu_time_cost("H200", 2, h) for h in (10, 50, 100)]
    h200 = gpuplan.gpus.find_gpu("H200")
    assert [c.total_usd for c in catalog] == [round(2 * h200.price_usd_per_hour * h, 2) for h in (10, 50, 100)]
    assert catalog[0].price_source == h200.price_source
    seed = [gpu_time_cost("H200", 2, h, price=8.155 / 2) for h in (10, 50, 100)]  # NodeShift, $8.155/h for 2
    assert [c.total_usd for c in seed] == [81.55, 407.75, 815.5]
    assert gpu_time_cost("A10G", 1, 10).total_usd is None  # no catalog price: unknown, not zero


# ----------------------------------------------------------------------------- the search itself


def test_every_option_is_the_engines_verdict_and_the_ranking_is_the_contract():
    r = plan("Qwen/Qwen2.5-7B-Instruct", max_model_len=32768, concurrency=4,
             gpus=["H100", "L4", "RTX 4090", "A10G"], max_gpus=2, prices={"RTX 4090": 0.5})
    assert r.options
    for o in r.options[:12]:
        rep = _engine("Qwen/Qwen2.5-7B-Instruct", o)
        assert o.fits == (rep.fits and rep.max_concurrency >= 4)
        assert o.weights_bytes == rep.weights_bytes and o.kv_cache_tokens == rep.kv_cache_tokens
    fits = [o for o in r.options if o.fits]
    assert list(r.options[: len(fits)]) == fits
    assert [o.num_gpus for o in fits] == sorted(o.num_gpus for o in fits)
    rtx = next(o for o in fits if "4090" in o.gpu)
    assert rtx.cost_per_hour_usd == 0.5 * rtx.num_gpus and rtx.price_source == "given by the user"
    a10g = [o for o in r.options if "A10G" in o.gpu]
    assert a10g and all(o.cost_per_hour_usd is None for o in a10g)
    assert all(o.throughput.decode_tokens_per_s and o.cost_per_1m_output_tokens_usd for o in fits
               if o.cost_per_hour_usd is not None)
    d = r.to_dict()
    json.dumps(d)
    for key in ("gpu", "num_gpus", "tensor_parallel_size", "quantization", "kv_cache_dtype", "fits",
                "max_model_len", "max_concurrency", "cost_per_hour_usd", "vllm_command"):
        assert key in d["options"][0]
    assert render_plan(r).row_count > 0


def test_pipeline_parallel_only_when_tensor_parallel_cannot_split():
    # Qwen2.5-7B: 28 heads / 4 KV heads, so TP 8 is invalid; 8 GPUs become TP 4 x PP 2.
    r = plan("Qwen/Qwen2.5-7B-Instruct", gpus=["L4"], num_gpus=8, quantization="bf16", kv_cache_dtype="auto",
             max_model_len=8192)
    o = r.options[0]
    assert (o.tensor_parallel_size, o.pipeline_parallel_size) == (4, 2)
    assert "--pipeline-parallel-size 2" in o.commands.vllm and "--pp-size 2" in o.commands.sglang
    assert _engine("Qwen/Qwen2.5-7B-Instruct", o).pipeline_parallel_size == 2


def test_llama_405b_in_bf16_past_one_h100_node_takes_two_nodes_tp_8_pp_2():
    # 810 GB of bf16 weights do not fit one node of 8 x 80 GB; the nearest count that does is two nodes, with
    # tensor parallel inside each node and pipeline parallel across them, launched through a Ray cluster.
    r = plan(L405, gpus=["H100"], num_gpus=8, max_gpus=32, quantization="bf16", max_model_len=8192)
    assert not r.requested.fits and r.requested.option.reason.startswith("weights alone")
    more = next(n.option for n in r.requested.nearest if n.change == "more GPUs")
    assert (more.num_gpus, more.tensor_parallel_size, more.pipeline_parallel_size) == (16, 8, 2)
    assert "--tensor-parallel-size 8 --pipeline-parallel-size 2" in more.commands.vllm
    assert any(w.startswith("2 nodes of 8 GPUs") and "ray start --head" in w for w in more.warnings)
    assert _engine(L405, more).fits


def test_the_search_stays_on_one_node_unless_max_gpus_allows_more():
    one_node = plan(L405, gpus=["H100"], quantization="bf16", kv_cache_dtype="auto", max_model_len=8192)
    assert max(o.num_gpus for o in one_node.options) == 8 and not any(o.fits for o in one_node.options)
    two_nodes = plan(L405, gpus=["H100"], max_gpus=16, quantization="bf16", kv_cache_dtype="auto",
                     max_model_len=8192)
    best = two_nodes.options[0]
    assert best.fits and (best.num_gpus, best.tensor_parallel_size, best.pipeline_parallel_size) == (16, 8, 2)
    from io import StringIO

    from rich.console import Console

    from gpuplan.planner.render import render_answer

    out = StringIO()
    Console(file=out, width=200).print(render_answer(two_nodes, width=200))
    assert "16 x H100 SXM5 80GB (2 nodes)" in out.getvalue()
    assert "2 nodes of 8 GPUs: start a Ray cluster" in out.getvalue()  # under the best option's command


def test_the_plan_api_and_cli_take_the_planners_own_format_names():
    # "-q int8" (an assumed W8A8 checkpoint) and "-q bf16" (unquantized) are the planner's names, not vLLM's
    # --quantization values; both must reach the planner rather than fail validation.
    from typer.testing import CliRunner

    from gpuplan.cli import app

    for asked, key in (("int8", "int8"), ("bf16", None), ("int4", "awq")):
        out = CliRunner().invoke(app, ["plan", "meta-llama/Llama-3.1-8B", "--gpu", "L4", "--max-gpus", "1",
                                       "-q", asked, "--json"])
        assert out.exit_code == 0, out.output
        assert {o["quantization"] for o in json.loads(out.output)["options"]} == {key}


def test_nearest_options_are_rechecked_by_the_engine():
    r = plan(L70, gpus=["H100"], num_gpus=1, quantization="bf16", max_model_len=16384, concurrency=2)
    assert not r.requested.fits
    assert r.requested.nearest
    for n in r.requested.nearest:
        rep = _engine(L70, n.option)
        assert rep.fits and rep.max_concurrency >= 2 and n.option.fits


def test_concurrency_above_vllms_default_batch_raises_max_num_seqs():
    r = plan("Qwen/Qwen2.5-0.5B", gpus=["H100"], num_gpus=1, quantization="bf16", kv_cache_dtype="auto",
             max_model_len=4096, concurrency=2000)
    o = r.requested.option
    assert o.max_num_seqs == 2000 and "--max-num-seqs 2000" in o.commands.vllm
    assert "--max-num-batched-tokens" in o.commands.vllm  # vLLM requires it >= max_num_seqs


def test_bad_inputs_are_field_errors():
    with pytest.raises(GpuplanError) as e:
        plan(L70_AWQ, quantization="fp8")
    assert e.value.field == "quantization"
    with pytest.raises(GpuplanError) as e:
        plan(L70, gpus=["no-such-gpu"])
    assert e.value.field == "gpu"
    with pytest.raises(GpuplanError):
        plan(L70, concurrency=0)


# ----------------------------------------------------------------------------- emitted commands are valid


def _flags() -> dict:
    files = resources.files("gpuplan") / "data" / "vllm_flags"
    return json.loads(next(f for f in files.iterdir() if f.name.endswith(".json")).read_text())


def check_vllm_args(args: list[str]) -> list[str]:
    """Problems with a vLLM argument list: unknown flags, values outside a flag's choices."""
    data = _flags()
    known = {**data["options"], **{f: {"choices": None} for f in data["frontend_flags"]}}
    problems = []
    for i, a in enumerate(args):
        if not a.startswith("--"):
            continue
        name = a.split("=", 1)[0]
        if name not in known:
            problems.append(f"unknown flag {name}")
            continue
        choices = known[name]["choices"]
        if choices is not None:
            value = a.split("=", 1)[1] if "=" in a else args[i + 1]
            if value not in choices:
                problems.append(f"{name} {value}: not one of vLLM's choices")
    return problems


def test_the_flag_checker_catches_the_usual_mistakes():
    assert check_vllm_args(["--dtype", "bf16"]) and check_vllm_args(["--kv-cache-dtype", "fp8_e4m3fn"])
    assert check_vllm_args(["--enqueue-delay", "0"])  # seed 000 invented this one
    assert not check_vllm_args(["--dtype", "bfloat16", "--kv-cache-dtype", "fp8"])


@pytest.mark.parametrize("model", [SCOUT, L70, L70_AWQ, "Qwen/Qwen2.5-7B-Instruct"])
def test_every_emitted_flag_and_choice_is_valid_for_vllm(model):
    r = plan(model, max_model_len=8192, concurrency=300 if "Qwen" in model else 1)
    assert r.options
    for o in r.options:
        serve = shlex.split(o.commands.vllm)
        serve = serve[serve.index("serve") + 2:]  # after `vllm serve MODEL`
        assert check_vllm_args(serve) == [], o.commands.vllm
        docker = shlex.split(o.commands.docker)
        image = next(i for i, a in enumerate(docker) if a.startswith("vllm/vllm-openai:v"))
        assert check_vllm_args(docker[image + 1:]) == [], o.commands.docker
        assert "--dtype" not in serve
        call = ast.parse(o.commands.python).body[-1].value
        for kw in call.keywords:
            flag = "--" + kw.arg.replace("_", "-")
            value = kw.value.value if isinstance(kw.value.value, str) else str(kw.value.value)
            assert check_vllm_args([flag, value] if flag != "--model" else [flag, "x"]) == [], o.commands.python
        sg = shlex.split(o.commands.sglang)
        if "--kv-cache-dtype" in sg:
            assert sg[sg.index("--kv-cache-dtype") + 1] in ("fp8_e4m3", "fp8_e5m2")


ESTIMATE_OPTIONS = {"dtype": "float16", "enforce_eager": True, "block_size": 32, "enable_prefix_caching": False,
                    "enable_chunked_prefill": True, "cpu_offload_gb": 2.5, "performance_mode": "throughput",
                    "enable_lora": True, "max_loras": 4, "max_lora_rank": 64, "kv_cache_memory_bytes": 20 * 2**30,
                    "speculative_config": {"method": "ngram", "num_speculative_tokens": 4}}


@pytest.mark.parametrize("opts", [{}, {"quantization": "fp8", "kv_cache_dtype": "fp8_e4m3"},
                                  {"tensor_parallel_size": 2, "max_num_seqs": 64, "max_num_batched_tokens": 4096},
                                  ESTIMATE_OPTIONS])
def test_the_estimate_launch_command_uses_only_flags_vllm_accepts(opts):
    import shlex

    from fastapi.testclient import TestClient

    from gpuplan.api.app import create_app

    c = TestClient(create_app(allow_network=False))
    r = c.post("/v1/estimate", json={"model": "meta-llama/Llama-3.1-8B", "gpu": "H100", "max_model_len": 8192, **opts})
    assert r.status_code == 200, r.text
    args = shlex.split(r.json()["commands"]["vllm"])
    assert args[:2] == ["vllm", "serve"] and check_vllm_args(args[3:]) == []


def test_the_estimate_launch_command_carries_every_option_the_estimate_was_made_with():
    """What gpuplan sized is what the command starts: each non-default option, in vLLM's spelling, on the command
    line and as LLM() keywords."""
    from fastapi.testclient import TestClient

    from gpuplan.api.app import create_app

    c = TestClient(create_app(allow_network=False))
    r = c.post("/v1/estimate", json={"model": "meta-llama/Llama-3.1-8B", "gpu": "H100", **ESTIMATE_OPTIONS})
    assert r.status_code == 200, r.text
    cmds = r.json()["commands"]
    serve = cmds["vllm"]
    for part in ("--dtype float16", "--enforce-eager", "--block-size 32", "--no-enable-prefix-caching",
                 "--enable-chunked-prefill", "--cpu-offload-gb 2.5", "--performance-mode throughput", "--enable-lora",
                 "--max-loras 4", "--max-lora-rank 64", f"--kv-cache-memory-bytes {20 * 2**30}",
                 """--speculative-config '{"method": "ngram", "num_speculative_tokens": 4}'"""):
        assert part in serve, part
    call = ast.parse(cmds["python"]).body[-1].value
    kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    assert kwargs["enable_prefix_caching"] is False and kwargs["max_loras"] == 4
    assert kwargs["speculative_config"] == {"method": "ngram", "num_speculative_tokens": 4}


def test_a_context_the_planner_shortens_also_starts_on_an_empty_compile_cache():
    """Qwen3-8B at its 40,960 tokens does not fit one L4 on vLLM 0.30; the longest length a restart fits (29,920)
    would refuse a first start, whose compile scratch costs ~1 GiB, so the planner launches at the first start's."""
    near = plan("Qwen/Qwen3-8B", gpus="L4", num_gpus=1, vllm_version="0.30.0").requested.nearest
    o = next(n.option for n in near if n.change == "shorter context")
    assert o.fits and o.launch_max_model_len < o.max_model_len
    assert f"--max-model-len {o.launch_max_model_len}" in o.commands.vllm
    assert any("the longest a first start on an empty torch.compile cache fits" in w for w in o.warnings)
    first = gpuplan.estimate("Qwen/Qwen3-8B", gpu="L4", vllm_version="0.30.0", max_model_len=o.launch_max_model_len,
                             compile_cache="cold")
    assert first.fits
    assert not gpuplan.estimate("Qwen/Qwen3-8B", gpu="L4", vllm_version="0.30.0", max_model_len=o.max_model_len,
                                compile_cache="cold").fits


def test_the_options_table_shows_what_a_restart_and_a_first_start_fit():
    """Qwen3-8B on one L4 (vLLM 0.30): the table's context column gives both lengths where they differ, and
    a first start at the shorter one is what the engine says fits; the fp8-KV option is the same either way."""
    from io import StringIO

    from rich.console import Console

    from gpuplan.planner.render import render_answer

    result = plan("Qwen/Qwen3-8B", gpus="L4", num_gpus=1, vllm_version="0.30.0")
    near = {n.change: n.option for n in result.requested.nearest}
    short, fp8 = near["shorter context"], near["fp8 KV cache"]
    cold = short.first_start_max_model_len
    assert cold is not None and cold < short.max_model_len
    assert gpuplan.estimate("Qwen/Qwen3-8B", gpu="L4", vllm_version="0.30.0", max_model_len=cold,
                            compile_cache="cold").fits
    assert not gpuplan.estimate("Qwen/Qwen3-8B", gpu="L4", vllm_version="0.30.0", max_model_len=cold + 256,
                                compile_cache="cold").fits
    assert fp8.first_start_max_model_len is None
    assert short.to_dict()["first_start_max_model_len"] == cold
    out = StringIO()
    Console(file=out, width=200).print(render_answer(result, width=200))
    assert f"{short.max_model_len:,} ({cold:,} cold)" in out.getvalue()
    assert "a first start on an empty torch.compile cache" in out.getvalue()


def test_a_model_that_refuses_fp8_kv_still_gets_a_plan_with_those_options_skipped() -> None:
    """GLM-5-Next's sparse MLA cache is modelled in 16 bits only, so its fp8-KV combinations are refused; the plan
    lists them under skipped, with the reason, and ranks the rest instead of failing as a whole."""
    fx = json.loads((Path(__file__).parent / "fixtures/oracle/families/glm5_next.json").read_text())
    cfg = next(iter(fx["models"].values()))["config"]
    result = plan(cfg, gpus=["H200"], max_model_len=131072)
    assert result.options and all(o.kv_cache_dtype == "auto" for o in result.options)
    assert any("fp8 KV" in s and "16 bits" in s for s in result.skipped)
    with pytest.raises(GpuplanError) as err:  # nothing left to rank: the model's own refusal is the answer
        plan(cfg, gpus=["H200"], max_model_len=131072, kv_cache_dtype="fp8")
    assert err.value.field == "kv_cache_dtype"


def test_deepseek_v4_plan_skips_an_sm12_gpu_and_ranks_the_others() -> None:
    result = plan("deepseek-ai/DeepSeek-V4-Flash", gpus=["RTX PRO 6000", "H200"], max_model_len=32768)
    assert result.options and {o.gpu for o in result.options} == {"NVIDIA H200 141GB"}
    assert any("RTX PRO 6000" in s and "plain-row" in s for s in result.skipped)


def test_context_table_leaves_out_what_the_model_refuses_and_says_so() -> None:
    """DeepSeek-V4 on an SM 12.x card (vLLM 0.28+ runs FlashInfer's plain-row cache there, not planned by gpuplan):
    the table keeps the H200 rows and names what it left out."""
    table = context_table("deepseek-ai/DeepSeek-V4-Flash", gpus=["RTX PRO 6000", "H200"], counts=(8,))
    assert table.rows and {r.gpu for r in table.rows} == {"NVIDIA H200 141GB"}
    assert any("RTX PRO 6000" in s for s in table.skipped)
    assert "RTX PRO 6000" in json.dumps(table.to_dict()["skipped"])


def test_llama_8b_on_four_l4s_starts_with_a_little_less_gpu_memory_utilization() -> None:
    """vLLM 0.28's default 0.92 on four L4s leaves too little outside the budget for the NCCL all-reduces the
    graphs capture and the sampler warm-up; vLLM's own message says to lower gpu_memory_utilization, and the
    planner answers with the highest value that starts, in its commands, and says why."""
    asked = dict(gpus=["L4"], num_gpus=4, quantization="bf16", kv_cache_dtype="auto", max_model_len=131072,
                 vllm_version="0.28.0")
    assert not gpuplan.estimate("meta-llama/Llama-3.1-8B", gpu="L4", tensor_parallel_size=4,
                                max_model_len=131072, vllm_version="0.28.0").fits
    o = plan("meta-llama/Llama-3.1-8B", **asked).requested.option
    assert o.fits and o.gpu_memory_utilization < 0.92
    assert f"--gpu-memory-utilization {o.gpu_memory_utilization:g}" in o.commands.vllm
    assert any(w.startswith("gpu_memory_utilization") for w in o.warnings)
    assert _engine("meta-llama/Llama-3.1-8B", o).fits
    higher = gpuplan.estimate(
        "meta-llama/Llama-3.1-8B", gpu="L4", tensor_parallel_size=4, max_model_len=131072, vllm_version="0.28.0",
        gpu_memory_utilization=round(o.gpu_memory_utilization + 0.01, 2))
    assert not higher.fits  # the highest that starts, not just one that does
    # A utilization the user pins is theirs: the planner does not move it.
    pinned = plan("meta-llama/Llama-3.1-8B", gpu_memory_utilization=0.92, **asked).requested.option
    assert not pinned.fits and pinned.gpu_memory_utilization == 0.92


def test_lora_adapters_push_qwen3_30b_off_one_h100_in_bf16_and_the_commands_serve_them():
    """Four rank-64 slots cost Qwen3-30B-A3B 25 GiB on one GPU (its 6,144 experts each take an A and a B per
    slot): bf16 no longer fits one H100 at 32K, fp8 weights or a second GPU do, and every command enables LoRA."""
    plain = plan("Qwen/Qwen3-30B-A3B", gpus="H100", num_gpus=1, max_model_len=32768)
    lora = plan("Qwen/Qwen3-30B-A3B", gpus="H100", num_gpus=1, max_model_len=32768, lora=(4, 64))
    assert plain.requested.fits and not lora.requested.fits
    changes = {n.change for n in lora.requested.nearest}
    assert {"more GPUs", "lower-bit weights"} <= changes
    for o in lora.options:
        assert "--enable-lora --max-loras 4 --max-lora-rank 64" in o.commands.vllm
        assert check_vllm_args(shlex.split(o.commands.vllm)[3:]) == []
    fp8 = next(o for o in lora.options if o.quantization == "fp8" and o.kv_cache_dtype == "auto")
    base = next(o for o in plain.options if o.quantization == "fp8" and o.kv_cache_dtype == "auto")
    assert (fp8.weights_bytes - base.weights_bytes) / 2**30 == pytest.approx(25.3, abs=0.1)


def test_the_plan_api_and_cli_take_the_lora_options():
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from gpuplan.api.app import create_app
    from gpuplan.cli import app

    res = TestClient(create_app(allow_network=False)).post("/v1/plan", json={
        "model": "meta-llama/Llama-3.1-8B", "gpus": ["L4"], "max_model_len": 8192, "enable_lora": True,
        "max_loras": 2, "max_lora_rank": 32})
    assert res.status_code == 200, res.text
    assert all("--enable-lora --max-loras 2 --max-lora-rank 32" in o["vllm_command"] for o in res.json()["options"])
    out = CliRunner().invoke(app, ["plan", "meta-llama/Llama-3.1-8B", "--gpu", "L4", "--max-model-len", "8192",
                                   "--enable-lora", "--max-lora-rank", "32", "--json"])
    assert out.exit_code == 0, out.output
    assert all("--enable-lora --max-lora-rank 32" in o["vllm_command"] for o in json.loads(out.output)["options"])


def test_every_planned_deployment_runs_the_drafter_asked_for():
    """DeepSeek-V3 on eight H200s with two MTP tokens: every option loads and caches the MTP module (fewer KV
    tokens than without it) and launches with the same --speculative-config."""
    mtp = {"method": "mtp", "num_speculative_tokens": 2}
    plain = plan("deepseek-ai/DeepSeek-V3", gpus="H200", num_gpus=8, max_model_len=32768)
    drafted = plan("deepseek-ai/DeepSeek-V3", gpus="H200", num_gpus=8, max_model_len=32768, speculative_config=mtp)
    first, base = drafted.options[0], plain.options[0]
    assert (first.quantization, first.kv_cache_dtype) == (base.quantization, base.kv_cache_dtype)
    assert first.weights_bytes > base.weights_bytes and first.kv_cache_tokens < base.kv_cache_tokens
    for o in drafted.options:
        assert f"--speculative-config '{json.dumps(mtp)}'" in o.commands.vllm


def test_the_plan_api_takes_a_drafter_and_names_a_bad_one():
    from fastapi.testclient import TestClient

    from gpuplan.api.app import create_app

    c = TestClient(create_app(allow_network=False))
    body = {"model": "meta-llama/Llama-3.1-8B", "gpus": ["L4"], "max_model_len": 8192}
    draft = {"method": "draft_model", "model": "meta-llama/Llama-3.2-1B", "num_speculative_tokens": 3}
    res = c.post("/v1/plan", json={**body, "speculative_config": draft})
    assert res.status_code == 200, res.text
    assert all('"model": "meta-llama/Llama-3.2-1B"' in o["vllm_command"] for o in res.json()["options"])
    bad = c.post("/v1/plan", json={**body, "speculative_config": {"method": "bogus"}})
    assert bad.status_code in (400, 422) and "speculative_config.method" in bad.text
    url = c.post("/v1/plan", json={**body, "speculative_config": {"method": "eagle3", "model": "https://x.y/z"}})
    assert url.status_code == 400 and "speculative_config.model" in url.text
