"""Time a full plan: the 10 default GPUs x every GPU count (1, 2, 4, 8) x every weight format x both KV
dtypes, each option an engine run. Not a unit test; prints the median of several runs.

    python bench/bench_planner.py [MODEL ...] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from gpuplan.planner import plan
from gpuplan.planner.search import load_spec

DEFAULT_MODELS = ("meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-4-Scout-17B-16E-Instruct",
                  "Qwen/Qwen2.5-7B-Instruct")


def bench(model: str, repeat: int, max_model_len: int | None) -> tuple[float, int, int]:
    load_spec(model)  # resolving the model is a one-off per process; the search is what is timed
    times = []
    result = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = plan(model, max_model_len=max_model_len)
        times.append(time.perf_counter() - t)
    assert result is not None
    return statistics.median(times), len(result.options), sum(o.fits for o in result.options)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=list(DEFAULT_MODELS))
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--max-model-len", type=int, default=8192)
    args = ap.parse_args()
    for model in args.models:
        for length in (args.max_model_len, None):
            med, n, fit = bench(model, args.repeat, length)
            print(f"{model:48s} max_model_len={str(length):>6s}  options={n:4d} fitting={fit:4d}  "
                  f"median {med:.3f} s")


if __name__ == "__main__":
    main()
