"""The paper's multilingual table (LoRA-Whisper, Table 1) on the offline synthetic corpus:
zero-shot whisper, full fine-tuning, one shared LoRA, language-specific LoRA experts and our
shared+experts recipe, trained to convergence under the same maximum budget, several seeds,
scored on a test set whose voices no training clip used (per language, an engine no training
clip used where the machine has a second one; else held-out voices of the training engines).

    python benchmarks/multilingual.py --preset cpu --seeds 3       # days on 2 CPU cores
    python benchmarks/multilingual.py --preset small --seeds 1     # the small fixed budget
    python benchmarks/multilingual.py --preset gpu --seeds 3       # benchmarks/gpu_run.sh
    python benchmarks/multilingual.py --preset tiny --seeds 2      # plumbing dry run

Protocol (every system alike):
- training by epochs with early stopping on the dev error (clipped macro, greedy): a dev
  evaluation every `eval_every` steps, stop after `patience` evaluations without a better one,
  the best dev adapters are the run; the maximum budget (`epochs`) is the same for all, and
  the table reports the steps each used (`steps`) and where its best dev error was;
- learning rate per recipe from a small sweep on dev (`lr_grid`, seed 0, `sweep_epochs`),
  the choice and every swept dev error recorded (`lr_sweep`); presets without a grid use
  their fixed rates, recorded as such;
- `--seeds N`: seed s changes the adapters' initialisation, dropout masks and the data
  order (the corpus stays the same); the table is mean +/- sd over seeds;
- significance: paired bootstrap over test utterances (stratified by language; per-utterance
  edits averaged over seeds) of LoRA-Whisper, and of shared+experts, against each baseline
  (`p_value`, two-sided; lora_whisper/evaluation/significance.py).

Everything is resumable: runs (and their evaluations) that finished are reused, a run
killed mid-way continues from its checkpoint. Runs go to runs/bench-multilingual/<preset>/.
Errors are in percent: WER, CER for zh and ja; "clipped" caps each utterance at 100%.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LANGS = ("pl", "pt", "it", "zh", "da", "el", "cy", "ja")
BASELINES = ("full-ft", "shared-lora")
OURS = ("lora-whisper", "shared+experts")
SYSTEMS = ("zero-shot", "full-ft", "shared-lora", "lora-whisper", "shared+experts")


@dataclass(frozen=True)
class Preset:
    per_language: int                 # training utterances per language
    test_per_language: int
    dev_per_language: int
    batch_size: int
    epochs: int                       # the maximum budget, the same for every system
    patience: int | None              # dev evaluations without improvement; None = full budget
    evals_per_epoch: int
    lr: dict = field(default_factory=dict)        # recipe -> rate when not swept
    lr_grid: dict = field(default_factory=dict)   # recipe -> candidates swept on dev
    sweep_epochs: int = 1
    max_steps: int | None = None      # a fixed step budget instead of epochs (the small budget)
    max_new_tokens: int = 96
    engines: tuple = ("espeak", "mbrola", "rhvoice", "festival", "pico", "pyopenjtalk")


_LR = {"lora-whisper": 1e-3, "shared-lora": 1e-3, "shared+experts": 1e-3, "full-ft": 1e-4}
PRESETS = {
    # the plumbing end to end in minutes (numbers meaningless)
    "tiny": Preset(6, 3, 3, 4, 2, 1, 1, _LR, {"lora-whisper": (1e-3, 3e-3)}, 1, max_new_tokens=24),
    # the small fixed budget where LoRA-Whisper lost before (120 steps of batch 8)
    "small": Preset(400, 40, 10, 8, 1, None, 1, _LR, max_steps=120),
    # converged on CPU: 10 epochs of 3,200 clips at most, early stopping, rates swept
    "cpu": Preset(400, 100, 20, 8, 10, 3, 2, _LR,
                  {"lora-whisper": (3e-4, 1e-3, 3e-3), "shared-lora": (3e-4, 1e-3, 3e-3),
                   "shared+experts": (3e-4, 1e-3, 3e-3), "full-ft": (3e-5, 1e-4)}, 1),
    # one H200, < 9 minutes with expansion (benchmarks/gpu_run.sh)
    "gpu": Preset(300, 100, 20, 32, 6, 2, 2, _LR,
                  {"lora-whisper": (5e-4, 2e-3), "shared-lora": (5e-4, 2e-3),
                   "shared+experts": (5e-4, 2e-3), "full-ft": (5e-5, 2e-4)}, 1, max_new_tokens=96),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ensure_corpus(out: Path, preset: Preset, languages, seed: int = 0) -> Path:
    from lora_whisper.corpus import build_corpus
    from lora_whisper.corpus.tts import available_engines

    if not (out / "test.jsonl").exists() or not json.loads((out / "corpus.json").read_text()).get("complete"):
        engines = available_engines(preset.engines)
        log(f"building corpus in {out} with engines {', '.join(engines)}")
        build_corpus(out, list(languages), preset.per_language, seed=seed,
                     dev_per_language=preset.dev_per_language, test_per_language=preset.test_per_language,
                     engines=engines, held_out_engine="auto", jobs=2, progress=False)
    return out


def corpus_engines(corpus: Path) -> dict:
    """Per language: the engines of its training clips and of its test clips (from the manifests)."""
    out: dict[str, dict[str, set]] = {}
    for split in ("train", "test"):
        for line in (corpus / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            engine = str(r.get("voice", "espeak:?")).split(":")[0]
            out.setdefault(r["language"], {"train": set(), "test": set()})[split].add(engine)
    return {k: {"train": sorted(v["train"]), "test": sorted(v["test"]),
                "engine_held_out": not (v["test"] & v["train"])} for k, v in out.items()}


def steps_per_epoch(corpus: Path, languages, batch: int) -> int:
    n = sum(1 for line in (corpus / "train.jsonl").read_text().splitlines()
            if json.loads(line)["language"] in languages)
    return max(1, math.ceil(n / batch))


def train_one(recipe: str, corpus: Path, run: Path, preset: Preset, languages, lr: float, seed: int,
              backbone: str | None, epochs: int | None = None, max_steps: int | None = None) -> dict:
    """Train (or reuse, or resume) one run; returns its fit.json."""
    from lora_whisper.training.config import TrainConfig
    from lora_whisper.training import train

    if (run / "fit.json").exists() and (run / "lora_whisper.json").exists():
        return json.loads((run / "fit.json").read_text())
    spe = steps_per_epoch(corpus, languages, preset.batch_size)
    resume = (run / "checkpoints" / "last.pt").exists()
    if not resume:
        shutil.rmtree(run, ignore_errors=True)
    cfg = TrainConfig(data=str(corpus / "train.jsonl"), dev=str(corpus / "dev.jsonl"), languages=tuple(languages),
                      out=str(run), backbone=backbone, recipe=recipe, epochs=epochs or preset.epochs,
                      max_steps=max_steps, batch_size=preset.batch_size, seed=seed, lr=lr,
                      patience=preset.patience if max_steps is None else None,
                      max_dev_per_language=preset.dev_per_language,
                      eval_every=max(1, spe // preset.evals_per_epoch) if max_steps is None else max_steps,
                      eval_max_new_tokens=preset.max_new_tokens, checkpoint_every=max(1, spe // 2),
                      progress=False, resume=resume)
    t0 = time.time()
    train(cfg)
    fit = json.loads((run / "fit.json").read_text())
    fit["seconds"] = round(time.time() - t0, 1)
    (run / "fit.json").write_text(json.dumps(fit, indent=2) + "\n")
    log(f"[{recipe} seed {seed} lr {lr:g}] {fit['steps']} steps ({fit['epochs']} epochs), best dev "
        f"{fit['best_dev_error_clipped']} at step {fit['best_step']}, {fit['seconds']} s")
    return fit


def sweep_lr(recipe: str, corpus: Path, root: Path, preset: Preset, languages, backbone) -> dict:
    grid = preset.lr_grid.get(recipe)
    if not grid:
        return {"chosen": preset.lr[recipe], "swept": None}
    dev = {}
    for lr in grid:
        fit = train_one(recipe, corpus, root / "sweep" / recipe / f"lr{lr:g}", preset, languages, lr, 0,
                        backbone, epochs=preset.sweep_epochs)
        dev[f"{lr:g}"] = fit["best_dev_error_clipped"]
    chosen = min(grid, key=lambda lr: dev[f"{lr:g}"])
    log(f"[{recipe}] lr sweep on dev (clipped macro error): {dev} -> {chosen:g}")
    return {"chosen": chosen, "swept": dev, "sweep_epochs": preset.sweep_epochs}


def evaluate_run(run: Path | None, test: str, out: Path, preset: Preset, languages, backbone) -> dict:
    from lora_whisper.evaluation.evaluate import evaluate

    done = out / "report.json"
    if done.exists() and (out / "hyps.jsonl").exists() and (
            run is None or done.stat().st_mtime > (run / "fit.json").stat().st_mtime):
        return json.loads(done.read_text())
    import torch

    if not torch.cuda.is_available():
        report, _ = evaluate(test, run=run, backbone=backbone if run is None else None, out=out,
                             languages=languages, max_per_language=preset.test_per_language,
                             max_new_tokens=preset.max_new_tokens)
        return report
    # On a GPU: evaluate()'s steps with the system moved to CUDA (evaluate() decodes on the CPU)
    from lora_whisper.evaluation.decode import greedy_options
    from lora_whisper.evaluation.evaluate import score_system, select_utterances
    from lora_whisper.evaluation.report import build_report, write_report
    from lora_whisper.evaluation.systems import load_system

    utts = select_utterances(test, languages, preset.test_per_language)
    system = load_system(run, backbone if run is None else None, batch_size=32,
                         options=greedy_options(preset.max_new_tokens))
    system.transcriber.backbone.model.to("cuda")
    result = score_system(system, utts, "given")
    report = build_report(result, test, {"device": "cuda", "max_new_tokens": preset.max_new_tokens,
                                         "max_per_language": preset.test_per_language})
    write_report(out, report, result)
    return report


def summarize(name: str, reports: list[dict], hyps: list[Path], fits: list[dict], seeds: list[int],
              languages) -> dict:
    from lora_whisper.evaluation.significance import mean_sd

    per_seed = [{k: v["error"] for k, v in r["system"]["languages"].items()} for r in reports]
    per_seed_c = [{k: v["clipped"] for k, v in r["system"]["languages"].items()} for r in reports]
    macro = [r["system"]["macro"]["error"] for r in reports]
    macro_c = [r["system"]["macro"]["clipped"] for r in reports]
    out = {
        "per_language": {l: round(mean_sd([s[l] for s in per_seed])[0], 2) for l in languages},
        "per_language_clipped": {l: round(mean_sd([s[l] for s in per_seed_c])[0], 2) for l in languages},
        "average": round(mean_sd(macro)[0], 2),
        "average_clipped": round(mean_sd(macro_c)[0], 2),
        "seeds": seeds,
        "sd": {"average": round(mean_sd(macro)[1], 2), "average_clipped": round(mean_sd(macro_c)[1], 2),
               "per_language": {l: round(mean_sd([s[l] for s in per_seed])[1], 2) for l in languages}},
        "per_seed_average": [round(m, 2) for m in macro],
        "hyps": [str(h) for h in hyps],
    }
    if fits:
        out["steps"] = [f["steps"] for f in fits]
        out["best_step"] = [f["best_step"] for f in fits]
        out["epochs_used"] = [f["epochs"] for f in fits]
        out["stopped_early"] = [f["stopped_early"] for f in fits]
        out["max_steps"] = fits[0]["max_steps"]
    return out


def significance(systems: dict, clipped: bool = False) -> dict:
    from lora_whisper.evaluation.significance import paired_bootstrap, read_hyps, seed_mean_errors

    errs = {n: seed_mean_errors([read_hyps(h, clipped) for h in s["hyps"]]) for n, s in systems.items()}
    out = {}
    for ours in OURS:
        if ours not in errs:
            continue
        for other in ("zero-shot", *BASELINES, *(o for o in OURS if o != ours)):
            if other in errs:
                out[f"{ours} vs {other}"] = paired_bootstrap(errs[ours], errs[other]).to_dict()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--languages", default=",".join(LANGS))
    ap.add_argument("--corpus", default=None, help="default corpora/bench-<preset>")
    ap.add_argument("--runs", default=str(REPO / "runs" / "bench-multilingual"))
    ap.add_argument("--backbone", default=None, help="default: embedded whisper-base")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--deadline", type=float, default=None,
                    help="seconds: start no new training after this, write what is done")
    ap.add_argument("--name", default="multilingual", help="results file name (benchmarks/results/NAME.*)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    started = time.time()
    preset = PRESETS[args.preset]
    languages = tuple(c.strip() for c in args.languages.split(",") if c.strip())
    names = [s.strip() for s in args.systems.split(",") if s.strip()]
    corpus = ensure_corpus(Path(args.corpus or REPO / "corpora" / f"bench-{args.preset}"), preset, languages)
    root = Path(args.runs) / args.preset
    test = str(corpus / "test.jsonl")
    engines = corpus_engines(corpus)
    seeds = list(range(args.seeds))

    lr_sweep = {}
    for name in names:
        if name != "zero-shot" and preset.max_steps is None:
            lr_sweep[name] = sweep_lr(name, corpus, root, preset, languages, args.backbone)
        elif name != "zero-shot":
            lr_sweep[name] = {"chosen": preset.lr[name], "swept": None}

    systems: dict[str, dict] = {}
    timings: dict[str, float] = {}
    out_of_time = []
    for name in names:
        t0 = time.time()
        reports, hyps, fits, done_seeds = [], [], [], []
        for seed in ([0] if name == "zero-shot" else seeds):
            if name == "zero-shot":
                run, fit = None, None
                ev = root / "eval" / "zero-shot"
            else:
                run = root / name / f"seed{seed}"
                if not (run / "fit.json").exists() and args.deadline and time.time() - started > args.deadline:
                    out_of_time.append(f"{name} seed {seed}")
                    continue
                fit = train_one(name, corpus, run, preset, languages, lr_sweep[name]["chosen"], seed,
                                args.backbone, max_steps=preset.max_steps)
                ev = root / "eval" / name / f"seed{seed}"
            reports.append(evaluate_run(run, test, ev, preset, languages, args.backbone))
            hyps.append(ev / "hyps.jsonl")
            if fit:
                fits.append(fit)
            done_seeds.append(seed)
        if not reports:
            continue
        systems[name] = summarize(name, reports, hyps, fits, done_seeds, languages)
        if name != "zero-shot":
            systems[name]["lr"] = lr_sweep[name]["chosen"]
        timings[name] = round(time.time() - t0, 1)
        s = systems[name]
        log(f"[{name}] macro error {s['average']:.2f} +/- {s['sd']['average']:.2f} "
            f"(clipped {s['average_clipped']:.2f}) over seeds {done_seeds}")

    tests = significance(systems)
    tests_clipped = significance(systems, clipped=True)
    for key, r in tests.items():
        ours, other = key.split(" vs ")
        systems[ours].setdefault("p_value", {})[other] = r["p_value"]
        systems[ours].setdefault("p_value_clipped", {})[other] = tests_clipped[key]["p_value"]
    for s in systems.values():
        s.pop("hyps")

    fine_tuned = [b for b in BASELINES if b in systems]
    best_baseline = min(fine_tuned, key=lambda k: systems[k]["average"]) if fine_tuned else None
    gains = {}
    for ours in OURS:
        if ours in systems and best_baseline:
            base = systems[best_baseline]["average"]
            gains[ours] = round(100.0 * (base - systems[ours]["average"]) / base, 2) if base else 0.0
    held = [l for l, e in engines.items() if e["engine_held_out"]]
    payload = {
        "systems": systems,
        "metric": "WER % (CER % for zh, ja), macro average over languages, mean over seeds; *_clipped: each "
                  "utterance capped at 100%; sd: over seeds; p_value: paired bootstrap over test utterances",
        "preset": args.preset, "settings": asdict(preset), "languages": list(languages),
        "corpus": str(corpus), "test_utterances_per_language": preset.test_per_language,
        "seeds": seeds, "lr_sweep": lr_sweep,
        "test_engine": {l: e["test"] for l, e in engines.items()},
        "train_engines": {l: e["train"] for l, e in engines.items()},
        "engine_held_out_languages": held,
        "significance": tests, "significance_clipped": tests_clipped,
        "relative_gain_vs_best_finetuned_baseline": gains.get("lora-whisper"),
        "relative_gain_of_ours_vs_best_finetuned_baseline": gains,
        "best_finetuned_baseline": best_baseline,
        "paper": {"relative_gain": 18.5, "average_wer": {"lora-whisper": 9.52, "best_baseline": 11.68}},
        "seconds": timings, "total_seconds": round(time.time() - started, 1),
        "complete": not out_of_time, "not_trained_for_lack_of_time": out_of_time,
    }
    print(table(payload))
    print("wrote", _common.write(args.name, payload, table(payload), lambda p: plot(payload, p)))


def table(r: dict) -> str:
    langs = r["languages"]
    systems = r["systems"]
    head = ("| system | " + " | ".join(langs) + " | average ± sd | clipped | steps (best) | p vs best baseline |\n"
            + "|---" * (len(langs) + 5) + "|\n")
    rows = []
    best = r["best_finetuned_baseline"]
    for n, s in systems.items():
        cells = [f"{s['per_language'][l]:.1f}" for l in langs]
        steps = ""
        if s.get("steps"):
            steps = ", ".join(f"{a} ({b})" for a, b in zip(s["steps"], s["best_step"]))
        p = s.get("p_value", {}).get(best)
        rows.append(f"| {n} | " + " | ".join(cells) + f" | **{s['average']:.2f}** ± {s['sd']['average']:.2f} | "
                    f"{s['average_clipped']:.2f} | {steps} | {'' if p is None else f'{p:.3g}'} |")
    eng = ", ".join(f"{l}: {'+'.join(r['train_engines'][l])} -> {'+'.join(r['test_engine'][l])}" for l in langs)
    lines = [head + "\n".join(rows), "",
             f"Seeds {r['seeds']}; test engines (train -> test): {eng}. Engine held out in test for: "
             f"{', '.join(r['engine_held_out_languages']) or 'none'}.",
             "Learning rates: " + "; ".join(f"{k} {v['chosen']:g}" + (f" (dev {v['swept']})" if v.get("swept") else "")
                                           for k, v in r["lr_sweep"].items())]
    for ours, g in r["relative_gain_of_ours_vs_best_finetuned_baseline"].items():
        lines.append(f"{ours} vs the best fine-tuned baseline ({best}): {g:.1f}% relative (paper: 18.5%).")
    for key, t in r["significance"].items():
        lines.append(f"- {key}: delta {t['delta']:+.2f} points, 95% CI [{t['ci95'][0]:+.2f}, {t['ci95'][1]:+.2f}], "
                     f"p = {t['p_value']:.3g}")
    if not r["complete"]:
        lines.append(f"INCOMPLETE: not trained for lack of time: {', '.join(r['not_trained_for_lack_of_time'])}")
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    langs = r["languages"]
    systems = r["systems"]
    fig, ax = plt.subplots(figsize=(11, 4))
    x = np.arange(len(langs) + 1)
    w = 0.8 / max(len(systems), 1)
    for j, (n, s) in enumerate(systems.items()):
        vals = [s["per_language"][l] for l in langs] + [s["average"]]
        err = [s["sd"]["per_language"][l] for l in langs] + [s["sd"]["average"]]
        ax.bar(x + j * w, vals, w, yerr=err, capsize=2, label=n)
    ax.set_xticks(x + 0.4 - w / 2, langs + ["avg"])
    ax.set_ylabel("error % (WER; CER zh, ja), mean ± sd over seeds")
    ax.set_title(f"Synthetic {len(langs)}-language test set (held-out voices/engines), preset {r['preset']}, "
                 f"seeds {r['seeds']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
