"""Decoding speed on 5 s clips, batch 1 and 8, the embedded whisper-base:
our decoder at the real length (float32, and our int8 compute type) vs 30 s padding vs
transformers `generate` vs CTranslate2 int8 (faster-whisper's engine) on the same CT2 files.

    python benchmarks/decode_speed.py [--repeats 5] [--threads 2] [--tokens 40]

Every system decodes greedily the same clips with the same prompt, stopping at end of text
(capped at --tokens), so the work is comparable; timings are medians of interleaved repeats.
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

SENTENCES = ["Please call me when you get home tonight and we can talk.",
             "The weather is lovely today, so we will walk to the park.",
             "I would like a cup of coffee and a slice of bread.",
             "Our train leaves at noon from the central station.",
             "She reads a new book every week during the summer.",
             "Turn left at the next corner and then go straight on.",
             "The children played football in the garden all afternoon.",
             "We need to buy milk, eggs and apples at the market."]


def clips(n: int) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as d:
        return [_common.fit(_common.speak(s, Path(d) / f"{i}.wav", "en", 140), 5.0)
                for i, s in enumerate(SENTENCES[:n])]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import ctranslate2
    from lora_whisper.backbone.load import embedded_ct2_dir, load_backbone
    from lora_whisper.data.features import log_mel
    from lora_whisper.inference.decoding import DecodeOptions, decode_batch

    bb = load_backbone()
    model, vocab = bb.model, bb.vocab
    model8 = load_backbone(compute_type="int8").model
    opts = DecodeOptions(temperatures=(0.0,), max_new_tokens=args.tokens, compression_ratio_threshold=None,
                         logprob_threshold=None)
    ct2 = ctranslate2.models.Whisper(str(embedded_ct2_dir()), device="cpu", compute_type="int8",
                                     intra_threads=args.threads)
    audio = clips(8)
    rows = []
    results = {}
    for bs in (1, 8):
        batch = audio[:bs]
        prompts = [vocab.sot_sequence("en")] * bs
        f_real, l_real = log_mel(batch, 80)
        f_pad, l_pad = log_mel(batch, 80, pad_30s=True)
        sv_real = ctranslate2.StorageView.from_array(np.ascontiguousarray(f_real.numpy()))

        def ours_real():
            decode_batch(model, vocab, f_real, l_real, prompts, options=opts)

        def ours_int8():
            decode_batch(model8, vocab, f_real, l_real, prompts, options=opts)

        def ours_pad():
            decode_batch(model, vocab, f_pad, l_pad, prompts, options=opts)

        def hf_generate():
            with torch.no_grad():
                model.generate(input_features=f_pad, language="en", task="transcribe",
                               max_new_tokens=args.tokens, do_sample=False, num_beams=1)

        def ct2_int8():
            ct2.generate(sv_real, prompts, beam_size=1, max_length=args.tokens + 4)

        fns = {"ours (real length)": ours_real, "ours int8 (real length)": ours_int8, "ours (30 s padding)": ours_pad,
               "transformers generate": hf_generate, "ctranslate2 int8 (real length)": ct2_int8}
        times = _common.interleaved(fns, args.repeats)
        med = {k: _common.median(v) for k, v in times.items()}
        results[f"batch{bs}"] = {"median_s": med, "all_s": times}
        for k, v in med.items():
            rows.append((bs, k, v, med["transformers generate"] / v))
    ratio8 = results["batch8"]["median_s"]
    summary = {
        "speedup_vs_generate_batch8": ratio8["transformers generate"] / ratio8["ours (real length)"],
        "ratio_vs_ct2_int8_batch8": ratio8["ctranslate2 int8 (real length)"] / ratio8["ours (real length)"],
        "ratio_int8_vs_ct2_int8_batch8": ratio8["ctranslate2 int8 (real length)"] / ratio8["ours int8 (real length)"],
        "goal": "ours >= 5x transformers generate at batch 8, and no slower than CTranslate2 int8",
    }
    table = "| batch | system | median s | speed-up vs generate |\n|---|---|---|---|\n" + "\n".join(
        f"| {b} | {k} | {v:.3f} | {r:.1f}x |" for b, k, v, r in rows)
    table += (f"\n\nAt batch 8 ours is {summary['speedup_vs_generate_batch8']:.1f}x `generate`; "
              f"CTranslate2 int8 takes {summary['ratio_vs_ct2_int8_batch8']:.2f}x our float32 time and "
              f"{summary['ratio_int8_vs_ct2_int8_batch8']:.2f}x our int8 time.")

    def plot(path):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4))
        names = list(results["batch1"]["median_s"])
        x = np.arange(len(names))
        for j, bs in enumerate((1, 8)):
            ax.bar(x + j * 0.4, [results[f"batch{bs}"]["median_s"][n] for n in names], 0.4, label=f"batch {bs}")
        ax.set_xticks(x + 0.2, names, rotation=15, fontsize=8)
        ax.set_ylabel("seconds (median)")
        ax.set_title(f"Decoding {args.tokens} tokens, 5 s clips, whisper-base")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)

    out = _common.write("decode_speed", {"tokens": args.tokens, "repeats": args.repeats, "results": results,
                                         **summary}, table, plot)
    print(table)
    print("wrote", out)


if __name__ == "__main__":
    main()
