"""Our JSONL manifest as a source (see lora_whisper.data.manifest)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lora_whisper.data.manifest import iter_manifest
from lora_whisper.data.readers._common import select
from lora_whisper.data.utterance import BadRow, Utterance


def read_jsonl(path: Path, language: str | None = None,
               split: str | None = None) -> Iterator[Utterance | BadRow]:
    for row in iter_manifest(path):
        if isinstance(row, Utterance):
            row = select(row, language, split)
            if row is None:
                continue
        yield row
