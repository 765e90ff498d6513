"""The `gpuplan` command line, as a person deploying a model would use it."""

from __future__ import annotations

import json
import shlex

import pytest
from faces_support import needs_core
from typer.testing import CliRunner

from gpuplan.cli import app, main, parse_length

runner = CliRunner()
MODEL = "meta-llama/Llama-3.1-8B"


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
        raise SystemExit(0)  # main returns normally on success
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


# ------------------------------------------------------------------------------ answers (need the core)


@needs_core
def test_estimate_json_has_the_documented_keys() -> None:
    result = runner.invoke(app, ["estimate", MODEL, "--gpu", "H100", "--max-model-len", "8192", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"model", "unit", "gpu", "deployment", "per_gpu", "components", "kv_cache_tokens", "max_concurrency",
            "num_gpu_blocks", "fits", "reason", "max_model_len_fit", "warnings"} <= report.keys()
    assert {"weights_bytes", "weights_gib", "activation_peak_gib", "non_torch_gib", "cudagraph_gib",
            "available_kv_cache_gib"} <= report["per_gpu"].keys()
    assert report["unit"] == "GiB" and report["deployment"]["max_model_len"] == 8192


@needs_core
def test_estimate_prints_the_lines_vllm_prints() -> None:
    result = runner.invoke(app, ["estimate", MODEL, "--gpu", "H100", "--max-model-len", "8k"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "GPU KV cache size:" in text and " tokens" in text
    assert "Maximum concurrency for 8,000 tokens per request:" in text
    assert "fits" in text
    assert "exact" in text  # each component says how it is known


@needs_core
def test_a_deployment_that_does_not_fit_says_why_and_what_would() -> None:
    result = runner.invoke(app, ["estimate", MODEL, "--gpu-memory-gib", "20", "--max-model-len", "131072"])
    assert result.exit_code == 0, result.output
    assert "does not fit" in result.stdout


@needs_core
def test_qwen_32b_bf16_on_one_l4_points_to_the_plan_that_lists_what_fits() -> None:
    result = runner.invoke(app, ["estimate", "Qwen/Qwen2.5-32B", "--gpu", "L4", "--max-model-len", "8192",
                                 "--vllm-version", "0.30.0"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    hint = next(line for line in result.stdout.splitlines() if line.startswith("nearest deployments that fit:"))
    command = hint.split(": ", 1)[1]
    assert command == ("gpuplan plan Qwen/Qwen2.5-32B --gpu 'NVIDIA L4 24GB' --num-gpus 1 --max-model-len 8192 "
                       "--vllm-version 0.30.0")
    # The suggested command runs and names what does fit: 4-bit weights on the same card, among others.
    plan = runner.invoke(app, ["plan", "Qwen/Qwen2.5-32B", "--gpu", "NVIDIA L4 24GB", "--num-gpus", "1",
                               "--max-model-len", "8192", "--vllm-version", "0.30.0", "--json"])
    assert plan.exit_code == 0, plan.output
    nearest = json.loads(plan.stdout)["requested"]["nearest"]
    assert nearest and all(option["fits"] for option in nearest)


@needs_core
def test_llama_405b_on_one_h100_node_points_to_a_plan_that_searches_past_the_node() -> None:
    result = runner.invoke(app, ["estimate", "meta-llama/Llama-3.1-405B", "--gpu", "H100", "--tensor-parallel-size",
                                 "8", "--max-model-len", "8192", "--vllm-version", "0.30.0"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    hint = next(line for line in result.stdout.splitlines() if line.startswith("nearest deployments that fit:"))
    assert "--num-gpus 8 --max-gpus 32 " in hint
    plan = runner.invoke(app, shlex.split(hint.split(": ", 1)[1])[1:] + ["--json"])
    assert plan.exit_code == 0, plan.output
    more = {n["change"]: n for n in json.loads(plan.stdout)["requested"]["nearest"]}["more GPUs"]
    assert (more["num_gpus"], more["tensor_parallel_size"], more["pipeline_parallel_size"]) == (16, 8, 2)


@needs_core
def test_a_deployment_that_fits_prints_no_plan_hint() -> None:
    result = runner.invoke(app, ["estimate", MODEL, "--gpu", "H100", "--max-model-len", "8192"])
    assert result.exit_code == 0 and "nearest deployments" not in result.stdout


@needs_core
def test_models_and_gpus_list_the_catalogs() -> None:
    models = runner.invoke(app, ["models", "--json", "llama"])
    assert models.exit_code == 0 and all("llama" in json.dumps(m).lower() for m in json.loads(models.stdout))
    gpus = runner.invoke(app, ["gpus", "--json"])
    assert gpus.exit_code == 0 and any("H100" in g["name"].upper() for g in json.loads(gpus.stdout))


@needs_core
def test_a_vllm_environment_variable_changes_the_engine_it_models() -> None:
    base = ["estimate", MODEL, "--gpu", "RTX 3090", "--max-model-len", "8192", "--vllm-version", "0.8.5", "--json"]
    v1 = json.loads(runner.invoke(app, base).stdout)
    v0 = json.loads(runner.invoke(app, [*base, "--env", "VLLM_USE_V1=0"]).stdout)
    assert (v1["profile"], v0["profile"]) == ("v1-0.8", "v0")


@needs_core
def test_an_instance_type_is_a_gpu_name_and_a_bare_family_warns_about_its_size() -> None:
    p4d = json.loads(runner.invoke(app, ["estimate", MODEL, "--gpu", "p4d.24xlarge", "--json"]).stdout)
    assert p4d["gpu"]["name"] == "NVIDIA A100 SXM4 40GB"
    bare = runner.invoke(app, ["estimate", MODEL, "--gpu", "A100", "--max-model-len", "8192"])
    assert "40GB and 80GB" in " ".join(bare.stdout.split())


@needs_core
@pytest.mark.parametrize(("argv", "field"), [
    (["estimate", MODEL, "--gpu", "RTX-9999"], "gpu"),
    (["estimate", "acme/nothing-here"], "model"),
    (["estimate", MODEL, "--vllm-version", "0.10.2", "--max-cudagraph-capture-size", "64"],
     "max_cudagraph_capture_size"),
])
def test_core_errors_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], field: str) -> None:
    code, _, err = run_main(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {field}: ")


# ---------------------------------------------------------------------- input errors (run without the core)

BAD = [
    (["estimate", MODEL, "--gpu-memory-utilization", "1.5"], "gpu_memory_utilization"),
    (["estimate", MODEL, "--gpu-memory-utilization", "lots"], "--gpu-memory-utilization"),
    (["estimate", MODEL, "-tp", "0"], "tensor_parallel_size"),
    (["estimate", MODEL, "--max-model-len", "long"], "max_model_len"),
    (["estimate", MODEL, "--max-model-len", "0"], "max_model_len"),
    (["estimate", MODEL, "--kv-cache-dtype", "int4"], "kv_cache_dtype"),
    (["estimate", MODEL, "--dtype", "int8"], "dtype"),
    (["estimate", MODEL, "--quantization", "Q4"], "quantization"),
    (["estimate", MODEL, "--gpu", "H100", "--gpu-memory-gib", "80"], "gpu_memory_gib"),
    (["estimate", MODEL, "--cpu-offload-gb", "-1"], "cpu_offload_gb"),
    (["estimate", MODEL, "--env", "VLLM_USE_V1"], "env"),
    (["estimate", MODEL, "--limit-mm-per-prompt", "video=0"], "limit_mm_per_prompt"),
    (["estimate", MODEL, "--limit-mm-per-prompt", '{"vid": 0}'], "limit_mm_per_prompt"),
    (["estimate", MODEL, "--mm-processor-kwargs", '{"max_pixels": -3}'], "mm_processor_kwargs.max_pixels"),
    (["estimate", MODEL, "--mm-processor-kwargs", '{"size": 4}'], "mm_processor_kwargs"),
    (["estimate", MODEL, "--no-such-flag"], "usage"),
    (["estimate"], "model"),
    (["plan", MODEL, "--price", "H100:2"], "price"),
    (["plan", MODEL, "--num-gpus", "9", "--max-gpus", "8"], "num_gpus"),
    (["serve", "--port", "0"], "--port"),
]


@pytest.mark.parametrize(("argv", "field"), BAD, ids=[" ".join(a[1:]) or a[0] for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], field: str) -> None:
    code, _, err = run_main(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1, err  # one line, no traceback
    assert err.startswith(f"error: {field}: "), err


def test_validate_without_a_file_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "validate", "/nonexistent/logs.jsonl")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")


def test_bare_gpuplan_shows_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys)
    assert code == 0 and "estimate" in out


@pytest.mark.parametrize(("text", "tokens"), [("8192", 8192), ("8k", 8000), ("8K", 8192), ("1m", 10**6), ("1M", 2**20)])
def test_lengths_are_parsed_as_vllm_parses_them(text: str, tokens: int) -> None:
    assert parse_length(text, "max_model_len") == tokens


@needs_core
def test_gpu_time_cost_for_a_fine_tuning_run_is_price_times_gpus_times_hours() -> None:
    res = runner.invoke(app, ["cost", "--gpu", "H200", "--num-gpus", "2", "--price", "4.0775", "10", "50", "100",
                              "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["total_usd"] for r in rows] == pytest.approx([81.55, 407.75, 815.50])  # seed 001's figures


@needs_core
def test_context_table_shows_scout_reaching_10m_only_with_the_hybrid_manager_on_012() -> None:
    res = runner.invoke(app, ["context", "meta-llama/Llama-4-Scout-17B-16E-Instruct", "--gpu", "H200", "--counts", "8",
                              "--kv-cache-dtype", "fp8", "--vllm-version", "0.12.0", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["rows"]
    off = next(r for r in rows if not r["env"])
    on = next(r for r in rows if r["env"])
    assert off["max_model_len"] < 10_000_000 <= on["max_model_len"]


@needs_core
def test_plan_for_seed_000_says_int8_scout_does_not_fit_one_a100_because_of_weights() -> None:
    res = runner.invoke(app, ["plan", "meta-llama/Llama-4-Scout-17B-16E-Instruct", "--gpu", "A100-80GB", "--num-gpus",
                              "1", "--quantization", "fp8", "--max-model-len", "16384", "--json"])
    assert res.exit_code == 0, res.output
    req = json.loads(res.stdout)["requested"]
    assert req["fits"] is False and req["reason"].startswith("weights alone")
    assert req["nearest"] and all(n["fits"] for n in req["nearest"])


@needs_core
@pytest.mark.parametrize("ref", ["tiny-llama", "tiny-llama/config.json", "gguf/tiny-llama-q8_0.gguf", "tiny-awq"])
def test_estimate_reads_local_checkpoints_configs_and_gguf_files(ref: str) -> None:
    from pathlib import Path

    path = Path(__file__).parent / "fixtures" / "hub" / ref
    res = runner.invoke(app, ["estimate", str(path), "--gpu", "H100", "--max-model-len", "64", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["per_gpu"]["weights_bytes"] > 0 and out["fits"] is True


@needs_core
@pytest.mark.parametrize("columns", ["80", "200"])
def test_the_plan_table_keeps_every_digit_in_a_narrow_terminal(columns: str) -> None:
    result = runner.invoke(app, ["plan", "Qwen/Qwen2.5-32B", "--gpu", "L4", "--gpu", "H100", "--max-gpus", "2",
                                 "--vllm-version", "0.30.0"], env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    table = result.stdout.split("best option:")[0]
    # H100's full context, an L4's with 4-bit weights (9,040: the whole number must survive a narrow terminal)
    assert "131,072" in table and "9,040" in table
    assert "$/h" in table and "0.80" in table       # the price column is not cropped away
    assert all(len(line) <= int(columns) for line in table.splitlines())


@needs_core
def test_the_scout_context_table_fits_a_100_column_terminal_with_every_length() -> None:
    res = runner.invoke(app, ["context", "meta-llama/Llama-4-Scout-17B-16E-Instruct", "--gpu", "H200", "--counts", "8",
                              "--vllm-version", "0.12.0"], env={"COLUMNS": "100"})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert all(len(line) <= 100 for line in lines)
    head = next(line for line in lines if "max ctx" in line)
    assert head.split()[-6:] == ["@8K", "@32K", "@128K", "@1M", "@2M", "@10m"]
    fp8_on = next(line for line in lines if " fp8 " in line and " e1 " in line)
    assert fp8_on.split()[-1] == "3.12"  # the worked case: 3.12x at 10M with the hybrid manager on
