"""The validation harness: predict real vLLM start-ups (records in the schema of
../shared/data/vllm-logs/) and compare with what vLLM logged."""

from __future__ import annotations

import ast
import json
import re
import statistics
from functools import lru_cache
from pathlib import Path
from typing import Any

from .datafiles import data_json
from .deployment import PERFORMANCE_MODES, Deployment, speculative_fields
from .errors import GpuplanError, UnservableDeployment
from .model.adapters import build_spec
from .units import GiB

FIELDS = ("weights_gib", "activation_peak_gib", "non_torch_gib", "cudagraph_gib", "available_kv_cache_gib",
          "kv_cache_tokens", "max_concurrency", "num_gpu_blocks")
# Fields that need the GPU's memory: unpredictable when a record does not say which GPU it ran on.
BUDGET_FIELDS = ("available_kv_cache_gib", "kv_cache_tokens", "max_concurrency", "num_gpu_blocks")


def _gpu_bytes(dep: dict, platform: str = "linux") -> tuple[str | None, int | None, float | None]:
    """The CUDA-visible total: the catalog's exact figure when the logged total matches it, else the log's (the
    whole board under WSL2, where no total is logged)."""
    name = dep.get("gpu_name")
    logged = dep.get("gpu_total_memory_gib")
    cat_bytes, cc = None, None
    if name:
        try:
            from .gpus import find_gpu, visible_memory_bytes

            g = find_gpu(name)
            cat_bytes, cc = visible_memory_bytes(g, platform), g.compute_capability
        except (GpuplanError, ImportError):
            pass
    if logged:
        b = int(round(float(logged) * GiB))
        if cat_bytes and abs(cat_bytes - b) < 0.011 * GiB:
            b = cat_bytes
        return name, b, cc
    return name, cat_bytes, cc


_VLLM_GITHUB = re.compile(r"github\.com/vllm-project/vllm/(?:issues|pull|discussions)/(\d+)")


@lru_cache(maxsize=1)
def _issue_checkpoints() -> tuple[tuple[int, str], ...]:
    return tuple((int(first), v) for first, v in data_json("vllm_github_releases.json")["checkpoints"])


def _issue_version(rec: dict) -> str | None:
    """The vLLM release current when the record's vLLM issue/PR was opened."""
    m = _VLLM_GITHUB.search(str(rec.get("source_url") or ""))
    if not m:
        return None
    number, version = int(m.group(1)), None
    for first, v in _issue_checkpoints():
        if number >= first:
            version = v
    return version


def _logged_releases(rec: dict) -> tuple[str, ...]:
    """Releases that log the record's quoted lines where the log shows them (log_dating), less those that
    predate the model's architecture."""
    from .engines.vllm.profiles import added_span, parse_version
    from .log_dating import releases_from_log

    found = releases_from_log(str(rec.get("evidence") or "")) or ()
    arch = ((rec.get("hf_config") or {}).get("architectures") or [None])[0]
    span = added_span(arch) if isinstance(arch, str) else None
    if span:
        found = tuple(r for r in found if parse_version(r) > parse_version(span["absent_in"]))
    return found


# Set by validate_records on a record that does not state its vLLM: the one version the other records of the same
# source page state (a post or issue thread runs one install).
SAME_SOURCE_VERSION = "_same_source_version"


def _source_page(rec: dict) -> str:
    return str(rec.get("source_url") or "").split("#")[0]


def same_source_versions(records: list[dict]) -> dict[str, str]:
    """Source page -> the vLLM version its records state, where they state exactly one."""
    stated: dict[str, set[str]] = {}
    for rec in records:
        if rec.get("engine_version") and _source_page(rec):
            stated.setdefault(_source_page(rec), set()).add(str(rec["engine_version"]))
    return {page: next(iter(vs)) for page, vs in stated.items() if len(vs) == 1}


