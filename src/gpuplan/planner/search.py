"""The planner: search GPUs x GPU counts x weight formats x KV dtypes, run the engine on each, rank.

Every memory figure, verdict and context length is the engine's (`engines.vllm.estimate`), re-run per
option; this module only chooses what to run and orders the results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TypeVar

from ..deployment import Deployment, speculative_fields
from ..engines.vllm.estimate import CHUNKED_ENV, LONG_LEN_ENV, PLATFORMS, estimate, request_kv_bytes, resolve
from ..engines.vllm.profiles import get_profile
from ..errors import GpuplanError
from ..gpus import GPU, find_gpu, visible_memory_bytes
from ..model.spec import ModelSpec
from ..quant.methods import ASSUMED_FORMATS
from ..report import MemoryReport
from ..resolve import with_draft
from .commands import LaunchSpec, launch_commands, options_of
from .config import WeightFormat, data, multi_node_note, normalize_quantization, weight_formats
from .cost import normalize_prices, price_of
from .throughput import ActiveParams, active_params, cost_per_1m_tokens, estimate_throughput
from .types import Option, PlanResult, Throughput


@dataclass(frozen=True)
class Candidate:
    gpu: GPU
    num_gpus: int
    tp: int
    pp: int
    fmt: WeightFormat
    kv: str
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Context:
    """What stays fixed over one search: the model (resolved once) and the user's requirements."""

    spec: ModelSpec
    model_ref: str  # what the commands name
    vllm_version: str | None
    utilization: float | None
    prices: Mapping[str, float]
    concurrency: int
    env: tuple[tuple[str, str], ...]
    params: ActiveParams
    platform: str = "linux"  # "wsl": every card shows its whole board (gpus.visible_memory_bytes)
    # Deployment fields every option shares: LoRA slots, the drafter (its draft checkpoint's config read once)
    shared: tuple[tuple[str, object], ...] = ()


@lru_cache(maxsize=32)
def _load_cached(ref: str) -> ModelSpec:
    from ..api_python import load_model

    return load_model(ref)


def load_spec(model: str | dict | ModelSpec) -> ModelSpec:
    """Resolve a model once per process for string references (the search runs hundreds of estimates)."""
    if isinstance(model, str):
        return _load_cached(model.strip())
    from ..api_python import load_model

    return load_model(model)


def _command_ref(model: str | dict | ModelSpec, spec: ModelSpec) -> str:
    # The user's own HF id names the checkpoint they will serve (the catalog may map "-Instruct" to its base).
    if isinstance(model, str) and "/" in model and not model.endswith((".json", ".gguf")):
        return model.strip().split("@", 1)[0]
    return spec.name


def make_context(model: str | dict | ModelSpec, *, vllm_version: str | None, utilization: float | None,
                 prices: Mapping[str, float] | None, concurrency: int,
                 env: Mapping[str, str] | None, platform: str = "linux",
                 lora: tuple[int, int] | None = None, speculative_config: Mapping[str, object] | None = None,
                 allow_network: bool = True) -> Context:
    if concurrency < 1:
        raise GpuplanError("concurrency", f"must be >= 1, got {concurrency}")
    if platform not in PLATFORMS:
        raise GpuplanError("platform", f"unknown platform {platform!r}", accepted=PLATFORMS)
    get_profile(vllm_version)  # an unknown version fails here, once, with the accepted list
    spec = load_spec(model)
    shared: dict[str, object] = {}
    if lora:
        shared.update(enable_lora=True, max_loras=lora[0], max_lora_rank=lora[1])
    if speculative_config:
        drafted = with_draft(Deployment(**speculative_fields(dict(speculative_config))), allow_network)
        shared.update((name, getattr(drafted, name)) for name in speculative_fields(None))
    return Context(spec=spec, model_ref=_command_ref(model, spec), vllm_version=vllm_version,
                   utilization=utilization, prices=normalize_prices(prices), concurrency=concurrency,
                   env=tuple(sorted((env or {}).items())), params=active_params(spec), platform=platform,
                   shared=tuple(shared.items()))


