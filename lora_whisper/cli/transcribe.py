"""`lora-whisper transcribe` and `lora-whisper detect-language`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from dataclasses import replace

from lora_whisper.cli._options import (add_compute_type, add_config_flags, add_routing, config_overrides,
                                       positive_int, routing_from_args)
from lora_whisper.errors import UserError
from lora_whisper.inference.options import DecodeOptions


def _add_model_args(p):
    p.add_argument("--backbone", default=None, help="local Whisper dir (HF or CTranslate2); default: embedded whisper-base")
    p.add_argument("--run", default=None, help="a trained run directory (routes each file to its language's expert)")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--pad-30s", action="store_true", help="pad every clip to 30 s (classic Whisper) instead of its real length")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    add_compute_type(p)
    add_routing(p)


def register(sub) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files")
    p.add_argument("files", nargs="+")
    p.add_argument("--language", default="auto", help="language code, or 'auto' to detect per file")
    from lora_whisper.inference.formats import FORMATS

    p.add_argument("--format", choices=FORMATS, default="txt")
    p.add_argument("--timestamps", action="store_true",
                   help="segment timestamps for clips under 30 s too (longer audio always has them)")
    p.add_argument("--vad", action="store_true",
                   help="cut audio at speech pauses (Silero VAD) and decode the chunks of a file as a batch; silence is skipped")
    p.add_argument("--word-timestamps", action="store_true",
                   help="a start and end per word (json: 'words' per segment)")
    p.add_argument("--per-word", action="store_true", help="srt/vtt: one cue per word (needs --word-timestamps)")
    p.add_argument("--output-dir", default=None,
                   help="one file per input in DIR (in --format), written as each finishes; files already "
                        "there are skipped. Under torchrun the inputs are shared out among the ranks")
    _add_model_args(p)
    add_config_flags(p, DecodeOptions, group="decoding")
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
    candidates, policy = routing_from_args(args)
    return load(args.backbone, run=args.run, pad_30s=args.pad_30s, batch_size=args.batch_size,
                compute_type=args.compute_type, candidates=candidates, policy=policy)


def run_transcribe(args) -> int:
    from lora_whisper.inference import sharding
    from lora_whisper.inference.outputs import OutputDir

    if args.per_word and not args.word_timestamps:
        raise UserError("--per-word needs --word-timestamps")
    rank = sharding.current()
    if rank.distributed and not args.output_dir:
        raise UserError("under torchrun, transcribe needs --output-dir (each rank writes its own files there)")
    t = _transcriber(args)
    t.check_language(args.language)  # refuse an unknown code before any work
    files = list(dict.fromkeys(args.files))
    outdir = None
    if args.output_dir:
        if Path(args.output_dir).exists() and not Path(args.output_dir).is_dir():
            raise UserError(f"--output-dir {args.output_dir}: exists and is not a directory")
        outdir = OutputDir(args.output_dir, args.format, files, per_word=args.per_word)
    todo = [f for f in files if outdir is None or not outdir.done(f)]   # a rerun skips finished files
    mine = [todo[i] for i in sharding.shard([_probe(f) for f in todo], rank)] if rank.distributed else todo
    # Under torchrun each rank writes its files; stdout would interleave the ranks' results.
    out = _Output(args.format, outdir, mine, t, per_word=args.per_word, echo=not rank.distributed)
    try:
        # Each result is printed (and written) as it finishes: an interrupt keeps what is done.
        if mine:
            t.transcribe(mine, language=args.language, options=_decode_options(args, t), progress=rank.is_main,
                         timestamps=args.timestamps, vad=args.vad, word_timestamps=args.word_timestamps,
                         on_result=out.emit)
    except KeyboardInterrupt:
        print(f"interrupted: {out.done} of {len(mine)} file(s) finished"
              + (f" (written to {args.output_dir})" if args.output_dir else ""), file=sys.stderr)
        return 130
    if out.failed:
        print(f"{out.failed} of {len(mine)} file(s) failed", file=sys.stderr)
    if outdir is not None:
        who = f"rank {rank.rank}/{rank.size}: " if rank.distributed else ""
        print(f"{who}wrote {out.written} file(s) to {args.output_dir}; {len(files) - len(todo)} already there",
              file=sys.stderr)
    return 1 if out.failed else 0


def _decode_options(args, t) -> DecodeOptions:
    """The Transcriber's options with the decoding flags given (flags from DecodeOptions' fields)."""
    given = {k: v for k, v in config_overrides(args, DecodeOptions).items() if v is not None}
    try:
        return replace(t.options, **given)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _probe(f) -> float | None:
    from lora_whisper.audio import probe_duration

    try:
        return probe_duration(f)
    except Exception:  # noqa: BLE001  (an unreadable file: transcribe reports it)
        return None


class _Output:
    """Where finished transcriptions go: stdout (`echo`), and one file per input in `--output-dir`."""

    def __init__(self, fmt: str, outdir, files: list[str], transcriber, per_word: bool = False, echo: bool = True):
        self.fmt, self.many, self.t, self.per_word, self.echo = fmt, len(files) > 1, transcriber, per_word, echo
        self.outdir = outdir
        self.done = self.failed = self.written = 0

    def emit(self, index: int, r) -> None:
        from tqdm import tqdm

        from lora_whisper.inference.formats import render

        # tqdm.write: a line printed while the progress bar is up starts a line of its own.
        def say(text: str, err: bool = False) -> None:
            if err or self.echo:
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
            say(render(r, self.fmt, per_word=self.per_word))
        if self.outdir is not None:
            self.outdir.write(r)
            self.written += 1


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
            print(json.dumps({"file": f, "language": next(iter(probs)), "probability": next(iter(probs.values())),
                              "probabilities": probs}, allow_nan=False))
        else:
            top = list(probs.items())[: args.top]
            print(f"{f}\t" + "  ".join(f"{c} {p:.3f}" for c, p in top))
    return 1 if failed else 0
