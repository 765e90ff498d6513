"""`gpuplan validate`: predictions against real vLLM start-up logs (tests/fixtures/vllm_logs, and the shared
dev.jsonl when the checkout has it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpuplan.validation import FIELDS, validate_file

SAMPLE = Path(__file__).parent / "fixtures" / "vllm_logs" / "sample.jsonl"
DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "vllm-logs" / "dev.jsonl"


@pytest.fixture(scope="module")
def sample() -> dict:
    return validate_file(SAMPLE)


def _row(result: dict, rid: str) -> dict:
    return next(r for r in result["records"] if r["id"] == rid)


def test_the_json_report_has_every_record_and_a_summary_per_field(sample: dict) -> None:
    assert len(sample["records"]) == 11
    for row in sample["records"]:
        assert {"id", "predicted", "logged", "abs_pct_error"} <= set(row)
        assert "fits" in row["predicted"] and "reason" in row["predicted"]
    for f in FIELDS:
        assert {"n", "median_abs_pct", "p90_abs_pct"} <= set(sample["summary"][f])


def test_llama_8b_on_h100_is_predicted_within_a_percent(sample: dict) -> None:
    row = _row(sample, "gt100")
    assert row["predicted"]["fits"] is True
    for f in ("weights_gib", "available_kv_cache_gib", "kv_cache_tokens", "max_concurrency"):
        assert row["abs_pct_error"][f] < 1.0


@pytest.mark.parametrize("rid", ["gt004", "gt019", "gt066", "gt118"])
def test_failed_start_ups_on_a_known_gpu_are_predicted_as_failing(sample: dict, rid: str) -> None:
    pred = _row(sample, rid)["predicted"]
    assert pred["fits"] is False
    assert pred["reason"]


def test_failed_start_ups_fail_for_the_reason_their_log_names(sample: dict) -> None:
    # gt004: KV capacity below max_model_len; gt118: the sampler warm-up; gt019 and gt066 say only "OOM".
    kinds = sample["summary"]["failure_kind_agreement"]
    assert kinds == {"n": 2, "agree": 2, "disagree": []}
    assert _row(sample, "gt004")["predicted"]["failure"] == "kv_too_small"
    assert _row(sample, "gt118")["predicted"]["failure"] == "sampler_warmup_oom"
    assert "logged_failure" not in _row(sample, "gt019")["predicted"]


@pytest.mark.parametrize(("failure", "kind"), [
    ("max_model_len 29000 exceeds KV capacity (23,648 tokens)", "kv_too_small"),
    ("ValueError: No available memory for the cache blocks.", "no_kv_memory"),
    ("Negative KV-cache size at start-up: '# GPU blocks: -1'", "no_kv_memory"),
    ("CUDA OOM during weight loading (BF16 weights do not fit 2 x 93 GiB at TP2)", "weights_oom"),
    ("CUDA OOM warming up the sampler with 1024 dummy requests (after KV sizing)", "sampler_warmup_oom"),
    ("CUDA OOM without --enforce-eager (starts with it)", "cudagraph_oom"),
    ("Value error, User-specified max_model_len (8192) is greater than the derived max_model_len", "max_model_len_refused"),
    ("OOM", None),
])
def test_a_records_failure_text_is_read_as_a_kind(failure: str, kind: str | None) -> None:
    from gpuplan.validation import logged_failure_kind

    assert logged_failure_kind({"failure": failure}) == kind


def test_without_a_gpu_the_prediction_names_the_smallest_card_it_starts_on(sample: dict) -> None:
    # gt054: Qwen1.5-7B at 32K; its (unstated) card held only 7,344 tokens. A 24 GiB card is too small.
    pred = _row(sample, "gt054")["predicted"]
    assert pred["fits"] is None
    assert pred["min_gpu_memory_gib"] > 24
    assert "at least" in pred["reason"]
    assert "gt054" in sample["summary"]["failed_outcome_agreement"]["not_predictable"]


@pytest.mark.skipif(not DEV.exists(), reason="the shared log set is not in this checkout")
def test_the_shared_dev_set_meets_the_accuracy_bar() -> None:
    s = validate_file(DEV)["summary"]
    assert s["weights_gib"]["median_abs_pct"] <= 1 and s["weights_gib"]["p90_abs_pct"] <= 3
    assert s["failure_kind_agreement"]["n"] >= 6 and not s["failure_kind_agreement"]["disagree"]
    assert s["available_kv_cache_gib"]["median_abs_pct"] <= 3 and s["available_kv_cache_gib"]["p90_abs_pct"] <= 8
    assert s["kv_cache_tokens"]["median_abs_pct"] <= 3
    assert s["max_concurrency"]["median_abs_pct"] <= 3
    assert s["ok_outcome_agreement"]["agree"] == s["ok_outcome_agreement"]["n"]


@pytest.mark.parametrize(("evidence", "expected"), [
    ("vllm serve Qwen/Qwen3.5-9B --enable-prefix-caching --max-model-len 32768", True),
    ("vllm serve m --no-enable-prefix-caching | ... enable_prefix_caching\": false}.", False),
    ("non-default args: {'model_tag': 'm', 'enable_prefix_caching': True, 'max_num_seqs': 8}", True),
    ("Initializing a V1 LLM engine (v0.11.0) with config: ... enable_prefix_caching=False, ...", False),
    ("Model loading took 15.0 GiB", None),  # silent: vLLM's default applies
    ("--enable-prefix-caching ... enable_prefix_caching=False", None),  # contradictory: not guessed
])
def test_a_records_prefix_caching_is_read_from_its_command_line(evidence: str, expected: bool | None) -> None:
    from gpuplan.validation import deployment_of

    assert deployment_of({"deployment": {}, "evidence": evidence}).enable_prefix_caching is expected


@pytest.mark.parametrize(("evidence", "expected"), [
    ("""vllm serve m --speculative-config '{"method": "ngram", "num_speculative_tokens": 3}'""", ("ngram", 3)),
    ("non-default args: {'model_tag': 'm', 'speculative_config': {'method': 'mtp', 'num_speculative_tokens': 2}}",
     ("mtp", 2)),
    ("Initializing a V1 LLM engine (v0.25.0) with config: model='m', speculative_config=None, ...", (None, 0)),
    ("""--speculative-config '{"method": "mtp", "num_speculative_tokens": 1}' ... 'speculative_config': """
     """{'method': 'ngram', 'num_speculative_tokens': 4}""", (None, 0)),  # contradictory: not guessed
    ("non-default args: {'speculative_config': {[1]: 2}}", (None, 0)),  # not a config: not guessed
])
def test_a_records_drafter_is_read_from_its_command_line(evidence: str, expected: tuple) -> None:
    from gpuplan.validation import deployment_of

    dep = deployment_of({"deployment": {}, "evidence": evidence})
    assert (dep.speculative_method, dep.num_speculative_tokens) == expected


def test_qwen36_on_a_dgx_spark_with_prefix_caching_keeps_two_states_per_mamba_group() -> None:
    """recent_public rp-005 turns prefix caching on ('enable_prefix_caching': True in its non-default args), which
    puts vLLM 0.23's Gated DeltaNet groups in mamba_cache_mode align: 2 blocks a request in each of the 3 state
    groups, beside 168 blocks of full attention at 1,568 tokens a block. The logged 5.74x over 999 blocks is 174
    blocks a request; with one state a group (the default, prefix caching off) it would be 171."""
    import json

    from gpuplan.validation import predict

    path = Path(__file__).parent / "fixtures" / "vllm_logs" / "recent_public.jsonl"
    rec = next(json.loads(x) for x in path.read_text().splitlines() if '"rp-005"' in x)
    got = predict(rec)
    assert got["num_gpu_blocks"] / got["max_concurrency"] == pytest.approx(174, abs=1)


@pytest.mark.parametrize(("record", "expected"), [
    ({"evidence": "vllm serve XiaomiMiMo/MiMo-V2.6-Flash-MOPD --tensor-parallel-size 8 --language-model-only"}, True),
    ({"evidence": "vllm serve Qwen/Qwen3-VL-8B-Instruct --max-model-len 32768"}, False),
    ({"evidence": "--language-model-only", "deployment": {"language_model_only": False}}, False),  # stated wins
])
def test_a_records_language_model_only_flag_is_read_from_its_command_line(record: dict, expected: bool) -> None:
    from gpuplan.validation import deployment_of

    assert deployment_of({"deployment": {}, **record}).language_model_only is expected


@pytest.mark.parametrize(("record", "expected"), [
    ({"evidence": "INFO [llm_engine.py:243] Initializing a V0 LLM engine (v0.8.3) with config: model='m'"}, "0"),
    ({"evidence": "INFO [core.py:58] Initializing a V1 LLM engine (v0.8.5) with config: model='m'"}, None),
    ({"evidence": "Initializing an LLM engine (v0.6.3) with config: model='m'"}, None),  # V0 is all there was
    ({"evidence": "Initializing a V0 LLM engine (v0.8.3)", "deployment": {"env": {"VLLM_USE_V1": "0"}}}, "0"),
])
def test_a_log_that_names_the_v0_engine_is_sized_as_v0(record: dict, expected: str | None) -> None:
    from gpuplan.validation import deployment_of

    assert deployment_of({"deployment": {}, **record}).env_value("VLLM_USE_V1") == expected


@pytest.mark.parametrize(("value", "flag"), [("1", True), ("true", True), ("True", True), ("2", True), ("0", False),
                                             ("false", False), ("", False), (None, None)])
def test_a_boolean_vllm_environment_variable_is_read_as_vllm_reads_it(value: str | None, flag: bool | None) -> None:
    from gpuplan.deployment import Deployment

    env = () if value is None else (("VLLM_MLA_DISABLE", value),)
    assert Deployment(env=env).env_flag("VLLM_MLA_DISABLE") is flag


@pytest.mark.parametrize(("evidence", "expected"), [
    ("INFO [topk_topp_sampler.py:50] Using FlashInfer for top-p & top-k sampling.", "1"),
    ("WARNING [topk_topp_sampler.py:63] FlashInfer is not available. Falling back to the PyTorch-native "
     "implementation of top-p & top-k sampling.", "0"),
    ("Model loading took 14.25 GiB", None),
])
def test_a_log_that_names_its_sampler_decides_flashinfer(evidence: str, expected: str | None) -> None:
    from gpuplan.validation import deployment_of

    assert deployment_of({"deployment": {}, "evidence": evidence}).env_value("VLLM_USE_FLASHINFER_SAMPLER") == expected


def test_deepseek_v3_awq_on_sixteen_24gb_cards_whose_log_says_v0_is_predicted_on_v0() -> None:
    """heldout_public gho-013: a 0.8.3 dev build logs "Initializing a V0 LLM engine" without saying why (no
    VLLM_USE_V1 in the excerpt). Sized on V1, its non-torch memory came out 0.89 GiB; V0 measures the logged 0.20
    (its NCCL buffers at TP=16 between PCIe cards are the 0.2 GiB fitted on v0_activation_public)."""
    import json

    from gpuplan.validation import predict

    path = Path(__file__).parent / "fixtures" / "vllm_logs" / "heldout_public.jsonl"
    rec = next(json.loads(x) for x in path.read_text().splitlines() if '"gho-013"' in x)
    got = predict(rec)
    assert got["profile"] == "v0"
    assert got["non_torch_gib"] == pytest.approx(rec["logged"]["non_torch_gib"], abs=0.02)


def _recent(rid: str) -> dict:
    import json

    path = Path(__file__).parent / "fixtures" / "vllm_logs" / "recent_public.jsonl"
    return next(json.loads(x) for x in path.read_text().splitlines() if f'"{rid}"' in x)


def test_from_vllm_027_the_ledgers_peak_activation_includes_the_graph_estimate() -> None:
    """rp-001, Llama-3.1-8B on an A100 (0.31): 'Actual usage is 15.26 GiB for consumed memory (weights + non-torch),
    1.44 GiB for peak activation, and 0.23 GiB for CUDAGraph memory'. From 0.27 that peak activation is the profile
    run's transient peak plus the graph estimate vLLM subtracts, and the CUDAGraph memory is the pool the capture
    takes: validate compares like with like."""
    from gpuplan.engines.vllm.estimate import estimate
    from gpuplan.validation import build_spec, deployment_of, predict

    rec = _recent("rp-001")
    report = estimate(build_spec(rec["hf_config"], rec["model_id"]), deployment_of(rec))
    vocab = rec["hf_config"]["vocab_size"]
    held = 256 * 4 * (vocab + -(-vocab // 32))  # the V2 runner's int32 penalty state, which 0.27+ counts as consumed
    assert report.ledger_activation_bytes == pytest.approx(
        report.activation_peak_bytes + report.cudagraph_bytes - held, abs=0.01 * 2**30)
    got = predict(rec)
    assert got["activation_peak_gib"] == pytest.approx(1.44, rel=0.06)
    assert got["cudagraph_gib"] == pytest.approx(0.23, abs=0.03)
    assert report.ledger_consumed_bytes / 2**30 == pytest.approx(15.26, abs=0.1)
    assert report.ledger_line.startswith("Actual usage is 15.2")
    assert "GiB for consumed memory (weights + non-torch)" in report.ledger_line


@pytest.mark.parametrize(("version", "printed"), [
    ("0.10.0", False), ("0.10.2", True), ("0.11.0", False), ("0.19.0", False), ("0.25.0", False),
    ("0.26.0", True), ("0.33.0", True)])
def test_the_usage_line_is_shown_where_vllm_prints_it_by_default(version: str, printed: bool) -> None:
    """0.10.1-0.10.x and 0.26+ log it at INFO; 0.11-0.25 at debug level only; with --kv-cache-memory never."""
    from gpuplan.api_python import estimate

    assert (estimate("meta-llama/Llama-3.1-8B", gpu="H100", vllm_version=version).ledger_line is not None) is printed
    assert estimate("meta-llama/Llama-3.1-8B", gpu="H100", vllm_version=version,
                    kv_cache_memory_bytes=20 * 2**30).ledger_line is None


def test_on_vllm_026_the_ledgers_peak_activation_is_the_profile_runs_alone() -> None:
    """rp-003, Gemma-4-31B on a B300 (0.26): '... 3.9 GiB for peak activation, 0.25 GiB for non-torch memory, and
    0.7 GiB for CUDAGraph memory'. 0.26 printed the torch peak increase, with no graph estimate in it."""
    from gpuplan.engines.vllm.estimate import estimate
    from gpuplan.validation import build_spec, deployment_of

    rec = _recent("rp-003")
    report = estimate(build_spec(rec["hf_config"], rec["model_id"]), deployment_of(rec))
    assert report.ledger_activation_bytes == report.activation_peak_bytes
    assert report.cudagraph_bytes > 0
    assert report.ledger_consumed_bytes is None
    assert report.ledger_line.startswith(f"Actual usage is {report.weights_bytes / 2**30:.2f} GiB for weight, ")


def test_a_record_that_does_not_state_its_vllm_takes_the_one_its_source_page_states() -> None:
    """A blog post or an issue thread runs one install: a record of it that shows no version line takes the version
    its sibling records state (dev gt018, Gemma-4 on an A100, from the same post as gt017's 0.19.0), unless its own
    quoted lines rule that release out. Pages whose records state two versions lend none."""
    import json

    from gpuplan.validation import validate_records

    rec = json.loads(next(x for x in SAMPLE.read_text().splitlines() if '"gt100"' in x))
    page = {**rec, "source_url": "https://example.org/one-post#run-1"}
    silent = {**page, "id": "silent", "engine_version": None, "source_url": "https://example.org/one-post#run-2"}
    got = {r["id"]: r["predicted"] for r in validate_records([page, silent])["records"]}
    assert (got["silent"]["engine_version"], got["silent"]["engine_version_from"]) == ("0.19.0", "same source")
    two = {**page, "id": "other", "engine_version": "0.12.0"}
    got = {r["id"]: r["predicted"] for r in validate_records([page, two, silent])["records"]}
    assert got["silent"]["engine_version_from"] != "same source"
