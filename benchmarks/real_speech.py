"""Real recorded speech: our decoding (float32, int8; with and without the loop guard) vs
faster-whisper int8 on the same whisper-base weights, error, repetition loops and seconds.

    python benchmarks/real_speech.py [--data MANIFEST ...] [--synthetic 6] [--threads 1]

Data: `../shared/realspeech/manifest.jsonl` (37 real English far-field voice commands), plus
any source given with `--data` (a manifest, or any layout `lora-whisper data check` reads).
`--synthetic N`: also N espeak-ng sentences per language of the paper's eight languages (pl pt
it zh da el cy ja; Debian sentences) spoken by espeak-ng voice variants the corpus never uses
(Alex, Andy, klatt3, ... instead of its m1-m8/f1-f5) at random speed and pitch, zero-shot.

Every system decodes the bare whisper-base, greedily (beam 1, temperature 0, no fallback), no
VAD, language given, clips whole. Ours: `evaluate`'s default decoding (real length, no
timestamps, loop guard on), and the same with the guard off (what `evaluate` did before).
faster-whisper: `WhisperModel.transcribe` on the embedded CTranslate2 files, int8, with its
default timestamps (what its users get). Error = WER (CER for zh/ja) after Whisper's basic
normaliser (zh converted to simplified script), each clip clipped at 100%; per language, then
the macro average. A loop: compression ratio > 2.4 (Whisper's rule), or our rule (a tandem
repeat, `lora_whisper.inference.loops`). Guard overhead: on the clips that loop in no system,
guard on vs off, interleaved repeats, medians.
"""
from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "realspeech" / "manifest.jsonl"
LANGS = ("pl", "pt", "it", "zh", "da", "el", "cy", "ja")
# espeak-ng voice variants that lora_whisper.corpus.voices never uses (it uses m1-m8, f1-f5)
OTHER_VARIANTS = ("Alex", "Andy", "Annie", "Diogo", "Henrique", "Hugo", "Michael", "Steph",
                  "klatt3", "Robert", "Lee", "Storm", "Antonio", "Belinda")


