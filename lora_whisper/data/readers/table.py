"""Generic CSV/TSV with a header row: the delimiter is detected, columns are found by name.

Recognised columns (any case): audio path `path|audio|file|...`, text
`text|sentence|transcript|...`, and optionally `language|lang|locale`, `id`, `duration`,
`voice|speaker|client_id`, `split`. Audio paths are relative to the table's directory.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

from lora_whisper.data.readers._common import select
from lora_whisper.data.utterance import BadRow, DataError, Utterance

COLUMNS = {
    "audio": ("audio", "path", "audio_path", "audio_filepath", "file", "filename", "file_name",
              "wav", "wav_path", "clip"),
    "text": ("text", "sentence", "transcript", "transcription", "normalized_text",
             "raw_transcription"),
    "language": ("language", "lang", "locale", "language_code"),
    "id": ("id", "utt_id", "utterance_id", "key", "uid"),
    "duration": ("duration", "duration_s", "seconds", "length"),
    "voice": ("voice", "speaker", "speaker_id", "client_id"),
    "split": ("split", "subset"),
}


def sniff_delimiter(header: str, default: str) -> str:
    # The header names never contain the delimiter, so the one splitting it most wins;
    # csv.Sniffer guesses wrong on short files with punctuation in the text.
    counts = {d: header.count(d) for d in ("\t", ",", ";", "|")}
    best = max(counts, key=lambda d: (counts[d], d == default))
    return best if counts[best] else default


def find_columns(header: list[str], where: str) -> dict[str, int]:
    lower = [h.strip().lower() for h in header]
    found = {}
    for key, names in COLUMNS.items():
        for name in names:
            if name in lower:
                found[key] = lower.index(name)
                break
    for key in ("audio", "text"):
        if key not in found:
            raise DataError(f"{where}: no {key} column; header is {header!r}, expected one of "
                            f"{', '.join(COLUMNS[key])}")
    return found


def read_table(path: Path, language: str | None = None, split: str | None = None,
               audio_dir: Path | None = None) -> Iterator[Utterance | BadRow]:
    audio_dir = audio_dir or path.parent.resolve()
    with path.open(encoding="utf-8", newline="") as fh:
        header_line = fh.readline()
        if not header_line.strip():
            raise DataError(f"{path}: empty table (no header row)")
        default = "\t" if path.suffix.lower() == ".tsv" else ","
        delim = sniff_delimiter(header_line, default)
        fh.seek(0)
        # Tab-separated corpora (Common Voice) do not quote: a stray '"' is part of the text.
        quoting = csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL
        reader = csv.reader(fh, delimiter=delim, quoting=quoting)
        header = next(reader)
        cols = find_columns(header, str(path))
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not any(cell.strip() for cell in row):
                continue
            yield from _row(row, cols, header, where, audio_dir, language, split)


def _row(row, cols, header, where, audio_dir, language, split):
    if len(row) < len(header):
        yield BadRow(where, f"{len(row)} columns, header has {len(header)}")
        return
    get = lambda key: row[cols[key]].strip() if key in cols else ""  # noqa: E731
    audio = get("audio")
    if not audio:
        yield BadRow(where, "empty audio path", get("id") or None)
        return
    duration = None
    if get("duration"):
        try:
            duration = float(get("duration"))
            if not math.isfinite(duration) or duration < 0:
                raise ValueError
        except ValueError:
            yield BadRow(where, f"duration {get('duration')!r} is not a number of seconds")
            return
    apath = Path(audio).expanduser()
    utt = Utterance(
        id=get("id") or audio,
        audio=str(apath if apath.is_absolute() else audio_dir / apath),
        text=row[cols["text"]],
        language=get("language") or None,
        duration=duration,
        voice=get("voice") or None,
        split=get("split") or None,
        extra={h: row[i] for i, h in enumerate(header) if i not in cols.values() and i < len(row)},
        origin=where,
    )
    utt = select(utt, language, split)
    if utt is not None:
        yield utt
