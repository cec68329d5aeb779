"""Data loader throughput on synthesized speech: utterances/s per worker setting.

    .venv/bin/python benchmarks/data_loader.py            # ~1 minute on 2 idle cores

Synthesizes ~200 clips of 2-8 s with espeak-ng (22.05 kHz wav, so every load also
resamples, as real corpora do), then times whole epochs of `make_loader` batches:
  - raw: the loader alone, features computed in the workers or in the main process;
  - with_step (--step-ms): each batch followed by a fixed CPU load standing in for a
    training step (torch matmuls on the main process's threads), to see whether a worker
    overlaps the step or only competes with it for the two cores.
Writes benchmarks/results/data_loader.{json,md,png}. Goal: > 50 utt/s.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lora_whisper.data.batching import (DurationBucketSampler, SpeechDataset,  # noqa: E402
                                        add_features, make_loader)
from lora_whisper.data.utterance import Utterance  # noqa: E402

WORDS = {
    "pl": ("pl", "ala ma kota a kot ma ale dzisiaj jest bardzo ładna pogoda więc idziemy na spacer "
                 "do parku nad rzeką gdzie rosną stare drzewa i śpiewają ptaki"),
    "it": ("it", "oggi il tempo è bello e andiamo a fare una passeggiata nel parco vicino al fiume "
                 "dove crescono alberi antichi e cantano gli uccelli"),
    "en": ("en", "today the weather is lovely so we are going for a walk in the park by the river "
                 "where old trees grow and the birds are singing"),
    "de": ("de", "heute ist das wetter schön also gehen wir im park am fluss spazieren wo alte "
                 "bäume wachsen und die vögel singen"),
}
VOICES = ["m1", "m3", "f2", "f4"]


class FakeVocab:
    """Token ids do not matter for loader speed; Vocabulary's encode costs about the same."""

    eot = 50257

    def encode(self, text):
        return [ord(c) % 50000 for c in text]

    def sot_sequence(self, language, task="transcribe", timestamps=False):
        return [50258, 50259, 50359, 50363]


def synthesize(out: Path, n: int, seed: int) -> list[Utterance]:
    rng = random.Random(seed)
    utts = []
    for i in range(n):
        lang = list(WORDS)[i % len(WORDS)]
        voice, words = WORDS[lang][0], WORDS[lang][1].split()
        text = " ".join(rng.choice(words) for _ in range(rng.randint(6, 21)))
        path = out / f"{lang}_{i:04d}.wav"
        subprocess.run(["espeak-ng", "-v", f"{voice}+{rng.choice(VOICES)}", "-s",
                        str(rng.randint(150, 190)), "-w", str(path), text], check=True)
        import soundfile as sf

        info = sf.info(path)
        utts.append(Utterance(path.stem, str(path), text, lang, duration=info.frames / info.samplerate))
    return utts


def calibrate_step(ms: float) -> int:
    """Matmul count that takes `ms` on an idle machine with the current torch threads."""
    a = torch.randn(384, 384)
    for _ in range(20):
        a @ a
    t = time.perf_counter()
    for _ in range(200):
        a @ a
    per = (time.perf_counter() - t) / 200
    return max(1, round(ms / 1000 / per))


def build(utts, workers: int, features_in_worker: bool, batch: int):
    ds = SpeechDataset(utts, FakeVocab(), ["pl", "it", "en", "de"], n_mels=80,
                       features_in_collate=features_in_worker)
    sampler = DurationBucketSampler([u.duration for u in utts], [u.language for u in utts],
                                    max_utterances=batch, seed=0)
    return sampler, make_loader(ds, sampler, num_workers=workers)


def epoch(sampler, loader, index: int, step_matmuls: int = 0) -> float:
    a = torch.randn(384, 384)
    sampler.set_epoch(index)
    t = time.perf_counter()
    for b in loader:
        add_features(b)
        for _ in range(step_matmuls):
            a @ a
    return time.perf_counter() - t


