"""Build a held-out set of vLLM start-ups from the public llm-d-planner accuracy sweep.

    python bench/heldout/build_llmd_heldout.py [--mirror DIR] [--out tests/fixtures/vllm_logs/heldout_llmd.jsonl]

The sweep (github.com/jgchn/llm-d-planner, commit d3121e0, accuracy/results/v0.19.0/logs) ran `vllm serve`
0.19.0 on H100 80GB with DEBUG logging. The shared dev set took about half of its logs; this script reads the
others straight from the log text, in the dev set's schema, so the engine can be checked on start-ups that
none of its constants were fitted on. Every `logged` figure is a number printed in the log; nothing is computed.

Logs that failed for reasons outside the memory model (the Hub unreachable, another process holding the GPU,
a Transformers too old for the checkpoint, a DP rank without a GPU) are left out and listed with the reason.
Two failures that the engine should predict from the config are kept: max_model_len above the model's
max_position_embeddings, and a TP size the KV heads cannot be split over.

Configs come from tests/fixtures/vllm_logs/configs/ (see SOURCES.md there), the dev set's record of the same
model, or the catalog, in that order. Needs a local mirror of the repository (the `fetch` tool, or git clone).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
from pathlib import Path

REPO = "jgchn/llm-d-planner"
COMMIT = "d3121e059da88662db39a926a3ead964be97359b"
LOG_DIR = "accuracy/results/v0.19.0/logs"
ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "tests" / "fixtures" / "vllm_logs" / "configs"
CATALOG = ROOT / "src" / "gpuplan" / "data" / "models"
DEV = ROOT.parent / "shared" / "data" / "vllm-logs" / "dev.jsonl"

# Failures that say nothing about memory: the machine or the network, not the deployment.
ENVIRONMENT_FAILURES = {
    "couldn't connect to 'https://huggingface.co'": "the Hub was unreachable",
    "on startup is less than desired GPU memory utilization": "another process held the GPU",
    "Transformers does not recognize this architecture": "Transformers too old for the checkpoint",
    "DP adjusted local rank": "a data-parallel rank had no GPU",
}

NUM = r"([0-9][0-9,]*\.?[0-9]*)"


def _num(s: str) -> float:
    return float(s.replace(",", ""))


def _first(pattern: str, text: str) -> re.Match | None:
    return re.search(pattern, text)


def _engine_config(text: str) -> dict[str, str]:
    m = _first(r"Initializing a V1 LLM engine \(v[^)]*\) with config: (.*)", text)
    out: dict[str, str] = {}
    if m:
        for key in ("dtype", "tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size",
                    "quantization", "enforce_eager", "kv_cache_dtype", "max_seq_len"):
            km = re.search(rf"\b{key}=([^,]+)", m.group(1))
            if km:
                out[key] = km.group(1).strip()
    return out


def parse_log(text: str) -> dict:
    """The figures one vLLM 0.19 start-up log prints (rank 0 where every worker prints)."""
    args_m = _first(r"non-default args: (\{.*\})", text)
    args = ast.literal_eval(args_m.group(1)) if args_m else {}
    eng = _engine_config(text)
    version = _first(r"version (\d+\.\d+\.\d+\S*)", text)
    logged: dict = {k: None for k in ("weights_gib", "activation_peak_gib", "non_torch_gib", "cudagraph_gib",
                                      "available_kv_cache_gib", "kv_cache_tokens", "max_concurrency",
                                      "max_concurrency_tokens_per_request", "num_gpu_blocks", "block_size")}
    evidence = []

    def grab(pattern: str, *fields: str, cast=_num) -> None:
        m = _first(pattern, text)
        if m:
            evidence.append(m.group(0).strip())
            for f, g in zip(fields, m.groups(), strict=True):
                logged[f] = cast(g)

    grab(rf"Model loading took {NUM} GiB", "weights_gib")
    grab(rf"torch peak memory increase: {NUM}GiB; non-torch forward increase memory: {NUM}GiB",
         "activation_peak_gib", "non_torch_gib")
    grab(rf"Available KV cache memory: {NUM} GiB", "available_kv_cache_gib")
    grab(rf"GPU KV cache size: {NUM} tokens", "kv_cache_tokens", cast=lambda s: int(_num(s)))
    grab(rf"Maximum concurrency for {NUM} tokens per request: {NUM}x",
         "max_concurrency_tokens_per_request", "max_concurrency")
    if logged["max_concurrency_tokens_per_request"] is not None:
        logged["max_concurrency_tokens_per_request"] = int(logged["max_concurrency_tokens_per_request"])
    grab(rf"Graph capturing finished in \d+ secs, took {NUM} GiB", "cudagraph_gib")
    grab(rf"num_gpu_blocks is: {NUM}", "num_gpu_blocks", cast=lambda s: int(_num(s)))
    total = _first(rf"Free memory on device \({NUM}/{NUM} GiB\) on startup", text)
    seqs = _first(r"Defaulting max_num_seqs to (\d+)", text)
    mnbt = _first(r"Defaulting max_num_batched_tokens to (\d+)", text)
    errors = [ln.split("] ", 1)[-1].strip() for ln in text.splitlines()
              if re.search(r"\b(ValueError|RuntimeError|AssertionError|OSError|OutOfMemoryError|Value error)\b", ln)]
    return {"args": args, "engine": eng, "version": version.group(1) if version else None, "logged": logged,
            "total_gib": _num(total.group(2)) if total else None,
            "max_num_seqs": int(seqs.group(1)) if seqs else None,
            "max_num_batched_tokens": int(mnbt.group(1)) if mnbt else None,
            "errors": errors, "evidence": " | ".join(evidence)}


def _none(v: str | None) -> str | None:
    return None if v in (None, "None") else v


def failure_of(parsed: dict, text: str) -> tuple[str | None, str | None]:
    """(kind, message): kind is 'environment' (left out), 'failed' (kept) or None (started)."""
    started = "Application startup complete" in text
    if started or (parsed["logged"]["kv_cache_tokens"] and not parsed["errors"]):
        return None, None
    for needle, why in ENVIRONMENT_FAILURES.items():
        if needle in text:
            return "environment", why
    msg = next((e for e in parsed["errors"] if "Engine core initialization failed" not in e), None)
    return "failed", msg


def record(rid: str, name: str, text: str, configs: dict[str, tuple[dict, str]]) -> tuple[dict | None, str]:
    p = parse_log(text)
    kind, msg = failure_of(p, text)
    if kind == "environment":
        return None, msg or ""
    a, e = p["args"], p["engine"]
    model = a.get("model") or a.get("model_tag")
    if model not in configs:
        return None, f"no config for {model}"
    cfg, source = configs[model]
    dtype = _none(e.get("dtype"))
    deployment = {
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "gpu_total_memory_gib": p["total_gib"],
        "tensor_parallel_size": int(a.get("tensor_parallel_size", e.get("tensor_parallel_size", 1))),
        "pipeline_parallel_size": int(a.get("pipeline_parallel_size", e.get("pipeline_parallel_size", 1))),
        "data_parallel_size": int(a.get("data_parallel_size", e.get("data_parallel_size", 1))),
        "enable_expert_parallel": a.get("enable_expert_parallel"),
        "gpu_memory_utilization": a.get("gpu_memory_utilization", 0.9),
        "max_model_len": a.get("max_model_len"),
        "max_num_seqs": p["max_num_seqs"],
        "max_num_batched_tokens": p["max_num_batched_tokens"],
        "dtype": dtype.replace("torch.", "") if dtype else a.get("dtype"),
        "kv_cache_dtype": _none(e.get("kv_cache_dtype")) or a.get("kv_cache_dtype"),
        "quantization": _none(e.get("quantization")) or a.get("quantization"),
        "enforce_eager": e.get("enforce_eager") == "True" if "enforce_eager" in e else a.get("enforce_eager"),
        "block_size": a.get("block_size"),
        "api_server": True,
        "env": {},
    }
    failed = kind == "failed"
    rec = {
        "id": rid,
        "source_url": f"https://github.com/{REPO}/blob/{COMMIT}/{LOG_DIR}/{name}",
        "engine": "vllm",
        "engine_version": (p["version"] or "0.19.0"),
        "model_id": model,
        "hf_config": cfg,
        "config_source": source,
        "deployment": deployment,
        "logged": p["logged"],
        "outcome": "failed" if failed else "ok",
        "failure": msg if failed else None,
        "evidence": (p["evidence"] + (" | " + msg if failed and msg else ""))[:1500],
        "notes": ("llm-d-planner accuracy sweep, `vllm serve` 0.19.0 on H100 80GB, DEBUG log, prefix caching off. "
                  f"non-default args: {json.dumps(a)}. Extracted by bench/heldout/build_llmd_heldout.py."),
        "quality": "exact",
        "config_complete": True,
    }
    return rec, ""


def load_configs() -> dict[str, tuple[dict, str]]:
    out: dict[str, tuple[dict, str]] = {}
    if DEV.exists():
        for line in DEV.read_text().splitlines():
            r = json.loads(line)
            if r.get("hf_config") and r.get("config_complete", True) and r["model_id"] not in out:
                out[r["model_id"]] = (r["hf_config"], f"[from the dev set's record {r['id']}] {r['config_source']}")
    for f in CATALOG.glob("*.json"):
        model = f.stem.replace("__", "/", 1)
        if model not in out:
            data = json.loads(f.read_text())
            if data.get("hf_config"):
                out[data.get("id", model)] = (data["hf_config"], f"gpuplan catalog src/gpuplan/data/models/{f.name}")
    sources = (CONFIGS / "SOURCES.md").read_text() if (CONFIGS / "SOURCES.md").exists() else ""
    for f in CONFIGS.glob("*.json"):
        model = f.stem.replace("__", "/", 1)
        line = next((ln for ln in sources.splitlines() if f.name in ln), f.name)
        out[model] = (json.loads(f.read_text()), f"tests/fixtures/vllm_logs/configs/{f.name}: {line.strip()}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", default="/work/.mirror/jgchn+llm-d-planner/repo", help="git dir of the repository")
    ap.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "vllm_logs" / "heldout_llmd.jsonl"))
    args = ap.parse_args()
    git = ["git", "--git-dir", args.mirror] if not Path(args.mirror, ".git").exists() else ["git", "-C", args.mirror]
    names = subprocess.run([*git, "ls-tree", "--name-only", f"{COMMIT}:{LOG_DIR}"], check=True,
                           capture_output=True, text=True).stdout.split()
    dev_sources = {json.loads(ln).get("source_url", "").rsplit("/", 1)[-1]
                   for ln in DEV.read_text().splitlines()} if DEV.exists() else set()
    configs = load_configs()
    out, skipped = [], []
    for name in sorted(names):
        if name in dev_sources:
            continue  # already in the dev set: not held out
        text = subprocess.run([*git, "show", f"{COMMIT}:{LOG_DIR}/{name}"], check=True,
                              capture_output=True, text=True, errors="replace").stdout
        rec, why = record(f"llmd{len(out) + 1:03d}", name, text, configs)
        if rec is None:
            skipped.append((name, why))
        else:
            out.append(rec)
    Path(args.out).write_text("".join(json.dumps(r, sort_keys=False) + "\n" for r in out))
    print(f"wrote {len(out)} records to {args.out}")
    for name, why in skipped:
        print(f"left out {name}: {why}")


if __name__ == "__main__":
    main()
