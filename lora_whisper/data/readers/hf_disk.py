"""A Hugging Face dataset written by `save_to_disk` (a Dataset, or a DatasetDict of splits).

The arrow files are read with pyarrow directly: `datasets` would decode audio through
torchcodec, which we neither need nor install. Audio embedded as bytes is written once to
the cache (`Utterance.audio` must be a path), keyed by the dataset's fingerprint.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lora_whisper.audio import write_wav
from lora_whisper.data.readers._common import SPLIT_ALIASES, select
from lora_whisper.data.readers.table import COLUMNS
from lora_whisper.data.utterance import BadRow, DataError, Utterance
from lora_whisper.paths import cache_dir


def is_hf_disk(path: Path) -> bool:
    return path.is_dir() and ((path / "dataset_dict.json").is_file()
                              or ((path / "state.json").is_file()
                                  and (path / "dataset_info.json").is_file()))


def read_hf_disk(path: Path, language: str | None = None,
                 split: str | None = None) -> Iterator[Utterance | BadRow]:
    try:
        import pyarrow  # noqa: F401  (optional: not a dependency of ours; `datasets` brings it)
    except ImportError:
        raise DataError(f"{path}: reading a saved Hugging Face dataset needs pyarrow; "
                        "install it with `pip install datasets`") from None
    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        if split is not None:
            wanted = [s for s in splits if SPLIT_ALIASES.get(s.lower(), s.lower()) == split]
            if not wanted:
                raise DataError(f"{path}: no split {split!r}; splits: {', '.join(splits)}")
            splits = wanted
        for s in splits:
            yield from _read_dataset(path / s, language, SPLIT_ALIASES.get(s.lower(), s))
    else:
        yield from _read_dataset(path, language, split)


def _read_dataset(d: Path, language: str | None, split: str | None):
    import pyarrow as pa  # optional (see read_hf_disk), so imported where it is used

    state = json.loads((d / "state.json").read_text())
    features = json.loads((d / "dataset_info.json").read_text()).get("features") or {}
    names = list(features)
    audio_col = next((n for n, f in features.items()
                      if isinstance(f, dict) and f.get("_type") == "Audio"), None) \
        or _pick(names, COLUMNS["audio"])
    text_col = _pick(names, COLUMNS["text"])
    if audio_col is None or text_col is None:
        raise DataError(f"{d}: need an audio column and a text column "
                        f"({', '.join(COLUMNS['text'])}); columns are {', '.join(names)}")
    lang_col = next((n for n in ("language", "lang", "locale") if n in names), None)
    id_col = _pick(names, COLUMNS["id"])
    voice_col = _pick(names, ("speaker_id", "speaker", "client_id", "voice"))
    out_dir = cache_dir("hf-audio", _digest(d, state))
    row = 0
    for item in state["_data_files"]:
        arrow = d / item["filename"]
        for batch in _batches(pa, arrow):
            for rec in batch.to_pylist():
                where = f"{arrow}:row {row}"
                rid = str(rec[id_col]) if id_col and rec.get(id_col) is not None else f"{d.name}-{row}"
                audio = _audio_path(rec.get(audio_col), d, out_dir, row)
                if isinstance(audio, str) and audio.startswith("!"):
                    yield BadRow(where, audio[1:], rid)
                else:
                    raw_lang = rec.get(lang_col) if lang_col else None
                    utt = Utterance(
                        id=rid, audio=audio, text=rec[text_col] or "",
                        language=str(raw_lang) if raw_lang not in (None, "") else None,
                        voice=str(rec[voice_col]) if voice_col and rec.get(voice_col) else None,
                        split=split, origin=where,
                    )
                    utt = select(utt, language, None)
                    if utt is not None:
                        yield utt
                row += 1


def _batches(pa, arrow: Path):
    with pa.memory_map(str(arrow)) as src:
        try:
            reader = pa.ipc.open_stream(src)  # what save_to_disk writes
        except pa.ArrowInvalid:
            src.seek(0)
            reader = pa.ipc.open_file(src)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)
            return
        yield from reader


def _audio_path(value, d: Path, out_dir: Path, row: int) -> str:
    """A path to the row's audio, writing embedded bytes to the cache; '!reason' if none."""
    if isinstance(value, str):
        value = {"path": value}
    if not isinstance(value, dict):
        return "!no audio in this row"
    if value.get("bytes"):
        suffix = Path(value.get("path") or "").suffix or ".wav"
        target = out_dir / f"{row:08d}{suffix}"
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(value["bytes"])
            os.replace(tmp, target)
        return str(target)
    if value.get("array") is not None:
        target = out_dir / f"{row:08d}.wav"
        if not target.exists():
            write_wav(target, np.asarray(value["array"]), value.get("sampling_rate") or 16000,
                      subtype="FLOAT")
        return str(target)
    if value.get("path"):
        p = Path(value["path"]).expanduser()
        return str(p if p.is_absolute() else d / p)
    return "!no audio in this row"


def _pick(names: list[str], wanted) -> str | None:
    lower = {n.lower(): n for n in names}
    return next((lower[w] for w in wanted if w in lower), None)


def _digest(d: Path, state: dict) -> str:
    # The fingerprint alone names a transform history, not a place: two copies of a dataset
    # edited apart must not share extracted audio.
    key = [str(d.resolve()), state.get("_fingerprint")]
    key += [f"{f['filename']}:{(d / f['filename']).stat().st_size}" for f in state["_data_files"]]
    return hashlib.sha256("|".join(map(str, key)).encode()).hexdigest()[:16]
