"""Where each vLLM release logs its start-up lines: file, line and format, read from release wheels.

    python tools/vllm/log_lines.py WHEEL_DIR [WHEEL_DIR ...] > src/gpuplan/data/vllm_log_lines.json

Each WHEEL_DIR holds vllm-<version>-*.whl files (`pip download vllm==X --no-deps`). Every module of a wheel is
parsed with `ast`, never imported. A logger call (info, warning, debug, error and their *_once forms) whose
format string holds one of the start-up phrases below is kept with the line the call starts on, which is the
line Python's logging prints ("[gpu_worker.py:298] Available KV cache memory: ..."). Calls that sit at the same
file, line and format in several releases are merged into one entry listing those releases.

`gpuplan validate` uses the table to date a record whose source quotes such lines but does not state the vLLM
version (gpuplan.log_dating).
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from pathlib import Path

# Start-up lines that public logs quote around the memory figures. A format is kept when it contains one.
PHRASES = (
    "Model loading took", "Loading model weights took", "Loading weights took", "Available KV cache memory",
    "KV cache size", "Maximum concurrency for", "# GPU blocks", "# cuda blocks", "# CUDA blocks", "# %s blocks",
    "Memory profiling takes", "model weights take", "total_gpu_memory", "Graph capturing finished",
    "init engine", "LLM engine", "Resolved architecture", "non-default args", "Using max model len",
    "Chunked prefill is enabled", "Starting to load model", "API server version", "torch.compile takes",
    "Compiling a graph for dynamic shape", "Directly load the compiled graph", "CUDA graph pool memory",
    "Estimated CUDA graph memory", "Free memory on device", "Actual usage is", "Capturing cudagraphs",
    "Capturing the model for CUDA graphs", "Capturing CUDA graph", "Dynamo bytecode transform time",
    "Automatically detected platform", "Using Flash Attention backend", "Using FlashAttention",
    "Using FlashInfer", "Using XFormers backend", "Using Triton", "Using FLASH_ATTN", "Using AttentionBackend",
    "Using FLASHINFER", "Using TRITON_ATTN", "Using FLASHMLA", "Using CUTLASS_MLA", "Using TRITON_MLA",
    "Cannot use FlashAttention", "Using model weights format", "Loading safetensors checkpoint shards",
    "Possible choices for", "Setting max_num_batched_tokens", "Defaulting to use",
    "Overriding max cuda graph capture size", "model_tag", "Using default chat sampling params",
    "Using V1 engine", "Falling back to V0", "V1 LLM engine", "V0 LLM engine", "Initializing an LLM engine",
    "Waiting for init message", "Available routes are", "CPU blocks",
)
_LOG_METHODS = {"info", "warning", "debug", "error", "info_once", "warning_once", "debug_once", "warn"}


def _version(name: str) -> tuple[int, ...]:
    m = re.match(r"vllm-(\d+(?:\.\d+)*)(?:\.post(\d+))?", name)
    if not m:
        return ()
    base = tuple(int(x) for x in m.group(1).split("."))
    return base + ((int(m.group(2)),) if m.group(2) else ())


def _label(name: str) -> str:
    m = re.match(r"vllm-(\d+(?:\.\d+)*(?:\.post\d+)?)", name)
    return m.group(1) if m else name


def _format(node: ast.AST) -> str | None:
    """The format string of a logging call's first argument: %-style, f-string ({} for each field) or
    str.format; None when it is not built from literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        left, right = _format(node.left), _format(node.right)
        if isinstance(node.op, ast.Mod):
            return left
        return (left or "{}") + (right or "{}")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return _format(node.func.value)
    return None


def _calls(source: str) -> list[tuple[int, str]]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _LOG_METHODS
                and node.args):
            fmt = _format(node.args[0])
            if fmt and any(p in fmt for p in PHRASES):
                out.append((node.lineno, fmt))
    return out


def _wheel_lines(wheel: Path) -> set[tuple[str, int, str]]:
    found = set()
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if not (name.startswith("vllm/") and name.endswith(".py")):
                continue
            text = z.read(name).decode("utf-8", "replace")
            if not any(p in text for p in PHRASES):
                continue
            found |= {(name.rsplit("/", 1)[-1], line, fmt) for line, fmt in _calls(text)}
    return found


def main(dirs: list[str]) -> None:
    wheels = {}
    for d in dirs:
        for w in Path(d).glob("vllm-*.whl"):
            if _version(w.name):
                wheels.setdefault(_label(w.name), w)
    order = sorted(wheels, key=lambda v: _version(f"vllm-{v}"))
    entries: dict[tuple[str, int, str], list[str]] = {}
    for v in order:
        for key in _wheel_lines(wheels[v]):
            entries.setdefault(key, []).append(v)
        print(f"read {v}", file=sys.stderr)
    out = {
        "_doc": ("Where vLLM releases log their start-up lines: one entry per (file, line, format) with the "
                 "releases that log it there. Built by tools/vllm/log_lines.py from the release wheels listed in "
                 "`releases`; used by gpuplan.log_dating to date logs that do not state their version."),
        "releases": order,
        "lines": [{"file": f, "line": n, "format": fmt, "releases": vs}
                  for (f, n, fmt), vs in sorted(entries.items(), key=lambda e: (e[0][0], e[0][1], e[0][2]))],
    }
    # One entry per line, so that a rebuild's diff shows which lines moved.
    head = json.dumps({k: v for k, v in out.items() if k != "lines"}, ensure_ascii=False)[:-1]
    body = ",\n".join(json.dumps(e, ensure_ascii=False) for e in out["lines"])
    sys.stdout.write(f'{head}, "lines": [\n{body}\n]}}\n')


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: log_lines.py WHEEL_DIR [WHEEL_DIR ...]")
    main(sys.argv[1:])
