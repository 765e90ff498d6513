"""Rich tables the CLI prints. Rendering only: every figure comes from the PlanResult / ContextTable."""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .config import multi_node_note, nodes
from .types import ContextTable, PlanResult

# Below this many terminal columns the ranked table drops its row numbers, memory split and $/1M, and both
# tables space their columns tighter.
WIDE = 120


def _num(x: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if x is None else fmt.format(x)


def _gpus(num_gpus: int, gpu: str) -> str:
    """'2 x H100 SXM5 80GB': table cells drop the vendor word every row would repeat; '16 x H100 SXM5 80GB (2
    nodes)' past one node."""
    across = f" ({nodes(num_gpus)} nodes)" if nodes(num_gpus) > 1 else ""
    return f"{num_gpus} x {gpu.removeprefix('NVIDIA ')}{across}"


def _ctx(o, compact: bool = False) -> str:
    """'29,920 (22,384 cold)': a restart's longest context, and a first start's where it is shorter; a narrow
    terminal gets '29,920 c' and the caption says what the mark means."""
    if o.first_start_max_model_len is None:
        return _num(o.max_model_len)
    if compact:
        return f"{_num(o.max_model_len)} c"
    return f"{_num(o.max_model_len)} ({o.first_start_max_model_len:,} cold)"


COLD_NOTE = "N (M cold): restarts fit N tokens, a first start on an empty torch.compile cache M"
COLD_MARK = "c: a first start on an empty torch.compile cache fits less (--json: first_start_max_model_len)"


def _short_label(label: str, notes: dict[str, str]) -> str:
    """'gptq int4 (assumed pre-quantized checkpoint)' -> 'gptq int4 *', the note kept once for the caption."""
    head, sep, note = label.partition(" (")
    if not sep:
        return label
    mark = notes.setdefault(note.rstrip(")"), "*" * (len(notes) + 1))
    return f"{head} {mark}"


def _caption(notes: dict[str, str], *more: str) -> str | None:
    return "; ".join([f"{mark} {note}" for note, mark in notes.items()] + list(more)) or None


def _table(title: str, header: list[tuple[str, str]], rows: list[tuple[str, ...]], caption: str | None,
           **kw) -> Table:
    """Right-justified columns hold numbers: they keep their widest cell, so a narrow terminal wraps the
    words around them instead of cutting digits ('131,0...')."""
    t = Table(title=title, caption=caption, **kw)
    for i, (name, just) in enumerate(header):
        widest = max([Text.from_markup(r[i]).cell_len for r in rows] + [1])
        if just == "right":
            widest = max(widest, *(len(word) for word in name.split()))
        t.add_column(name, justify=just, min_width=widest if just == "right" else min(widest, 8))  # type: ignore[arg-type]
    for r in rows:
        t.add_row(*r)
    return t


def render_answer(result: PlanResult, limit: int = 20, width: int = WIDE) -> Group:
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
            # A lowered gpu_memory_utilization is part of the answer: the default would not start.
            parts += [Text(w, style="yellow") for w in o.warnings if w.startswith("gpu_memory_utilization ")]
        else:
            parts.append(Text(f"{what}: does not fit: {o.reason}", style="bold red"))
            if req.nearest:
                notes: dict[str, str] = {}
                rows = [(n.change, _gpus(n.option.num_gpus, n.option.gpu), _short_label(n.option.quantization_label, notes),
                         n.option.kv_cache_dtype, _ctx(n.option), f"{n.option.max_concurrency:.2f}",
                         _num(n.option.cost_per_hour_usd, "{:.2f}")) for n in req.nearest]
                header = [("change", "left"), ("GPUs", "left"), ("weights", "left"), ("KV", "left"),
                          ("max ctx", "right"), ("concurrency", "right"), ("$/h", "right")]
                cold = [COLD_NOTE] if any(n.option.first_start_max_model_len is not None for n in req.nearest) else []
                near = _table("nearest deployments that fit (each re-checked by the engine)", header, rows,
                              _caption(notes, *cold), title_justify="left")
                parts.append(near)
            else:
                parts.append(Text("no nearby deployment fits", style="red"))
    parts.append(render_plan(result, limit, compact=width < WIDE))
    best = next((o for o in result.options if o.fits), None)
    if best is not None:
        parts.append(Text(f"best option: {_gpus(best.num_gpus, best.gpu)}, {best.quantization_label}, KV "
                          f"{best.kv_cache_dtype}\n{best.commands.vllm}", style="bold"))
        if (note := multi_node_note(best.num_gpus)) is not None:
            parts.append(Text(note, style="yellow"))
    return Group(*parts)


def render_plan(result: PlanResult, limit: int = 20, only_fitting: bool = False, compact: bool = False) -> Table:
    ctx = f"{result.max_model_len:,} tokens" if result.max_model_len else "the model's longest context"
    shown = [o for o in result.options if o.fits or not only_fitting][:limit]
    notes: dict[str, str] = {}
    columns: list[tuple[str, str, object]] = [
        ("#", "right", None), ("GPUs", "left", lambda o: _gpus(o.num_gpus, o.gpu)), ("TP x PP", "left", lambda o: f"{o.tensor_parallel_size} x "
                                                                             f"{o.pipeline_parallel_size}"),
        ("weights", "left", lambda o: _short_label(o.quantization_label, notes)), ("KV", "left", lambda o: o.kv_cache_dtype),
        ("fits", "left", lambda o: "[green]yes[/]" if o.fits else "[red]no[/]"),
        ("max ctx", "right", lambda o: _ctx(o, compact)), ("concurrency", "right", lambda o: f"{o.max_concurrency:.2f}"),
        ("weights GiB", "right", lambda o: f"{o.weights_bytes / 2**30:.2f}"),
        ("KV GiB", "right", lambda o: f"{o.kv_cache_bytes / 2**30:.2f}"),
        ("decode tok/s", "right", lambda o: _num(o.throughput.decode_tokens_per_s)),
        ("$/h", "right", lambda o: _num(o.cost_per_hour_usd, "{:.2f}")),
        ("$/1M out", "right", lambda o: _num(o.cost_per_1m_output_tokens_usd, "{:.3f}")),
    ]
    if compact:  # the memory split and $/1M go, and the headers shrink to their numbers' width
        short = {"max ctx": "ctx", "concurrency": "conc", "decode tok/s": "tok/s"}
        columns = [(short.get(name, name), just, get) for name, just, get in columns
                   if name not in ("#", "weights GiB", "KV GiB", "$/1M out")]
    rows = [tuple(str(i) if get is None else get(o) for _, _, get in columns)  # type: ignore[operator]
            for i, o in enumerate(shown, 1)]
    more = ["throughput is a roofline estimate" if compact else "throughput and $/1M tokens are roofline estimates"]
    if any(o.first_start_max_model_len is not None for o in shown):
        more.append(COLD_MARK if compact else COLD_NOTE)
    return _table(f"{result.model}, vLLM {result.vllm_version}: {ctx}, {result.concurrency} concurrent",
                  [(name, just) for name, just, _ in columns], rows, _caption(notes, *more),
                  **({"box": box.SIMPLE_HEAD} if compact else {}))


def _length(n: int) -> str:
    """Column heads for context lengths as vLLM's --max-model-len reads them: 8K = 8,192, 1M = 1,048,576,
    10m = 10,000,000 (upper case binary, lower case decimal)."""
    for unit, size in (("M", 1 << 20), ("K", 1 << 10), ("m", 10**6), ("k", 10**3)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return f"{n:,}"


def render_context_table(table: ContextTable, width: int = WIDE) -> Table:
    header = [("GPUs", "left"), ("weights", "left"), ("KV", "left"), ("env", "left"), ("max ctx", "right")]
    header += [(f"@{_length(L)}", "right") for L in table.lengths]
    notes: dict[str, str] = {}
    envs: dict[str, str] = {}  # an env setting is long and repeats: a mark in the cell, the setting in the caption
    rows = []
    for r in table.rows:
        env = " ".join(f"{k}={v}" for k, v in r.env)
        mark = envs.setdefault(env, f"e{len(envs) + 1}") if env else "-"
        rows.append((_gpus(r.num_gpus, r.gpu), _short_label(r.quantization_label, notes), r.kv_cache_dtype, mark,
                     _num(r.max_model_len), *[("-" if c is None else f"{c:.2f}") for _, c in r.concurrency]))
    caption = _caption(notes, *(f"{mark}: {text}" for text, mark in envs.items()),
                       "@L: max concurrency, requests of L tokens at once (K = 1,024 tokens, k = 1,000, as vLLM reads them)",
                       *(f"not shown: {s}" for s in table.skipped))
    # One column per length: in a narrow terminal only two spaces between columns, so seven lengths fit in 100.
    narrow = {"box": box.SIMPLE_HEAD, "pad_edge": False, "collapse_padding": True} if width < WIDE else {}
    return _table(f"{table.model}: longest context and max concurrency (vLLM {table.vllm_version})", header, rows,
                  caption, **narrow)
