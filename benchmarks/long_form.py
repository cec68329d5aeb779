"""Long-form transcription with the real whisper-base: memory and speed against the file's length.

    python benchmarks/long_form.py [--minutes 1,5,20,60] [--threads 2] [--compute-type int8]

English espeak-ng sentences in rotation (0.4 s apart) make files of each length (flac). Each
file is transcribed in a fresh process by `lora-whisper transcribe` (timestamp-based seeking,
audio streamed from disk), which reports its peak resident memory; beside it, what the decoded
file alone would take in memory. Also: seconds of audio per second, segments, and WER against
the spoken sentences.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from inference_speed import SENTENCES  # noqa: E402  (the same eight sentences)

CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[3]))
from lora_whisper.inference.transcriber import load
t = load(compute_type=sys.argv[2])
start = time.perf_counter()
r = t.transcribe(sys.argv[1], language="en")
wall = time.perf_counter() - start
print(json.dumps({"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "duration_s": r.duration, "segments": len(r.segments), "text": r.text,
                  "last_end": r.segments[-1].end if r.segments else 0.0}))
"""


def make_file(path: Path, seconds: float, said: list[np.ndarray]) -> str:
    import soundfile as sf

    gap = np.zeros(6400, np.float32)
    words, n, i = [], 0, 0
    with sf.SoundFile(str(path), "w", 16000, 1, format="FLAC") as f:  # written piece by piece
        while n + len(said[i % 8]) <= seconds * 16000:
            f.write(np.concatenate([said[i % 8], gap]))
            n += len(said[i % 8]) + len(gap)
            words.append(SENTENCES[i % 8])
            i += 1
    return " ".join(words)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", default="1,5,20,60")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compute-type", default="int8", choices=("float32", "int8"))
    args = ap.parse_args()
    import jiwer
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    norm = BasicTextNormalizer()
    minutes = [float(m) for m in args.minutes.split(",")]
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        said = [_common.speak(s, work / f"s{i}.wav") for i, s in enumerate(SENTENCES)]
        for m in minutes:
            f = work / f"{m:g}min.flac"
            reference = make_file(f, m * 60, said)
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, str(f), args.compute_type, str(args.threads)],
                                 check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            r["process_s"] = time.perf_counter() - t0
            r["wer"] = float(jiwer.wer(norm(reference), norm(r.pop("text"))))
            r["decoded_audio_mb"] = r["duration_s"] * 16000 * 4 / 2**20
            results[f"{m:g}min"] = r
            rows.append((m, r))
            print(m, {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}, flush=True)

    table = ("| audio | peak RSS MB | decoded audio alone MB | wall s | audio s per s | segments | last segment ends s | WER |\n"
             "|---|---|---|---|---|---|---|---|\n"
             + "\n".join(f"| {m:g} min | {r['peak_rss_mb']:.0f} | {r['decoded_audio_mb']:.0f} | {r['wall_s']:.1f} | "
                         f"{r['duration_s'] / r['wall_s']:.1f} | {r['segments']} | {r['last_end']:.1f} | {r['wer']:.3f} |"
                         for m, r in rows))
    first, last = rows[0][1], rows[-1][1]
    table += (f"\n\nPeak memory grows {last['peak_rss_mb'] / first['peak_rss_mb']:.2f}x from {rows[0][0]:g} to "
              f"{rows[-1][0]:g} min of audio ({last['duration_s'] / first['duration_s']:.0f}x longer); "
              f"compute type {args.compute_type}, {args.threads} threads.")

    def plot(path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ms = [m for m, _ in rows]
        ax.plot(ms, [r["peak_rss_mb"] for _, r in rows], "o-", label="peak RSS of the process")
        ax.plot(ms, [r["peak_rss_mb"] - first["decoded_audio_mb"] + r["decoded_audio_mb"] for _, r in rows], "o--",
                label="if the decoded file were held")
        ax.set_xlabel("audio length (minutes)")
        ax.set_ylabel("MB")
        ax.set_title("long-form transcription memory, whisper-base, CPU")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)

    out = _common.write("long_form", {"threads": args.threads, "compute_type": args.compute_type,
                                      "results": results}, table, plot)
    print(table)
    print("wrote", out)


if __name__ == "__main__":
    main()
