"""Routing accuracy: how much a wrong language ID costs, and what candidates, soft and N-best
routing win back (issue 16).

(a) Test clips of a run's languages (pick confusable ones: pt/es/it and cy here). Systems:
    oracle          language given (each clip routed to its own expert)
    hard-all        Whisper's language ID over all 99 languages, hard routing (the old default)
    hard-cand       language ID over the run's languages (candidates), hard routing
    soft / nbest    candidates; when the top probability is under the threshold, the top-k
                    experts mixed by probability (soft), or one decode per top-k language and
                    the likelier hypothesis kept (nbest)
    each with the bare backbone's language ID and with the experts' (`-x` suffix: each
    candidate scored with its own expert, language_id.py).
    Reported: language ID accuracy, error per language (WER) and macro, seconds per clip.
    Systems are timed chunk by chunk in turn (interleaved), so machine load hits all alike.
    The LID distributions also give, per threshold, how many clips are unsure and how often
    the top language is wrong among the sure ones (to choose the default threshold).
(b) Long files made of clips of 3 languages (a block of clips per language, short gaps):
    parts-given (each block decoded alone with its language given: the reference point),
    per-file (one language ID for the whole file: the old behaviour), per-window (a language
    ID per 30 s window), per-window+cut (and a window ends where its segments' language
    changes, window_language.py).
    Reported: per-segment language accuracy (a segment's language against the block its
    midpoint lies in), error of the whole file (WER), seconds per file.

  python benchmarks/routing_accuracy.py --run runs/r16 --data corpora/r16/test.jsonl --threads 1
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

SR = 16000
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def clip_systems(threshold: float, top_k: int, lids: list[str], n_candidates: int,
                 only: list[str] | None = None) -> dict[str, dict]:
    """name -> transcribe() kwargs (language None = detect)."""
    from lora_whisper.inference.routing_policy import RoutingPolicy

    out = {"oracle": {"given": True},
           "hard-all": {"candidates": "all", "routing": RoutingPolicy(mode="hard", lid="backbone")}}
    for lid in lids:
        sfx = "" if lid == "backbone" else "-x"
        out[f"hard-cand{sfx}"] = {"routing": RoutingPolicy(mode="hard", lid=lid)}
        for mode in ("soft", "nbest"):
            out[f"{mode}{sfx}"] = {"routing": RoutingPolicy(mode=mode, lid=lid, threshold=threshold, top_k=top_k)}
    # language-wise search (Kwok et al.): every candidate decoded for rows under 0.99
    out["nbest-all"] = {"routing": RoutingPolicy(mode="nbest", lid="backbone", threshold=0.99, top_k=n_candidates)}
    if only:
        out = {k: v for k, v in out.items() if k in only}
    return out


def run_clips(t, utts, systems: dict, chunk: int, log) -> dict:
    from lora_whisper.evaluation.metrics import macro_average, score_language, score_utterance

    audio = [u.load() for u in utts]
    seconds = {k: 0.0 for k in systems}
    results: dict[str, list] = {k: [None] * len(utts) for k in systems}
    for s in range(0, len(utts), chunk):
        idx = list(range(s, min(s + chunk, len(utts))))
        for name, kw in systems.items():   # interleaved: every system on this chunk in turn
            kw = dict(kw)
            given = kw.pop("given", False)
            t0 = time.perf_counter()
            rs = t.transcribe([audio[i] for i in idx], language=[utts[i].language if given else None for i in idx],
                              names=[utts[i].id for i in idx], **kw)
            seconds[name] += time.perf_counter() - t0
            for i, r in zip(idx, rs):
                results[name][i] = r
        log(f"  clips {idx[-1] + 1}/{len(utts)}: " + ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()))
    table = {}
    for name, rs in results.items():
        by_lang: dict[str, list] = {}
        for u, r in zip(utts, rs):
            by_lang.setdefault(u.language, []).append(score_utterance(u.text, r.text, u.language))
        scores = {lang: score_language(lang, s) for lang, s in by_lang.items()}
        right = [r.language == u.language for u, r in zip(utts, rs)]
        table[name] = {
            "lid_accuracy": round(100 * float(np.mean(right)), 2),
            "lid_errors": int(len(right) - sum(right)),
            "per_language": {lang: round(s.error, 2) for lang, s in scores.items()},
            "lid_accuracy_per_language": {lang: round(100 * float(np.mean(
                [r.language == u.language for u, r in zip(utts, rs) if u.language == lang])), 1) for lang in scores},
            "macro": round(macro_average(scores), 2),
            "macro_clipped": round(macro_average(scores, clipped=True), 2),
            "seconds_per_clip": round(seconds[name] / len(utts), 4),
            "unsure_rows": sum(r.routing in ("soft", "nbest") for r in rs),
            "confusions": _confusions(utts, rs),
        }
    return table


def _confusions(utts, rs) -> dict[str, int]:
    c: dict[str, int] = {}
    for u, r in zip(utts, rs):
        if r.language != u.language:
            key = f"{u.language}->{r.language}"
            c[key] = c.get(key, 0) + 1
    return dict(sorted(c.items(), key=lambda kv: -kv[1]))


def threshold_curve(t, utts, lids: list[str]) -> dict:
    """Per LID method and threshold: share of clips unsure, and LID errors among sure clips."""
    audio = [u.load() for u in utts]
    out = {}
    for lid in ["all"] + lids:
        dists = t.detect_language(audio, candidates="all" if lid == "all" else None,
                                  method="backbone" if lid == "all" else lid)
        top = [(next(iter(d)), next(iter(d.values()))) for d in dists]
        wrong = [c != u.language for (c, _), u in zip(top, utts)]
        rows = {}
        for thr in THRESHOLDS:
            unsure = [p < thr for _, p in top]
            rows[str(thr)] = {"unsure_pct": round(100 * float(np.mean(unsure)), 1),
                              "errors_when_sure": int(sum(w for w, un in zip(wrong, unsure) if not un)),
                              "errors_when_unsure": int(sum(w for w, un in zip(wrong, unsure) if un)),
                              "truth_in_top2_when_unsure": int(sum(
                                  u.language in list(d)[:2] for d, u, un in zip(dists, utts, unsure) if un))}
        out["all (backbone)" if lid == "all" else lid] = {"accuracy": round(100 * (1 - float(np.mean(wrong))), 2),
                                                          "thresholds": rows}
    return out


def build_long_files(utts, n_files: int, per_block: int, seed: int):
    """Files of 3 language blocks, each `per_block` clips (0.4 s gaps; 1 s between blocks):
    (audio, [(start_s, end_s, language, text)] per block)."""
    rng = np.random.default_rng(seed)
    by_lang: dict[str, list] = {}
    for u in utts:
        by_lang.setdefault(u.language, []).append(u)
    langs = sorted(by_lang)
    files = []
    for f in range(n_files):
        chosen = list(rng.choice(langs, size=3, replace=False))
        pieces, blocks, at = [], [], 0.0
        for lang in chosen:
            pool = by_lang[lang]
            pick = [pool[i] for i in rng.choice(len(pool), size=per_block, replace=False)]
            start, texts = at, []
            for u in pick:
                a = u.load()
                pieces += [a, np.zeros(int(0.4 * SR), np.float32)]
                at += len(a) / SR + 0.4
                texts.append(u.text)
            blocks.append((start, at, lang, " ".join(texts)))
            pieces.append(np.zeros(int(0.6 * SR), np.float32))
            at += 0.6
        files.append((np.concatenate(pieces), blocks))
    return files


def run_long(t, files, log, only: list[str] | None = None) -> dict:
    from lora_whisper.evaluation.metrics import score_utterance
    from lora_whisper.inference.routing_policy import RoutingPolicy

    def lang_at(blocks, x):
        for s, e, lang, _ in blocks:
            if x <= e + 0.5:
                return lang
        return blocks[-1][2]

    systems = {"parts-given": None, "per-file": RoutingPolicy(mode="hard", per_window=False),
               "per-window": RoutingPolicy(mode="hard", cut_on_switch=False),
               "per-window+cut": RoutingPolicy(mode="hard"),
               "per-window nbest": RoutingPolicy(mode="nbest", cut_on_switch=False),
               "per-window nbest-x": RoutingPolicy(mode="nbest", lid="experts", cut_on_switch=False),
               "per-window+cut nbest": RoutingPolicy(mode="nbest")}
    if only:
        systems = {k: v for k, v in systems.items() if k in only}
    out = {}
    for name, policy in systems.items():
        errors = length = seg_right = seg_total = 0
        sec = 0.0
        for audio, blocks in files:
            t0 = time.perf_counter()
            if policy is None:
                parts = [audio[int(s * SR):int(e * SR)] for s, e, _, _ in blocks]
                rs = t.transcribe(parts, language=[b[2] for b in blocks], timestamps=True)
                hyp = " ".join(r.text for r in rs)
                segs = [(g.start + s, g.end + s, lang) for r, (s, _, lang, _) in zip(rs, blocks) for g in r.segments]
            else:
                r = t.transcribe(audio, routing=policy)
                hyp = r.text
                segs = [(g.start, g.end, g.language) for g in r.segments]
            sec += time.perf_counter() - t0
            ref = " ".join(b[3] for b in blocks)
            sc = score_utterance(ref, hyp, "pt")    # WER for every language here
            errors, length = errors + sc.errors, length + sc.length
            for s, e, lang in segs:
                seg_total += 1
                seg_right += lang == lang_at(blocks, (s + e) / 2)
        out[name] = {"wer": round(100 * errors / max(length, 1), 2),
                     "segment_language_accuracy": round(100 * seg_right / max(seg_total, 1), 2),
                     "segments": seg_total, "seconds_per_file": round(sec / len(files), 2)}
        log(f"  long {name}: {out[name]}")
    return out


def table_md(res: dict) -> str:
    a = res["clips"]
    langs = list(next(iter(a.values()))["per_language"])
    lines = [f"**(a) {res['n_clips']} test clips** ({', '.join(langs)}; threshold {res['threshold']}, "
             f"top-k {res['top_k']}; error = WER %)\n",
             "| system | LID accuracy % | " + " | ".join(langs) + " | macro | vs oracle | s/clip | x hard-cand | unsure rows |",
             "|---|---|" + "---|" * len(langs) + "---|---|---|---|---|"]
    base = a["oracle"]["macro"] if "oracle" in a else float("nan")
    for name, s in a.items():
        ref = "hard-cand-x" if name.endswith("-x") and "hard-cand-x" in a else "hard-cand"
        ratio = s["seconds_per_clip"] / a[ref]["seconds_per_clip"] if ref in a else float("nan")
        lines.append(f"| {name} | {s['lid_accuracy']:.1f} | " + " | ".join(f"{s['per_language'][l]:.1f}" for l in langs)
                     + f" | {s['macro']:.2f} | {100 * (s['macro'] - base) / base:+.1f}% | {s['seconds_per_clip']:.3f}"
                     f" | {ratio:.2f} | {s['unsure_rows']} |")
    lines.append("\nLID errors: " + "; ".join(f"{k}: {v['confusions']}" for k, v in a.items() if v["confusions"]))
    if "threshold_curve" in res:
        lines.append("\n**Threshold curve** (clips unsure / LID errors among sure clips / truth in the top 2 of unsure):\n")
        lines.append("| LID | accuracy % | " + " | ".join(f"<{t}" for t in THRESHOLDS) + " |")
        lines.append("|---|---|" + "---|" * len(THRESHOLDS))
    for lid, c in res.get("threshold_curve", {}).items():
        cells = [f"{r['unsure_pct']:.0f}% / {r['errors_when_sure']} / {r['truth_in_top2_when_unsure']}"
                 for r in c["thresholds"].values()]
        lines.append(f"| {lid} | {c['accuracy']:.1f} | " + " | ".join(cells) + " |")
    if res.get("long"):
        lines.append(f"\n**(b) {res['n_long']} code-switched files** (3 languages, {res['per_block']} clips each, "
                     f"about {res['long_seconds']:.0f} s a file):\n")
        lines.append("| system | segments with the right language % | WER % | vs parts given | s/file |")
        lines.append("|---|---|---|---|---|")
        base = res["long"]["parts-given"]["wer"] if "parts-given" in res["long"] else float("nan")
        for name, s in res["long"].items():
            lines.append(f"| {name} | {s['segment_language_accuracy']:.1f} | {s['wer']:.2f} | "
                         f"{100 * (s['wer'] - base) / base:+.1f}% | {s['seconds_per_file']:.1f} |")
    return "\n".join(lines)


def plot(res: dict):
    def draw(path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        a = res["clips"]
        names = list(a)
        fig, ax = plt.subplots(1, 2, figsize=(11, 4))
        ax[0].bar(names, [a[n]["macro"] for n in names], color="tab:blue")
        ax[0].set_ylabel("macro WER %")
        ax[0].set_title("error by routing system")
        ax[0].tick_params(axis="x", rotation=45)
        ax[1].bar(names, [a[n]["lid_accuracy"] for n in names], color="tab:green")
        ax[1].set_ylabel("LID accuracy %")
        ax[1].set_ylim(min(a[n]["lid_accuracy"] for n in names) - 5, 100)
        ax[1].set_title("language ID accuracy")
        ax[1].tick_params(axis="x", rotation=45)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return draw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--data", required=True, help="test manifest of the run's languages")
    ap.add_argument("--per-language", type=int, default=25)
    ap.add_argument("--threshold", type=float, default=0.9)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--lids", default="backbone,experts")
    ap.add_argument("--long-files", type=int, default=4)
    ap.add_argument("--per-block", type=int, default=10, help="clips per language block in a long file")
    ap.add_argument("--skip-clips", action="store_true", help="(b) only")
    ap.add_argument("--skip-curve", action="store_true", help="no threshold curve")
    ap.add_argument("--systems", default=None, help="(a) only these systems (comma-separated)")
    ap.add_argument("--long-systems", default=None, help="(b) only these systems (comma-separated)")
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="routing_accuracy")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from lora_whisper.data.manifest import read_manifest
    from lora_whisper.evaluation.decode import greedy_options
    from lora_whisper.inference.transcriber import load

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    # evaluate's deterministic greedy decoding (no sampling fallback; the loop guard stays on)
    t = load(run=args.run, options=greedy_options(args.max_new_tokens))
    utts = read_manifest(args.data)
    rng = np.random.default_rng(0)
    by_lang: dict[str, list] = {}
    for u in utts:
        if u.language in t.candidates:
            by_lang.setdefault(u.language, []).append(u)
    picked = [u for lang in sorted(by_lang) for u in
              (by_lang[lang] if len(by_lang[lang]) <= args.per_language else
               [by_lang[lang][i] for i in sorted(rng.choice(len(by_lang[lang]), args.per_language, replace=False))])]
    order = rng.permutation(len(picked))     # chunks mix languages, as real traffic would
    picked = [picked[i] for i in order]
    lids = [x for x in args.lids.split(",") if x]
    res = {"run": args.run, "data": args.data, "candidates": t.candidates, "threshold": args.threshold,
           "top_k": args.top_k, "n_clips": len(picked), "max_new_tokens": args.max_new_tokens}
    if not args.skip_clips:
        if not args.skip_curve:
            log("threshold curve ...")
            res["threshold_curve"] = threshold_curve(t, picked, lids)
            log(str(res["threshold_curve"]))
        systems = clip_systems(args.threshold, args.top_k, lids, len(t.candidates),
                               [x for x in args.systems.split(",") if x] if args.systems else None)
        res["clips"] = run_clips(t, picked, systems, args.chunk, log)
    if args.long_files:
        files = build_long_files(picked, args.long_files, args.per_block, seed=1)
        res.update(n_long=len(files), per_block=args.per_block,
                   long_seconds=float(np.mean([len(a) / SR for a, _ in files])))
        res["long"] = run_long(t, files, log, [x for x in args.long_systems.split(",") if x] if args.long_systems else None)
    path = _common.write(args.name, res, table_md(res) if "clips" in res else str(res.get("long")), plot(res)
                         if "clips" in res else None)
    print((_common.RESULTS / f"{args.name}.md").read_text())
    log(f"written: {path}")


if __name__ == "__main__":
    main()
