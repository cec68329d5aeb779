"""`lora-whisper transcribe` and `lora-whisper detect-language`."""
from __future__ import annotations

import json
import sys

from lora_whisper.cli._options import add_compute_type, add_routing, routing_from_args


def _add_model_args(p):
    p.add_argument("--backbone", default=None, help="local Whisper dir (HF or CTranslate2); default: embedded whisper-base")
    p.add_argument("--run", default=None, help="a trained run directory (routes each file to its language's expert)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--pad-30s", action="store_true", help="pad every clip to 30 s (classic Whisper) instead of its real length")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_compute_type(p)
    add_routing(p)


def register(sub) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files")
    p.add_argument("files", nargs="+")
    p.add_argument("--language", default="auto", help="language code, or 'auto' to detect per file")
    p.add_argument("--beam-size", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=None)
    from lora_whisper.inference.formats import FORMATS

    p.add_argument("--format", choices=FORMATS, default="txt")
    p.add_argument("--timestamps", action="store_true",
                   help="segment timestamps for clips under 30 s too (longer audio always has them)")
    _add_model_args(p)
    p.set_defaults(func=run_transcribe)

    d = sub.add_parser("detect-language", help="Whisper language identification per file")
    d.add_argument("files", nargs="+")
    d.add_argument("--top", type=int, default=3, help="how many languages to show (json: all)")
    d.add_argument("--format", choices=("txt", "text", "json"), default="txt")
    _add_model_args(d)
    d.set_defaults(func=run_detect)


def _transcriber(args):
    import torch

    from lora_whisper.inference.transcriber import load

    if args.threads:
        torch.set_num_threads(args.threads)
    candidates, policy = routing_from_args(args)
    return load(args.backbone, run=args.run, pad_30s=args.pad_30s, batch_size=args.batch_size,
                compute_type=args.compute_type, candidates=candidates, policy=policy)


def run_transcribe(args) -> int:
    from lora_whisper.inference.formats import render

    t = _transcriber(args)
    t._check_language(args.language)  # refuse an unknown code before any work
    results = t.transcribe(list(args.files), language=args.language, beam_size=args.beam_size,
                           max_new_tokens=args.max_new_tokens, progress=True,
                           timestamps=args.timestamps)
    failed = 0
    for r in results:
        if r.error:
            failed += 1
            print(f"error: {r.error}", file=sys.stderr)
            continue
        if args.format in ("txt", "text"):
            prefix = f"{r.source}\t[{r.language}{'' if r.expert is None else ' via ' + r.expert}]\t" if len(results) > 1 else ""
            print(prefix + r.text)
        else:
            if len(results) > 1 and args.format in ("srt", "vtt"):
                print(f"# {r.source}")
            print(render(r, args.format))
    return 1 if failed else 0


def run_detect(args) -> int:
    t = _transcriber(args)
    failed = 0
    for f in args.files:
        try:
            probs = t.detect_language(f)  # reads the first 30 s only
        except Exception as exc:  # noqa: BLE001  (one line per bad file, others continue)
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        if args.format == "json":
            print(json.dumps({"file": f, "language": next(iter(probs)), "probability": next(iter(probs.values())),
                              "probabilities": probs}))
        else:
            top = list(probs.items())[: args.top]
            print(f"{f}\t" + "  ".join(f"{c} {p:.3f}" for c, p in top))
    return 1 if failed else 0