def inferred_version(rec: dict) -> tuple[str, str] | None:
    """(version, how) for a record that does not state its vLLM: the version other records of its source page
    state, where its own quoted lines allow it; else the newest release that logs those lines at the places they
    show, no newer than the release current when its vLLM issue was opened; else that release."""
    from .engines.vllm.profiles import parse_version

    by_issue = _issue_version(rec)
    logged = _logged_releases(rec)
    sibling = rec.get(SAME_SOURCE_VERSION)
    if sibling and (not logged or sibling in logged):
        return sibling, "same source"
    if logged:
        if by_issue:
            older = [r for r in logged if parse_version(r) <= parse_version(by_issue)]
            logged = tuple(older) or logged
        return logged[-1], "log lines"
    return (by_issue, "issue date") if by_issue else None


def record_version(rec: dict) -> tuple[str | None, str | None]:
    """(version, how it was inferred or None when stated): the record's engine_version, else one dated from its
    log lines or source, else (None, None): the newest profile. A development build is dated to the release its
    quoted lines are nearest to (development_release)."""
    stated = rec.get("engine_version")
    found = (stated, None) if stated else inferred_version(rec)
    if found is None:
        return None, None
    dated = development_release(str(found[0]), str(rec.get("evidence") or ""))
    if dated is None:
        return found
    return dated if stated else (dated[0], found[1])  # an inferred version keeps saying how it was inferred


def development_release(version: str, evidence: str) -> tuple[str | None, str] | None:
    """For a vLLM built between releases, (the release whose code it is nearest, how that was found); None for a
    release. A main-branch build "0.23.1rc1.dev531" carries code of the next minor release as well as its own
    (vLLM's patch releases come from release branches), so its quoted lines choose among the releases of its
    series and the next; an untagged source build "0.1.devN" can be any release. With no line to go by, a tagged
    build is taken as its series' release and an untagged one as unstated (None: the newest)."""
    from .engines.vllm.profiles import development_series, parse_version, untagged_build
    from .log_dating import nearest_release, releases_in_table

    if untagged_build(version):
        found = nearest_release(evidence)
        return (found, "log lines (source build)") if found else (None, "source build, not dated")
    series = development_series(version)
    if series is None:
        return None
    major, minor = series
    among = tuple(r for r in releases_in_table() if parse_version(r)[:2] in ((major, minor), (major, minor + 1)))
    found = nearest_release(evidence, among)
    return (found, "log lines (development build)") if found else None


