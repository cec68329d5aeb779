"""`lora-whisper transcribe` and `lora-whisper detect-language`."""
from __future__ import annotations

import json
import sys

from lora_whisper.cli._options import add_compute_type, positive_int


def _add_model_args(p):
    p.add_argument("--backbone", default=None, help="local Whisper dir (HF or CTranslate2); default: embedded whisper-base")
    p.add_argument("--run", default=None, help="a trained run directory (routes each file to its language's expert)")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--pad-30s", action="store_true", help="pad every clip to 30 s (classic Whisper) instead of its real length")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    add_compute_type(p)


def register(sub) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files")
    p.add_argument("files", nargs="+")
    p.add_argument("--language", default="auto", help="language code, or 'auto' to detect per file")
    p.add_argument("--beam-size", type=positive_int, default=1)
    p.add_argument("--max-new-tokens", type=positive_int, default=None)
    from lora_whisper.inference.formats import FORMATS

    p.add_argument("--format", choices=FORMATS, default="txt")
    p.add_argument("--timestamps", action="store_true",
                   help="segment timestamps for clips under 30 s too (longer audio always has them)")
    p.add_argument("--output-dir", default=None,
                   help="also write one file per input (NAME.FORMAT) here, each as soon as it is done")
    _add_model_args(p)
    p.set_defaults(func=run_transcribe)

    d = sub.add_parser("detect-language", help="Whisper language identification per file")
    d.add_argument("files", nargs="+")
    d.add_argument("--top", type=positive_int, default=3, help="how many languages to show (json: all)")
    d.add_argument("--format", choices=("txt", "text", "json"), default="txt")
    _add_model_args(d)
    d.set_defaults(func=run_detect)


def _transcriber(args):
    import torch

    from lora_whisper.inference.transcriber import load

    if args.threads:
        torch.set_num_threads(args.threads)
    return load(args.backbone, run=args.run, pad_30s=args.pad_30s, batch_size=args.batch_size,
                compute_type=args.compute_type)


def run_transcribe(args) -> int:
    t = _transcriber(args)
    t._check_language(args.language)  # refuse an unknown code before any work
    out = _Output(args.format, args.output_dir, args.files, t)
    try:
        # Each result is printed (and written) as it finishes: an interrupt keeps what is done.
        t.transcribe(list(args.files), language=args.language, beam_size=args.beam_size,
                     max_new_tokens=args.max_new_tokens, progress=True,
                     timestamps=args.timestamps, on_result=out.emit)
    except KeyboardInterrupt:
        print(f"interrupted: {out.done} of {len(args.files)} file(s) finished"
              + (f" (written to {args.output_dir})" if args.output_dir else ""), file=sys.stderr)
        return 130
    if out.failed:
        print(f"{out.failed} of {len(args.files)} file(s) failed", file=sys.stderr)
    return 1 if out.failed else 0


class _Output:
    """Where finished transcriptions go: stdout, and one file per input in `--output-dir`."""

    def __init__(self, fmt: str, output_dir: str | None, files: list[str], transcriber):
        from pathlib import Path

        self.fmt, self.many, self.t = fmt, len(files) > 1, transcriber
        self.done = self.failed = 0
        self.dir = Path(output_dir) if output_dir else None
        self.names: dict[str, str] = {}
        if self.dir is not None:
            from lora_whisper.errors import UserError

            if self.dir.exists() and not self.dir.is_dir():
                raise UserError(f"--output-dir {self.dir}: exists and is not a directory")
            self.dir.mkdir(parents=True, exist_ok=True)
            ext = "txt" if fmt == "text" else fmt
            taken: set[str] = set()
            for i, f in enumerate(files):  # two inputs named a.wav in different folders: a.txt, a.2.txt
                stem, n = Path(f).stem or f"input{i}", 1
                name = f"{stem}.{ext}"
                while name in taken:
                    n += 1
                    name = f"{stem}.{n}.{ext}"
                taken.add(name)
                self.names.setdefault(f, name)

    def emit(self, index: int, r) -> None:
        from tqdm import tqdm

        from lora_whisper.inference.formats import render

        # tqdm.write: a line printed while the progress bar is up starts a line of its own.
        def say(text: str, err: bool = False) -> None:
            tqdm.write(text, file=sys.stderr if err else sys.stdout)
            (sys.stderr if err else sys.stdout).flush()

        self.done += 1
        if r.error:
            self.failed += 1
            say(f"error: {r.error}", err=True)
            return
        if r.language and r.expert is None and self.t.bank is not None:
            say(f"warning: {r.source}: no expert for language {r.language!r} in this run; "
                f"decoded by the bare backbone", err=True)
        if self.fmt in ("txt", "text"):
            prefix = f"{r.source}\t[{r.language}{'' if r.expert is None else ' via ' + r.expert}]\t" if self.many else ""
            say(prefix + r.text)
        else:
            if self.many and self.fmt in ("srt", "vtt"):
                say(f"# {r.source}")
            say(render(r, self.fmt))
        if self.dir is not None:
            from lora_whisper.atomic import atomic_write_text

            text = render(r, self.fmt)
            atomic_write_text(self.dir / self.names[r.source], text if text.endswith("\n") else text + "\n")


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
            # allow_nan=False: never print invalid JSON (NaN audio is refused at load anyway)
            print(json.dumps({"file": f, "language": next(iter(probs)), "probabilities": probs}, allow_nan=False))
        else:
            top = list(probs.items())[: args.top]
            print(f"{f}\t" + "  ".join(f"{c} {p:.3f}" for c, p in top))
    return 1 if failed else 0
