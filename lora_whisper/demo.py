"""`make demo` / `lora-whisper demo`: the whole story in one command, on the embedded
whisper-base, sized for about 15 minutes on 2 CPU cores.

1. build a small synthetic corpus: three base languages plus one new language
2. zero-shot whisper-base on the test set
3. train LoRA-Whisper (one expert per base language)
4. evaluate it
5. add the new language twice, warm start and LoRA MoE (each into its own copy of the run)
6. evaluate again: the new language improves, the base languages' transcripts are identical
7. transcribe a few clips through per-language routing in one mixed batch
and end with one table (demo-output/results.md) and one chart (demo-output/results.png).
Every stage reuses what an earlier demo run already built in the output folder.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

import lora_whisper
from lora_whisper.adapters.run import is_run, read_run
from lora_whisper.corpus import build_corpus
from lora_whisper.data.manifest import read_manifest
from lora_whisper.evaluation.evaluate import evaluate
from lora_whisper.expansion import AddLanguageConfig, add_language
from lora_whisper.training import train
from lora_whisper.training.config import TrainConfig

BASE = ("es", "it", "pl")
NEW = "pt"   # Portuguese: close to Spanish and Italian, so warm start / MoE have a real neighbour


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("demo-output")
    per_language: int = 120        # training utterances per language
    test_per_language: int = 12
    base_steps: int = 90
    new_steps: int = 40
    batch_size: int = 8
    lr: float = 1e-3               # few steps: a LoRA needs a brisk rate to move (paper: 1e-4, 10 epochs)
    max_new_tokens: int = 64
    seed: int = 0
    threads: int = 2
    backbone: str | None = None    # None = the embedded whisper-base (tests pass a tiny one)
    texts: dict | None = None      # {lang: sentences}: skip the Debian text sources (tests)


class Stage:
    def __init__(self, n: int, total: int, title: str):
        self.label = f"[{n}/{total}] {title}"

    def __enter__(self):
        print(f"\n{self.label} ...", flush=True)
        self.t0 = time.time()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            print(f"{self.label}: done in {time.time() - self.t0:.0f} s", flush=True)


def _eval(test: Path, out: Path, run: Path | None, languages, cfg: DemoConfig) -> dict:
    """Evaluate a run, or (run None) the zero-shot backbone; reuse an earlier report."""
    report_file = out / "report.json"
    if report_file.exists():
        return json.loads(report_file.read_text())
    report, _ = evaluate(str(test), run=run, backbone=cfg.backbone if run is None else None,
                         out=out, languages=list(languages),
                         max_per_language=cfg.test_per_language, max_new_tokens=cfg.max_new_tokens)
    return report


def _errors(report: dict) -> dict[str, float]:
    return {k: round(v["error"], 1) for k, v in report["system"]["languages"].items()}


def _has_expert(run: Path, name: str) -> bool:
    return is_run(run) and name in read_run(run).experts


def _hyps(out: Path, languages) -> dict[str, str]:
    lines = (out / "hyps.jsonl").read_text().splitlines()
    return {h["id"]: h["hyp"] for h in map(json.loads, lines) if h["language"] in languages}


def run_demo(cfg: DemoConfig = DemoConfig()) -> Path:
    torch.set_num_threads(cfg.threads)
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    corpus, runs, evals = out / "corpus", out / "runs", out / "eval"
    total = 7
    with Stage(1, total, f"corpus: {', '.join(BASE)} + new {NEW}, {cfg.per_language} training clips each (espeak-ng)"):
        build_corpus(corpus, list(BASE) + [NEW], cfg.per_language, seed=cfg.seed,
                     dev_per_language=cfg.test_per_language, test_per_language=cfg.test_per_language,
                     jobs=2, progress=True, texts=cfg.texts)
    test = corpus / "test.jsonl"
    langs = list(BASE) + [NEW]
    with Stage(2, total, "zero-shot whisper-base on the test set"):
        zero = _eval(test, evals / "zero-shot", None, langs, cfg)
        print("  error %:", _errors(zero))
    base_run = runs / "base"
    with Stage(3, total, f"train LoRA-Whisper on {', '.join(BASE)} ({cfg.base_steps} steps)"):
        if not is_run(base_run):
            shutil.rmtree(base_run, ignore_errors=True)
            train(TrainConfig(data=str(corpus / "train.jsonl"), dev=str(corpus / "dev.jsonl"), languages=BASE,
                              out=str(base_run), backbone=cfg.backbone, recipe="lora-whisper",
                              max_steps=cfg.base_steps,
                              batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, max_dev_per_language=6,
                              eval_every=cfg.base_steps, eval_max_new_tokens=cfg.max_new_tokens,
                              checkpoint_every=30))
        else:
            print("  reusing", base_run)
    with Stage(4, total, "evaluate LoRA-Whisper"):
        trained = _eval(test, evals / "lora-whisper", base_run, langs, cfg)
        print("  error %:", _errors(trained))
    expanded = {}
    with Stage(5, total, f"add {NEW} with warm start and with LoRA MoE ({cfg.new_steps} steps each)"):
        similarity = None
        for init in ("warm", "moe"):
            dst = runs / f"plus-{NEW}-{init}"
            if not _has_expert(dst, NEW):
                shutil.rmtree(dst, ignore_errors=True)
                res = add_language(AddLanguageConfig(
                    run=str(base_run), language=NEW, data=str(corpus / "train.jsonl"), init=init,
                    dev=str(corpus / "dev.jsonl"), out=str(dst), similarity_utterances=12,
                    train=TrainConfig(max_steps=cfg.new_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                                      seed=cfg.seed, max_dev_per_language=6, eval_every=cfg.new_steps)),
                    similarity=similarity)
                similarity = res.similarity  # measured once, shared by both inits
                detail = res.warm_from if init == "warm" else res.mixture
                print(f"  {init}: {detail}")
            else:
                print(f"  {init}: reusing {dst}")
            expanded[init] = dst
    with Stage(6, total, "evaluate the expanded runs; base languages must be unchanged"):
        after = {init: _eval(test, evals / f"plus-{NEW}-{init}", run, langs, cfg) for init, run in expanded.items()}
        before_hyps = _hyps(evals / "lora-whisper", BASE)
        unchanged = {}
        for init in expanded:
            after_hyps = _hyps(evals / f"plus-{NEW}-{init}", BASE)
            unchanged[init] = after_hyps == before_hyps
            print(f"  {init}: {NEW} error {_errors(after[init])[NEW]:.1f}%, "
                  f"base transcripts identical: {unchanged[init]}")
    with Stage(7, total, "transcribe a mixed-language batch through routing"):
        utts = read_manifest(test)
        picks = [next(u for u in utts if u.language == lang) for lang in langs]
        asr = lora_whisper.load(run=expanded["warm"])
        audio = [u.load() for u in picks]
        # One batch, four languages, each row prompted with and routed to its own language.
        results = asr.transcribe(audio, language=[u.language for u in picks],
                                 max_new_tokens=cfg.max_new_tokens, names=[u.id for u in picks])
        detected = asr.detect_language(audio)  # what `--language auto` would have routed by
        samples = []
        for u, r, d in zip(picks, results, detected):
            top, p = next(iter(d.items()))
            print(f"  [{r.language} -> expert {r.expert}; language ID says {top} {p:.2f}] {r.text}\n"
                  f"      reference: {u.text}")
            samples.append({"id": u.id, "language": r.language, "expert": r.expert, "detected": top,
                            "text": r.text, "reference": u.text})
    return _write_summary(out, zero, trained, after, unchanged, samples)


def _write_summary(out: Path, zero, trained, after, unchanged, samples) -> Path:
    langs = list(BASE) + [NEW]
    systems = {"zero-shot whisper-base": _errors(zero), "LoRA-Whisper (base languages)": _errors(trained)}
    for init, rep in after.items():
        systems[f"+ {NEW} {'warm start' if init == 'warm' else 'LoRA MoE'}"] = _errors(rep)
    head = "| system | " + " | ".join(langs) + " |\n|---" + "|---" * len(langs) + "|\n"
    rows = "".join(f"| {n} | " + " | ".join(f"{e.get(l, float('nan')):.1f}" for l in langs) + " |\n"
                   for n, e in systems.items())
    note = ("\nError %: WER (each language's test clips, greedy decoding). The base run has no "
            f"{NEW} expert, so its {NEW} column is the bare backbone. Base-language transcripts after "
            "adding the new language are token-identical to before: "
            + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in unchanged.items()) + ".\n")
    (out / "results.md").write_text("# lora-whisper demo\n\n" + head + rows + note)
    (out / "results.json").write_text(json.dumps({"systems": systems, "base_unchanged": unchanged,
                                                  "samples": samples}, indent=2, ensure_ascii=False))
    # matplotlib's object API, not pyplot: no backend to select, no global figure to close.
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    x = np.arange(len(langs))
    w = 0.8 / len(systems)
    for j, (n, e) in enumerate(systems.items()):
        ax.bar(x + j * w, [min(e.get(l, 0), 150) for l in langs], w, label=n)
    ax.set_xticks(x + 0.4 - w / 2, langs)
    ax.set_ylabel("WER %")
    ax.set_title("lora-whisper demo: whisper-base, synthetic speech")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "results.png", dpi=100)
    print("\n" + (out / "results.md").read_text())
    print(f"wrote {out / 'results.md'} and {out / 'results.png'}")
    return out / "results.md"


def main(argv=None) -> int:
    run_demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
