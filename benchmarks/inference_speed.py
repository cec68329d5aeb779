"""End-to-end transcription speed of a trained system, real whisper-base, language given:
the routed run (PyTorch, LoRA experts applied per row; float32 and int8) vs its merged export
(PyTorch, plain Whisper) vs faster-whisper int8 on the merged CTranslate2 export.

    python benchmarks/inference_speed.py [--repeats 3] [--threads 2] [--long-repeats 1]

5 s and 60 s audio, batch 1 and 8 (batch 8 = eight files given together; faster-whisper's
`WhisperModel` has no cross-file batching, so it takes them one after another, as its users
do). All decode greedily without temperature fallback or previous-text conditioning; 5 s clips
without timestamps, 60 s audio by timestamp-based seeking over 30 s windows (ours and
faster-whisper's alike). The run's experts are random with small B (outputs stay sensible),
built on the fly, so the numbers do not depend on a training run. Medians of interleaved
repeats; WER against the spoken sentences (for 60 s, the sentences wholly inside the clip).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

SENTENCES = ["Please call me when you get home tonight.",
             "The weather is lovely today, so we walk.",
             "I would like a cup of coffee and bread.",
             "Our train leaves at noon from the station.",
             "She reads a new book every single week.",
             "Turn left at the next corner, then go on.",
             "The children played football all day.",
             "We need to buy milk, eggs and apples."]


speak, fit = _common.speak, _common.fit


def make_audio(work: Path) -> tuple[list[np.ndarray], list[np.ndarray], list[str], list[str]]:
    """Eight 5 s clips (one sentence each) and eight 60 s clips (sentences in rotation), with
    their references."""
    said = [speak(s, work / f"s{i}.wav") for i, s in enumerate(SENTENCES)]
    gap = np.zeros(int(0.3 * 16000), np.float32)
    short = [fit(a, 5.0) for a in said]
    long, long_refs = [], []
    for k in range(8):
        parts, words, n, i = [], [], 0, k
        while n < 60 * 16000:
            parts += [said[i % 8], gap]
            n += len(said[i % 8]) + len(gap)
            if n <= 60 * 16000:
                words.append(SENTENCES[i % 8])
            i += 1
        long.append(fit(np.concatenate(parts), 60.0))
        long_refs.append(" ".join(words))
    return short, long, SENTENCES, long_refs


def build_run(work: Path, std: float = 0.002) -> Path:
    """The paper's LoRA spec (r=32 on every attention and FFN linear) with random small B."""
    from lora_whisper.adapters.config import LoraSpec
    from lora_whisper.adapters.run import save_run
    from lora_whisper.adapters.model import inject, perturb_experts
    from lora_whisper.backbone.load import load_backbone

    bb = load_backbone()
    bank = inject(bb.model, LoraSpec(dropout=0.0), ["en", "de"], seed=0)
    perturb_experts(bank, std, seed=1)
    save_run(work / "run", bank, bb, {"en": {"recipe": "benchmark: random small-B expert"}})
    return work / "run"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3, help="repeats for the 5 s clips")
    ap.add_argument("--long-repeats", type=int, default=1, help="repeats for the 60 s clips")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import jiwer
    from faster_whisper import WhisperModel
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    from lora_whisper.backbone.load import load_backbone
    from lora_whisper.export import export
    from lora_whisper.inference.decoding import DecodeOptions
    from lora_whisper.inference.transcriber import Transcriber, load

    opts = DecodeOptions(temperatures=(0.0,), compression_ratio_threshold=None, logprob_threshold=None)
    fw_kw = dict(language="en", beam_size=1, temperature=0.0, condition_on_previous_text=False, vad_filter=False)
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        short, long, texts, long_texts = make_audio(work)
        run = build_run(work)
        export(run, "en", work / "hf", fmt="hf")
        export(run, "en", work / "ct2-int8", fmt="ct2", quantization="int8")
        routed = load(run=str(run), options=opts, batch_size=8)
        routed8 = load(run=str(run), options=opts, batch_size=8, compute_type="int8")
        merged = Transcriber(load_backbone(str(work / "hf")), options=opts, batch_size=8)
        fw = WhisperModel(str(work / "ct2-int8"), device="cpu", compute_type="int8", cpu_threads=args.threads)

        def fw_many(clips):
            # Long audio: faster-whisper's own timestamp seeking, as ours does past 29 s.
            return [" ".join(s.text.strip() for s in fw.transcribe(
                c, without_timestamps=len(c) <= 29 * 16000, **fw_kw)[0]) for c in clips]

        systems = {
            "routed run (PyTorch)": lambda clips: [r.text for r in routed.transcribe(clips, language="en")],
            "routed run (PyTorch int8)": lambda clips: [r.text for r in routed8.transcribe(clips, language="en")],
            "merged export (PyTorch)": lambda clips: [r.text for r in merged.transcribe(clips, language="en")],
            "faster-whisper int8 (merged CT2)": fw_many,
        }
        norm = BasicTextNormalizer()
        wer = {k: float(jiwer.wer([norm(t) for t in texts], [norm(x) for x in fn(short)])) for k, fn in systems.items()}
        wer_long = {k: float(jiwer.wer([norm(t) for t in long_texts[:2]], [norm(x) for x in fn(long[:2])]))
                    for k, fn in systems.items()}
        results, rows = {}, []
        for label, audio, repeats in (("5s", short, args.repeats), ("60s", long, args.long_repeats)):
            for bs in (1, 8):
                batch = audio[:bs]
                fns = {k: (lambda fn=fn: fn(batch)) for k, fn in systems.items()}
                times = _common.interleaved(fns, repeats, warmup=1 if label == "5s" else 0)
                med = {k: _common.median(v) for k, v in times.items()}
                results[f"{label}_batch{bs}"] = {"median_s": med, "all_s": times,
                                                 "audio_s_per_s": {k: bs * len(batch[0]) / 16000 / v for k, v in med.items()}}
                fwt = med["faster-whisper int8 (merged CT2)"]
                for k, v in med.items():
                    rows.append((label, bs, k, v, bs * len(batch[0]) / 16000 / v, fwt / v))
                print(label, bs, {k: round(v, 3) for k, v in med.items()}, flush=True)

    r8 = {k: results[k]["median_s"] for k in ("5s_batch8", "60s_batch8")}
    summary = {
        "routed_vs_faster_whisper_batch8": {k: v["faster-whisper int8 (merged CT2)"] / v["routed run (PyTorch)"]
                                            for k, v in r8.items()},
        "routed_int8_vs_faster_whisper_batch8": {
            k: v["faster-whisper int8 (merged CT2)"] / v["routed run (PyTorch int8)"] for k, v in r8.items()},
        "routed_overhead_vs_merged_batch8": {k: v["routed run (PyTorch)"] / v["merged export (PyTorch)"]
                                             for k, v in r8.items()},
        "wer_5s_clips": wer,
        "wer_60s_first_two": wer_long,
        "goal": "routed PyTorch at batch 8 no slower than faster-whisper int8 (ratio >= 1)",
    }
    table = ("| audio | batch | system | median s | audio s per s | speed vs faster-whisper |\n|---|---|---|---|---|---|\n"
             + "\n".join(f"| {a} | {b} | {k} | {v:.2f} | {x:.1f} | {r:.2f}x |" for a, b, k, v, x, r in rows))
    table += "\n\nWER on the eight 5 s clips (espeak-ng English): " + ", ".join(f"{k} {v:.3f}" for k, v in wer.items())
    table += "\n\nWER on two 60 s clips: " + ", ".join(f"{k} {v:.3f}" for k, v in wer_long.items())
    table += "\n\nAt batch 8 the routed run runs at " + ", ".join(
        f"{v:.2f}x faster-whisper's speed ({k})" for k, v in summary["routed_vs_faster_whisper_batch8"].items())
    table += " in float32 and at " + ", ".join(
        f"{v:.2f}x ({k})" for k, v in summary["routed_int8_vs_faster_whisper_batch8"].items()) + " in int8"
    table += "; routing costs " + ", ".join(
        f"{v:.2f}x the merged export's time ({k})" for k, v in summary["routed_overhead_vs_merged_batch8"].items()) + "."

    def plot(path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        names = list(systems)
        for ax, label in zip(axes, ("5s", "60s")):
            x = np.arange(2)
            w = 0.8 / len(names)
            for j, n in enumerate(names):
                ax.bar(x + j * w, [results[f"{label}_batch{bs}"]["audio_s_per_s"][n] for bs in (1, 8)], w, label=n)
            ax.set_xticks(x + 0.4 - w / 2, ["batch 1", "batch 8"])
            ax.set_title(f"{label} clips, whisper-base, CPU")
            ax.set_ylabel("seconds of audio per second (higher is faster)")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)

    out = _common.write("inference_speed", {"threads": args.threads, "repeats": args.repeats,
                                            "long_repeats": args.long_repeats, "results": results, **summary},
                        table, plot)
    print(table)
    print("wrote", out)


if __name__ == "__main__":
    main()
