"""Training speed of one lora-whisper step on the embedded whisper-base: our path (real-length
input, bf16 autocast) vs the usual recipe (every clip padded to 30 s, fp32).

    python benchmarks/train_speed.py [--repeats 3] [--threads 2] [--batch 8] [--seconds 5]

One step = the training loop's own forward (encoder + teacher-forced decoder, per-row routing
of a mixed-language batch to 4 experts), backward and AdamW update of LoRA r=32 on every
attention and FFN projection. The four combinations of input length and precision are timed
round-robin on the same batch and the same process, so machine load hits all alike;
the reported figures are medians.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

SENTENCES = [
    ("pl", "Proszę zadzwonić do mnie wieczorem, kiedy wrócisz do domu z pracy."),
    ("pl", "Pogoda jest dzisiaj piękna, więc pójdziemy na spacer do parku."),
    ("pt", "Gostaria de uma chávena de café e de uma fatia de pão com manteiga."),
    ("pt", "O nosso comboio parte ao meio-dia da estação central da cidade."),
    ("it", "Lei legge un libro nuovo ogni settimana durante l'estate al mare."),
    ("it", "Gira a sinistra al prossimo angolo e poi vai sempre dritto."),
    ("da", "Børnene spillede fodbold i haven hele eftermiddagen i går."),
    ("da", "Vi skal købe mælk, æg og æbler på markedet i morgen tidlig."),
]
OURS, USUAL = "real length, bf16", "30 s padding, fp32"


def make_utterances(root: Path, n: int, seconds: float):
    import soundfile as sf

    from lora_whisper.data.utterance import Utterance

    utts = []
    for i in range(n):
        lang, text = SENTENCES[i % len(SENTENCES)]
        a = _common.fit(_common.speak(text, root / f"{i}-raw.wav", lang, 150), seconds)
        wav = root / f"{i}.wav"
        sf.write(wav, a, 16000)
        utts.append(Utterance(f"u{i}", str(wav), text, lang, seconds))
    return utts


def _load() -> list[float] | None:
    import os

    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rank", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_at_start = _load()

    from lora_whisper.adapters.config import LoraSpec
    from lora_whisper.backbone.load import load_backbone
    from lora_whisper.data.batching import IGNORE_INDEX, SpeechDataset
    from lora_whisper.data.features import log_mel
    from lora_whisper.training.loop import bf16_available, forward_loss
    from lora_whisper.training.recipes import make_plan

    bb = load_backbone()
    with tempfile.TemporaryDirectory() as d:
        utts = make_utterances(Path(d), args.batch, args.seconds)
        languages = sorted({u.language for u in utts})
        dataset = SpeechDataset(utts, bb.vocab, languages, bb.n_mels)
        items = [dataset[i] for i in range(len(utts))]
    real = dataset.collate(items)
    padded = dict(real)
    padded["input_features"], padded["frame_lengths"] = log_mel([it["audio"] for it in items], bb.n_mels,
                                                                pad_30s=True)
    plan = make_plan("lora-whisper", bb, languages, LoraSpec(r=args.rank, alpha=args.rank), seed=0)
    params = list(plan.params.values())
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    plan.model.train()
    n_tokens = int((real["labels"] != IGNORE_INDEX).sum())

    def step(batch, bf16):
        def run():
            loss, _ = forward_loss(plan.model, batch, plan.routing_fn(batch), bf16)
            (loss / n_tokens).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return run

    fns = {OURS: step(real, True), "real length, fp32": step(real, False),
           "30 s padding, bf16": step(padded, True), USUAL: step(padded, False)}
    times = _common.interleaved(fns, args.repeats, warmup=1)
    med = {k: _common.median(v) for k, v in times.items()}
    sps = {k: args.batch / v for k, v in med.items()}
    speedup = med[USUAL] / med[OURS]
    load = _load()
    payload = {
        "speedup": round(speedup, 3),
        "goal": ">= 10x samples/s of the usual recipe (30 s padding, fp32)",
        "batch": args.batch, "clip_seconds": args.seconds, "repeats": args.repeats,
        "lora": {"r": args.rank, "targets": list(plan.bank.spec.targets), "experts": languages,
                 "trainable_parameters": sum(p.numel() for p in params)},
        "label_tokens": n_tokens, "mel_frames": {"real": int(real["input_features"].shape[-1]), "padded": 3000},
        "cpu_has_native_bf16": bf16_available(torch.device("cpu")),
        "load_average": {"start": load_at_start, "end": load},
        "median_step_s": {k: round(v, 4) for k, v in med.items()},
        "samples_per_s": {k: round(v, 4) for k, v in sps.items()},
        "all_step_s": times,
    }
    rows = "\n".join(f"| {k} | {med[k]:.2f} | {sps[k]:.2f} | {med[USUAL] / med[k]:.1f}x |" for k in fns)
    table = ("| input, precision | median s/step | samples/s | vs usual |\n|---|---|---|---|\n" + rows +
             f"\n\nOne lora-whisper step (forward, backward, AdamW) on whisper-base, batch {args.batch} of "
             f"{args.seconds:g} s clips in {len(languages)} languages routed to their own r={args.rank} "
             f"experts ({payload['lora']['trainable_parameters']:,} trainable parameters). "
             f"**Speed-up of our path over the usual recipe: {speedup:.1f}x** (goal >= 10x). "
             f"Load average (1, 5, 15 min) at the start {load_at_start}, at the end {load}: above the core "
             f"count, other jobs shared the machine and absolute figures are slower than on an idle one.")

    def plot(path):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.8))
        names = list(fns)
        bars = ax.bar(range(len(names)), [sps[k] for k in names],
                      color=["tab:green", "tab:olive", "tab:orange", "tab:red"])
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_ylabel("samples / s (median)")
        ax.set_title(f"LoRA-Whisper training step, whisper-base, batch {args.batch} x {args.seconds:g} s: "
                     f"{speedup:.1f}x", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    out = _common.write("train_speed", payload, table, plot)
    print(table)
    print("wrote", out)


if __name__ == "__main__":
    main()
