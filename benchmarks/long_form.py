"""Long-form transcription with the real whisper-base: memory and speed against the file's length.

    python benchmarks/long_form.py [--minutes 1,5,20,60] [--threads 2] [--compute-type int8]
    python benchmarks/long_form.py --compare 10 [--memory-minutes 60] [--threads 1]
    python benchmarks/long_form.py --word-cost 2 [--repeats 3] [--threads 1]

`--compare M`: one M-minute file, each system in a fresh process, side by side: ours
sequential (timestamp seeking), ours `--vad` (speech chunks of the file decoded as a batch
of 8), the same with word timestamps, and faster-whisper's BatchedInferencePipeline (int8,
batch 8, its default VAD; greedy like ours, and its default beam 5), with and without word
timestamps: wall time, peak RSS, WER, and word start differences against faster-whisper
(each of its words paired with our nearest word of the same text within 2 s). `--memory-minutes`: peak RSS of ours
`--vad` on a file that long (the sequential path's peak does not grow with length: see the
plain mode's table).

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


CHILD_OURS = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[3]))
from lora_whisper.inference.transcriber import load
t = load(compute_type=sys.argv[2], batch_size=8)
start = time.perf_counter()
r = t.transcribe(sys.argv[1], language="en", vad=sys.argv[4] == "1", word_timestamps=sys.argv[5] == "1")
wall = time.perf_counter() - start
words = [(w.word, w.start, w.end) for g in r.segments for w in (g.words or [])]
json.dump({"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "duration_s": r.duration, "segments": len(r.segments), "text": r.text, "words": words},
          open(sys.argv[6], "w"))
"""

CHILD_FW = r"""
import json, resource, sys, time
from faster_whisper import BatchedInferencePipeline, WhisperModel
from lora_whisper.backbone.load import embedded_ct2_dir
m = WhisperModel(str(embedded_ct2_dir()), device="cpu", compute_type="int8", cpu_threads=int(sys.argv[2]))
p = BatchedInferencePipeline(m)
start = time.perf_counter()
segs, info = p.transcribe(sys.argv[1], language="en", batch_size=8, beam_size=int(sys.argv[3]),
                          word_timestamps=sys.argv[4] == "1")
segs = list(segs)
wall = time.perf_counter() - start
words = [(w.word, w.start, w.end) for g in segs for w in (g.words or [])]
json.dump({"wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "duration_s": info.duration, "segments": len(segs), "text": " ".join(g.text.strip() for g in segs),
           "words": words}, open(sys.argv[5], "w"))
"""


CHILD_COST = r"""
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[3]))
from lora_whisper.inference.transcriber import load
t = load(compute_type=sys.argv[2], batch_size=8)
t.transcribe(sys.argv[1], language="en", vad=True)   # warm-up
times = {"without": [], "with": []}
for _ in range(int(sys.argv[4])):   # interleaved, so the machine's load hits both alike
    for k, words in (("without", False), ("with", True)):
        start = time.perf_counter()
        t.transcribe(sys.argv[1], language="en", vad=True, word_timestamps=words)
        times[k].append(time.perf_counter() - start)
json.dump(times, open(sys.argv[5], "w"))
"""


def word_cost(args) -> None:
    """`--word-cost M`: --vad with and without word timestamps on an M-minute file, in one
    process, interleaved repeats: the median ratio is the cost of the words."""
    th, ct = str(args.threads), args.compute_type
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        said = [_common.speak(s, work / f"s{i}.wav") for i, s in enumerate(SENTENCES)]
        f = work / f"{args.word_cost:g}min.flac"
        make_file(f, args.word_cost * 60, said)
        subprocess.run([sys.executable, "-c", CHILD_COST, str(f), ct, th, str(args.repeats), str(work / "t.json")],
                       check=True, capture_output=True, text=True)
        times = json.loads((work / "t.json").read_text())
    med = {k: _common.median(v) for k, v in times.items()}
    ratios = sorted(w / o for w, o in zip(times["with"], times["without"]))
    table = (f"`--vad` on a {args.word_cost:g}-minute file, {ct}, {args.threads} thread(s), batch 8, one process, "
             f"{args.repeats} interleaved repeats after a warm-up: median {med['without']:.1f} s without word "
             f"timestamps, {med['with']:.1f} s with: **{100 * (med['with'] / med['without'] - 1):+.0f}%** "
             f"(per-pair ratios {', '.join(f'{r:.2f}' for r in ratios)}).")
    out = _common.write("long_form_word_cost", {"threads": args.threads, "compute_type": ct, "minutes": args.word_cost,
                                                "times": times, "median_ratio": med["with"] / med["without"]}, table)
    print(table)
    print("wrote", out)