# ----------------------------------------------------------------------------- the search space


def resolve_gpus(gpus: Sequence[str] | str | None) -> list[GPU]:
    names = [gpus] if isinstance(gpus, str) else list(gpus or data()["default_gpus"])
    out: list[GPU] = []
    for name in names:
        g = find_gpu(name)
        if g not in out:
            out.append(g)
    return out


def split(spec: ModelSpec, n: int, cache: dict[int, tuple[int, int] | None]) -> tuple[int, int] | None:
    """(TP, PP) for n GPUs: all TP when the model splits that way, else the widest TP with PP stages. Over more
    GPUs than a node holds, TP stays within a node and PP spans the nodes."""
    if n in cache:
        return cache[n]
    found = None
    per_node = data()["gpus_per_node"]
    pp = n // per_node if n > per_node and n % per_node == 0 else 1
    while pp <= n and found is None:
        if n % pp == 0:
            try:  # the engine's own rules: heads divisible, KV heads divide or are divided, padded vocab
                resolve(spec, Deployment(gpu_memory_bytes=1 << 30, tensor_parallel_size=n // pp,
                                         pipeline_parallel_size=pp, max_model_len=1))
                found = (n // pp, pp)
            except GpuplanError as exc:
                if exc.field not in ("tensor_parallel_size", "pipeline_parallel_size"):
                    raise
        pp *= 2
    cache[n] = found
    return found


def formats_for(spec: ModelSpec, quantization: str | None) -> list[WeightFormat]:
    """The weight formats to try: the checkpoint's own when it is quantized, else every format in the data
    file (or only the one asked for)."""
    min_cc = data()["checkpoint_min_cc"]
    native = next(f for f in weight_formats() if f.key is None)
    if spec.quant is not None:
        own = WeightFormat(key=None, label=f"{spec.quant.method} {spec.quant.bits}-bit (checkpoint)",
                           bits=spec.quant.bits, kind="checkpoint", flag=None,
                           min_cc=min_cc.get(spec.quant.method, 0.0))
        if quantization is None:
            return [own]
        key = normalize_quantization(quantization)
        if key is None or key == spec.quant.method:
            return [own]
        raise GpuplanError("quantization", f"this checkpoint is already quantized ({spec.quant.method}); vLLM "
                           "serves it in that format", accepted=[spec.quant.method])
    if quantization is None:
        return list(weight_formats())
    key = normalize_quantization(quantization)
    if key is None:
        return [native]
    for f in weight_formats():
        if f.key == key:
            return [f]
    if key not in ASSUMED_FORMATS:
        raise GpuplanError("quantization", f"unsupported quantization {quantization!r}",
                           accepted=sorted({*ASSUMED_FORMATS, "bf16", "int4"}))
    q = ASSUMED_FORMATS[key]
    online = q.source == "online"
    return [WeightFormat(key=key, label=f"{key} ({'online' if online else 'assumed pre-quantized checkpoint'})",
                         bits=q.bits, kind="online" if online else "assumed", flag=key if online else None,
                         min_cc=0.0)]


def kv_allowed(gpu: GPU, kv: str) -> bool:
    if kv == "auto" or not kv.startswith("fp8"):
        return True
    cc = gpu.compute_capability
    return gpu.fp8_support if cc is None else cc >= data()["kv_fp8_min_cc"]


def format_allowed(gpu: GPU, fmt: WeightFormat) -> bool:
    cc = gpu.compute_capability
    return cc is None or cc >= fmt.min_cc


# ----------------------------------------------------------------------------- one option


def _env_for(ctx: Context, c: Candidate, max_model_len: int | None) -> tuple[tuple[str, str], ...]:
    """A context asked beyond the model's own limit needs vLLM's override; the plan says so in its command."""
    lim = ctx.spec.max_len_limit
    if max_model_len and lim and max_model_len > lim.derived and not any(k == LONG_LEN_ENV for k, _ in c.env):
        return (*c.env, (LONG_LEN_ENV, "1"))
    return c.env


def _deployment(ctx: Context, c: Candidate, max_model_len: int | None,
                utilization: float | None = None) -> Deployment:
    return Deployment(gpu_name=c.gpu.name, gpu_memory_bytes=visible_memory_bytes(c.gpu, ctx.platform),
                      platform=ctx.platform,
                      compute_capability=c.gpu.compute_capability, tensor_parallel_size=c.tp,
                      pipeline_parallel_size=c.pp, gpu_memory_utilization=utilization or ctx.utilization,
                      max_model_len=max_model_len, kv_cache_dtype=c.kv, quantization=c.fmt.key,
                      vllm_version=ctx.vllm_version, env=_env_for(ctx, c, max_model_len), **dict(ctx.shared))


def run_engine(ctx: Context, c: Candidate, max_model_len: int | None,
               utilization: float | None = None) -> tuple[Deployment, MemoryReport]:
    dep = _deployment(ctx, c, max_model_len, utilization)
    rep = estimate(ctx.spec, dep)
    if rep.max_num_seqs < ctx.concurrency:
        # vLLM's default batch is smaller than the requirement: raise it (and the token budget, which vLLM
        # requires to be at least max_num_seqs) and let the engine re-price the larger batch.
        dep = dep.with_(max_num_seqs=ctx.concurrency,
                        max_num_batched_tokens=max(rep.max_num_batched_tokens, ctx.concurrency))
        rep = estimate(ctx.spec, dep)
    return dep, rep


def evaluate(ctx: Context, c: Candidate, max_model_len: int | None, *, shrink: bool, chosen: bool = False) -> Option:
    """Run the engine on one candidate. With `shrink` and no target length, a deployment whose KV cache
    cannot hold the model's full context is re-run at the longest length the engine says fits. `chosen`: the
    planner, not the user, picked max_model_len (so did a shrink)."""
    dep, rep = run_engine(ctx, c, max_model_len)
    notes: tuple[str, ...] = ()
    utilization = None
    if ctx.utilization is None and not rep.fits and rep.fails_after_kv:
        lowered = _room_outside_budget(ctx, c, max_model_len, rep)
        if lowered is not None:
            default = rep.gpu_memory_utilization
            (dep, rep), utilization = lowered
            notes = (f"gpu_memory_utilization {utilization:g}, not vLLM's default {default:g}: at the default "
                     "the memory left outside the budget is too small for what vLLM allocates once the KV cache is "
                     "sized (the cache itself on V0, CUDA graphs, the sampler warm-up)",)
    floor = min(data()["min_context"], ctx.spec.max_model_len_limit)
    if shrink and max_model_len is None and not rep.fits and rep.max_model_len_fit and \
            rep.max_model_len_fit >= floor:
        dep, rep = run_engine(ctx, c, rep.max_model_len_fit, utilization)
        chosen = True
    # The longest length a restart fits leaves nothing for a first start's compile scratch: a length the
    # planner picks is one the first start, on an empty torch.compile cache, fits too.
    first = rep.first_start
    if chosen and first is not None and not first["fits"] and (first["max_model_len_fit"] or 0) >= floor:
        restart_len = rep.max_model_len
        dep, rep = run_engine(ctx, c, first["max_model_len_fit"], utilization)
        notes += (f"launched at {rep.max_model_len:,} tokens, the longest a first start on an empty torch.compile "
                  f"cache fits; once ~/.cache/vllm holds this command's compile, restarts fit {restart_len:,}",)
    return _option(ctx, c, dep, rep, notes)


def _room_outside_budget(ctx: Context, c: Candidate, max_model_len: int | None,
                         rep: MemoryReport) -> tuple[tuple[Deployment, MemoryReport], float] | None:
    """vLLM's own remedy for running out after the KV cache took its budget: the highest gpu_memory_utilization,
    in hundredths and at most 0.2 below the default, that leaves room outside the budget for what comes after
    (V0's cache allocation, CUDA graphs, the sampler warm-up; what fails there only eases as the budget shrinks,
    so a bisection finds it). None: none does."""
    top = round(rep.gpu_memory_utilization * 100)
    lo, hi, found = top - 20, top - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        dep, got = run_engine(ctx, c, max_model_len, mid / 100)
        if got.fails_after_kv:
            hi = mid - 1
        else:
            found, lo = ((dep, got), mid / 100), mid + 1
    return found


def _option(ctx: Context, c: Candidate, dep: Deployment, rep: MemoryReport, notes: tuple[str, ...] = ()) -> Option:
    L = rep.max_model_len
    conc = rep.max_concurrency
    fits = rep.fits and conc >= ctx.concurrency
    reason = rep.reason
    if rep.fits and not fits:
        reason = (f"vLLM starts, but its KV cache holds {conc:.2f} requests of {L} tokens at once, fewer than "
                  f"the {ctx.concurrency} asked for")
    env = dep.env
    price, source, _ = price_of(c.gpu, ctx.prices)
    per_hour = None if price is None else round(price * c.num_gpus, 4)
    throughput = Throughput(None, None, None, 0, data()["throughput"]["label"])
    if fits:
        batch = max(1, min(math.floor(conc), rep.max_num_seqs))
        kv_req = request_kv_bytes(ctx.spec, dep, L) if rep.kv else 0
        fp8_compute = c.fmt.key == "fp8" and (c.gpu.compute_capability or 0) >= (c.fmt.native_cc or 0)
        throughput = estimate_throughput(c.gpu, num_gpus=c.num_gpus, pp=c.pp, weights_bytes=rep.weights_bytes,
                                         kv_request_bytes=kv_req, batch=batch, params=ctx.params,
                                         fp8_compute=fp8_compute)
    warnings = [*notes, *rep.warnings]
    if (note := multi_node_note(c.num_gpus)) is not None:
        warnings.append(note)
    if c.fmt.assumed:
        warnings.append(f"{c.fmt.label}: serve a {c.fmt.key} checkpoint of this model; the commands name a "
                        "placeholder path (/path/to/...) for it")
    cc = c.gpu.compute_capability
    if c.kv != "auto" and cc is not None and cc < data()["kv_fp8_native_cc"]:
        warnings.append(data()["kv_fp8_note"])
    if price is None:
        warnings.append(f"{c.gpu.name}: {source}")
    default_seqs = dep.max_num_seqs is None
    first = rep.first_start
    first_len = None
    if first is not None and (first["max_model_len_fit"] or 0) < (rep.max_model_len_fit or 0):
        first_len = first["max_model_len_fit"] or 0
    launch = LaunchSpec(model=ctx.model_ref, tensor_parallel_size=c.tp, pipeline_parallel_size=c.pp,
                        max_model_len=L, gpu_memory_utilization=rep.gpu_memory_utilization, kv_cache_dtype=c.kv,
                        quantization_flag=c.fmt.flag, assumed_quantization=c.fmt.key if c.fmt.assumed else None,
                        max_num_seqs=None if default_seqs else rep.max_num_seqs,
                        max_num_batched_tokens=rep.max_num_batched_tokens,
                        pin_max_num_batched_tokens=not default_seqs, vllm_version=rep.engine_version, env=env,
                        options=options_of(dep))
    return Option(
        gpu=c.gpu.name, num_gpus=c.num_gpus, tensor_parallel_size=c.tp, pipeline_parallel_size=c.pp,
        quantization=c.fmt.key, quantization_label=c.fmt.label_for(cc, rep.dtype),
        assumed_checkpoint=c.fmt.assumed, kv_cache_dtype=c.kv, env=env, fits=fits, reason=reason,
        launch_max_model_len=L, max_model_len=rep.max_model_len_fit, max_concurrency=conc,
        max_num_seqs=rep.max_num_seqs, kv_cache_tokens=rep.kv_cache_tokens, weights_bytes=rep.weights_bytes,
        activation_bytes=rep.activation_peak_bytes, non_torch_bytes=rep.non_torch_bytes,
        cudagraph_bytes=rep.cudagraph_bytes, kv_cache_bytes=rep.available_kv_cache_bytes, gpu_memory_bytes=rep.gpu_memory_bytes or 0,
        gpu_memory_utilization=rep.gpu_memory_utilization, vllm_version=rep.engine_version,
        throughput=throughput, cost_per_hour_usd=per_hour,
        cost_per_1m_output_tokens_usd=cost_per_1m_tokens(per_hour, throughput.decode_tokens_per_s),
        price_source=source, commands=launch_commands(launch), warnings=tuple(dict.fromkeys(warnings)),
        first_start_max_model_len=first_len,
    )


# ----------------------------------------------------------------------------- ranking


def rank_key(o: Option) -> tuple:
    """Fitting first, fewest GPUs, cheapest per hour (unknown price last), then the longest context and the
    most concurrency; ties go to the more precise weights and KV cache."""
    bits = 16 if o.quantization is None else (ASSUMED_FORMATS[o.quantization].bits
                                               if o.quantization in ASSUMED_FORMATS else 8)
    return (not o.fits, o.num_gpus, o.cost_per_hour_usd is None, o.cost_per_hour_usd or 0.0,
            -(o.max_model_len or 0), -o.max_concurrency, -bits, o.kv_cache_dtype != "auto", o.gpu)


# ----------------------------------------------------------------------------- plan


def candidates(ctx: Context, gpus: Iterable[GPU], counts: Iterable[int], formats: Sequence[WeightFormat],
               kv_dtypes: Sequence[str], splits: dict[int, tuple[int, int] | None],
               skipped: list[str]) -> list[Candidate]:
    out = []
    counts = list(counts)
    for n in counts:
        if split(ctx.spec, n, splits) is None:
            skipped.append(f"{n} GPUs: no tensor/pipeline split of this model over {n} GPUs is valid")
    for gpu in gpus:
        for n in counts:
            s = splits[n]
            if s is None:
                continue
            for fmt in formats:
                if not format_allowed(gpu, fmt):
                    skipped.append(f"{gpu.name}: {fmt.key or fmt.label} needs compute capability >= "
                                   f"{fmt.min_cc} (vLLM has no kernel below it)")
                    continue
                for kv in kv_dtypes:
                    if not kv_allowed(gpu, kv):
                        skipped.append(f"{gpu.name}: {kv} KV cache needs compute capability >= "
                                       f"{data()['kv_fp8_min_cc']}")
                        continue
                    out.append(Candidate(gpu, n, s[0], s[1], fmt, kv, ctx.env))
    return out


T = TypeVar("T")

# Errors that refuse one combination of GPU, weight format, KV dtype or the block size it implies, not the model.
CANDIDATE_FIELDS = frozenset({"gpu", "kv_cache_dtype", "block_size", "quantization"})


@dataclass
class Refusals:
    """The combinations a model's own backend refuses (a GPU, a KV dtype, a block layout): the others still
    answer, and these are named with the reason."""

    errors: list[GpuplanError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def attempt(self, run: Callable[[], T], c: Candidate) -> T | None:
        """run(); None when the model refuses combination `c` (any other error propagates)."""
        try:
            return run()
        except GpuplanError as exc:
            if exc.field not in CANDIDATE_FIELDS:
                raise
            self.errors.append(exc)
            self.notes.append(f"{c.gpu.name}, {c.fmt.key or c.fmt.label} weights, {c.kv} KV: {exc.message}")
            return None

    def raise_if_nothing_left(self, answered: bool) -> None:
        """With every combination refused, the model's own refusal is the answer."""
        if self.errors and not answered:
            raise self.errors[0]


def plan(model: str | dict | ModelSpec, *, gpus: Sequence[str] | str | None = None, num_gpus: int | None = None,
         max_gpus: int = 8, quantization: str | None = None, kv_cache_dtype: str | None = None,
         max_model_len: int | None = None, concurrency: int = 1, vllm_version: str | None = None,
         prices: Mapping[str, float] | None = None, gpu_memory_utilization: float | None = None,
         env: Mapping[str, str] | None = None, platform: str = "linux",
         lora: tuple[int, int] | None = None, speculative_config: Mapping[str, object] | None = None,
         allow_network: bool = True) -> PlanResult:
    """Which GPUs, how many, in what weight format and KV dtype serve `model` at `max_model_len` for
    `concurrency` requests; each option re-run through the engine, ranked, with commands and costs.

    `num_gpus` with a single GPU names a deployment: `requested` judges it and lists the nearest options
    that fit. `env` passes vLLM environment variables (e.g. the Llama-4 hybrid-KV switch) to the engine
    and the commands. `prices` (GPU name -> USD per GPU-hour) override the catalog's. `platform` "wsl" sizes
    every card as WSL2 on Windows shows it (its whole board, no peer access). `lora` (max_loras, max_lora_rank):
    every option serves that many LoRA adapter slots (--enable-lora). `speculative_config` is vLLM's: every
    option runs that drafter (a separate draft checkpoint is read once; `allow_network`: from the Hub too).
    """
    if max_gpus < 1:
        raise GpuplanError("max_gpus", f"must be >= 1, got {max_gpus}")
    if num_gpus is not None and num_gpus < 1:
        raise GpuplanError("num_gpus", f"must be >= 1, got {num_gpus}")
    if max_model_len is not None and max_model_len < 1:
        raise GpuplanError("max_model_len", f"must be positive, got {max_model_len}")
    ctx = make_context(model, vllm_version=vllm_version, utilization=gpu_memory_utilization, prices=prices,
                       concurrency=concurrency, env=env, platform=platform, lora=lora,
                       speculative_config=speculative_config, allow_network=allow_network)
    gpu_list = resolve_gpus(gpus)
    counts = [num_gpus] if num_gpus is not None else [n for n in data()["gpu_counts"] if n <= max_gpus]
    formats = formats_for(ctx.spec, quantization)
    kv_dtypes = [kv_cache_dtype.lower()] if kv_cache_dtype else list(data()["kv_cache_dtypes"])
    splits: dict[int, tuple[int, int] | None] = {}
    skipped: list[str] = []
    refused = Refusals()
    options = []
    for c in candidates(ctx, gpu_list, counts, formats, kv_dtypes, splits, skipped):
        option = refused.attempt(lambda c=c: evaluate(ctx, c, max_model_len, shrink=True), c)
        if option is not None:
            options.append(option)
    refused.raise_if_nothing_left(bool(options))
    skipped += refused.notes
    options.sort(key=rank_key)
    requested = None
    if num_gpus is not None and len(gpu_list) == 1:
        from .nearest import judge

        requested = judge(ctx, gpu_list[0], num_gpus, formats[0], (kv_dtypes[0]), max_model_len,
                          max_gpus=max(max_gpus, num_gpus), splits=splits)
    notes = [data()["throughput"]["label"]]
    if any(o.assumed_checkpoint for o in options):
        notes.append("int4/int8 options marked 'assumed pre-quantized checkpoint' are sized for such a checkpoint "
                     "of this model; vLLM cannot quantize to them at start-up")
    return PlanResult(model=ctx.model_ref, vllm_version=get_profile(vllm_version).version,
                      max_model_len=max_model_len, concurrency=concurrency, options=tuple(options),
                      requested=requested, skipped=tuple(dict.fromkeys(skipped)), notes=tuple(notes))


def with_env(c: Candidate, key: str, value: str) -> Candidate:
    return replace(c, env=tuple(sorted({**dict(c.env), key: value}.items())))


__all__ = ["plan", "evaluate", "Candidate", "Context", "make_context", "rank_key", "split", "formats_for",
           "CHUNKED_ENV", "with_env"]
