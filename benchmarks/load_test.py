"""Load test of `lora-whisper serve` on loopback: 64 concurrent clients (httpx, asyncio),
a bounded number of requests, against a real server process with the real whisper-base and a
run of random small-B experts; micro-batching (--max-batch 8) vs one at a time (--max-batch 1).

    python benchmarks/load_test.py [--clients 64] [--requests 128] [--threads 2]

Reports failures (must be zero), requests/s, p50/p95 latency and the server's batch sizes.

Each clip is an espeak-ng sentence followed by silence up to 5 s: cut at the end of speech,
one of these sentences sends whisper-base (bare or routed) into a repetition loop to the
224-token cap at real-length decoding, and that one slow request, identical in both modes,
would then be most of what is measured instead of the serving.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import fit, speak  # noqa: E402
from inference_speed import SENTENCES, build_run  # noqa: E402

MODEL = "bench-run"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run: Path, max_batch: int, threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "lora_whisper.cli", "serve", "--run", str(run), "--port", str(port),
           "--model-name", MODEL, "--max-batch", str(max_batch), "--batch-wait-ms", "20",
           "--threads", str(threads), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, start_new_session=True)
    return proc, _common.wait_healthy(proc, f"http://127.0.0.1:{port}")


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


async def hammer(url: str, files: list[bytes], clients: int, requests: int) -> dict:
    import httpx

    latencies, failures, errors = [], 0, []
    counter = iter(range(requests))

    async def client(c: httpx.AsyncClient):
        nonlocal failures
        for i in counter:
            t0 = time.perf_counter()
            try:
                r = await c.post("/v1/audio/transcriptions", data={"model": MODEL, "language": "en"},
                                 files={"file": (f"{i}.wav", files[i % len(files)], "audio/wav")})
                ok = r.status_code == 200 and r.json().get("text") is not None
                if not ok:
                    errors.append(f"{r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as exc:
                ok = False
                errors.append(repr(exc))
            latencies.append(time.perf_counter() - t0)
            failures += not ok

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as c:
        before = (await c.get("/health")).json()
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(clients)))
        wall = time.perf_counter() - t0
        after = (await c.get("/health")).json()
    batches = after["batches"] - before["batches"]
    served = after["requests"] - before["requests"]
    lat = np.array(latencies)
    return {"requests": requests, "clients": clients, "failures": failures, "errors": errors[:5],
            "wall_s": wall, "requests_per_s": requests / wall,
            "p50_s": float(np.percentile(lat, 50)), "p95_s": float(np.percentile(lat, 95)),
            "server_batches": batches, "server_requests": served, "mean_batch": served / max(1, batches)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="torch threads in the server")
    args = ap.parse_args()
    from lora_whisper.audio import write_wav

    results = {}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        run = build_run(work)
        files, clip_s = [], []
        for i, s in enumerate(SENTENCES):
            a = fit(speak(s, work / f"s{i}.wav"), 5.0)
            files.append(write_wav(work / f"c{i}.wav", a).read_bytes())
            clip_s.append(len(a) / 16000)
        for max_batch in (8, 1):
            proc, url = start_server(run, max_batch, args.threads)
            try:
                asyncio.run(hammer(url, files, min(8, args.clients), 8))  # warm-up, not counted
                res = asyncio.run(hammer(url, files, args.clients, args.requests))
            finally:
                stop_server(proc)
            results[f"max_batch_{max_batch}"] = res
            print(max_batch, {k: v for k, v in res.items() if k != "errors"}, flush=True)

    b8, b1 = results["max_batch_8"], results["max_batch_1"]
    summary = {"speedup_micro_batching": b8["requests_per_s"] / b1["requests_per_s"],
               "total_failures": b8["failures"] + b1["failures"],
               "clip_seconds_mean": float(np.mean(clip_s))}
    table = ("| server | requests | failures | requests/s | p50 latency s | p95 latency s | mean batch |\n"
             "|---|---|---|---|---|---|---|\n" + "\n".join(
                 f"| --max-batch {k.split('_')[-1]} | {r['requests']} | {r['failures']} | {r['requests_per_s']:.2f} | "
                 f"{r['p50_s']:.1f} | {r['p95_s']:.1f} | {r['mean_batch']:.1f} |" for k, r in results.items()))
    table += (f"\n\n{args.clients} concurrent clients on loopback, English espeak-ng sentences padded "
              f"with silence to {summary['clip_seconds_mean']:.1f} s, language given, real whisper-base with a "
              f"run of r=32 experts. Micro-batching serves {summary['speedup_micro_batching']:.2f}x the "
              f"requests per second of one-at-a-time.")

    def plot(path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        names = [f"max-batch {k.split('_')[-1]}" for k in results]
        axes[0].bar(names, [r["requests_per_s"] for r in results.values()])
        axes[0].set_ylabel("requests / s")
        x = np.arange(len(names))
        axes[1].bar(x - 0.2, [r["p50_s"] for r in results.values()], 0.4, label="p50")
        axes[1].bar(x + 0.2, [r["p95_s"] for r in results.values()], 0.4, label="p95")
        axes[1].set_xticks(x, names)
        axes[1].set_ylabel("latency s")
        axes[1].legend()
        fig.suptitle(f"{args.clients} concurrent clients, {args.requests} requests")
        fig.tight_layout()
        fig.savefig(path, dpi=100)

    out = _common.write("load_test", {"clients": args.clients, "requests": args.requests, "threads": args.threads,
                                      "results": results, **summary}, table, plot)
    print(table)
    print("wrote", out)


if __name__ == "__main__":
    main()
