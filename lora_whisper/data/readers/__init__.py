"""Sources of utterances: our manifest, CSV/TSV, Common Voice, MLS, FLEURS, a saved Hugging
Face dataset, a folder of audio + .txt. `open_source("path")` detects the layout;
`"mls:path"` forces one.

Language precedence: for corpora with one language (Common Voice, MLS, FLEURS, folders)
`language` overrides what the folder name suggests; for sources whose rows carry a language
(manifest, CSV, HF columns) it keeps the rows of that language and fills rows without one.
`split` works the same way for rows that carry a split.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lora_whisper.data.readers._common import check, language_argument, split_name
from lora_whisper.data.readers.common_voice import is_common_voice, read_common_voice
from lora_whisper.data.readers.fleurs import is_fleurs, read_fleurs
from lora_whisper.data.readers.folder import is_folder, read_folder
from lora_whisper.data.readers.hf_disk import is_hf_disk, read_hf_disk
from lora_whisper.data.readers.jsonl import read_jsonl
from lora_whisper.data.readers.mls import is_mls, read_mls
from lora_whisper.data.readers.table import read_table
from lora_whisper.data.utterance import BadRow, DataError, Utterance

Reader = Callable[..., Iterator["Utterance | BadRow"]]

FORMATS: dict[str, Reader] = {
    "jsonl": read_jsonl,
    "csv": read_table,
    "tsv": read_table,
    "cv": read_common_voice,
    "commonvoice": read_common_voice,
    "mls": read_mls,
    "fleurs": read_fleurs,
    "hf": read_hf_disk,
    "folder": read_folder,
}

__all__ = ["FORMATS", "SourceRows", "detect_format", "iter_source", "open_source",
           "parse_spec", "read_source"]


@dataclass
class SourceRows:
    spec: str
    format: str
    path: Path
    utterances: list[Utterance] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)


def parse_spec(spec: str | Path) -> tuple[str | None, Path]:
    """'mls:/data/mls_polish' -> ('mls', path); a plain path -> (None, path)."""
    text = str(spec)
    head, sep, rest = text.partition(":")
    if sep and head.lower() in FORMATS:
        return head.lower(), Path(rest).expanduser()
    return None, Path(text).expanduser()


def detect_format(path: Path) -> str:
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".json", ".ndjson"):
            return "jsonl"
        if path.name == "transcripts.txt":
            return "mls"
        if suffix == ".tsv":
            return "cv" if is_common_voice(path) else "fleurs" if is_fleurs(path) else "tsv"
        if suffix == ".csv":
            return "csv"
        raise DataError(f"{path}: not a source file (expected .jsonl, .csv or .tsv)")
    for name, test in (("hf", is_hf_disk), ("cv", is_common_voice), ("fleurs", is_fleurs),
                       ("mls", is_mls)):
        if test(path):
            return name
    manifests = sorted(path.glob("*.jsonl"))
    if len(manifests) == 1:
        return "jsonl"
    if is_folder(path):
        return "folder"
    raise DataError(f"{path}: cannot tell the layout (not Common Voice, MLS, FLEURS, a saved "
                    f"HF dataset, a manifest or audio with .txt transcripts); name it as "
                    f"FORMAT:PATH with FORMAT one of {', '.join(sorted(FORMATS))}")


def iter_source(spec: str | Path, language: str | None = None, split: str | None = None,
                check_files: bool = True) -> tuple[str, Path, Iterator[Utterance | BadRow]]:
    """-> (format, path, rows): every row checked (language code normalised, text present,
    audio file present), problems as `BadRow`s."""
    fmt, path = parse_spec(spec)
    code = language_argument(language)
    split = split_name(split)
    fmt = fmt or detect_format(path)
    if fmt == "jsonl" and path.is_dir():
        path = sorted(path.glob("*.jsonl"))[0]
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    rows = FORMATS[fmt](path, code, split)

    def checked():
        for row in rows:
            yield check(row, check_files) if isinstance(row, Utterance) else row

    return fmt, path, checked()


def read_source(spec: str | Path, language: str | None = None, split: str | None = None,
                check_files: bool = True) -> SourceRows:
    """Everything in a source, good rows and bad rows apart (what `data check` reports)."""
    fmt, path, rows = iter_source(spec, language, split, check_files)
    out = SourceRows(str(spec), fmt, path)
    try:
        for row in rows:
            (out.bad if isinstance(row, BadRow) else out.utterances).append(row)
    except UnicodeDecodeError as exc:  # a CSV/TSV/transcript file in another encoding
        raise DataError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start} "
                        f"of a read block); re-save it as UTF-8") from None
    return out


def open_source(spec: str | Path, language: str | None = None, split: str | None = None,
                check_files: bool = True) -> list[Utterance]:
    """The utterances of a source; any bad row is an error (a training run should not
    discover half-way that a file is missing)."""
    rows = read_source(spec, language, split, check_files)
    if rows.bad:
        shown = "; ".join(str(b) for b in rows.bad[:3])
        more = f" (and {len(rows.bad) - 3} more)" if len(rows.bad) > 3 else ""
        raise DataError(f"{len(rows.bad)} bad row(s) in {spec}: {shown}{more}; "
                        f"`lora-whisper data check {spec}` lists them all")
    if not rows.utterances:
        what = " ".join(f"{k} {v!r}" for k, v in (("language", language), ("split", split)) if v)
        raise DataError(f"{spec}: no utterances{' for ' + what if what else ''}")
    return rows.utterances