def step_only(n_batches: int, step_matmuls: int) -> float:
    a = torch.randn(384, 384)
    t = time.perf_counter()
    for _ in range(n_batches * step_matmuls):
        a @ a
    return time.perf_counter() - t


def run_raw(utts, workers: int, features_in_worker: bool, epochs: int, batch: int) -> list[float]:
    sampler, loader = build(utts, workers, features_in_worker, batch)
    epoch(sampler, loader, 0)  # warm-up: worker start, filter banks, page cache
    times = [epoch(sampler, loader, i) for i in range(1, epochs + 1)]
    del loader  # stops persistent workers
    return times


def run_with_step(utts, workers: list[int], epochs: int, batch: int, matmuls: int) -> dict:
    """Paired timings: each repeat times the step alone, then each loader setting, so a
    neighbour's load on the machine hits all of them alike; the median difference is the
    time the loader adds to an epoch of training."""
    built = {w: build(utts, w, True, batch) for w in workers}
    n_batches = len(built[workers[0]][0])
    for w, (sampler, loader) in built.items():
        epoch(sampler, loader, 0)
    base, per = [], {w: [] for w in workers}
    for i in range(1, epochs + 1):
        base.append(step_only(n_batches, matmuls))
        for w, (sampler, loader) in built.items():
            per[w].append(epoch(sampler, loader, i, matmuls))
    del built
    b = statistics.median(base)
    return {"n_batches": n_batches, "step_only_epoch_seconds": [round(x, 3) for x in base],
            "settings": [{"num_workers": w, "epoch_seconds": [round(x, 3) for x in per[w]],
                          "utt_per_s": round(len(utts) / statistics.median(per[w]), 1),
                          "added_per_batch_ms": round((statistics.median(per[w]) - b) / n_batches * 1000, 1)}
                         for w in workers]}


