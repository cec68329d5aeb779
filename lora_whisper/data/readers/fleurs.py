"""FLEURS: `<root>/<split>.tsv` (no header; id, file name, raw transcription, normalized
transcription, phonetic words, num samples, gender) and `<root>/audio/<split>/<file>.wav`.

The language comes from `--language` or the folder name (`pl_pl`, `cmn_hans_cn`). FLEURS has
several readers per sentence, so the utterance id is the file name, not the sentence id.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lora_whisper.audio import SAMPLE_RATE
from lora_whisper.data.readers._common import language_from_path
from lora_whisper.data.utterance import BadRow, DataError, Utterance

SPLITS = ("train", "dev", "test")


def looks_like_fleurs_tsv(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as fh:
            cols = fh.readline().rstrip("\r\n").split("\t")
    except (OSError, UnicodeDecodeError):
        return False
    return len(cols) == 7 and cols[0].isdigit() and cols[5].isdigit() \
        and cols[1].endswith((".wav", ".flac"))


def is_fleurs(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".tsv" and looks_like_fleurs_tsv(path)
    return (path / "audio").is_dir() and any(
        (path / f"{s}.tsv").is_file() and looks_like_fleurs_tsv(path / f"{s}.tsv") for s in SPLITS)


def read_fleurs(path: Path, language: str | None = None,
                split: str | None = None) -> Iterator[Utterance | BadRow]:
    if path.is_file():
        root, files = path.parent, [path]
    else:
        root = path
        files = [root / f"{split}.tsv"] if split else \
            [root / f"{s}.tsv" for s in SPLITS if (root / f"{s}.tsv").is_file()]
        for f in files:
            if not f.is_file():
                raise DataError(f"{root}: no {f.name}")
    guess = language or language_from_path(root)
    for tsv in files:
        yield from _read_tsv(tsv, root / "audio" / tsv.stem, guess)


def _read_tsv(tsv: Path, audio_dir: Path, language: str | None):
    with tsv.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            where = f"{tsv}:{lineno}"
            cols = line.split("\t")
            if len(cols) != 7:
                yield BadRow(where, f"{len(cols)} columns, FLEURS rows have 7")
                continue
            sid, fname, raw, normalized, _phonetic, n_samples, gender = cols
            try:
                duration = int(n_samples) / SAMPLE_RATE
            except ValueError:
                duration = None
            yield Utterance(
                id=Path(fname).stem,
                audio=str(audio_dir / fname),
                text=raw,
                language=language,
                duration=duration,
                split=tsv.stem,
                extra={"sentence_id": sid, "normalized_text": normalized, "gender": gender},
                origin=where,
            )
