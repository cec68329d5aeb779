"""Mozilla Common Voice: `<root>/{train,dev,test,validated}.tsv` + `<root>/clips/*.mp3`.

The language comes from `--language`, else the tsv's `locale` column, else the folder name
(`cv-corpus-17.0/pl`). Without a split, train/dev/test are read (each row tagged), or
`validated.tsv` when those are absent. `clip_durations.tsv` (newer releases) gives durations.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from lora_whisper.data.readers._common import language_from_path
from lora_whisper.data.utterance import BadRow, DataError, Utterance

SPLITS = ("train", "dev", "test")


def is_common_voice(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".tsv" and {"client_id", "path", "sentence"} <= set(_header(path))
    return (path / "clips").is_dir() and any(
        (path / f"{s}.tsv").is_file() for s in (*SPLITS, "validated"))


def read_common_voice(path: Path, language: str | None = None,
                      split: str | None = None) -> Iterator[Utterance | BadRow]:
    if path.is_file():
        root, files = path.parent, [(path, split or _split_of(path))]
    else:
        root = path
        names = [split] if split else [s for s in SPLITS if (root / f"{s}.tsv").is_file()] \
            or ["validated"]
        files = [(root / f"{n}.tsv", n) for n in names]
        for f, _ in files:
            if not f.is_file():
                raise DataError(f"{root}: no {f.name} (splits here: "
                                f"{', '.join(sorted(p.stem for p in root.glob('*.tsv')))})")
    durations = _durations(root / "clip_durations.tsv")
    guess = language or language_from_path(root)
    for tsv, split_tag in files:
        yield from _read_tsv(tsv, root / "clips", language, guess, split_tag, durations)


def _read_tsv(tsv, clips, language, guess, split_tag, durations):
    with tsv.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if not header or not {"path", "sentence"} <= set(header):
            raise DataError(f"{tsv}: not a Common Voice table (need columns path, sentence; "
                            f"header is {header!r})")
        col = {name: i for i, name in enumerate(header)}
        for row in reader:
            where = f"{tsv}:{reader.line_num}"
            if not row or not any(row):
                continue
            if len(row) <= max(col["path"], col["sentence"]):
                yield BadRow(where, f"{len(row)} columns, header has {len(header)}")
                continue
            clip = row[col["path"]].strip()
            locale = row[col["locale"]].strip() if "locale" in col and len(row) > col["locale"] else ""
            yield Utterance(
                id=Path(clip).stem,
                audio=str(clips / clip),
                text=row[col["sentence"]],
                language=language or locale or guess,
                duration=durations.get(clip),
                voice=row[col["client_id"]] if "client_id" in col else None,
                split=split_tag,
                extra={k: row[i] for k, i in col.items()
                       if k in ("gender", "age", "accents", "variant") and i < len(row) and row[i]},
                origin=where,
            )


def _durations(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    out = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader, None)
        for row in reader:
            try:
                out[row[0]] = float(row[1]) / 1000.0  # milliseconds in the release
            except (IndexError, ValueError):
                continue
    return out


def _header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8") as fh:
            return fh.readline().rstrip("\r\n").split("\t")
    except (OSError, UnicodeDecodeError):
        return []


def _split_of(path: Path) -> str | None:
    return path.stem if path.stem in (*SPLITS, "validated", "other", "invalidated") else None
