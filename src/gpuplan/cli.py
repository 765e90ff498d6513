"""The `gpuplan` command line: estimate, models, gpus, plan, validate, serve.

Options carry vLLM's own names (`--max-model-len`, `-tp`, `--kv-cache-dtype`, ...), are validated by the
same pydantic models as the REST API, and run the same core. Any bad input ends as one line
`error: <field>: <message>` on stderr with exit code 2; never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import GpuplanError
from .units import GiB

app = typer.Typer(
    name="gpuplan",
    help="How much GPU memory an LLM needs on vLLM, per GPU, as vLLM itself will log it. Memory in GiB.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console(highlight=False)
BAR_WIDTH = 24


class CliError(Exception):
    """A problem to report as one line (field, message) and exit code 2."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _validation_line(exc: ValidationError) -> CliError:
    from .api.service import is_union_tag

    err = exc.errors()[0]
    ctx = err.get("ctx") or {}
    field = ctx.get("field") if isinstance(ctx.get("field"), str) else ".".join(
        str(p) for p in err.get("loc", ()) if not (isinstance(p, str) and is_union_tag(p))
    )
    return CliError(field or "input", str(err.get("msg", "invalid value")))


def _network() -> bool:
    from .api.service import network_allowed_by_env

    return network_allowed_by_env()


def parse_length(text: str | None, field: str) -> int | None:
    """Token counts as vLLM parses them: 8192, 8k (x1000), 8K (x1024), 1m (x10^6), 1M (x2^20)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", text)
    if not m:
        raise CliError(field, f"{text!r} is not a token count (e.g. 8192, 8k, 32K)")
    scale = {"": 1, "k": 10**3, "K": 2**10, "m": 10**6, "M": 2**20, "g": 10**9, "G": 2**30}[m.group(2)]
    value = float(m.group(1)) * scale
    if value != int(value) or value <= 0:
        raise CliError(field, f"{text!r} must be a positive whole number of tokens")
    return int(value)


_ENV_ITEM = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)")


def parse_env(items: list[str] | None) -> dict[str, str]:
    """`--env KEY=VALUE` options (vLLM's environment variables) as a dict."""
    env: dict[str, str] = {}
    for item in items or ():
        m = _ENV_ITEM.fullmatch(item.strip())
        if not m:
            raise CliError("env", f"{item!r} is not KEY=VALUE (e.g. VLLM_USE_V1=0)")
        env[m.group(1)] = m.group(2)
    return env


def parse_json_object(value: str | None, field: str) -> dict[str, Any]:
    """A JSON-object option as vLLM takes it (--limit-mm-per-prompt '{"video": 0}')."""
    if value is None:
        return {}
    try:
        obj = json.loads(value)
    except json.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict):
        raise CliError(field, f"{value!r} is not a JSON object (e.g. '{{\"video\": 0}}')")
    return obj


def _bar(n_bytes: int, total: int | None) -> Text:
    if not total:
        return Text("")
    frac = max(0.0, min(1.0, n_bytes / total))
    filled = round(frac * BAR_WIDTH)
    return Text("█" * filled, style="cyan") + Text("░" * (BAR_WIDTH - filled), style="dim") + Text(f" {frac:5.1%}")


def _gib(n: int | None) -> str:
    return "-" if n is None else f"{n / GiB:,.2f}"


