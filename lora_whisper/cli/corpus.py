"""`lora-whisper corpus build|texts`: the offline synthetic benchmark corpus."""
from __future__ import annotations

import argparse
import json

from lora_whisper.cli._options import positive_int

DEFAULT_LANGUAGES = "pl,pt,it,zh,da,el,cy,ja,en,de,es,ru"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "corpus", help="build the offline synthetic multilingual corpus",
        description="Synthetic speech corpus: Debian text + offline TTS, speaker-disjoint splits.",
    )
    sub = parser.add_subparsers(dest="corpus_command", metavar="ACTION")

    b = sub.add_parser("build", help="synthesise train/dev/test audio and JSONL manifests")
    b.add_argument("--languages", type=_csv, default=_csv(DEFAULT_LANGUAGES),
                   help=f"comma-separated codes (default {DEFAULT_LANGUAGES})")
    b.add_argument("--per-language", type=positive_int, required=True,
                   help="training utterances per language")
    b.add_argument("--dev-per-language", type=positive_int, default=None,
                   help="dev utterances per language (default max(10, N/10))")
    b.add_argument("--test-per-language", type=positive_int, default=None,
                   help="test utterances per language (default max(10, N/10))")
    b.add_argument("--out", required=True, help="output directory (resumed if it exists)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--engines", type=_csv, default=["espeak"],
                   help="TTS engines: espeak (all languages), pyopenjtalk (ja, train only), mbrola, "
                        "rhvoice, pico, festival (Debian packages; see README), or 'available'")
    b.add_argument("--held-out-engine", default=None,
                   help="'auto': each language's test split spoken by an engine no training clip "
                        "used (where it has two); or one engine name")
    b.add_argument("--jobs", type=positive_int, default=2, help="synthesis worker processes")
    b.add_argument("--no-augment", action="store_true",
                   help="clean TTS only: no tempo, reverb, band limit or noise")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_build)

    t = sub.add_parser("texts", help="fetch and cache the sentence lists; print counts")
    t.add_argument("--languages", type=_csv, default=_csv(DEFAULT_LANGUAGES))
    t.add_argument("--refresh", action="store_true", help="re-extract even if cached")
    t.set_defaults(func=_texts)

    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _build(args: argparse.Namespace) -> int:
    from lora_whisper.corpus import build_corpus

    from lora_whisper.corpus.tts import available_engines

    engines = available_engines() if args.engines == ["available"] else tuple(args.engines)
    summary = build_corpus(
        args.out, args.languages, args.per_language, seed=args.seed,
        dev_per_language=args.dev_per_language, test_per_language=args.test_per_language,
        engines=tuple(engines), jobs=args.jobs, progress=not args.quiet,
        augment=not args.no_augment, held_out_engine=args.held_out_engine,
    )
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0 if summary["missing"] == 0 else 1


def _texts(args: argparse.Namespace) -> int:
    from lora_whisper.corpus.text_sources import cache_path, load_sentences
    from lora_whisper.languages import normalize_code

    for code in args.languages:
        lang = normalize_code(code)
        sentences = load_sentences(lang, refresh=args.refresh)
        print(f"{lang}\t{len(sentences)}\t{cache_path(lang)}")
    return 0
