"""Language expansion (paper section "language expansion"): add a new language to a trained
LoRA-Whisper by full fine-tuning, a random LoRA, a warm-started LoRA and LoRA MoE; measure
the new language's error and every base language's error before and after.

    python benchmarks/expansion.py --preset quick|cpu|gpu [--work DIR]

Languages. Base: es, it, de, pl; new: pt and nl, added one at a time (each to its own copy
of the base run). Each new language has a genuinely close base language: Portuguese is
Iberian Romance like Spanish (and Romance like Italian), Dutch is West Germanic like German.
Polish has no close partner among the new ones and serves as the "far" control in the
similarity tables. (Czech, the natural partner of Polish, has no text source in the corpus
builder; Catalan/Galician neither.) The corpus is our synthetic one (espeak-ng voices,
speaker-disjoint: test voices never speak training sentences), short sentences so that a
CPU can afford it.

What is asserted, not just reported: for every LoRA method the base languages decode to
the same tokens, token for token, before and after the language is added (their experts
and the backbone are untouched; only the new expert exists in addition).

Full fine-tuning trains every backbone weight on the new language; the base languages are
then decoded by their unchanged experts on the changed backbone (see
lora_whisper/expansion/add_language.py), which is where forgetting shows.

Presets ("quick": Portuguese only, 6 minutes on 2 quiet CPU cores, ~25 when other jobs
share them; "cpu": both new languages, ~25 minutes on 2 quiet cores; "smoke": the
plumbing only).
The CPU presets raise the learning rates (5e-4 for LoRA, 5e-5 for full fine-tuning):
a few dozen steps at the paper's 1e-4 barely move an adapter. "gpu" uses the paper's
1e-4 (and the usual 1e-5 for full fine-tuning):
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

BASE = ("es", "it", "de", "pl")
NEW = ("pt", "nl")
METHODS = ("full-ft", "random", "warm", "moe")

PRESETS = {
    "quick": dict(train=24, dev=0, test=6, words=(4, 8), base_steps=30, new_steps=10, batch=4,
                  lora_lr=5e-4, full_lr=5e-5, sim_utts=12, max_new_tokens=32, new=("pt",)),
    "cpu": dict(train=64, dev=0, test=16, words=(4, 10), base_steps=120, new_steps=30, batch=4,
                lora_lr=5e-4, full_lr=5e-5, sim_utts=24, max_new_tokens=48, new=NEW),
    # the plumbing end to end in a few minutes (numbers meaningless)
    "smoke": dict(train=4, dev=0, test=2, words=(3, 6), base_steps=1, new_steps=1, batch=4,
                  lora_lr=5e-4, full_lr=5e-5, sim_utts=4, max_new_tokens=8, new=NEW),
    "gpu": dict(train=1000, dev=40, test=100, words=(5, 25), base_steps=2500, new_steps=600, batch=16,
                lora_lr=1e-4, full_lr=1e-5, sim_utts=50, max_new_tokens=128, new=NEW),
}
__doc__ += "\n".join(f"    {k}: {v}" for k, v in PRESETS.items()) + "\n"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- corpus ----------------------------------------------------------------------------------------
def short_sentences(lang: str, words: tuple[int, int]) -> list[str]:
    from lora_whisper.corpus.text_sources import load_sentences

    lo, hi = words
    return [s for s in load_sentences(lang) if lo <= len(s.split()) <= hi]


def build(work: Path, p: dict) -> Path:
    from lora_whisper.corpus import build_corpus

    langs = list(BASE) + list(p["new"])
    if (work / "corpus" / "corpus.json").exists() and (work / "corpus" / "test.jsonl").exists():
        return work / "corpus"  # built by an earlier, interrupted run of this preset
    texts = {c: short_sentences(c, p["words"]) for c in langs}
    build_corpus(work / "corpus", langs, per_language=p["train"], dev_per_language=p["dev"],
                 test_per_language=p["test"], seed=0, jobs=2, progress=False, texts=texts)
    return work / "corpus"


# -- decoding, token for token -----------------------------------------------------------------------
class Decoder:
    """Greedy decoding of a test set per language, keeping the tokens (the Transcriber keeps
    only text) so "unchanged" can be checked token for token."""

    def __init__(self, test_utts, max_new_tokens: int, batch_size: int = 8):
        self.by_lang: dict[str, list] = {}
        for u in test_utts:
            self.by_lang.setdefault(u.language, []).append(u)
        self.audio = {u.id: u.load() for u in test_utts}
        self.max_new = max_new_tokens
        self.batch = batch_size

    def decode(self, transcriber, lang: str) -> dict:
        from lora_whisper.evaluation.decode import greedy_options
        from lora_whisper.evaluation.metrics import score_language, score_utterance
        from lora_whisper.inference.decoding import decode_batch

        t = transcriber
        utts = sorted(self.by_lang[lang], key=lambda u: len(self.audio[u.id]))
        tokens, scores = {}, []
        for s in range(0, len(utts), self.batch):
            chunk = utts[s:s + self.batch]
            feats, lens = t._features([self.audio[u.id] for u in chunk])
            routing = t._routing([lang] * len(chunk))
            res = decode_batch(t.model, t.vocab, feats, lens, [t.vocab.sot_sequence(lang)] * len(chunk),
                               routing=routing, options=greedy_options(self.max_new))
            for u, r in zip(chunk, res):
                tokens[u.id] = list(r.tokens)
                scores.append(score_utterance(u.text, r.text, lang))
        sc = score_language(lang, scores)
        return {"error": round(sc.error, 2), "clipped": round(sc.clipped, 2), "metric": sc.metric,
                "n": sc.n, "tokens": tokens}


def system(run: Path, batch: int = 8):
    from lora_whisper.evaluation.systems import load_system

    return load_system(run, batch_size=batch).transcriber


# -- the benchmark --------------------------------------------------------------------------------------
def train_base(work: Path, corpus: Path, p: dict) -> Path:
    from lora_whisper.config import TrainConfig
    from lora_whisper.training import train

    run = work / "base"
    if (run / "lora_whisper.json").exists():
        log(f"base run exists: {run}")
        return run
    shutil.rmtree(run, ignore_errors=True)
    cfg = TrainConfig(data=str(corpus / "train.jsonl"), languages=BASE, out=str(run), max_steps=p["base_steps"],
                      batch_size=p["batch"], lr=p["lora_lr"], progress=False, num_workers=1,
                      checkpoint_every=10 ** 6, log_every=5, seed=0,
                      dev=str(corpus / "dev.jsonl") if p["dev"] else None,
                      eval_every=max(1, p["base_steps"] // 4) if p["dev"] else None)
    t0 = time.perf_counter()
    train(cfg)
    log(f"base run trained in {time.perf_counter() - t0:.0f} s")
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    ap.add_argument("--work", help="working directory: corpus, runs; an interrupted run resumes there (default /tmp/lw-expansion-PRESET)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--new", help="comma-separated new languages (default: the preset's)")
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    p = dict(PRESETS[args.preset])
    if args.new:
        p["new"] = tuple(c.strip() for c in args.new.split(",") if c.strip())
    methods = [m for m in args.methods.split(",") if m]
    work = Path(args.work or f"/tmp/lw-expansion-{args.preset}")
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(key, fn, *a, **k):
        t0 = time.perf_counter()
        out = fn(*a, **k)
        timings[key] = round(time.perf_counter() - t0, 1)
        return out

    log(f"preset {args.preset}: {p}")
    corpus = timed("corpus", build, work, p)
    from lora_whisper.data.readers import open_source

    test = open_source(str(corpus / "test.jsonl"))
    dec = Decoder(test, p["max_new_tokens"])
    base = timed("train base", train_base, work, corpus, p)

    log("decoding the base languages with the base run")
    t_base = system(base)
    before = {c: timed(f"decode base {c}", dec.decode, t_base, c) for c in BASE}
    zero = {c: dec.decode(t_base, c) for c in p["new"]}  # no expert yet: the bare backbone
    del t_base

    results: dict = {"new_languages": {}, "preset": args.preset, "settings": {k: list(v) if isinstance(v, tuple) else v
                                                                              for k, v in p.items()},
                     "base_languages": list(BASE),
                     "base_error": {c: {k: v for k, v in before[c].items() if k != "tokens"} for c in BASE},
                     "timings_s": timings}

    from lora_whisper.expansion import add_language
    from lora_whisper.expansion.similarity import similarity_for_run

    for lang in p["new"]:
        sim, _ = timed(f"similarity {lang}", similarity_for_run, base, str(corpus / "train.jsonl"), lang,
                       max_utterances=p["sim_utts"])
        log(f"{lang}: similarity " + ", ".join(f"{c} {s:.3f}" for c, s in sim.ranked()))
        entry = {"similarity": sim.to_dict(),
                 "zero_shot": {k: v for k, v in zero[lang].items() if k != "tokens"}}
        results["new_languages"][lang] = entry
        for method in methods:
            out = work / lang / method
            if not (out / "lora_whisper.json").exists() or (method == "full-ft" and not (out / "model").exists()):
                shutil.rmtree(out, ignore_errors=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                lr = p["full_lr"] if method == "full-ft" else p["lora_lr"]
                res = timed(f"train {lang} {method}", add_language, base, lang, str(corpus / "train.jsonl"),
                            init=method, out=out, similarity=sim, log=print,
                            dev=str(corpus / "dev.jsonl") if p["dev"] else None,
                            train=dict(max_steps=p["new_steps"], batch_size=p["batch"], lr=lr, progress=False,
                                       num_workers=1, seed=0, max_train_per_language=p["train"],
                                       eval_every=max(1, p["new_steps"] // 3) if p["dev"] else None))
                detail = {"warm_from": res.warm_from, "mixture": res.mixture, "steps": res.steps, "lr": lr}
            else:
                log(f"{lang} {method}: run exists, reusing {out}")
                meta = json.loads((out / "lora_whisper.json").read_text())
                prov = meta.get("full_ft") or next(e["provenance"] for e in meta["experts"] if e["name"] == lang)
                detail = {"warm_from": prov.get("warm_from"), "mixture": (prov.get("moe") or {}).get("experts"),
                          "steps": prov.get("step")}
            t = system(out)
            new = timed(f"decode {lang} {method}", dec.decode, t, lang)
            after = {c: dec.decode(t, c) for c in BASE}
            identical = {c: after[c]["tokens"] == before[c]["tokens"] for c in BASE}
            if method != "full-ft":
                bad = [c for c, same in identical.items() if not same]
                assert not bad, f"{lang}/{method}: base language(s) {bad} decode differently after adding {lang}"
            entry[method] = {
                "new_error": new["error"], "new_error_clipped": new["clipped"], "metric": new["metric"],
                "base_error_before": {c: before[c]["error"] for c in BASE},
                "base_error_after": {c: after[c]["error"] for c in BASE},
                "base_tokens_identical": identical, **detail,
            }
            log(f"{lang} {method}: new {new['error']:.1f}%  base before "
                + " ".join(f"{c} {before[c]['error']:.1f}" for c in BASE) + "  after "
                + " ".join(f"{c} {after[c]['error']:.1f}" for c in BASE))
            del t
            (work / "partial.json").write_text(json.dumps(results, indent=2))
        # after each language, so an interrupted run still leaves what it measured
        results["complete"] = lang == p["new"][-1]
        timings.pop("total", None)  # kept last in the table
        timings["total"] = round(time.perf_counter() - started, 1)
        _common.write("expansion", results, table(results), lambda path: plot(results, path))
    log(f"done in {timings['total']:.0f} s; results in {_common.RESULTS / 'expansion.json'}")
    return 0


def _macro(d: dict) -> float:
    return sum(d.values()) / len(d)


def table(r: dict) -> str:
    base = r["base_languages"]
    lines = [f"Preset `{r['preset']}`{'' if r.get('complete') else ' (INCOMPLETE: interrupted)'}: "
             f"{json.dumps(r['settings'])}", "",
             "Base run (LoRA-Whisper on " + ", ".join(base) + "), test WER %: "
             + ", ".join(f"{c} {r['base_error'][c]['error']:.1f}" for c in base), ""]
    for lang, e in r["new_languages"].items():
        sim = e["similarity"]
        lines += [f"## New language `{lang}`", "",
                  f"Similarity (bare-backbone LID, {sim['n_utterances']} utterances, mass on base languages "
                  f"{sim['base_mass']:.3f}): " + ", ".join(f"{c} {s:.3f}" for c, s in sim["scores"].items()), "",
                  f"| method | {lang} WER % | base macro WER % before | after | "
                  + " | ".join(f"{c} after" for c in base) + " | base tokens identical |",
                  "|---|---:|---:|---:|" + "---:|" * len(base) + "---|",
                  f"| no expert (zero-shot) | {e['zero_shot']['error']:.1f} | | | " + " | " * len(base) + "|"]
        for m in METHODS:
            if m not in e:
                continue
            x = e[m]
            note = f" (from {x['warm_from']})" if x.get("warm_from") else ""
            if x.get("mixture"):
                note = " (" + ", ".join(f"{k} {v:.2f}" for k, v in x["mixture"].items()) + ")"
            lines.append(f"| {m}{note} | {x['new_error']:.1f} | {_macro(x['base_error_before']):.1f} | "
                         f"{_macro(x['base_error_after']):.1f} | "
                         + " | ".join(f"{x['base_error_after'][c]:.1f}" for c in base)
                         + f" | {'yes' if all(x['base_tokens_identical'].values()) else 'no'} |")
        lines.append("")
    lines.append("Timings (s): " + ", ".join(f"{k} {v}" for k, v in r["timings_s"].items()))
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    langs = list(r["new_languages"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    systems = ["zero-shot"] + list(METHODS)
    width = 0.8 / len(systems)
    x = np.arange(len(langs))
    for i, m in enumerate(systems):
        vals, base_after = [], []
        for lang in langs:
            e = r["new_languages"][lang]
            if m == "zero-shot":
                vals.append(e["zero_shot"]["error"])
                base_after.append(_macro({c: r["base_error"][c]["error"] for c in r["base_languages"]}))
            elif m in e:
                vals.append(e[m]["new_error"])
                base_after.append(_macro(e[m]["base_error_after"]))
            else:
                vals.append(np.nan)
                base_after.append(np.nan)
        off = (i - (len(systems) - 1) / 2) * width
        b = axes[0].bar(x + off, vals, width, label=m)
        axes[0].bar_label(b, fmt="%.0f", fontsize=7)
        b = axes[1].bar(x + off, base_after, width, label=m)
        axes[1].bar_label(b, fmt="%.0f", fontsize=7)
    axes[0].set_title("new language WER % (test)")
    axes[1].set_title("base languages, macro WER % after adding it\n(zero-shot bar: the base run before)")
    for ax in axes:
        ax.set_xticks(x, langs)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
