"""Engine benchmark: single-estimate latency (in-process) and accuracy against real vLLM logs.

    python bench/bench_engine.py [--logs ../shared/data/vllm-logs/dev.jsonl ...] [--n 2000]

By default the accuracy part runs on the shared dev set and on the held-out records of
tests/fixtures/vllm_logs/heldout_llmd.jsonl, heldout_public.jsonl and recent_public.jsonl (start-ups no constant was
fitted on), gap_versions_public.jsonl (the releases the others barely cover; its three GB10 starts share the
unified-memory host constant with two earlier records), speculative_public.jsonl (starts with speculative
decoding, several paired with the same start without it), lora_public.jsonl (starts with LoRA adapters) and
latest_public.jsonl (the newest releases public logs show, 0.30 and 0.31).

Latency: the engine's estimate() on an already resolved ModelSpec, for a spread of models and
deployments (a new max_model_len each call, so nothing is served from a cache of identical calls),
and the full Python API call with catalog lookup. Accuracy: `gpuplan validate` on the log file.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import gpuplan
from gpuplan.deployment import Deployment
from gpuplan.engines.vllm.estimate import estimate
from gpuplan.gpus import find_gpu

CASES = [
    ("meta-llama/Llama-3.1-8B", "H100", 1),
    ("Qwen/Qwen3-30B-A3B", "H100", 1),
    ("google/gemma-3-27b-it", "H100", 1),
    ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "H200", 8),
    ("deepseek-ai/DeepSeek-V3", "H200", 8),
    ("Qwen/Qwen3-Next-80B-A3B-Instruct", "H200", 2),
    ("openai/gpt-oss-120b", "H100", 2),
]


def latency(n: int) -> dict:
    specs = [(gpuplan.load_model(m), find_gpu(g), tp) for m, g, tp in CASES]
    times = []
    for i in range(n):
        spec, gpu, tp = specs[i % len(specs)]
        dep = Deployment(gpu_name=gpu.name, gpu_memory_bytes=gpu.memory_bytes, tensor_parallel_size=tp,
                         compute_capability=gpu.compute_capability, max_model_len=1024 + 37 * i)
        t0 = time.perf_counter()
        estimate(spec, dep)
        times.append(time.perf_counter() - t0)
    api_times = []
    for i in range(max(50, n // 10)):
        m, g, tp = CASES[i % len(CASES)]
        t0 = time.perf_counter()
        gpuplan.estimate(m, gpu=g, tensor_parallel_size=tp, max_model_len=2048 + i)
        api_times.append(time.perf_counter() - t0)
    q = statistics.quantiles(times, n=100)
    return {"n": n, "engine_median_ms": round(statistics.median(times) * 1e3, 3), "engine_p90_ms": round(q[89] * 1e3, 3),
            "api_median_ms": round(statistics.median(api_times) * 1e3, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    root = Path(__file__).resolve().parents[1]
    ap.add_argument("--logs", nargs="+", default=[str(root.parent / "shared/data/vllm-logs/dev.jsonl"),
                                                  str(root / "tests/fixtures/vllm_logs/heldout_llmd.jsonl"),
                                                  str(root / "tests/fixtures/vllm_logs/heldout_public.jsonl"),
                                                  str(root / "tests/fixtures/vllm_logs/recent_public.jsonl"),
                                                  str(root / "tests/fixtures/vllm_logs/gap_versions_public.jsonl"),
                                                  str(root / "tests/fixtures/vllm_logs/speculative_public.jsonl"),
                                                  str(root / "tests/fixtures/vllm_logs/lora_public.jsonl"),
                                                  str(root / "tests/fixtures/vllm_logs/latest_public.jsonl")])
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    lat = latency(args.n)
    print(f"single estimate (engine, resolved spec): median {lat['engine_median_ms']} ms, p90 {lat['engine_p90_ms']} ms "
          f"over {lat['n']} calls")
    print(f"single estimate (Python API incl. catalog lookup): median {lat['api_median_ms']} ms")
    from gpuplan.validation import render, validate_file

    for logs in args.logs:
        if not Path(logs).is_file():
            print(f"\n{logs}: not found, skipped")
            continue
        text = render(validate_file(logs))
        print("\naccuracy against", logs)
        print("\n".join(text.splitlines()[-12:]))


if __name__ == "__main__":
    main()
