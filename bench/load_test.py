"""Load test of `POST /estimate-gpu-memory`: requests/s, p50/p99 latency, errors.

Starts uvicorn on 127.0.0.1 (a free port) in a subprocess, sends N requests (default 20,000) with 64 in
flight using httpx's async client, prints the result (and JSON with --json), and stops the server.
Loopback only: `--url` may point at an already running server, but only on this machine. Bounded by
--max-seconds: whatever finished by then is reported.

    python bench/load_test.py                      # 20,000 requests, concurrency 64
    python bench/load_test.py -n 2000 --workers 4  # uvicorn with 4 worker processes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from urllib.parse import urlparse

import httpx

BODY = {
    "model_name": "meta-llama/Llama-2-7b",
    "max_seq_len": 2048,
    "dtype": "float16",
    "max_batch_size": 32,
    "gpu_memory_utilization": 0.9,
    "architecture": {"num_layers": 32, "hidden_size": 4096, "num_heads": 32, "head_dim": 128,
                     "intermediate_size": 11008},
}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GPUPLAN_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}  # never the Hub from a benchmark
    cmd = [sys.executable, "-m", "uvicorn", "gpuplan.api.app:app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--workers", str(workers)]
    return subprocess.Popen(cmd, env=env)


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            if httpx.get(url + "/", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server at {url} not ready after {timeout:.0f}s")


async def fire(url: str, n: int, concurrency: int, max_seconds: float) -> tuple[list[float], int, dict[int, int], float]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    next_i = 0
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        # Warm the model cache so the first requests do not measure catalog loading.
        await client.post("/estimate-gpu-memory", json=BODY)

        async def worker() -> None:
            nonlocal next_i, errors
            while next_i < n and time.monotonic() < deadline:
                next_i += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/estimate-gpu-memory", json=BODY)
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code != 200:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return latencies, errors, statuses, elapsed


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--requests", type=int, default=20_000)
    ap.add_argument("-c", "--concurrency", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--max-seconds", type=float, default=300.0, help="stop sending after this long")
    ap.add_argument("--url", help="an already running server on this machine (e.g. http://127.0.0.1:8000)")
    ap.add_argument("--json", action="store_true", help="also print the result as JSON")
    args = ap.parse_args()
    if args.requests < 1 or args.concurrency < 1:
        ap.error("--requests and --concurrency must be positive")

    proc = None
    if args.url:
        host = urlparse(args.url).hostname or ""
        if host not in LOOPBACK:
            ap.error("--url must be a loopback address (127.0.0.1, localhost, ::1)")
        url = args.url.rstrip("/")
    else:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(port, args.workers)
    try:
        wait_ready(url, proc)
        lat, errors, statuses, elapsed = asyncio.run(fire(url, args.requests, args.concurrency, args.max_seconds))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    done = len(lat)
    result = {
        "requests": done,
        "errors": errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "concurrency": args.concurrency,
        "workers": args.workers,
        "seconds": round(elapsed, 3),
        "requests_per_second": round(done / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(percentile(lat, 50) * 1000, 2),
        "p99_ms": round(percentile(lat, 99) * 1000, 2),
    }
    print(
        f"{done} requests in {elapsed:.1f}s with {args.concurrency} in flight: {result['requests_per_second']} req/s, "
        f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, errors {errors} (statuses {result['statuses']})"
    )
    if args.json:
        print(json.dumps(result))
    return 0 if errors == 0 and done == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
