"""Fairness of `lora-whisper serve`: a short request's latency while a 1-hour upload is being
decoded, against its latency alone. Real server process on loopback, real whisper-base with a
run of r=32 experts, one torch thread.

    python benchmarks/fairness.py [--shorts 8] [--threads 1] [--long speech|silence|both]

Each short request is a 4 s espeak-ng sentence (language given). "alone": the shorts one after
another on an idle server, before and after the loaded phase. "loaded": a 1-hour upload is sent
first (issue 15's case: an hour of silence is a 10 MB FLAC, under the 25 MB limit; "speech" is
an hour of sentences and pauses, whose windows take longer to decode), and once the server is
decoding it the shorts are sent one after another with seeded random gaps, so they arrive at
random points of a window step. The long client then disconnects and the server's `pending`
must drop to 0 (its work is cancelled, not finished).

The figure: median loaded latency / median alone latency (goal: within 2x).
"""
from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import fit, speak  # noqa: E402
from inference_speed import SENTENCES, build_run  # noqa: E402
from load_test import MODEL, free_port, stop_server  # noqa: E402,F401

HOUR = 3600.0


def start_server(run: Path, threads: int):
    import subprocess

    port = free_port()
    cmd = [sys.executable, "-m", "lora_whisper.cli", "serve", "--run", str(run), "--port", str(port),
           "--model-name", MODEL, "--max-batch", "8", "--batch-wait-ms", "20", "--threads", str(threads),
           "--log-level", "warning", "--max-upload-mb", "200", "--max-audio-seconds", str(HOUR + 60)]
    log = open(os.environ.get("FAIRNESS_SERVER_LOG", os.devnull), "w")   # the server's access log
    proc = subprocess.Popen(cmd, start_new_session=True, stderr=log)
    return proc, _common.wait_healthy(proc, f"http://127.0.0.1:{port}")


def flac(audio: np.ndarray) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1), 16000, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def long_audio(kind: str, sentences: list[np.ndarray]) -> np.ndarray:
    if kind == "silence":
        return np.zeros(int(HOUR * 16000), np.float32)
    # speech: the sentences with 2 s pauses, repeated to an hour
    block = np.concatenate([np.pad(s, (0, 32000)) for s in sentences])
    reps = int(np.ceil(HOUR * 16000 / len(block)))
    return np.tile(block, reps)[: int(HOUR * 16000)]


def short_latency(url: str, data: bytes) -> float:
    import httpx

    t0 = time.perf_counter()
    r = httpx.post(url + "/v1/audio/transcriptions", data={"model": MODEL, "language": "en"},
                   files={"file": ("short.wav", data, "audio/wav")}, timeout=600)
    if r.status_code != 200:
        raise RuntimeError(f"short request failed: {r.status_code} {r.text[:200]}")
    return time.perf_counter() - t0