def deployment_of(rec: dict) -> Deployment:
    d = rec.get("deployment") or {}
    platform = d.get("platform") or _logged_platform(rec)
    name, total, cc = _gpu_bytes(d, platform)
    env_vars = {str(k): str(v) for k, v in (d.get("env") or {}).items()}
    if "VLLM_USE_V1" not in env_vars and _logs_v0_engine(rec):
        # The log names the engine that ran: a V0 start-up on 0.8 - 0.10, whatever made vLLM pick it (an
        # environment variable or a fallback the excerpt does not show), is sized as VLLM_USE_V1=0 is.
        env_vars["VLLM_USE_V1"] = "0"
    if "VLLM_USE_FLASHINFER_SAMPLER" not in env_vars and (sampler := _logged_flashinfer_sampler(rec)) is not None:
        # 0.8 - 0.11.0 sample with FlashInfer wherever it is installed: the log says whether it was
        env_vars["VLLM_USE_FLASHINFER_SAMPLER"] = "1" if sampler else "0"
    env = tuple(sorted(env_vars.items()))
    q = d.get("quantization")
    cfg_q = (rec.get("hf_config") or {}).get("quantization_config")
    if q and cfg_q:
        q = None  # the checkpoint's own quantization_config decides
    if not q and not cfg_q and rec.get("config_complete") is False:
        # Schema rule: such records hold the base architecture only; the checkpoint's format is then
        # named in deployment.quantization or, failing that, in the model id ("...-AWQ", "...-w8a8").
        q = quant_from_model_id(str(rec.get("model_id") or ""))
    if q == "compressed-tensors" and not cfg_q:
        q = quant_from_model_id(str(rec.get("model_id") or "")) or q
        q = "fp8_per_channel" if q == "fp8" else q
    spec_cfg = _speculative_config(rec)
    return Deployment(
        gpu_name=name, gpu_memory_bytes=total, compute_capability=cc,
        tensor_parallel_size=d.get("tensor_parallel_size") or 1,
        pipeline_parallel_size=d.get("pipeline_parallel_size") or 1,
        data_parallel_size=d.get("data_parallel_size") or 1,
        enable_expert_parallel=bool(d.get("enable_expert_parallel")),
        gpu_memory_utilization=d.get("gpu_memory_utilization"), max_model_len=d.get("max_model_len"),
        max_num_seqs=d.get("max_num_seqs"), max_num_batched_tokens=d.get("max_num_batched_tokens"),
        dtype=d.get("dtype") or "auto", kv_cache_dtype=d.get("kv_cache_dtype") or "auto", quantization=q,
        enforce_eager=bool(d.get("enforce_eager")), block_size=d.get("block_size"),
        # not in the shared schema: ours may hold it, and vLLM prints it in its compilation config
        max_cudagraph_capture_size=int(n) if (n := _command_line_value(rec, "max_cudagraph_capture_size",
                                                                         r"\d+")) else None,
        # Sets mamba_cache_mode for models with Mamba / linear-attention state.
        enable_prefix_caching=_command_line_flag(rec, "enable_prefix_caching"),
        enable_chunked_prefill=_command_line_flag(rec, "enable_chunked_prefill"),
        **_lora_options(rec),
        api_server=d.get("api_server") is not False, vllm_version=record_version(rec)[0], env=env,
        disable_hybrid_kv_cache_manager=None,
        # Optional in the schema: the multimodal profiling options a record's command line states.
        limit_mm_per_prompt=tuple(sorted((str(k), int(v)) for k, v in (d.get("limit_mm_per_prompt") or {}).items())),
        mm_processor_kwargs=tuple(sorted((str(k), int(v)) for k, v in (d.get("mm_processor_kwargs") or {}).items()
                                         if k == "max_pixels")),
        skip_mm_profiling=bool(d.get("skip_mm_profiling")),
        language_model_only=bool(_command_line_flag(rec, "language_model_only")),
        mm_encoder_tp_mode=d.get("mm_encoder_tp_mode") or "weights",
        performance_mode=_command_line_value(rec, "performance_mode", "|".join(PERFORMANCE_MODES)) or "balanced",
        # Not in the shared schema: our records say whether the start found torch.compile's cache filled.
        compile_cache=rec.get("compile_cache") or d.get("compile_cache") or "warm",
        # Not in the shared schema either; else what vLLM's custom all-reduce says about the GPUs' links.
        interconnect=d.get("interconnect") or _logged_interconnect(rec),
        disable_custom_all_reduce=bool(_command_line_flag(rec, "disable_custom_all_reduce")),
        moe_backend=_command_line_value(rec, "moe_backend", "[a-z][a-z0-9_]*") or "auto",
        mamba_ssm_cache_dtype=_command_line_value(rec, "mamba_ssm_cache_dtype", "auto|float32|float16|bfloat16")
        or "auto",
        platform=platform,
        # Optional in the schema: --speculative-config as the record's command line or engine line states it.
        # A separate draft checkpoint's config.json, where the record holds one (draft_hf_config, ours).
        **speculative_fields(spec_cfg, rec.get("draft_hf_config") if isinstance(rec.get("draft_hf_config"), dict)
                             else None),
    )


def _logs_v0_engine(rec: dict) -> bool:
    """The record quotes vLLM 0.8 - 0.10's start-up line for the V0 engine ("Initializing a V0 LLM engine (v...)
    with config"); earlier releases, V0 only, print "Initializing an LLM engine"."""
    return "Initializing a V0 LLM engine" in str(rec.get("evidence") or "")


_FLASHINFER_SAMPLER_LINES = (("Using FlashInfer for top-p & top-k sampling", True),
                             ("FlashInfer is not available", False),
                             ("FlashInfer is available, but it is not enabled", False))


def _stated_by_lines(rec: dict, lines: tuple[tuple[str, Any], ...]) -> Any:
    """The value of the table's lines that the record's evidence quotes, where they agree on one; else None."""
    evidence = str(rec.get("evidence") or "")
    found = {value for line, value in lines if line in evidence}
    return found.pop() if len(found) == 1 else None


def _logged_flashinfer_sampler(rec: dict) -> bool | None:
    """Whether the record's log says its V1 sampler runs FlashInfer's top-k/top-p kernels (topk_topp_sampler.py's
    start-up line), or None where it does not say."""
    return _stated_by_lines(rec, _FLASHINFER_SAMPLER_LINES)