def machine_info() -> dict:
    import _common

    return {**_common.machine(), "loadavg_at_start": os.getloadavg()[0], "git_commit": _common.git_commit(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="clips to synthesize")
    ap.add_argument("--batch", type=int, default=8, help="max utterances per batch")
    ap.add_argument("--epochs", type=int, default=5,
                    help="timed epochs per setting; the fastest counts (neighbours only slow it)")
    ap.add_argument("--workers", default="0,1,2", help="num_workers values to try")
    ap.add_argument("--step-ms", type=float, default=0.0,
                    help="also time epochs with a simulated training step of this many ms per "
                         "batch (default 0: skip; on a shared 2-core machine it is mostly noise)")
    ap.add_argument("--step-epochs", type=int, default=3, help="paired repeats with the step")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    info = machine_info()
    workers = [int(w) for w in args.workers.split(",")]

    with tempfile.TemporaryDirectory(prefix="lw-bench-") as tmp:
        t = time.perf_counter()
        utts = synthesize(Path(tmp), args.n, seed=0)
        synth_s = time.perf_counter() - t
        audio_s = sum(u.duration for u in utts)
        print(f"synthesized {len(utts)} clips, {audio_s:.0f} s of audio in {synth_s:.1f} s",
              file=sys.stderr)
        raw = []
        for w in workers:
            for in_worker in ([True, False] if w else [True]):
                times = run_raw(utts, w, in_worker, args.epochs, args.batch)
                best = min(times)
                raw.append({"num_workers": w, "features": "worker" if in_worker and w else "main",
                            "epoch_seconds": [round(x, 3) for x in times],
                            "utt_per_s": round(len(utts) / best, 1),
                            "audio_s_per_s": round(audio_s / best, 1)})
                print(raw[-1], file=sys.stderr)
        with_step = {}
        if args.step_ms > 0:
            with_step = run_with_step(utts, workers, args.step_epochs, args.batch,
                                      calibrate_step(args.step_ms))
            print(with_step, file=sys.stderr)

    durations = sorted(u.duration for u in utts)
    result = {
        "benchmark": "data_loader",
        "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/data_loader.py", *sys.argv[1:]]),
        "machine": info,
        "corpus": {"utterances": len(utts), "audio_seconds": round(audio_s, 1),
                   "duration_min_s": round(durations[0], 2),
                   "duration_median_s": round(durations[len(durations) // 2], 2),
                   "duration_max_s": round(durations[-1], 2),
                   "made_with": "espeak-ng, 22.05 kHz 16-bit wav (resampled to 16 kHz on load)",
                   "synthesis_seconds": round(synth_s, 1)},
        "settings": {"max_utterances": args.batch, "mode": "mixed", "n_mels": 80,
                     "timed_epochs": args.epochs, "simulated_step_ms": args.step_ms,
                     "step_repeats": args.step_epochs},
        "raw": raw,
        "with_step": with_step,
        "loadavg_at_end": os.getloadavg()[0],
        "goal_utt_per_s": 50,
        # make_loader's default setting is the one training uses
        "goal_met": any(r["utt_per_s"] > 50 for r in raw if r["num_workers"] == 1 and r["features"] == "worker"),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "data_loader.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "data_loader.md").write_text(markdown(result))
    plot(result, out / "data_loader.png")
    print(markdown(result))
    return 0


def markdown(r: dict) -> str:
    m, c = r["machine"], r["corpus"]
    lines = [
        "# Data loader throughput", "",
        f"{c['utterances']} espeak-ng clips, {c['audio_seconds']} s of audio "
        f"({c['duration_min_s']}-{c['duration_max_s']} s, median {c['duration_median_s']} s), "
        f"batches of {r['settings']['max_utterances']}, 80 mels at real length.", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} "
        f"threads, load average {m['loadavg_at_start']:.2f} at start and {r['loadavg_at_end']:.2f} at end "
        f"(other processes share the cores: the fastest of {r['settings']['timed_epochs']} epochs is shown); {m['date']}; "
        f"commit {m['git_commit'] or 'unknown'}.", "",
        f"Command: `{r['command']}`", "",
        "## Loader alone", "",
        "| num_workers | features computed in | utt/s | audio s/s |", "|---:|---|---:|---:|",
    ]
    lines += [f"| {x['num_workers']} | {x['features']} | {x['utt_per_s']} | {x['audio_s_per_s']} |"
              for x in r["raw"]]
    if r["with_step"]:
        ws = r["with_step"]
        lines += ["", f"## With a simulated {r['settings']['simulated_step_ms']:.0f} ms training step per batch",
                  "", f"Step alone: median {statistics.median(ws['step_only_epoch_seconds']):.2f} s "
                  f"per epoch of {ws['n_batches']} batches (repeats: {ws['step_only_epoch_seconds']}).", "",
                  "| num_workers | utt/s | time added per batch (ms) |", "|---:|---:|---:|"]
        lines += [f"| {x['num_workers']} | {x['utt_per_s']} | {x['added_per_batch_ms']} |"
                  for x in ws["settings"]]
    by = {(x["num_workers"], x["features"]): x["utt_per_s"] for x in r["raw"]}
    if (1, "worker") in by and (1, "main") in by:
        lines += ["", f"Features in the worker (one torch thread) vs in the main process "
                  f"({m['torch_threads']} threads): {by[(1, 'worker')] / by[(1, 'main')]:.1f}x. "
                  "Multi-threaded torch ops slow down badly when other processes hold the cores, "
                  "so make_loader computes features in its worker."]
    lines += ["", f"Goal > {r['goal_utt_per_s']} utt/s with make_loader's default (1 worker, features in "
              f"the worker): {'met' if r['goal_met'] else 'NOT met'}.", ""]
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    labels = [f"w={x['num_workers']}\nfeat:{x['features']}" for x in r["raw"]]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(labels, [x["utt_per_s"] for x in r["raw"]], color="#4c72b0")
    ax.axhline(r["goal_utt_per_s"], color="#c44e52", ls="--", label="goal 50 utt/s")
    ax.set_ylabel("utterances / s")
    ax.set_title(f"Data loader alone ({r['machine']['cores']} cores)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
