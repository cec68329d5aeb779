"""Shared benchmark plumbing: machine facts, timing with interleaved repeats, result files."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).parent).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).parent).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "uncommitted"


def speak(text: str, path: Path, voice: str = "en", speed: int = 150):
    """espeak-ng speech as a 16 kHz float32 array (the wav is kept at `path`)."""
    from lora_whisper.audio import load_audio

    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return load_audio(path)


def fit(a, seconds: float):
    """Cut or pad (with silence) to exactly `seconds`, so every system gets equal work."""
    import numpy as np

    n = int(seconds * 16000)
    return np.pad(a[:n], (0, max(0, n - len(a))))


def header() -> dict:
    return {"machine": machine(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(), "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name] + sys.argv)}


def interleaved(fns: dict, repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Time each callable `repeats` times, round-robin, so machine noise hits all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def write(name: str, payload: dict, table_md: str, plot=None) -> Path:
    """Write results/<name>.json, .md (with the header facts) and .png (plot(path) draws it)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {**header(), **payload}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    m = payload["machine"]
    md = (f"# {name}\n\nMachine: {m.get('cpu')} ({m.get('cores')} cores, torch threads {m.get('torch_threads')}"
          f"{', GPU ' + m['gpu'] if m.get('gpu') else ', no GPU'}); date {payload['date']}; commit {payload['commit']}\n\n"
          f"Command: `{payload['command']}`\n\n{table_md}\n")
    (RESULTS / f"{name}.md").write_text(md)
    if plot is not None:
        plot(RESULTS / f"{name}.png")
    return RESULTS / f"{name}.json"


def wait_healthy(proc, url: str, timeout_s: float = 300.0) -> str:
    """Wait for a server started as `proc` to answer /health at `url`; returns `url`."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not become healthy")