# custom_all_reduce.py's reasons for staying off that tell how the GPUs are linked
_ALLREDUCE_OFF_LINES = (("Custom allreduce is disabled because your platform lacks GPU P2P capability", "pcie_no_p2p"),
                        ("Custom allreduce is disabled because this process group spans across nodes", "pcie_no_p2p"),
                        ("Custom allreduce is disabled because it's not supported on more than two PCIe-only GPUs",
                         "pcie"))


_WSL = re.compile(r"\bWSL2?\b")


def _logged_platform(rec: dict) -> str:
    """"wsl" where the record's quoted source says it ran under WSL (vLLM's own "WSL is detected" pin_memory warning,
    or the source's words) or names its GPU so; else "linux"."""
    said = _WSL.search(str(rec.get("evidence") or "")) or _WSL.search(
        str((rec.get("deployment") or {}).get("gpu_name") or ""))
    return "wsl" if said else "linux"


def _logged_interconnect(rec: dict) -> str | None:
    """The interconnect the record's log implies: no peer access where vLLM's custom all-reduce says the GPUs lack
    it or sit on different nodes, PCIe where it says they are PCIe-only; None where the log does not say."""
    return _stated_by_lines(rec, _ALLREDUCE_OFF_LINES)


def _dashed(name: str) -> str:
    """An option's name as a command line may spell it: vLLM's argument parser takes --max-model-len and
    --max_model_len alike."""
    return name.replace("_", "[-_]")


def _command_line_flag(rec: dict, name: str) -> bool | None:
    """A vLLM boolean option the record's deployment states, else what its quoted command line or vLLM's printed
    engine config sets (--name / --no-name / name=True): an input, like the version dated from the log lines.
    None: not said, or said both ways."""
    stated = (rec.get("deployment") or {}).get(name)
    if stated is not None:
        return bool(stated)
    flag = re.compile(rf"--(no[-_])?{_dashed(name)}\b|{name}['\"]?\s*[:=]\s*(true|false)", re.IGNORECASE)
    found = {m.group(1) is None if m.group(2) is None else m.group(2).lower() == "true"
             for m in flag.finditer(str(rec.get("evidence") or ""))}
    return found.pop() if len(found) == 1 else None


def _command_line_value(rec: dict, name: str, value: str) -> str | None:
    """A vLLM option's value (matching the regex `value`) as the record's deployment states it, else the one value
    its quoted command line (--name VALUE) or vLLM's printed config (name: VALUE) gives; None where they give none
    or several."""
    stated = (rec.get("deployment") or {}).get(name)
    if stated is not None:
        return str(stated)
    option = re.compile(rf"--{_dashed(name)}[= ]({value})\b|{name}['\"]?\s*[:=]\s*['\"]?({value})\b")
    found = {m.group(1) or m.group(2) for m in option.finditer(str(rec.get("evidence") or ""))}
    return found.pop() if len(found) == 1 else None


_SPECULATIVE_CONFIG = re.compile(r"""--speculative[-_]config[= ]'?(\{[^{}]*\})|speculative_config['"]?\s*[:=]\s*(\{[^{}]*\})""")


def _speculative_config(rec: dict) -> dict | None:
    """--speculative-config as the record's deployment states it (optional in the schema), else the one dict its
    quoted command line (JSON) or vLLM's printed non-default args (a Python dict) give; None where they give none,
    several, or one that does not parse."""
    stated = (rec.get("deployment") or {}).get("speculative_config")
    if isinstance(stated, dict):
        return stated
    found = []
    for m in _SPECULATIVE_CONFIG.finditer(str(rec.get("evidence") or "")):
        text = m.group(1) or m.group(2)
        try:
            found.append(json.loads(text))
        except ValueError:
            try:
                found.append(ast.literal_eval(text))
            except (ValueError, SyntaxError, TypeError):  # TypeError: an unhashable key, e.g. {[1]: 2}
                return None
    distinct = {json.dumps(f, sort_keys=True) for f in found if isinstance(f, dict)}
    return json.loads(distinct.pop()) if len(distinct) == 1 else None


