"""`lora-whisper` entry point.

Each subcommand lives in its own module in this package and exposes
`register(subparsers)`; modules are discovered, so adding a command touches no shared file.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import warnings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lora-whisper",
        description="Multilingual ASR with language-specific LoRA experts on a frozen Whisper.",
    )
    parser.add_argument("--debug", action="store_true", default=bool(os.environ.get("LORA_WHISPER_DEBUG")),
                        help="show the full traceback of an unexpected error (or set LORA_WHISPER_DEBUG=1)")
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
    shown, warnings.showwarning = warnings.showwarning, _one_line_warning
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as exc:  # expected, explained failures: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001  last line of defence
        if args.debug:
            raise
        print(f"error: {_describe(exc)}", file=sys.stderr)
        print("hint: this is unexpected; rerun with --debug before the command (or LORA_WHISPER_DEBUG=1) "
              "for the traceback, and report it", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown
    return int(rc or 0)


def _describe(exc: BaseException) -> str:
    """One line for an error we did not foresee: its kind, and the file when it names one."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text[:300]}"


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # Our warnings name their file already; where in our code they were raised is noise.
    # tqdm.write: on a line of its own while a progress bar is drawn.
    from tqdm import tqdm

    tqdm.write(f"warning: {' '.join(str(message).split())}", file=file or sys.stderr)


from lora_whisper.errors import UserError  # noqa: E402  (after main for import order clarity)

if __name__ == "__main__":
    sys.exit(main())