def _child(args: list[str], out: Path) -> dict:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", *args, str(out)], check=True, capture_output=True, text=True)
    r = json.loads(out.read_text())
    r["process_s"] = time.perf_counter() - t0
    return r


def word_starts(ours: list, theirs: list, norm, window: float = 2.0) -> np.ndarray:
    """|start difference| of the words both transcripts have: each of faster-whisper's words
    paired with our nearest-starting word of the same (normalised) text within `window` s.
    (difflib's in-order matching pairs the rotated sentences a rotation apart: the text
    repeats every ~27 s.)"""
    import bisect

    starts = [w[1] for w in ours]
    text = [norm(w[0]).strip() for w in ours]
    diffs = []
    for w in theirs:
        t, s = norm(w[0]).strip(), w[1]
        lo, hi = bisect.bisect_left(starts, s - window), bisect.bisect_right(starts, s + window)
        near = [abs(starts[k] - s) for k in range(lo, hi) if text[k] == t]
        if near:
            diffs.append(min(near))
    return np.array(diffs)


def compare(args) -> None:
    import jiwer
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    norm = BasicTextNormalizer()
    th, ct = str(args.threads), args.compute_type
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        said = [_common.speak(s, work / f"s{i}.wav") for i, s in enumerate(SENTENCES)]
        f = work / f"{args.compare:g}min.flac"
        reference = make_file(f, args.compare * 60, said)
        systems = {
            "ours sequential": [CHILD_OURS, str(f), ct, th, "0", "0"],
            "ours --vad": [CHILD_OURS, str(f), ct, th, "1", "0"],
            "ours --vad --word-timestamps": [CHILD_OURS, str(f), ct, th, "1", "1"],
            "faster-whisper batched (beam 1)": [CHILD_FW, str(f), th, "1", "0"],
            "faster-whisper batched (beam 1, words)": [CHILD_FW, str(f), th, "1", "1"],
            "faster-whisper batched (beam 5, its default)": [CHILD_FW, str(f), th, "5", "0"],
        }
        for name, a in systems.items():
            r = _child(a, work / "out.json")
            r["wer"] = float(jiwer.wer(norm(reference), norm(r.pop("text"))))
            rows[name] = r
            print(name, {k: round(v, 3) for k, v in r.items() if isinstance(v, float)}, flush=True)
        memory = {}
        if args.memory_minutes:
            g = work / f"{args.memory_minutes:g}min.flac"
            make_file(g, args.memory_minutes * 60, said)
            for name, vad in (("ours --vad", "1"),):   # sequential memory is flat with length (table above)
                r = _child([CHILD_OURS, str(g), ct, th, vad, "0"], work / "out.json")
                memory[name] = {k: r[k] for k in ("peak_rss_mb", "wall_s", "duration_s")}
                print(args.memory_minutes, name, memory[name], flush=True)
    diffs = word_starts(rows["ours --vad --word-timestamps"]["words"],
                        rows["faster-whisper batched (beam 1, words)"]["words"], norm)
    words = {"matched": int(len(diffs)), "ours_words": len(rows["ours --vad --word-timestamps"]["words"]),
             "fw_words": len(rows["faster-whisper batched (beam 1, words)"]["words"]),
             "median_abs_start_diff_s": float(np.median(diffs)) if len(diffs) else None,
             "p95_abs_start_diff_s": float(np.percentile(diffs, 95)) if len(diffs) else None,
             "cost_over_no_words": rows["ours --vad --word-timestamps"]["wall_s"] / rows["ours --vad"]["wall_s"],
             "fw_cost_over_no_words": (rows["faster-whisper batched (beam 1, words)"]["wall_s"]
                                       / rows["faster-whisper batched (beam 1)"]["wall_s"])}
    for r in rows.values():
        r.pop("words")
    fw = rows["faster-whisper batched (beam 1)"]
    ours, seq = rows["ours --vad"], rows["ours sequential"]
    summary = {"vad_speed_vs_fw_batched": fw["wall_s"] / ours["wall_s"],
               "vad_speed_vs_fw_batched_beam5": rows["faster-whisper batched (beam 5, its default)"]["wall_s"] / ours["wall_s"],
               "vad_speed_vs_sequential": seq["wall_s"] / ours["wall_s"],
               "vad_wer_relative_to_fw": ours["wer"] / fw["wer"] if fw["wer"] else None}
    table = ("| system | wall s | audio s per s | peak RSS MB | segments | WER |\n|---|---|---|---|---|---|\n"
             + "\n".join(f"| {n} | {r['wall_s']:.1f} | {r['duration_s'] / r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} | "
                         f"{r['segments']} | {r['wer']:.3f} |" for n, r in rows.items()))
    table += (f"\n\nOne {args.compare:g}-minute file, compute type {ct}, {args.threads} thread(s), batch 8, each system "
              f"in a fresh process. `--vad` is {summary['vad_speed_vs_sequential']:.2f}x our sequential path and "
              f"{summary['vad_speed_vs_fw_batched']:.2f}x faster-whisper batched at beam 1 "
              f"({summary['vad_speed_vs_fw_batched_beam5']:.2f}x its default beam 5); WER {ours['wer']:.3f} vs "
              f"{fw['wer']:.3f}.\n\nWord timestamps vs faster-whisper's (beam 1, word_timestamps=True): "
              f"{words['matched']} words matched of {words['ours_words']}/{words['fw_words']}; |start difference| "
              f"median {words['median_abs_start_diff_s']:.3f} s, 95th percentile {words['p95_abs_start_diff_s']:.3f} s; "
              f"cost {100 * (words['cost_over_no_words'] - 1):+.0f}% over `--vad` alone (faster-whisper: "
              f"{100 * (words['fw_cost_over_no_words'] - 1):+.0f}%).")
    if memory:
        table += (f"\n\nPeak RSS on {args.memory_minutes:g} min of audio: " + ", ".join(
            f"{n} {m['peak_rss_mb']:.0f} MB ({m['duration_s'] / m['wall_s']:.1f} audio s per s)" for n, m in memory.items()) + ".")

    def plot(path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = [n for n in rows if "words" not in n]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        a1.barh(names, [rows[n]["duration_s"] / rows[n]["wall_s"] for n in names])
        a1.set_xlabel("audio seconds per second")
        a2.barh(names, [rows[n]["peak_rss_mb"] for n in names])
        a2.set_xlabel("peak RSS MB")
        a2.set_yticks([])
        fig.suptitle(f"{args.compare:g}-min file, whisper-base {ct}, {args.threads} thread(s), CPU")
        fig.tight_layout()
        fig.savefig(path, dpi=100)

    out = _common.write("long_form_batched", {"threads": args.threads, "compute_type": ct, "minutes": args.compare,
                                              "results": rows, "summary": summary, "words": words,
                                              "memory": {"minutes": args.memory_minutes, **memory}}, table, plot)
    print(table)
    print("wrote", out)


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
    ap.add_argument("--compare", type=float, default=None, help="minutes: systems side by side on one file")
    ap.add_argument("--memory-minutes", type=float, default=0, help="with --compare: peak RSS on a file this long")
    ap.add_argument("--word-cost", type=float, default=None, help="minutes: cost of word timestamps, interleaved")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.compare:
        return compare(args)
    if args.word_cost:
        return word_cost(args)
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