def _lora_options(rec: dict) -> dict[str, Any]:
    """--enable-lora and its sizes, as the record's deployment (not in the shared schema) or command line says."""
    if not _command_line_flag(rec, "enable_lora"):
        return {}
    options: dict[str, Any] = {"enable_lora": True,
                               "fully_sharded_loras": bool(_command_line_flag(rec, "fully_sharded_loras"))}
    for name in ("max_loras", "max_lora_rank"):
        if (n := _command_line_value(rec, name, r"\d+")) is not None:
            options[name] = int(n)
    if (dtype := _command_line_value(rec, "lora_dtype", "auto|float16|bfloat16")) is not None:
        options["lora_dtype"] = dtype
    return options


_ID_QUANT = (("awq", "awq"), ("gptq", "gptq"), ("w8a8", "w8a8"), ("int8", "w8a8"), ("fp8", "fp8"),
             ("nvfp4", "nvfp4"), ("w4a16", "w4a16"), ("bnb-4bit", "bitsandbytes"))


def quant_from_model_id(model_id: str) -> str | None:
    low = model_id.lower()
    for token, method in _ID_QUANT:
        if token in low:
            return method
    return None


def predict(rec: dict) -> dict[str, Any]:
    from .engines.vllm.estimate import estimate, min_gpu_memory

    spec = build_spec(rec["hf_config"], rec.get("model_id"))
    dep = deployment_of(rec)
    out: dict[str, Any] = {"weights_gib": None}
    if not dep.gpu_memory_bytes:
        # Weights do not depend on the GPU: estimate them on a nominal card, leave the rest unpredicted.
        rep = estimate(spec, dep.with_(gpu_memory_bytes=1 << 50))
        out["weights_gib"] = round(rep.weights_bytes / GiB, 2)
        # What can be said without the GPU: the smallest card (CUDA-visible memory) this deployment starts on.
        need = min_gpu_memory(spec, dep.with_(compute_capability=dep.compute_capability or 8.0))
        out["min_gpu_memory_gib"] = round(need / GiB, 2) if need else None
        reason = "GPU not stated: memory budget unknown"
        if need:
            reason += f"; it starts only on GPUs with at least {need / GiB:.1f} GiB visible"
        out.update({"fits": None, "reason": reason, "gpu_known": False})
        return out
    rep = estimate(spec, dep)
    how = record_version(rec)[1]
    out.update({
        "weights_gib": round(rep.weights_bytes / GiB, 2),
        # activation and graphs as vLLM logs them, which differ from the budget's components on some versions
        "activation_peak_gib": round(rep.ledger_activation_bytes / GiB, 2),
        "non_torch_gib": round(rep.non_torch_bytes / GiB, 2),
        "cudagraph_gib": round(rep.cudagraph_captured_bytes / GiB, 2),
        "available_kv_cache_gib": round(rep.available_kv_cache_bytes / GiB, 2),
        "kv_cache_tokens": rep.kv_cache_tokens,
        "max_concurrency": rep.max_concurrency,
        "num_gpu_blocks": rep.num_gpu_blocks,
        "fits": rep.fits, "reason": rep.reason, "failure": rep.failure, "gpu_known": True,
        "engine_version": rep.engine_version, "profile": rep.profile,
        "engine_version_inferred": how is not None,
        # "same source", "log lines", "issue date", "log lines (development build)" (a stated build between
        # releases, dated), ... or None (stated, or newest)
        "engine_version_from": how,
    })
    return out


def _pct(pred: float | None, logged: float | None) -> float | None:
    if pred is None or logged is None or logged == 0:
        return None
    return round(abs(pred - logged) / abs(logged) * 100, 3)


def _p90(xs: list[float]) -> float:
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(0.9 * (len(s) - 1)))))
    return s[k]


