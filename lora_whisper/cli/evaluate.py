"""`lora-whisper evaluate`: WER/CER per language of a run (or the bare backbone) on a test
source, optionally against another system; writes report.md/json/png and hyps.jsonl."""
from __future__ import annotations

import sys

from lora_whisper.cli._options import add_compute_type, add_routing, positive_int, routing_from_args


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="WER/CER per language on a test set, with a report",
                       description="Decodes every utterance of TEST (greedy, capped length), scores "
                                   "it after Whisper's BasicTextNormalizer (WER; CER for zh/ja) and "
                                   "writes report.md, report.json, report.png and hyps.jsonl.")
    p.add_argument("--run", help="a trained run directory (adapters or full fine-tune)")
    p.add_argument("--backbone", default=None,
                   help="Whisper dir to evaluate zero-shot (without --run), or where a run's backbone "
                        "is when it moved; default: embedded whisper-base")
    p.add_argument("--data", required=True, help="test source (manifest or corpus, as `data check` reads)")
    p.add_argument("--language", choices=("given", "detect"), default="given",
                   help="given: prompt each utterance with its own language (routes to its expert); "
                        "detect: Whisper's language ID chooses (default: given)")
    p.add_argument("--languages", default=None, help="only these languages, comma-separated")
    p.add_argument("--max-per-language", type=positive_int, default=None, help="score a seeded sample of N per language")
    p.add_argument("--compare", default=None,
                   help="another run, an earlier evaluate output dir, or 'zero-shot' (the run's bare backbone)")
    p.add_argument("--out", default=None, help="report directory (default: RUN/eval/<data name>, or ./eval/<data name>)")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--max-new-tokens", type=positive_int, default=128,
                   help="cap per utterance, so a repetition loop cannot run to the context limit (default 128)")
    p.add_argument("--beam-size", type=positive_int, default=1)
    p.add_argument("--fallback", action="store_true",
                   help="Whisper's temperature fallback (samples: results vary between runs)")
    p.add_argument("--pad-30s", action="store_true", help="pad every clip to 30 s (classic Whisper input)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    add_compute_type(p)
    add_routing(p, "--candidates")   # --languages already filters the test set here
    p.set_defaults(func=run_evaluate)


def run_evaluate(args) -> int:
    import torch

    from lora_whisper.evaluation.evaluate import evaluate

    if args.threads:
        torch.set_num_threads(args.threads)
    candidates, policy = routing_from_args(args)
    languages = [c for c in args.languages.split(",") if c.strip()] if args.languages else None
    report, paths = evaluate(args.data, run=args.run, backbone=args.backbone, out=args.out,
                             language=args.language, compare=args.compare, batch_size=args.batch_size,
                             max_new_tokens=args.max_new_tokens, beam_size=args.beam_size,
                             fallback=args.fallback, languages=languages,
                             max_per_language=args.max_per_language, pad_30s=args.pad_30s,
                             progress=sys.stderr.isatty(), compute_type=args.compute_type,
                             candidates=candidates, policy=policy)
    if not paths:   # a torchrun rank other than 0: rank 0 writes the report
        return 0
    print(paths["md"].read_text())
    print(f"written: {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    skipped = report["settings"].get("skipped_undecodable") or []
    if skipped:
        print(f"{len(skipped)} utterance(s) could not be decoded and are not scored (listed in the report)",
              file=sys.stderr)
    return 1 if skipped else 0