def synthesize(out: Path, per_language: int) -> Path:
    """A manifest of espeak-ng speech by voices outside the corpus, `per_language` per language."""
    import soundfile as sf

    from lora_whisper.corpus.text_sources import load_sentences
    from lora_whisper.corpus.tts import EspeakNG, resample

    rows = []
    (out / "audio").mkdir(parents=True, exist_ok=True)
    for lang in LANGS:
        rng = random.Random(f"real_speech-{lang}")
        sentences = [s for s in load_sentences(lang) if not any(c in s for c in '"()[]0123456789/“”«»「」')]
        for i, text in enumerate(rng.sample(sentences, per_language)):
            variant, speed, pitch = rng.choice(OTHER_VARIANTS), rng.randint(130, 200), rng.randint(30, 70)
            front = EspeakNG.FRONT_ENDS.get(lang)
            p = subprocess.run(["espeak-ng", "-v", f"{EspeakNG.VOICES[lang]}+{variant}", "-s", str(speed),
                                "-p", str(pitch), "-b", "1", "--stdout"],
                               input=((front(text) if front else text) + "\n").encode(), capture_output=True, check=True)
            audio, sr = sf.read(io.BytesIO(p.stdout), dtype="float32")
            uid = f"{lang}-{i:03d}"
            sf.write(out / "audio" / f"{uid}.flac", resample(audio, sr), 16000)
            rows.append({"id": uid, "audio": f"audio/{uid}.flac", "text": text, "language": lang,
                         "voice": f"espeak-ng {EspeakNG.VOICES[lang]}+{variant} -s {speed} -p {pitch}"})
    (out / "manifest.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return out / "manifest.jsonl"


def score(utts, hyps) -> dict:
    from lora_whisper.evaluation.metrics import macro_average, score_language, score_utterance
    from lora_whisper.inference.loops import compression_ratio, is_loop

    by_lang: dict[str, list] = {}
    for u, h in zip(utts, hyps):
        by_lang.setdefault(u.language, []).append(score_utterance(u.text, h, u.language))
    langs = {k: score_language(k, v) for k, v in by_lang.items()}
    cr = [u.id for u, h in zip(utts, hyps) if compression_ratio(h) > 2.4]
    rule = [u.id for u, h in zip(utts, hyps) if is_loop(h, u.language)]
    return {"clipped": {k: round(v.clipped, 2) for k, v in langs.items()},
            "macro_clipped": round(macro_average(langs, clipped=True), 2),
            "loops_cr": len(cr), "loops_rule": len(rule), "looping": sorted(set(cr) | set(rule)),
            "loops_by_language": {k: sum(1 for u, h in zip(utts, hyps) if u.language == k and is_loop(h, k))
                                  for k in langs}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", action="append", default=[], help="more real clips (manifest or any source)")
    ap.add_argument("--no-shared", action="store_true", help=f"leave out {REAL}")
    ap.add_argument("--synthetic", type=int, default=6, help="espeak sentences per language by unseen voices (0: none)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="repeats for the guard-overhead timing")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from faster_whisper import WhisperModel

    from lora_whisper.audio import load_audio
    from lora_whisper.backbone.load import embedded_ct2_dir, load_backbone
    from lora_whisper.evaluation.decode import greedy_options
    from lora_whisper.evaluation.evaluate import select_utterances
    from lora_whisper.inference.transcriber import Transcriber

    sets: dict[str, list] = {}
    if not args.no_shared:
        sets["realspeech (shared, en)"] = select_utterances(str(REAL))
    for d in args.data:
        sets[f"real: {d}"] = select_utterances(d)
    tmp = tempfile.TemporaryDirectory()
    if args.synthetic:
        sets["synthetic, unseen espeak voices (zero-shot)"] = select_utterances(
            str(synthesize(Path(tmp.name), args.synthetic)))

    opts = greedy_options()   # evaluate's default: greedy, 128 new tokens at most, guard on
    ours = {
        "ours float32": Transcriber(load_backbone(), options=opts),
        "ours int8": Transcriber(load_backbone(compute_type="int8"), options=opts),
        "ours float32, no loop guard": Transcriber(load_backbone(), options=opts.__class__(
            **{**opts.__dict__, "loop_guard": False})),
    }
    fw = WhisperModel(str(embedded_ct2_dir()), device="cpu", compute_type="int8", cpu_threads=args.threads)

    def run_fw(audio, langs):
        out = []
        for a, lang in zip(audio, langs):
            segs, _ = fw.transcribe(a, language=lang, beam_size=1, temperature=0.0, vad_filter=False,
                                    condition_on_previous_text=False)
            out.append(" ".join(s.text.strip() for s in segs).strip())
        return out

    systems = {name: (lambda audio, langs, t=t: [r.text for r in t.transcribe(audio, language=langs)])
               for name, t in ours.items()}
    systems["faster-whisper int8"] = run_fw

    results: dict[str, dict] = {}
    for set_name, utts in sets.items():
        audio = [load_audio(u.audio) for u in utts]
        langs = [u.language for u in utts]
        seconds_audio = sum(len(a) for a in audio) / 16000
        entry = {"clips": len(utts), "audio_s": round(seconds_audio, 1), "systems": {}}
        for name, fn in systems.items():
            before = {k: t.loops_redecoded for k, t in ours.items()}
            t0 = time.perf_counter()
            hyps = fn(audio, langs)
            sec = time.perf_counter() - t0
            s = score(utts, hyps)
            s["seconds"] = round(sec, 2)
            if name in ours:
                s["redecoded_by_guard"] = ours[name].loops_redecoded - before[name]
                # What a loop-free row pays: the rule's check on its text, against its decoding.
                from lora_whisper.inference.loops import is_loop

                t1 = time.perf_counter()
                for h, lang in zip(hyps, langs):
                    is_loop(h, lang)
                s["loop_check_pct_of_decoding"] = round(100 * (time.perf_counter() - t1) / sec, 4)
            s["hyps"] = dict(zip((u.id for u in utts), hyps))
            entry["systems"][name] = s
            print(set_name, "|", name, {k: v for k, v in s.items() if k not in ("hyps", "looping")}, flush=True)
        # Guard overhead where nothing loops: guard on vs off on the same loop-free clips.
        looping = set().union(*(set(s["looping"]) for s in entry["systems"].values()))
        free = [(a, lang) for u, a, lang in zip(utts, audio, langs) if u.id not in looping]
        if free:
            fa, fl = [a for a, _ in free], [lang for _, lang in free]
            times = _common.interleaved({k: (lambda k=k: ours[k].transcribe(fa, language=fl))
                                         for k in ("ours float32", "ours float32, no loop guard")}, args.repeats)
            on, off = (_common.median(times[k]) for k in ("ours float32", "ours float32, no loop guard"))
            entry["guard_overhead"] = {"loop_free_clips": len(free), "median_s_guard_on": round(on, 3),
                                       "median_s_guard_off": round(off, 3), "overhead_pct": round(100 * (on / off - 1), 2)}
            print(set_name, "| guard overhead", entry["guard_overhead"], flush=True)
        results[set_name] = entry
    tmp.cleanup()

    names = list(systems)
    md = []
    for set_name, e in results.items():
        langs = list(next(iter(e["systems"].values()))["clipped"])
        md.append(f"### {set_name}: {e['clips']} clips, {e['audio_s']} s of audio\n")
        md.append("| system | " + " | ".join(langs) + " | macro error % (clipped) | loops (ratio > 2.4) | loops (our rule) | re-decoded | seconds |")
        md.append("|---|" + "---|" * (len(langs) + 5))
        for n in names:
            s = e["systems"][n]
            md.append(f"| {n} | " + " | ".join(f"{s['clipped'][k]:.1f}" for k in langs)
                      + f" | {s['macro_clipped']:.1f} | {s['loops_cr']} | {s['loops_rule']} | {s.get('redecoded_by_guard', '-')} | {s['seconds']:.1f} |")
        if "guard_overhead" in e:
            g = e["guard_overhead"]
            check = e["systems"]["ours float32"].get("loop_check_pct_of_decoding")
            if check is not None:
                md.append(f"\nThe loop check on every row's text costs {check:.3f}% of the decoding time.")
            md.append(f"\nLoop guard on {g['loop_free_clips']} loop-free clips: {g['median_s_guard_on']:.2f} s vs "
                      f"{g['median_s_guard_off']:.2f} s without (median of {args.repeats}): {g['overhead_pct']:+.1f}%.")
        md.append("")
    md.append("Real speech exists here in English only: the experts of the benchmark runs (pl, pt, it, zh, da, "
              "el, cy, ja) have no real clips to be measured on.")
    table = "\n".join(md)

    def plot(path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        x = np.arange(len(results))
        w = 0.8 / len(names)
        for j, n in enumerate(names):
            axes[0].bar(x + j * w, [e["systems"][n]["macro_clipped"] for e in results.values()], w, label=n)
            axes[1].bar(x + j * w, [e["systems"][n]["loops_rule"] for e in results.values()], w, label=n)
        for ax, title in zip(axes, ("macro error %, clipped per clip", "clips that loop (our rule)")):
            ax.set_xticks(x + 0.4 - w / 2, [k.split(" (")[0] for k in results], fontsize=8)
            ax.set_title(title)
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=100)

    out = _common.write("real_speech", {"threads": args.threads, "synthetic_per_language": args.synthetic,
                                        "synthetic_voices": "espeak-ng variants " + ", ".join(OTHER_VARIANTS),
                                        "results": results}, table, plot)
    print(table)
    print("wrote", out)


if __name__ == "__main__":
    main()