# How a record's own `failure` text names what stopped vLLM, read from vLLM's messages as the sources quote them,
# first match wins; the predicted kinds (report.FAILURE_KINDS) that agree with each. A budget the weights alone
# fill loads and then finds no memory for the cache blocks, which is how vLLM reports it.
_LOGGED_FAILURE = (
    ("max_model_len_refused", ("derived max_model_len",)),
    ("sampler_warmup_oom", ("warming up the sampler",)),
    ("cudagraph_oom", ("--enforce-eager", "capturing cuda graph", "cuda graph capture")),
    ("weights_oom", ("weight loading", "loading weights", "while loading", "weights do not fit")),
    ("no_kv_memory", ("no available memory for the cache blocks", "no memory left for kv",
                      "no memory left for the kv", "negative", "no kv cache could be allocated", "0 gpu blocks",
                      "# gpu blocks: 0")),
    ("kv_too_small", ("exceeds kv capacity", "exceeds the kv capacity", "larger than the maximum number of tokens",
                      "kv cache too small", "to serve at least one request")),
)
_AGREEING = {"no_kv_memory": {"no_kv_memory", "weights_over_budget"}}


def logged_failure_kind(rec: dict) -> str | None:
    """What stopped a failed start, as a report.FAILURE_KINDS kind, where its `failure` text says (None: a bare
    "OOM" or anything else it does not name)."""
    text = str(rec.get("failure") or "").lower()
    for kind, marks in _LOGGED_FAILURE:
        if any(m in text for m in marks):
            return kind
    return None


def validate_records(records: list[dict]) -> dict[str, Any]:
    rows = []
    errs: dict[str, list[float]] = {f: [] for f in FIELDS}
    failed_total = failed_agree = ok_total = ok_agree = 0
    unpredictable: list[str] = []
    kinds: list[tuple[str, bool]] = []
    siblings = same_source_versions(records)
    for rec in records:
        if not rec.get("engine_version") and _source_page(rec) in siblings:
            rec = {**rec, SAME_SOURCE_VERSION: siblings[_source_page(rec)]}
        logged = rec.get("logged") or {}
        try:
            pred = predict(rec)
        except UnservableDeployment as e:
            # vLLM refuses the same deployment at start-up: that is a prediction, not a gap.
            pred = {"fits": False, "reason": f"vLLM refuses this deployment: {e}", "gpu_known": False}
        except GpuplanError as e:
            pred = {"fits": None, "reason": f"cannot predict: {e}", "gpu_known": False, "error": str(e)}
        ape: dict[str, float | None] = {}
        for f in FIELDS:
            if f == "weights_gib" and rec.get("config_complete") is False:
                continue  # the record's config lacks the checkpoint's quantization_config
            if f in BUDGET_FIELDS and not pred.get("gpu_known"):
                continue
            if rec.get("outcome") == "failed" and f in BUDGET_FIELDS:
                continue  # figures printed before a failed start are fit/no-fit evidence, not capacity
            e = _pct(pred.get(f), logged.get(f))
            if e is not None:
                ape[f] = e
                errs[f].append(e)
        if rec.get("outcome") == "failed":
            if pred.get("fits") is None:
                unpredictable.append(rec["id"])
            else:
                failed_total += 1
                failed_agree += pred.get("fits") is False
                if pred.get("fits") is False and (kind := logged_failure_kind(rec)) is not None:
                    pred["logged_failure"] = kind
                    kinds.append((rec["id"], pred.get("failure") in _AGREEING.get(kind, {kind})))
        elif pred.get("fits") is not None:
            ok_total += 1
            ok_agree += pred.get("fits") is True
        rows.append({"id": rec.get("id"), "model_id": rec.get("model_id"), "engine_version": rec.get("engine_version"),
                     "outcome": rec.get("outcome"), "predicted": pred,
                     "logged": {f: logged.get(f) for f in FIELDS if logged.get(f) is not None},
                     "abs_pct_error": ape})
    summary: dict[str, Any] = {}
    for f, xs in errs.items():
        if xs:
            summary[f] = {"n": len(xs), "median_abs_pct": round(statistics.median(xs), 2),
                          "p90_abs_pct": round(_p90(xs), 2)}
        else:
            summary[f] = {"n": 0, "median_abs_pct": None, "p90_abs_pct": None}
    summary["failed_outcome_agreement"] = {
        "n": failed_total, "agree": failed_agree,
        "rate": round(failed_agree / failed_total, 3) if failed_total else None,
        "not_predictable": unpredictable}
    # Of the failed starts predicted to fail whose record names why: does the predicted reason name the same?
    summary["failure_kind_agreement"] = {"n": len(kinds), "agree": sum(ok for _, ok in kinds),
                                         "disagree": [rid for rid, ok in kinds if not ok]}
    summary["ok_outcome_agreement"] = {"n": ok_total, "agree": ok_agree,
                                       "rate": round(ok_agree / ok_total, 3) if ok_total else None}
    return {"records": rows, "summary": summary}


