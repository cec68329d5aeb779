"""`lora-whisper demo`: the main job end to end on the embedded whisper-base (see demo.py)."""
from __future__ import annotations

from pathlib import Path

from lora_whisper.cli._options import positive_int


def register(sub) -> None:
    p = sub.add_parser("demo", help="the whole story on the embedded whisper-base (~15 min on 2 cores)")
    p.add_argument("--out", default="demo-output", help="where the corpus, runs, table and chart go")
    p.add_argument("--per-language", type=positive_int, default=None, help="training clips per language")
    p.add_argument("--base-steps", type=positive_int, default=None)
    p.add_argument("--new-steps", type=positive_int, default=None)
    p.add_argument("--test-per-language", type=positive_int, default=None)
    p.add_argument("--threads", type=positive_int, default=None)
    p.set_defaults(func=run)


def run(args) -> int:
    from dataclasses import replace

    from lora_whisper.demo import DemoConfig, run_demo

    changes = {k: v for k, v in dict(per_language=args.per_language, base_steps=args.base_steps,
                                     new_steps=args.new_steps, test_per_language=args.test_per_language,
                                     threads=args.threads).items() if v is not None}
    run_demo(replace(DemoConfig(out=Path(args.out)), **changes))
    return 0
