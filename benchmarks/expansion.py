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
lora_whisper/expansion/add.py), which is where forgetting shows.

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
# Portuguese and Dutch have a close base language (Spanish/Italian, German); Greek has none
# (another script and branch): the "far" new language.
NEW = ("pt", "nl", "el")
METHODS = ("full-ft", "random", "warm", "moe")

PRESETS = {
    "quick": dict(train=24, dev=0, test=6, words=(4, 8), base_steps=30, new_steps=10, batch=4,
                  lora_lr=5e-4, full_lr=5e-5, sim_utts=12, max_new_tokens=32, new=("pt",)),
    "cpu": dict(train=64, dev=0, test=16, words=(4, 10), base_steps=120, new_steps=30, batch=4,
                lora_lr=5e-4, full_lr=5e-5, sim_utts=24, max_new_tokens=48, new=NEW),
    # the plumbing end to end in a few minutes (numbers meaningless)
    "smoke": dict(train=4, dev=0, test=2, words=(3, 6), base_steps=1, new_steps=1, batch=4,
                  lora_lr=5e-4, full_lr=5e-5, sim_utts=4, max_new_tokens=8, new=NEW),
    # one H200 inside benchmarks/gpu_run.sh: new languages by epochs with early stopping on dev
    "gpu": dict(train=200, dev=20, test=100, words=(4, 16), base_steps=600, new_steps=None, new_epochs=8,
                patience=2, batch=32, lora_lr=1e-3, full_lr=1e-4, sim_utts=50, max_new_tokens=96, new=NEW),
    # the plumbing with seeds, dev and early stopping, in minutes
    "tiny": dict(train=6, dev=3, test=3, words=(3, 6), base_steps=2, new_steps=None, new_epochs=2, patience=1,
                 batch=4, lora_lr=5e-4, full_lr=5e-5, sim_utts=4, max_new_tokens=8, new=("pt", "el")),
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
    from lora_whisper.corpus.tts import available_engines

    # Test sets spoken by an engine no training clip used, where a language has a second one.
    build_corpus(work / "corpus", langs, per_language=p["train"], dev_per_language=p["dev"],
                 test_per_language=p["test"], seed=0, jobs=2, progress=False, texts=texts,
                 engines=available_engines(), held_out_engine="auto")
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
        tokens, scores, edits = {}, [], {}
        for s in range(0, len(utts), self.batch):
            chunk = utts[s:s + self.batch]
            feats, lens = t.features_of([self.audio[u.id] for u in chunk])
            routing = t.routing_for([lang] * len(chunk))
            res = decode_batch(t.model, t.vocab, feats, lens, [t.vocab.sot_sequence(lang)] * len(chunk),
                               routing=routing, options=greedy_options(self.max_new))
            for u, r in zip(chunk, res):
                tokens[u.id] = list(r.tokens)
                scores.append(score_utterance(u.text, r.text, lang))
                edits[u.id] = (lang, scores[-1].errors, scores[-1].length)
        sc = score_language(lang, scores)
        return {"error": round(sc.error, 2), "clipped": round(sc.clipped, 2), "metric": sc.metric,
                "n": sc.n, "tokens": tokens, "edits": edits}


def system(run: Path, batch: int = 8):
    from lora_whisper.evaluation.systems import load_system

    t = load_system(run, batch_size=batch).transcriber
    if torch.cuda.is_available():   # load_system decodes on the CPU; the GPU run decodes there
        t.backbone.model.to("cuda")
    return t


# -- the benchmark --------------------------------------------------------------------------------------
def train_base(work: Path, corpus: Path, p: dict) -> Path:
    from lora_whisper.training.config import TrainConfig
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
    ap.add_argument("--corpus", help="a corpus already built (e.g. by gpu_pack.py) instead of WORK/corpus")
    ap.add_argument("--deadline", type=float, default=None,
                    help="seconds: train no new run after this (what is done is written)")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per new-language run (init, data order)")
    ap.add_argument("--name", default="expansion", help="results file name (benchmarks/results/NAME.*)")
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
    corpus = Path(args.corpus) if args.corpus else timed("corpus", build, work, p)
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
                     "base_error": {c: {k: v for k, v in before[c].items() if k not in ("tokens", "edits")} for c in BASE},
                     "timings_s": timings}

    from lora_whisper.evaluation.significance import mean_sd, paired_bootstrap, seed_mean_errors
    from lora_whisper.training.config import TrainConfig
    from lora_whisper.expansion import AddLanguageConfig, add_language
    from lora_whisper.expansion.similarity import similarity_for_run

    edits: dict = {}
    results["seeds"] = list(range(args.seeds))
    results["test_engine"] = json.loads((corpus / "corpus.json").read_text()).get("test_engine")

    for lang in p["new"]:
        sim, _ = timed(f"similarity {lang}", similarity_for_run, base, str(corpus / "train.jsonl"), lang,
                       max_utterances=p["sim_utts"])
        log(f"{lang}: similarity " + ", ".join(f"{c} {s:.3f}" for c, s in sim.ranked()))
        entry = {"similarity": sim.to_dict(),
                 "zero_shot": {k: v for k, v in zero[lang].items() if k not in ("tokens", "edits")}}
        results["new_languages"][lang] = entry
        for method in methods:
            per_seed = []
            for seed in range(args.seeds):
                out = work / lang / method / f"seed{seed}"
                done = (out / "lora_whisper.json").exists() and (method != "full-ft" or (out / "model").exists())
                if not done and args.deadline and time.perf_counter() - started > args.deadline:
                    results.setdefault("not_trained_for_lack_of_time", []).append(f"{lang} {method} seed {seed}")
                    continue
                if not done:
                    shutil.rmtree(out, ignore_errors=True)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    lr = p["full_lr"] if method == "full-ft" else p["lora_lr"]
                    budget = (dict(max_steps=p["new_steps"], eval_every=max(1, p["new_steps"] // 3) if p["dev"] else None)
                              if p.get("new_steps") else
                              dict(epochs=p["new_epochs"], patience=p.get("patience"), eval_every=None))
                    config = AddLanguageConfig(
                        run=str(base), language=lang, data=str(corpus / "train.jsonl"), init=method, out=str(out),
                        dev=str(corpus / "dev.jsonl") if p["dev"] else None,
                        train=TrainConfig(batch_size=p["batch"], lr=lr, progress=False, num_workers=1, seed=seed,
                                          max_train_per_language=p["train"], **budget))
                    res = timed(f"train {lang} {method} seed {seed}", add_language, config, similarity=sim)
                    detail = {"warm_from": res.warm_from, "mixture": res.mixture, "steps": res.steps, "lr": lr}
                    (out / "bench_detail.json").write_text(json.dumps(detail))
                else:
                    log(f"{lang} {method} seed {seed}: run exists, reusing {out}")
                    detail = json.loads((out / "bench_detail.json").read_text()) \
                        if (out / "bench_detail.json").exists() else {}
                t = system(out)
                new = timed(f"decode {lang} {method} seed {seed}", dec.decode, t, lang)
                after = {c: dec.decode(t, c) for c in BASE}
                identical = {c: after[c]["tokens"] == before[c]["tokens"] for c in BASE}
                if method != "full-ft":
                    bad = [c for c, same in identical.items() if not same]
                    assert not bad, f"{lang}/{method}: base language(s) {bad} decode differently after adding {lang}"
                per_seed.append({"new": new, "after": after, "identical": identical, "detail": detail})
                log(f"{lang} {method} seed {seed}: new {new['error']:.1f}%  base after "
                    + " ".join(f"{c} {after[c]['error']:.1f}" for c in BASE))
                del t
            if not per_seed:
                continue
            first = per_seed[0]
            m_new, sd_new = mean_sd([x["new"]["error"] for x in per_seed])
            entry[method] = {
                "new_error": round(m_new, 2), "new_error_sd": round(sd_new, 2),
                "new_error_per_seed": [x["new"]["error"] for x in per_seed],
                "new_error_clipped": round(mean_sd([x["new"]["clipped"] for x in per_seed])[0], 2),
                "metric": first["new"]["metric"], "seeds": list(range(args.seeds)),
                "steps": [x["detail"].get("steps") for x in per_seed],
                "base_error_before": {c: before[c]["error"] for c in BASE},
                "base_error_after": {c: round(mean_sd([x["after"][c]["error"] for x in per_seed])[0], 2) for c in BASE},
                "base_tokens_identical": {c: all(x["identical"][c] for x in per_seed) for c in BASE},
                **{k: first["detail"].get(k) for k in ("warm_from", "mixture", "lr")},
            }
            edits[(lang, method)] = seed_mean_errors([x["new"]["edits"] for x in per_seed])
            (work / "partial.json").write_text(json.dumps(results, indent=2))
        # significance of each initialisation against a fresh LoRA (paired over test utterances)
        for method in methods:
            if method != "random" and (lang, "random") in edits and (lang, method) in edits:
                entry[method]["vs_random"] = paired_bootstrap(edits[(lang, method)], edits[(lang, "random")]).to_dict()
        # after each language, so an interrupted run still leaves what it measured
        results["complete"] = lang == p["new"][-1]
        timings.pop("total", None)  # kept last in the table
        timings["total"] = round(time.perf_counter() - started, 1)
        results["systems"] = systems_summary(results, methods, edits)
        _common.write(args.name, results, table(results), lambda path: plot(results, path))
    log(f"done in {timings['total']:.0f} s; results in {_common.RESULTS / (args.name + '.json')}")
    return 0


def _macro(d: dict) -> float:
    return sum(d.values()) / len(d)


def systems_summary(r: dict, methods, edits: dict) -> dict:
    """Per method, over the new languages: `average` (macro of seed means), `per_language`,
    `sd` (of the macro over seeds), `p_value` (paired bootstrap of the macro vs a fresh LoRA,
    over the new languages' test utterances), `steps`; full-ft also the base languages' macro
    before and after (forgetting)."""
    from lora_whisper.evaluation.significance import mean_sd, paired_bootstrap

    langs = [l for l in r["new_languages"] if all(m in r["new_languages"][l] for m in methods)]
    out = {}
    for m in methods:
        es = [r["new_languages"][l][m] for l in langs]
        if not es:
            continue
        n_seeds = min(len(e["new_error_per_seed"]) for e in es)
        macro_per_seed = [sum(e["new_error_per_seed"][i] for e in es) / len(es) for i in range(n_seeds)]
        avg, sd = mean_sd(macro_per_seed)
        out[m] = {"average": round(avg, 2), "sd": round(sd, 2), "per_language": {l: e["new_error"] for l, e in zip(langs, es)},
                  "seeds": es[0]["seeds"], "steps": {l: e["steps"] for l, e in zip(langs, es)},
                  "base_macro_before": round(sum(_macro(e["base_error_before"]) for e in es) / len(es), 2),
                  "base_macro_after": round(sum(_macro(e["base_error_after"]) for e in es) / len(es), 2)}
    if "random" in out:
        rand = {f"{l}:{k}": v for l in langs for k, v in edits[(l, "random")].items()}
        for m in out:
            if m != "random":
                mine = {f"{l}:{k}": v for l in langs for k, v in edits[(l, m)].items()}
                out[m]["p_value"] = {"random": paired_bootstrap(mine, rand).p_value}
                base = out["random"]["average"]
                out[m]["relative_gain_vs_random"] = round(100 * (base - out[m]["average"]) / base, 2) if base else 0.0
    return out


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
            sd = f" ± {x['new_error_sd']:.1f}" if x.get("new_error_sd") else ""
            vs = f" (p {x['vs_random']['p_value']:.3g} vs random)" if x.get("vs_random") else ""
            lines.append(f"| {m}{note} | {x['new_error']:.1f}{sd}{vs} | {_macro(x['base_error_before']):.1f} | "
                         f"{_macro(x['base_error_after']):.1f} | "
                         + " | ".join(f"{x['base_error_after'][c]:.1f}" for c in base)
                         + f" | {'yes' if all(x['base_tokens_identical'].values()) else 'no'} |")
        lines.append("")
    sysm = r.get("systems") or {}
    if sysm:
        lines += [f"Over the new languages ({', '.join(next(iter(sysm.values()))['per_language'])}), seeds "
                  f"{r.get('seeds')}, test engines {r.get('test_engine')}:", "",
                  "| method | macro error ± sd | vs random (relative) | p vs random | base macro before -> after |",
                  "|---|---|---|---|---|"]
        for m, x in sysm.items():
            lines.append(f"| {m} | {x['average']:.2f} ± {x['sd']:.2f} | {x.get('relative_gain_vs_random', 0):.1f}% | "
                         f"{x.get('p_value', {}).get('random', float('nan')):.3g} | {x['base_macro_before']:.1f} -> "
                         f"{x['base_macro_after']:.1f} |")
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