def load_records(path: str | Path) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise GpuplanError("file", f"no such file: {path}")
    out = []
    for i, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise GpuplanError("file", f"line {i} is not JSON: {e.msg}") from e
        if not isinstance(rec, dict) or "hf_config" not in rec:
            raise GpuplanError("file", f"line {i} lacks hf_config (schema of shared/data/vllm-logs)")
        out.append(rec)
    return out


def validate_file(path: str | Path) -> dict[str, Any]:
    return validate_records(load_records(path))


def _shown_version(row: dict[str, Any]) -> str:
    used = row["predicted"].get("engine_version")
    if row["engine_version"] and not row["predicted"].get("engine_version_from"):
        return str(row["engine_version"])
    if not used:
        return "-"
    return f"{used}*" if row["predicted"].get("engine_version_from") else f"{used}?"


def render(result: dict[str, Any]) -> str:
    """A plain-text table: per record predicted vs logged, then the per-field summary."""
    lines = []
    short = {"weights_gib": "weights", "activation_peak_gib": "act", "non_torch_gib": "nontorch",
             "cudagraph_gib": "graphs", "available_kv_cache_gib": "kv_gib", "kv_cache_tokens": "tokens",
             "max_concurrency": "conc", "num_gpu_blocks": "blocks"}
    for row in result["records"]:
        pred, logged = row["predicted"], row["logged"]
        cells = []
        for f in FIELDS:
            if f in logged:
                pv = pred.get(f)
                e = row["abs_pct_error"].get(f)
                cells.append(f"{short[f]} {pv}/{logged[f]}" + (f" ({e:.1f}%)" if e is not None else ""))
        verdict = "fits" if pred.get("fits") else ("no-fit" if pred.get("fits") is False else "?")
        if pred.get("min_gpu_memory_gib"):
            cells.append(f"starts from {pred['min_gpu_memory_gib']} GiB/GPU")
        if pred.get("failure"):
            logged_kind = pred.get("logged_failure")
            cells.append(f"why {pred['failure']}" + (f" (log: {logged_kind})" if logged_kind else ""))
        lines.append(f"{row['id']:<7} {str(row['model_id'])[:40]:<40} {_shown_version(row):<8} "
                     f"{row['outcome']:<6} pred={verdict:<6} " + "; ".join(cells))
    if any(r["predicted"].get("engine_version_from") or (not r["engine_version"] and r["predicted"].get("engine_version"))
           for r in result["records"]):
        lines.append("version *: not stated (or a development build), dated from the record's source page, log lines "
                     "or vLLM issue; ?: not stated, the newest assumed")
    lines.append("")
    lines.append(f"{'field':<24}{'n':>4}{'median|err|%':>14}{'p90|err|%':>12}")
    for f in FIELDS:
        s = result["summary"][f]
        med = "-" if s["median_abs_pct"] is None else f"{s['median_abs_pct']:.2f}"
        p90 = "-" if s["p90_abs_pct"] is None else f"{s['p90_abs_pct']:.2f}"
        lines.append(f"{f:<24}{s['n']:>4}{med:>14}{p90:>12}")
    fa = result["summary"]["failed_outcome_agreement"]
    oa = result["summary"]["ok_outcome_agreement"]
    lines.append(f"failed_outcome_agreement: {fa['agree']}/{fa['n']} predicted as failing"
                 + (f"; not predictable (no GPU stated, or a deployment gpuplan does not size): "
                    f"{', '.join(fa['not_predictable'])}"
                    if fa["not_predictable"] else ""))
    ka = result["summary"]["failure_kind_agreement"]
    if ka["n"]:
        lines.append(f"failure_kind_agreement: {ka['agree']}/{ka['n']} failing for the reason the record names"
                     + (f"; another reason: {', '.join(ka['disagree'])}" if ka["disagree"] else ""))
    lines.append(f"ok_outcome_agreement: {oa['agree']}/{oa['n']} predicted as starting")
    return "\n".join(lines)