def render_report(report: Any, model_ref: str | None = None) -> None:
    """The per-GPU breakdown, then the lines vLLM prints, then the verdict (and, when it does not fit, the
    command that lists the nearest deployments that do)."""
    gpu = report.gpu_name or "GPU"
    total = report.gpu_memory_bytes
    head = (
        f"{report.model} on {report.num_gpus}x {gpu} ({_gib(total)} GiB visible each)  "
        f"vLLM {report.engine_version}  TP={report.tensor_parallel_size} PP={report.pipeline_parallel_size}  "
        f"dtype={report.dtype} quantization={report.quantization or 'none'}"
    )
    table = Table(title=head, title_justify="left", show_lines=False)
    table.add_column("per GPU", no_wrap=True)
    table.add_column("GiB", justify="right")
    table.add_column(f"share of {gpu}", no_wrap=True)
    table.add_column("how known", no_wrap=True)
    for c in report.components:
        table.add_row(c.name, _gib(c.bytes), _bar(c.bytes, total), "exact" if c.exact else "estimated")
    table.add_section()
    util = report.gpu_memory_utilization
    table.add_row(f"budget ({util:g} x GPU)", _gib(report.budget_bytes), _bar(report.budget_bytes, total), "")
    out.print(table)
    # Notes under the table, one line each, so the table stays readable in 80 columns.
    for c in report.components:
        if c.note:
            out.print(Text(f"  {c.name}: {c.note}", style="dim"))

    out.print(f"Model loading took {_gib(report.weights_bytes)} GiB")
    if (enc := report.encoder_profile) is not None:
        out.print("Skipping memory profiling for multimodal encoder and encoder cache." if enc["modality"] == "none"
                  else f"Encoder cache will be initialized with a budget of {enc['budget_tokens']} tokens, and "
                       f"profiled with {enc['items']} {enc['modality']} items of the maximum feature size.")
    out.print(f"Available KV cache memory: {_gib(report.available_kv_cache_bytes)} GiB")
    out.print(f"GPU KV cache size: {report.kv_cache_tokens:,} tokens")
    out.print(
        f"Maximum concurrency for {report.max_model_len:,} tokens per request: {report.max_concurrency:.2f}x"
    )
    if report.cudagraph_captured_bytes:
        out.print(f"Graph capturing finished, took {_gib(report.cudagraph_captured_bytes)} GiB")
    if report.ledger_line:
        out.print(report.ledger_line, soft_wrap=True)
    first = report.first_start
    if first is not None and (first["kv_cache_tokens"] != report.kv_cache_tokens or first["fits"] != report.fits):
        out.print(f"First start on an empty torch.compile cache: ~{first['kv_cache_tokens']:,} tokens, "
                  f"{first['max_concurrency']:.2f}x ({first['cold_compile_bytes'] / GiB:.2f} GiB per GPU of "
                  "compiler scratch counted as activation)" + ("" if first["fits"] else "; would not start"),
                  style="dim")
    if report.fits:
        out.print(Text(f"fits: max_model_len={report.max_model_len:,}, max_num_seqs={report.max_num_seqs}", style="bold green"))
    else:
        out.print(Text(f"does not fit: {report.reason}", style="bold red"))
        if report.max_model_len_fit:
            out.print(f"longest max_model_len that fits: {report.max_model_len_fit:,}")
        else:
            out.print("no max_model_len fits this deployment")
        if model_ref and report.gpu_name:
            n = report.tensor_parallel_size * report.pipeline_parallel_size
            # "more GPUs" is searched up to 4x the count asked, across nodes when that exceeds one
            wider = f" --max-gpus {4 * n}" if 4 * n > 8 else ""
            out.print(f"nearest deployments that fit: gpuplan plan {shlex.quote(model_ref)} "
                      f"--gpu {shlex.quote(report.gpu_name)} --num-gpus {n}{wider} "
                      f"--max-model-len {report.max_model_len} --vllm-version {report.engine_version}",
                      soft_wrap=True)
    for w in report.warnings:
        out.print(Text(f"warning: {w}", style="yellow"))


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@app.command()
def estimate(
    model: Annotated[str, typer.Argument(help="catalog name, HF id[@rev], local dir, config.json or .gguf")],
    gpu: Annotated[str | None, typer.Option("--gpu", help="GPU catalog name, e.g. H100, A100-80GB")] = None,
    gpu_memory_gib: Annotated[float | None, typer.Option("--gpu-memory-gib", help="CUDA-visible GiB per GPU")] = None,
    tensor_parallel_size: Annotated[int, typer.Option("--tensor-parallel-size", "-tp")] = 1,
    pipeline_parallel_size: Annotated[int, typer.Option("--pipeline-parallel-size", "-pp")] = 1,
    data_parallel_size: Annotated[int, typer.Option("--data-parallel-size", "-dp")] = 1,
    enable_expert_parallel: Annotated[bool, typer.Option("--enable-expert-parallel", "-ep",
                                                         help="MoE experts owned whole by TP x DP ranks")] = False,
    gpu_memory_utilization: Annotated[float | None, typer.Option("--gpu-memory-utilization")] = None,
    max_model_len: Annotated[str | None, typer.Option("--max-model-len", help="tokens: 8192, 8k, 32K")] = None,
    max_num_seqs: Annotated[int | None, typer.Option("--max-num-seqs")] = None,
    max_num_batched_tokens: Annotated[str | None, typer.Option("--max-num-batched-tokens")] = None,
    dtype: Annotated[str, typer.Option("--dtype")] = "auto",
    kv_cache_dtype: Annotated[str, typer.Option("--kv-cache-dtype")] = "auto",
    quantization: Annotated[str | None, typer.Option("--quantization", "-q")] = None,
    enforce_eager: Annotated[bool, typer.Option("--enforce-eager")] = False,
    block_size: Annotated[int | None, typer.Option("--block-size")] = None,
    vllm_version: Annotated[str | None, typer.Option("--vllm-version")] = None,
    kv_cache_memory_bytes: Annotated[int | None, typer.Option("--kv-cache-memory-bytes")] = None,
    max_cudagraph_capture_size: Annotated[int | None, typer.Option(
        "--max-cudagraph-capture-size", help="largest batch captured as a CUDA graph (vLLM 0.11.1+)")] = None,
    disable_hybrid_kv_cache_manager: Annotated[bool, typer.Option("--disable-hybrid-kv-cache-manager")] = False,
    cpu_offload_gb: Annotated[float, typer.Option("--cpu-offload-gb", help="GiB of weights per GPU kept in CPU memory")
                              ] = 0.0,
    enable_prefix_caching: Annotated[
        bool | None, typer.Option("--enable-prefix-caching/--no-enable-prefix-caching",
                                  help="hybrid Mamba models: vLLM's default is on from 0.28, off before")
    ] = None,
    enable_lora: Annotated[bool, typer.Option(
        "--enable-lora", help="LoRA adapter slots beside every linear layer (vLLM 0.3+)")] = False,
    max_loras: Annotated[int, typer.Option("--max-loras", help="adapters served at once (default 1)")] = 1,
    max_lora_rank: Annotated[int, typer.Option("--max-lora-rank", help="largest adapter rank (default 16)")] = 16,
    lora_dtype: Annotated[str, typer.Option("--lora-dtype", help="auto (the model's), float16, bfloat16")] = "auto",
    fully_sharded_loras: Annotated[bool, typer.Option("--fully-sharded-loras")] = False,
    enable_chunked_prefill: Annotated[
        bool | None, typer.Option("--enable-chunked-prefill/--no-enable-chunked-prefill",
                                  help="vLLM's default: always on in V1; in V0 only above 32K tokens")
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline/--no-offline", help="offline LLM() instead of `vllm serve` (API server)")
    ] = False,
    limit_mm_per_prompt: Annotated[str | None, typer.Option(
        "--limit-mm-per-prompt", help='JSON, e.g. \'{"video": 0}\': a 0 drops that modality from the profile; 0 '
                                      'for every modality is a text-only start')] = None,
    mm_processor_kwargs: Annotated[str | None, typer.Option(
        "--mm-processor-kwargs", help='JSON, e.g. \'{"max_pixels": 1003520}\' (Qwen-VL image size)')] = None,
    skip_mm_profiling: Annotated[bool, typer.Option("--skip-mm-profiling")] = False,
    language_model_only: Annotated[bool, typer.Option(
        "--language-model-only", help="vLLM 0.17+: text only; vision/audio towers are not loaded")] = False,
    mm_encoder_tp_mode: Annotated[str, typer.Option(
        "--mm-encoder-tp-mode", help="weights (default) or data: whole vision towers on every TP rank (0.10.2+)")
    ] = "weights",
    performance_mode: Annotated[str, typer.Option(
        "--performance-mode", help="vLLM 0.17+: balanced (default), throughput (twice the default batch limits) or "
                                   "interactivity (a CUDA graph for every batch size up to 32)")
    ] = "balanced",
    compile_cache: Annotated[str, typer.Option(
        "--compile-cache", help="warm (default): a restart with torch.compile's cache filled; cold: a first start "
                                "on an empty cache (vLLM 0.24+ counts the compiler's scratch as activation)")
    ] = "warm",
    disable_custom_all_reduce: Annotated[bool, typer.Option(
        "--disable-custom-all-reduce", help="NCCL all-reduces instead of vLLM's own: their CUDA graphs keep device "
                                            "memory of their own (TP > 1)")] = False,
    moe_backend: Annotated[str, typer.Option(
        "--moe-backend", help="vLLM 0.17+: the fused-MoE kernels, as vLLM names them (auto: vLLM's pick; cutlass "
                              "with NVFP4 experts is sized from vLLM's CUTLASS FP4 kernel)")] = "auto",
    mamba_ssm_cache_dtype: Annotated[str, typer.Option(
        "--mamba-ssm-cache-dtype", help="auto, float32, float16 or bfloat16: the SSM state's dtype in Mamba and "
                                        "linear-attention layers (auto: the model's config hook, else the model "
                                        "dtype)")] = "auto",
    interconnect: Annotated[str | None, typer.Option(
        "--interconnect", help="nvswitch, pcie or pcie_no_p2p: how the GPUs reach each other, where the card's "
                               "catalog entry does not say it (a pod without peer access, GPUs on different nodes)")
    ] = None,
    platform: Annotated[str, typer.Option(
        "--platform", help="linux (default) or wsl: vLLM under WSL2 on Windows (Docker Desktop too), where a named "
                           "GPU shows its whole board memory and GPUs have no peer access")
    ] = "linux",
    speculative_config: Annotated[str | None, typer.Option(
        "--speculative-config", help='JSON as vLLM takes it, e.g. \'{"method": "mtp", "num_speculative_tokens": 2}\': '
                                     "mtp loads and caches the checkpoint's MTP modules; eagle, eagle3 and "
                                     "draft_model load the checkpoint named by \"model\" (catalog name, HF id or "
                                     "path); ngram and suffix cost no weights")] = None,
    env: Annotated[list[str] | None, typer.Option(
        "--env", help="vLLM environment variable KEY=VALUE, repeatable: VLLM_USE_V1, VLLM_USE_V2_MODEL_RUNNER, "
                      "VLLM_ALLOW_LONG_MAX_MODEL_LEN, VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE, "
                      "VLLM_PP_LAYER_PARTITION")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print MemoryReport.to_dict() as JSON")] = False,
) -> None:
    """Per-GPU memory for MODEL served by vLLM: weights, activations, CUDA graphs, KV cache, verdict."""
    from . import estimate as run_estimate
    from . import load_model
    from .api.schemas import DeploymentFields

    try:
        fields = DeploymentFields(
            gpu=gpu,
            gpu_memory_gib=gpu_memory_gib,
            tensor_parallel_size=tensor_parallel_size,
            pipeline_parallel_size=pipeline_parallel_size,
            data_parallel_size=data_parallel_size,
            enable_expert_parallel=enable_expert_parallel,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=parse_length(max_model_len, "max_model_len"),
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=parse_length(max_num_batched_tokens, "max_num_batched_tokens"),
            dtype=dtype,
            kv_cache_dtype=kv_cache_dtype,
            quantization=quantization,
            enforce_eager=enforce_eager,
            block_size=block_size,
            vllm_version=vllm_version,
            kv_cache_memory_bytes=kv_cache_memory_bytes,
            max_cudagraph_capture_size=max_cudagraph_capture_size,
            # Absent flag: vLLM's default for the version (None), not "enabled".
            disable_hybrid_kv_cache_manager=True if disable_hybrid_kv_cache_manager else None,
            cpu_offload_gb=cpu_offload_gb,
            enable_prefix_caching=enable_prefix_caching,
            enable_chunked_prefill=enable_chunked_prefill,
            enable_lora=enable_lora, max_loras=max_loras, max_lora_rank=max_lora_rank, lora_dtype=lora_dtype,
            fully_sharded_loras=fully_sharded_loras,
            api_server=not offline,
            limit_mm_per_prompt=parse_json_object(limit_mm_per_prompt, "limit_mm_per_prompt"),
            mm_processor_kwargs=parse_json_object(mm_processor_kwargs, "mm_processor_kwargs"),
            skip_mm_profiling=skip_mm_profiling,
            language_model_only=language_model_only,
            mm_encoder_tp_mode=mm_encoder_tp_mode,
            performance_mode=performance_mode,
            compile_cache=compile_cache,
            interconnect=interconnect,
            disable_custom_all_reduce=disable_custom_all_reduce,
            moe_backend=moe_backend,
            mamba_ssm_cache_dtype=mamba_ssm_cache_dtype,
            platform=platform,
            speculative_config=parse_json_object(speculative_config, "speculative_config")
            if speculative_config is not None else None,
            env=parse_env(env),
        )
    except ValidationError as exc:
        raise _validation_line(exc) from exc
    spec = load_model(model, allow_network=_network())
    report = run_estimate(spec, gpu=fields.gpu, gpu_memory_gib=fields.gpu_memory_gib, deployment=fields.deployment(),
                          allow_network=_network())
    if as_json:
        _echo_json(report.to_dict())
    else:
        render_report(report, model)


@app.command()
def models(
    filter_text: Annotated[str | None, typer.Argument(metavar="[FILTER]", help="substring of id, alias or family")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The model catalog: which models are known exactly and which are estimated."""
    from .api.service import models_listing

    items = models_listing(filter_text)
    if as_json:
        _echo_json(items)
        return
    table = Table(title=f"{len(items)} models")
    for col in ("id", "family", "params (B)", "architecture", "source"):
        table.add_column(col)
    for m in items:
        params = "-" if m["total_params"] is None else f"{m['total_params'] / 1e9:,.2f}"
        table.add_row(m["id"], m["family"] or "", params, "exact" if m["exact"] else "estimated", m["params_source"] or "")
    out.print(table)


@app.command()
def gpus(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The GPU catalog: CUDA-visible memory (GiB), bandwidth, compute, price."""
    from .api.service import gpus_listing

    items = gpus_listing()
    if as_json:
        _echo_json(items)
        return
    table = Table(title=f"{len(items)} GPUs (memory: CUDA-visible GiB)")
    for col in ("name", "vendor", "GiB", "GB/s", "bf16 TFLOPS", "fp8", "cc", "USD/h"):
        table.add_column(col)
    for g in items:
        price = g.get("price_usd_per_hour")
        table.add_row(
            str(g["name"]), str(g.get("vendor", "")), f"{g['memory_gib']:.2f}", str(g.get("bandwidth_gbps", "")),
            str(g.get("bf16_tflops", "")), "yes" if g.get("fp8_support") else "no", str(g.get("compute_capability", "")),
            "-" if price is None else f"{price:.2f}",
        )
    out.print(table)


def _parse_prices(prices: list[str]) -> dict[str, float]:
    parsed: dict[str, float] = {}
    for item in prices:
        name, sep, value = item.partition("=")
        try:
            parsed[name.strip()] = float(value)
        except ValueError:
            raise CliError("price", f"{item!r} is not GPU=USD (e.g. H100=2.49)") from None
        if not sep or not name.strip():
            raise CliError("price", f"{item!r} is not GPU=USD (e.g. H100=2.49)")
    return parsed


@app.command()
def plan(
    model: Annotated[str, typer.Argument(help="catalog name, HF id, local dir or config.json")],
    gpu: Annotated[list[str] | None, typer.Option("--gpu", help="GPU to consider (repeatable); default: all")] = None,
    num_gpus: Annotated[int | None, typer.Option("--num-gpus", help="exactly this many GPUs")] = None,
    max_gpus: Annotated[int, typer.Option("--max-gpus")] = 8,
    quantization: Annotated[str | None, typer.Option("--quantization", "-q")] = None,
    kv_cache_dtype: Annotated[str | None, typer.Option("--kv-cache-dtype")] = None,
    max_model_len: Annotated[str | None, typer.Option("--max-model-len")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency")] = None,
    vllm_version: Annotated[str | None, typer.Option("--vllm-version")] = None,
    price: Annotated[list[str] | None, typer.Option("--price", help="GPU=USD per hour (repeatable)")] = None,
    platform: Annotated[str, typer.Option("--platform", help="linux (default) or wsl: vLLM under WSL2 on Windows "
                                                              "(Docker Desktop too), every card's whole board")
                        ] = "linux",
    enable_lora: Annotated[bool, typer.Option("--enable-lora", help="every option serves LoRA adapters")] = False,
    max_loras: Annotated[int, typer.Option("--max-loras")] = 1,
    max_lora_rank: Annotated[int, typer.Option("--max-lora-rank")] = 16,
    speculative_config: Annotated[str | None, typer.Option(
        "--speculative-config", help="JSON as vLLM takes it: every option runs this drafter")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Which GPUs, how many, and which quantization fit MODEL; cheapest first."""
    from . import load_model
    from .api.schemas import V1PlanRequest
    from .api.service import PlannerMissing, get_planner, plan_kwargs, to_jsonable

    try:
        req = V1PlanRequest(
            model=model, gpus=gpu or None, num_gpus=num_gpus, max_gpus=max_gpus, quantization=quantization,
            kv_cache_dtype=kv_cache_dtype, max_model_len=parse_length(max_model_len, "max_model_len"),
            concurrency=concurrency, vllm_version=vllm_version, prices=_parse_prices(price or []),
            platform=platform, enable_lora=enable_lora, max_loras=max_loras, max_lora_rank=max_lora_rank,
            speculative_config=parse_json_object(speculative_config, "speculative_config") or None,
        )
    except ValidationError as exc:
        raise _validation_line(exc) from exc
    try:
        planner = get_planner()
    except PlannerMissing as exc:
        raise CliError("plan", str(exc)) from exc
    spec = load_model(model, allow_network=_network())
    result = planner(spec, **plan_kwargs(req), allow_network=_network())
    if as_json:
        _echo_json(to_jsonable(result))
        return
    from .planner import render_answer

    _print_rendered(render_answer(result, width=out.width))


def _print_rendered(rendered: Any) -> None:
    if rendered is None:  # the renderer printed by itself
        return
    if isinstance(rendered, str):
        typer.echo(rendered)
    else:
        out.print(rendered)


@app.command()
def context(
    model: Annotated[str, typer.Argument(help="catalog name, HF id, local dir, config.json or .gguf")],
    gpu: Annotated[list[str] | None, typer.Option("--gpu", help="GPU name (repeatable)")] = None,
    counts: Annotated[str, typer.Option("--counts", help="GPU counts, comma-separated")] = "1,2,4,8",
    kv_cache_dtype: Annotated[str, typer.Option("--kv-cache-dtype", help="comma-separated")] = "auto,fp8",
    vllm_version: Annotated[str | None, typer.Option("--vllm-version")] = None,
    quantization: Annotated[str | None, typer.Option("--quantization")] = None,
    platform: Annotated[str, typer.Option("--platform", help="linux (default) or wsl: every card's whole board")
                        ] = "linux",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Longest context and max concurrency per GPU x count x KV dtype (per layer kind, per vLLM version)."""
    from . import load_model
    from .api.service import to_jsonable
    from .planner import context_table, render_context_table

    try:
        ns = [int(x) for x in counts.split(",") if x.strip()]
    except ValueError as exc:
        raise CliError("counts", f"comma-separated integers, got {counts!r}") from exc
    spec = load_model(model, allow_network=_network())
    table = context_table(spec, gpus=gpu or None, counts=ns, kv_dtypes=[k.strip() for k in kv_cache_dtype.split(",")],
                          vllm_version=vllm_version, quantization=quantization, platform=platform)
    if as_json:
        _echo_json(to_jsonable(table))
    else:
        out.print(render_context_table(table, width=out.width))


@app.command()
def cost(
    gpu: Annotated[str, typer.Option("--gpu", help="GPU name")],
    hours: Annotated[list[float], typer.Argument(help="hours of GPU time, e.g. 10 50 100")],
    num_gpus: Annotated[int, typer.Option("--num-gpus", min=1)] = 1,
    price: Annotated[float | None, typer.Option("--price", help="USD per GPU-hour (default: the catalog's)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What N hours of GPU time cost (e.g. a fine-tuning run), from catalog prices or --price."""
    from .planner import gpu_time_cost

    rows = [gpu_time_cost(gpu, num_gpus, h, price) for h in hours]
    if as_json:
        _echo_json([r.to_dict() for r in rows])
        return
    for r in rows:
        total = "unknown (no price in the catalog; pass --price)" if r.total_usd is None else f"${r.total_usd:,.2f}"
        out.print(f"{r.num_gpus} x {r.gpu} for {r.hours:g} h: {total}")
    if rows and rows[0].price_usd_per_gpu_hour is not None:
        out.print(Text(f"at ${rows[0].price_usd_per_gpu_hour:g}/GPU-hour ({rows[0].price_source}"
                       f"{', ' + rows[0].price_date if rows[0].price_date else ''}); rental only", style="dim"))


@app.command()
def validate(
    file: Annotated[str, typer.Argument(help="JSONL of vLLM start-up logs with their configurations")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Compare gpuplan with real vLLM start-up logs, per field."""
    try:
        from .validation import render, validate_file  # type: ignore[attr-defined]
    except ImportError as exc:
        raise CliError("validate", f"the validation module is not available in this build ({exc})") from exc
    if not os.path.isfile(file):
        raise CliError("file", f"{file!r} does not exist")
    result = validate_file(file)
    if as_json:
        _echo_json(result)
    else:
        _print_rendered(render(result))


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
) -> None:
    """Run the REST API and the web page (/ui) with uvicorn."""
    import uvicorn

    uvicorn.run("gpuplan.api.app:app", host=host, port=port, log_level="info")


def _one_line(field: str, message: str) -> None:
    # One line, whatever the message held: a multi-line error would read like a traceback.
    text = f"error: {field}: {message}" if field else f"error: {message}"
    sys.stderr.write(" ".join(text.split()) + "\n")


def _is(exc: BaseException, name: str) -> bool:
    # Typer >= 0.20 ships its own copy of click, so match click's exception classes by name.
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the Typer app and turns every failure into one line on stderr."""
    try:
        app(args=argv, prog_name="gpuplan", standalone_mode=False)
    except GpuplanError as exc:
        _one_line(exc.field, exc.message + (f" (accepted: {', '.join(exc.accepted[:25])})" if exc.accepted else ""))
        sys.exit(2)
    except CliError as exc:
        _one_line(exc.field, exc.message)
        sys.exit(2)
    except ValidationError as exc:
        err = _validation_line(exc)
        _one_line(err.field, err.message)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if _is(exc, "NoArgsIsHelpError"):  # bare `gpuplan`: the help is the answer
            typer.echo(exc.format_message())  # type: ignore[attr-defined]
            sys.exit(0)
        if _is(exc, "Exit"):
            sys.exit(getattr(exc, "exit_code", 0))
        if _is(exc, "Abort"):
            _one_line("", "aborted")
            sys.exit(130)
        if _is(exc, "BadParameter"):
            hint = getattr(exc, "param_hint", None)
            param = getattr(exc, "param", None)
            name = hint if isinstance(hint, str) else (param.opts[0] if param is not None and param.opts else "option")
            message = "is required" if _is(exc, "MissingParameter") else getattr(exc, "message", str(exc))
            _one_line(name.strip("'\""), message or str(exc))
            sys.exit(2)
        if _is(exc, "ClickException"):  # usage errors: unknown option, missing argument
            _one_line("usage", exc.format_message())  # type: ignore[attr-defined]
            sys.exit(2)
        if os.environ.get("GPUPLAN_DEBUG"):  # a bug: still one line; the traceback only on request
            raise
        _one_line("internal", f"{type(exc).__name__}: {exc} (a bug in gpuplan; GPUPLAN_DEBUG=1 shows the traceback)")
        sys.exit(1)


if __name__ == "__main__":
    main()
