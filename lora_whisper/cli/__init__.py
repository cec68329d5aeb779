"""`lora-whisper` entry point.

Each subcommand lives in its own module in this package and exposes
`register(subparsers)`; modules are discovered, so adding a command touches no shared file.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lora-whisper",
        description="Multilingual ASR with language-specific LoRA experts on a frozen Whisper.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as exc:  # expected, explained failures: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


from lora_whisper.errors import UserError  # noqa: E402  (after main for import order clarity)

if __name__ == "__main__":
    sys.exit(main())
