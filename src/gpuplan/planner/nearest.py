"""Judge a named deployment and, when it does not fit, find the nearest ones that do.

Each suggestion changes one thing (context, KV dtype, the hybrid KV switch, GPU count, weight format,
GPU model) and is re-run through the engine; only those the engine says fit are returned.
"""

from __future__ import annotations

from dataclasses import replace

from ..engines.vllm.estimate import declares_chunked_attention
from ..engines.vllm.profiles import get_profile
from ..gpus import GPU
from .config import WeightFormat, data, weight_formats
from .search import (
    CHUNKED_ENV,
    Candidate,
    Context,
    evaluate,
    format_allowed,
    kv_allowed,
    rank_key,
    resolve_gpus,
    split,
    with_env,
)
from .types import Nearest, Option, Requested

# Bisection stops when the interval is this narrow: vLLM's KV blocks are 16+ tokens, and a few hundred
# tokens of context do not change the advice.
_LEN_STEP = 256


def judge(ctx: Context, gpu: GPU, num_gpus: int, fmt: WeightFormat, kv: str, max_model_len: int | None, *,
          max_gpus: int, splits: dict[int, tuple[int, int] | None]) -> Requested:
    s = split(ctx.spec, num_gpus, splits)
    tp, pp = s if s is not None else (num_gpus, 1)
    base = Candidate(gpu, num_gpus, tp, pp, fmt, kv, ctx.env)
    # The deployment as named: vLLM's default context is the model's maximum, so no shrinking here.
    opt = evaluate(ctx, base, max_model_len, shrink=False)
    if opt.fits:
        return Requested(opt, ())
    near: list[Nearest] = []

    def add(change: str, o: Option | None) -> None:
        if o is not None and o.fits:
            near.append(Nearest(change, o))

    add("shorter context", _shorter_context(ctx, base, opt))
    if kv == "auto" and kv_allowed(gpu, "fp8"):
        add("fp8 KV cache", evaluate(ctx, replace(base, kv="fp8"), max_model_len, shrink=False))
    chunked = declares_chunked_attention(ctx.spec, get_profile(ctx.vllm_version))
    if chunked and dict(base.env).get(CHUNKED_ENV) != "1":
        o = evaluate(ctx, with_env(base, CHUNKED_ENV, "1"), max_model_len, shrink=False)
        add(f"{CHUNKED_ENV}=1 (hybrid KV cache manager on)", o)
    add("more GPUs", _more_gpus(ctx, base, max_model_len, max_gpus, splits))
    add("lower-bit weights", _lower_bits(ctx, base, max_model_len))
    add("another GPU", _other_gpu(ctx, base, max_model_len))
    return Requested(opt, tuple(near))


def _shorter_context(ctx: Context, base: Candidate, opt: Option) -> Option | None:
    fit = opt.max_model_len
    if not fit:
        return None
    o = evaluate(ctx, base, fit, shrink=False, chosen=True)
    if o.fits or ctx.concurrency == 1:
        return o
    # More than one request at once: the longest length at which the KV cache holds them all.
    lo, hi, best = 1, fit, None
    while hi - lo > _LEN_STEP:
        mid = (lo + hi) // 2
        o = evaluate(ctx, base, mid, shrink=False)
        if o.fits:
            lo, best = mid, o
        else:
            hi = mid
    return best


def _more_gpus(ctx: Context, base: Candidate, L: int | None, max_gpus: int,
               splits: dict[int, tuple[int, int] | None]) -> Option | None:
    for n in data()["gpu_counts"]:
        if n <= base.num_gpus or n > max_gpus:
            continue
        s = split(ctx.spec, n, splits)
        if s is None:
            continue
        o = evaluate(ctx, replace(base, num_gpus=n, tp=s[0], pp=s[1]), L, shrink=False)
        if o.fits:
            return o
    return None


def _lower_bits(ctx: Context, base: Candidate, L: int | None) -> Option | None:
    if ctx.spec.quant is not None:
        return None  # a quantized checkpoint is served as stored
    for fmt in sorted(weight_formats(), key=lambda f: -f.bits):
        if fmt.bits >= base.fmt.bits or not format_allowed(base.gpu, fmt):
            continue
        for kv in dict.fromkeys((base.kv, "fp8")):
            if not kv_allowed(base.gpu, kv):
                continue
            o = evaluate(ctx, replace(base, fmt=fmt, kv=kv), L, shrink=False)
            if o.fits:
                return o
    return None


def _other_gpu(ctx: Context, base: Candidate, L: int | None) -> Option | None:
    found = []
    for gpu in resolve_gpus(None):
        if gpu == base.gpu or not format_allowed(gpu, base.fmt) or not kv_allowed(gpu, base.kv):
            continue
        o = evaluate(ctx, replace(base, gpu=gpu), L, shrink=False)
        if o.fits:
            found.append(o)
    return min(found, key=rank_key) if found else None
