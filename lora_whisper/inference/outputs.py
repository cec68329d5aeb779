"""`transcribe --output-dir DIR`: one result file per input, written (atomically) as soon as
that input is finished, so a rerun skips what is done and a killed job loses only the files
it was decoding. Names are the inputs' stems; inputs that share a stem get their parent
folder's name too, decided over the whole input list so that every torchrun rank names a
file the same way."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

from lora_whisper.atomic import atomic_write_text
from lora_whisper.inference.formats import render

EXTENSIONS = {"txt": "txt", "text": "txt", "json": "json", "srt": "srt", "vtt": "vtt"}


class OutputDir:
    def __init__(self, root: str | Path, fmt: str, inputs: Sequence[str], per_word: bool = False):
        self.root = Path(root)
        self.fmt, self.per_word = fmt, per_word
        ext = EXTENSIONS[fmt]
        stems = Counter(Path(x).stem for x in inputs)
        self.paths: dict[str, Path] = {}
        for x in inputs:
            p = Path(x)
            name = p.stem if stems[p.stem] == 1 else f"{p.parent.name or 'root'}-{p.stem}"
            self.paths[x] = self.root / f"{name}.{ext}"
        if len(set(self.paths.values())) != len(self.paths):
            seen = Counter(self.paths.values())
            for x, path in self.paths.items():   # still ambiguous: number them in input order
                if seen[path] > 1:
                    self.paths[x] = path.with_name(f"{path.stem}-{list(self.paths).index(x)}{path.suffix}")

    def done(self, source: str) -> bool:
        return self.paths[source].exists()

    def write(self, result) -> Path:
        text = render(result, self.fmt, per_word=self.per_word)
        return atomic_write_text(self.paths[result.source], text if text.endswith("\n") else text + "\n")
