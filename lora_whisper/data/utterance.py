"""The records every reader produces: a good `Utterance` or a `BadRow` saying what is wrong."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lora_whisper.audio import load_audio
from lora_whisper.errors import UserError


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: str  # a path; readers resolve it, so it does not depend on the working directory
    text: str
    language: str | None
    duration: float | None = None  # seconds; None where the source does not say
    voice: str | None = None  # speaker or TTS voice: test sets hold voices out
    split: str | None = None
    extra: dict = field(default_factory=dict, compare=False)
    # "file:line" it came from, so a later failure can point back at the source row.
    origin: str | None = field(default=None, compare=False, repr=False)

    @property
    def speaker(self) -> str | None:
        return self.voice

    def load(self, sample_rate: int = 16000) -> np.ndarray:
        return load_audio(self.audio, sample_rate)


@dataclass(frozen=True)
class BadRow:
    where: str  # "file:line", or the utterance id when there is no line
    problem: str
    id: str | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


class DataError(UserError):
    """A source that cannot be read as asked: bad layout, malformed rows, unknown language."""
