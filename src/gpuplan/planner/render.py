"""Rich tables the CLI prints. Rendering only: every figure comes from the PlanResult / ContextTable."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from .types import ContextTable, PlanResult


def _num(x: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if x is None else fmt.format(x)


def render_answer(result: PlanResult, limit: int = 20) -> Group:
    """What the CLI prints: the verdict on the requested deployment and its nearest fits, the ranked
    options, and the launch command of the best one."""
    parts: list = []
    req = result.requested
    if req is not None:
        o = req.option
        what = (f"requested: {o.num_gpus} x {o.gpu}, {o.quantization_label}, KV {o.kv_cache_dtype}, "
                f"max_model_len {o.launch_max_model_len:,}")
        if o.fits:
            parts.append(Text(f"{what}: fits ({o.max_concurrency:.2f}x concurrency)", style="bold green"))
        else:
            parts.append(Text(f"{what}: does not fit: {o.reason}", style="bold red"))
            if req.nearest:
                near = Table(title="nearest deployments that fit (each re-checked by the engine)", title_justify="left")
                for col in ("change", "GPUs", "weights", "KV", "max ctx", "concurrency", "$/h"):
                    near.add_column(col)
                for n in req.nearest:
                    x = n.option
                    near.add_row(n.change, f"{x.num_gpus} x {x.gpu}", x.quantization_label, x.kv_cache_dtype,
                                 _num(x.max_model_len), f"{x.max_concurrency:.2f}", _num(x.cost_per_hour_usd, "{:.2f}"))
                parts.append(near)
            else:
                parts.append(Text("no nearby deployment fits", style="red"))
    parts.append(render_plan(result, limit))
    best = next((o for o in result.options if o.fits), None)
    if best is not None:
        parts.append(Text(f"best option: {best.num_gpus} x {best.gpu}, {best.quantization_label}, KV "
                          f"{best.kv_cache_dtype}\n{best.commands.vllm}", style="bold"))
    return Group(*parts)


def render_plan(result: PlanResult, limit: int = 20, only_fitting: bool = False) -> Table:
    ctx = f"{result.max_model_len:,} tokens" if result.max_model_len else "the model's maximum context"
    t = Table(title=f"{result.model} on vLLM {result.vllm_version}: {ctx}, {result.concurrency} concurrent "
                    "request(s)", caption="throughput and $/1M tokens are roofline estimates")
    for col, just in (("#", "right"), ("GPU", "left"), ("GPUs", "right"), ("TP x PP", "left"),
                      ("weights", "left"), ("KV", "left"), ("fits", "left"), ("max ctx", "right"),
                      ("concurrency", "right"), ("weights GiB", "right"), ("KV GiB", "right"),
                      ("decode tok/s", "right"), ("$/h", "right"), ("$/1M out", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    shown = [o for o in result.options if o.fits or not only_fitting][:limit]
    for i, o in enumerate(shown, 1):
        t.add_row(str(i), o.gpu, str(o.num_gpus), f"{o.tensor_parallel_size} x {o.pipeline_parallel_size}",
                  o.quantization_label, o.kv_cache_dtype, "[green]yes[/]" if o.fits else "[red]no[/]",
                  _num(o.max_model_len), f"{o.max_concurrency:.2f}", f"{o.weights_bytes / 2**30:.2f}",
                  f"{o.kv_cache_bytes / 2**30:.2f}", _num(o.throughput.decode_tokens_per_s),
                  _num(o.cost_per_hour_usd, "{:.2f}"), _num(o.cost_per_1m_output_tokens_usd, "{:.3f}"))
    return t


def render_context_table(table: ContextTable) -> Table:
    t = Table(title=f"{table.model}: longest context and max concurrency (vLLM {table.vllm_version})")
    for col in ("GPU", "GPUs", "weights", "KV", "env", "max ctx"):
        t.add_column(col)
    for L in table.lengths:
        t.add_column(f"conc @ {L:,}", justify="right")
    for r in table.rows:
        env = " ".join(f"{k}={v}" for k, v in r.env) or "-"
        t.add_row(r.gpu, str(r.num_gpus), r.quantization_label, r.kv_cache_dtype, env, _num(r.max_model_len),
                  *[("-" if c is None else f"{c:.2f}") for _, c in r.concurrency])
    return t