def loaded_phase(url: str, long_bytes: bytes, shorts: list[bytes], seed: int) -> dict:
    """Latencies of the shorts while the long upload is in flight; then the long client leaves."""
    import httpx

    # A raw socket, so that "the client leaves" is a closed connection, nothing gentler.
    import socket
    from urllib.parse import urlparse

    boundary = "fairnessboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{MODEL}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nen\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hour.flac\"\r\n"
            f"Content-Type: audio/flac\r\n\r\n").encode() + long_bytes + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode()
    u = urlparse(url)
    sock = socket.create_connection((u.hostname, u.port))
    sock.sendall(head + body)
    deadline = time.monotonic() + 300
    while httpx.get(url + "/health", timeout=10).json()["pending"] < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the long upload never started decoding")
        time.sleep(0.1)
    time.sleep(2.0)   # well into its windows
    rng = random.Random(seed)
    lat = []
    for data in shorts:
        time.sleep(rng.uniform(0.2, 2.0))   # arrive at a random point of a window step
        lat.append(short_latency(url, data))
        print(f"  short {len(lat)}: {lat[-1]:.2f} s", flush=True)
    sock.setblocking(False)
    try:
        early = sock.recv(100)
    except BlockingIOError:
        early = b""
    if early:
        raise RuntimeError(f"the long request ended before the shorts did ({early[:40]!r})")
    sock.close()   # the long client leaves: its decoding must stop
    t0 = time.monotonic()
    while httpx.get(url + "/health", timeout=10).json()["pending"] > 0:
        if time.monotonic() - t0 > 120:
            raise RuntimeError("the long upload's work was not cancelled")
        time.sleep(0.1)
    return {"latencies_s": lat, "cancel_s": time.monotonic() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shorts", type=int, default=8, help="short requests per phase")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in the server")
    ap.add_argument("--long", choices=("speech", "silence", "both"), default="both")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from lora_whisper.audio import write_wav

    kinds = ["silence", "speech"] if args.long == "both" else [args.long]
    results: dict = {}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        run = build_run(work)
        raw = [speak(s, work / f"s{i}.wav") for i, s in enumerate(SENTENCES)]
        shorts = [write_wav(work / f"c{i}.wav", fit(a, 4.0)).read_bytes()
                  for i, a in enumerate(raw[: args.shorts] * (1 + args.shorts // len(raw)))][: args.shorts]
        proc, url = start_server(run, args.threads)
        try:
            for data in shorts[:2]:
                short_latency(url, data)   # warm-up, not counted
            alone = [short_latency(url, s) for s in shorts]
            for kind in kinds:
                long_bytes = flac(long_audio(kind, raw))
                res = loaded_phase(url, long_bytes, shorts, args.seed)
                res["upload_mb"] = len(long_bytes) / 2**20
                results[kind] = res
                print(kind, res, flush=True)
            alone += [short_latency(url, s) for s in shorts]   # after too: drift shows
        finally:
            stop_server(proc)

    med_alone = float(np.median(alone))
    rows, summary = [], {"alone_latencies_s": alone, "alone_median_s": med_alone}
    for kind, res in results.items():
        lat = res["latencies_s"]
        ratio = float(np.median(lat)) / med_alone
        summary[f"{kind}_median_s"] = float(np.median(lat))
        summary[f"{kind}_ratio_median"] = ratio
        summary[f"{kind}_ratio_max"] = float(np.max(lat)) / med_alone
        rows.append(f"| 1 h of {kind} ({res['upload_mb']:.1f} MB FLAC) in flight | {len(lat)} | "
                    f"{np.median(lat):.2f} | {np.max(lat):.2f} | {ratio:.2f}x | {res['cancel_s']:.1f} |")
    table = ("| short 4 s request | n | median latency s | max latency s | median / alone | "
             "long work stopped s after its client left |\n|---|---|---|---|---|---|\n"
             f"| alone (idle server, before and after) | {len(alone)} | {med_alone:.2f} | {np.max(alone):.2f} | 1.00x | - |\n"
             + "\n".join(rows))
    table += ("\n\nOne server process, --threads " + str(args.threads) + ", real whisper-base with a run of r=32 "
              "experts, language given. Long audio is decoded a 30 s window step at a time, and the short "
              "requests that arrive meanwhile are served between two steps, between encoder layers and between "
              "the decoder's token steps inside a window, so a short request waits for one layer's forward of "
              "the long batch. "
              "Goal: median within 2x of alone.")

    def plot(path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        data = [alone] + [r["latencies_s"] for r in results.values()]
        ax.boxplot(data)
        ax.set_xticks(range(1, len(data) + 1), ["alone"] + [f"with 1 h {k}" for k in results])
        ax.set_ylabel("4 s request latency, s")
        ax.axhline(2 * med_alone, color="grey", ls="--", lw=1, label="2x alone")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)

    out = _common.write("fairness", {"shorts": args.shorts, "threads": args.threads, "results": results,
                                     **summary}, table, plot)
    print(table)
    print("wrote", out)


if __name__ == "__main__":
    main()
