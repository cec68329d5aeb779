"""Our JSONL manifest: one utterance per line.

    {"id": "pl-0001", "audio": "clips/pl-0001.wav", "text": "...", "language": "pl",
     "duration": 3.2, "voice": "pl+f3", "split": "train"}

`audio` may be relative: it is resolved against the manifest's folder, never the working
directory, so a manifest means the same from anywhere. Absolute paths and `..` are allowed (a
corpus often lives beside its manifests, not under them): a manifest is trusted like a script
its user runs, and whatever it names is only ever decoded as audio (a text file is refused
by the decoder, named); the server never reads manifests. A missing file is a bad row naming
the resolved path. Keys beyond these are kept in
`Utterance.extra` and written back. Reading yields a `BadRow` for each malformed line so a
check can list them all; `read_manifest` raises on the first.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from lora_whisper.atomic import atomic_open
from lora_whisper.data.utterance import BadRow, DataError, Utterance

FIELDS = ("id", "audio", "text", "language", "duration", "voice", "split")
_STRING_FIELDS = ("id", "audio", "text", "language", "voice", "split")


def iter_manifest(path: str | os.PathLike) -> Iterator[Utterance | BadRow]:
    path = Path(path)
    base = path.parent.resolve()
    seen: dict[str, str] = {}
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a manifest")
    try:
        fh = path.open("rb")   # decoded line by line: one non-UTF-8 line is one bad row
    except OSError as exc:
        raise DataError(f"{path}: cannot read manifest ({exc.strerror or exc})") from None
    with fh:
        for lineno, raw in enumerate(fh, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield BadRow(where, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                                    f"re-save the manifest as UTF-8")
                continue
            if not line.strip():
                continue
            row = _parse_line(line, where, base)
            if isinstance(row, Utterance):
                if row.id in seen:
                    yield BadRow(where, f"duplicate id {row.id!r} (first at {seen[row.id]})", row.id)
                    continue
                seen[row.id] = where
            yield row


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """All utterances; raises `DataError` naming file:line at the first malformed line."""
    out = []
    for row in iter_manifest(path):
        if isinstance(row, BadRow):
            raise DataError(str(row))
        out.append(row)
    return out


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance],
                   relative: bool = True) -> Path:
    """Write atomically; audio under the manifest's directory is stored relative to it, so
    the directory can be moved as a whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    with atomic_open(path, "w", encoding="utf-8") as fh:
        for utt in utterances:
            fh.write(json.dumps(to_record(utt, base if relative else None), ensure_ascii=False) + "\n")
    return path


def to_record(utt: Utterance, base: Path | None = None) -> dict:
    audio = utt.audio
    if base is not None:
        try:
            audio = Path(audio).resolve().relative_to(base).as_posix()
        except ValueError:
            pass  # outside the manifest's directory: keep as given
    rec = {"id": utt.id, "audio": audio, "text": utt.text, "language": utt.language,
           "duration": utt.duration, "voice": utt.voice, "split": utt.split}
    for key, value in utt.extra.items():
        if key not in rec:
            rec[key] = value
    return rec


def _parse_line(line: str, where: str, base: Path) -> Utterance | BadRow:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as exc:
        return BadRow(where, f"not valid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(rec, dict):
        return BadRow(where, f"expected a JSON object, got {type(rec).__name__}")
    rid = rec.get("id")
    rid = str(rid) if rid is not None else None
    for key in ("audio", "text"):
        if key not in rec or rec[key] is None:
            return BadRow(where, f"missing field {key!r}", rid)
    for key in _STRING_FIELDS:
        value = rec.get(key)
        if value is not None and not isinstance(value, str) and not (key == "id" and isinstance(value, int)):
            return BadRow(where, f"field {key!r} must be a string, got {type(value).__name__}", rid)
    duration = rec.get("duration")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) \
                or not math.isfinite(duration) or duration < 0:
            return BadRow(where, f"field 'duration' must be a non-negative number of seconds, "
                                 f"got {duration!r}", rid)
        duration = float(duration)
    if not rec["audio"].strip():
        return BadRow(where, "field 'audio' is empty", rid)
    audio = Path(rec["audio"]).expanduser()
    if not audio.is_absolute():
        audio = Path(os.path.normpath(base / audio))   # messages then show where it looked
    return Utterance(
        id=rid if rid is not None else rec["audio"],
        audio=str(audio),
        text=rec["text"],
        language=rec.get("language"),
        duration=duration,
        voice=rec.get("voice"),
        split=rec.get("split"),
        extra={k: v for k, v in rec.items() if k not in FIELDS},
        origin=where,
    )
