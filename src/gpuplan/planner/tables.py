"""Max context and concurrency tables: one model across GPUs x GPU counts x KV dtypes, per vLLM version.

Each cell is an engine run. For models that declare attention_chunk_size (Llama 4; MiMo-V2-Flash before 0.21) in versions where vLLM keeps
the hybrid KV cache manager off by default, every row is also given with the environment switch on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..engines.vllm.estimate import CHUNKED_ENV, declares_chunked_attention
from ..engines.vllm.profiles import get_profile
from ..model.spec import ModelSpec
from .config import data
from .search import (
    Candidate,
    Refusals,
    format_allowed,
    formats_for,
    kv_allowed,
    make_context,
    resolve_gpus,
    run_engine,
    split,
)
from .types import ContextRow, ContextTable


def context_table(model: str | dict | ModelSpec, gpus: Sequence[str] | str | None = None,
                  counts: Sequence[int] = (1, 2, 4, 8), kv_dtypes: Sequence[str] = ("auto", "fp8"),
                  vllm_version: str | None = None, *, lengths: Sequence[int] | None = None,
                  quantization: str | None = None, gpu_memory_utilization: float | None = None,
                  env: Mapping[str, str] | None = None, platform: str = "linux") -> ContextTable:
    """Longest max_model_len one request can have, and vLLM's max concurrency at a few lengths."""
    ctx = make_context(model, vllm_version=vllm_version, utilization=gpu_memory_utilization, prices=None,
                       concurrency=1, env=env, platform=platform)
    spec = ctx.spec
    top = spec.max_model_len_limit
    lens = tuple(sorted({min(x, top) for x in (lengths or data()["context_table_lengths"])}))
    fmt = formats_for(spec, quantization)[0]
    chunked = declares_chunked_attention(spec, get_profile(vllm_version))
    splits: dict[int, tuple[int, int] | None] = {}
    rows: list[ContextRow] = []
    hybrid_matters: bool | None = None
    refused = Refusals()
    for gpu in resolve_gpus(gpus):
        if not format_allowed(gpu, fmt):
            continue
        for n in counts:
            s = split(spec, n, splits)
            if s is None:
                continue
            for kv in kv_dtypes:
                if not kv_allowed(gpu, kv):
                    continue
                base = Candidate(gpu, n, s[0], s[1], fmt, kv.lower(), ctx.env)
                row = refused.attempt(lambda base=base: _row(ctx, base, lens), base)
                if row is None:
                    continue
                rows.append(row)
                if hybrid_matters is None and chunked and row.hybrid_manager is not None:
                    # Off by default only in some versions; the switch matters when the default left it off.
                    hybrid_matters = not row.hybrid_manager and dict(ctx.env).get(CHUNKED_ENV) != "1"
                if hybrid_matters:
                    on = Candidate(gpu, n, s[0], s[1], fmt, kv.lower(),
                                   tuple(sorted({**dict(ctx.env), CHUNKED_ENV: "1"}.items())))
                    rows.append(_row(ctx, on, lens))
    refused.raise_if_nothing_left(bool(rows))
    return ContextTable(model=ctx.model_ref, vllm_version=get_profile(vllm_version).version, lengths=lens,
                        rows=tuple(rows), skipped=tuple(dict.fromkeys(refused.notes)))


def _row(ctx, c: Candidate, lens: tuple[int, ...]) -> ContextRow:
    _, rep = run_engine(ctx, c, None)  # at the model's own maximum: the engine reports the longest that fits
    longest = rep.max_model_len_fit
    conc: list[tuple[int, float | None]] = []
    for L in lens:
        if longest is None or L > longest:
            conc.append((L, None))  # vLLM refuses to start at this length (weights or one request's KV)
            continue
        _, r = run_engine(ctx, c, L)
        conc.append((L, r.max_concurrency if r.fits else None))
    return ContextRow(gpu=c.gpu.name, num_gpus=c.num_gpus, tensor_parallel_size=c.tp, pipeline_parallel_size=c.pp,
                      quantization_label=c.fmt.label_for(c.gpu.compute_capability, rep.dtype),
                      kv_cache_dtype=c.kv, env=c.env, hybrid_manager=rep.kv.hybrid_manager if rep.kv else None,
                      max_model_len=longest, kv_cache_tokens=rep.kv_cache_tokens, concurrency=tuple(conc),
                      reason=None if rep.fits else rep.reason)
