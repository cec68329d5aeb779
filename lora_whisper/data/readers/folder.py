"""A folder of audio files, each with a same-named `.txt` transcript beside it.

Searched recursively. The language comes from `--language`, else the nearest folder (up to
the root given) named like a language (`pl/`, `polish/`); the split is `--split`'s value.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lora_whisper.data.readers._common import AUDIO_EXTENSIONS, language_from_path
from lora_whisper.data.utterance import BadRow, Utterance


def audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*")
                  if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
                  and not p.name.startswith("."))


def is_folder(path: Path) -> bool:
    return path.is_dir() and any(p.with_suffix(".txt").is_file() for p in audio_files(path))


def read_folder(path: Path, language: str | None = None,
                split: str | None = None) -> Iterator[Utterance | BadRow]:
    for audio in audio_files(path):
        rel = audio.relative_to(path)
        txt = audio.with_suffix(".txt")
        if not txt.is_file():
            yield BadRow(str(audio), f"no transcript {txt.name} beside it", rel.with_suffix("").as_posix())
            continue
        try:
            text = txt.read_text(encoding="utf-8").strip()
        except UnicodeDecodeError:
            yield BadRow(str(txt), "transcript is not UTF-8 text", rel.with_suffix("").as_posix())
            continue
        yield Utterance(
            id=rel.with_suffix("").as_posix(),
            audio=str(audio),
            text=" ".join(text.split()),  # transcripts wrapped over lines are one utterance
            language=language or _language_of(audio.parent, path),
            split=split,
            origin=str(txt),
        )


def _language_of(folder: Path, root: Path) -> str | None:
    while True:
        code = language_from_path(folder)
        if code is not None or folder == root or folder == folder.parent:
            return code
        folder = folder.parent
