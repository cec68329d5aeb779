"""Multilingual LibriSpeech: `<root>/<split>/transcripts.txt` (`spk_book_seg<TAB>text`) and
`<root>/<split>/audio/<spk>/<book>/<spk>_<book>_<seg>.flac` (or `.opus`).

The language comes from `--language` or the folder name (`mls_polish`, `mls_polish_opus`).
`<split>/segments.txt` gives each segment's start and end, hence its duration.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lora_whisper.data.readers._common import language_from_path
from lora_whisper.data.utterance import BadRow, DataError, Utterance

SPLITS = ("train", "dev", "test")


def is_mls(path: Path) -> bool:
    if path.is_file():
        return path.name == "transcripts.txt"
    return (path / "transcripts.txt").is_file() or any(
        (path / s / "transcripts.txt").is_file() for s in SPLITS)


def read_mls(path: Path, language: str | None = None,
             split: str | None = None) -> Iterator[Utterance | BadRow]:
    if path.is_file():
        path = path.parent
    if (path / "transcripts.txt").is_file():  # pointed at one split's folder
        root, dirs = path.parent, [path]
    else:
        root = path
        dirs = [path / split] if split else [path / s for s in SPLITS if (path / s).is_dir()]
        for d in dirs:
            if not (d / "transcripts.txt").is_file():
                raise DataError(f"{path}: no {d.name}/transcripts.txt")
    guess = language or language_from_path(root) or language_from_path(path)
    for d in dirs:
        yield from _read_split(d, guess)


def _read_split(d: Path, language: str | None):
    durations = _durations(d / "segments.txt")
    ext = _audio_ext(d / "audio")
    transcripts = d / "transcripts.txt"
    with transcripts.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            where = f"{transcripts}:{lineno}"
            key, sep, text = line.partition("\t")
            parts = key.split("_")
            if not sep or len(parts) != 3:
                yield BadRow(where, "expected 'speaker_book_segment<TAB>text'")
                continue
            spk, book, _ = parts
            yield Utterance(
                id=key,
                audio=str(d / "audio" / spk / book / f"{key}{ext}"),
                text=text,
                language=language,
                duration=durations.get(key),
                voice=spk,
                split=d.name,
                origin=where,
            )


def _audio_ext(audio: Path) -> str:
    # One release is all flac, the other all opus: look at the first file found.
    for spk in sorted(audio.iterdir()) if audio.is_dir() else ():
        for book in sorted(spk.iterdir()) if spk.is_dir() else ():
            for f in sorted(book.iterdir()) if book.is_dir() else ():
                if f.suffix in (".flac", ".opus", ".wav"):
                    return f.suffix
    return ".flac"


def _durations(path: Path) -> dict[str, float]:
    out = {}
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                cols = line.rstrip("\n").split("\t")
                try:
                    out[cols[0]] = float(cols[3]) - float(cols[2])
                except (IndexError, ValueError):
                    continue
    return out
