"""Every training and dev clip decoded once before the first step.

A clip that cannot be decoded (corrupt, NaN samples) or a transcript too long for Whisper's
448-position decoder would otherwise stop a DataLoader an hour in, or be cut silently. Such
rows are skipped here with a count and the first few named; the durations used for batching
are the measured ones, not what a manifest declared.
"""
from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from lora_whisper.audio import AudioError, load_audio
from lora_whisper.data.batching import MAX_TARGET_POSITIONS, text_for_tokens
from lora_whisper.data.utterance import Utterance

SHOWN = 3   # problems named in the note; the rest are counted


@dataclass
class Screened:
    kept: list[Utterance]
    durations: list[float]                      # measured, per kept utterance
    undecodable: list[str] = field(default_factory=list)
    too_long: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.undecodable) + len(self.too_long)

    def note(self, what: str, total: int) -> str:
        parts = []
        if self.undecodable:
            parts.append(f"{len(self.undecodable)} undecodable ({'; '.join(self.undecodable[:SHOWN])}"
                         f"{' ...' if len(self.undecodable) > SHOWN else ''})")
        if self.too_long:
            parts.append(f"{len(self.too_long)} with a transcript over Whisper's 448 decoder positions "
                         f"({', '.join(self.too_long[:SHOWN])}{' ...' if len(self.too_long) > SHOWN else ''})")
        return f"note: skipped {self.skipped} of {total} {what} utterances: {', '.join(parts)}"


def screen(utterances: Sequence[Utterance], vocab, jobs: int = 4) -> Screened:
    def check(utt: Utterance):
        n_tokens = len(vocab.sot_sequence(utt.language)) + len(vocab.encode(text_for_tokens(utt.text, utt.language))) + 1
        if n_tokens > MAX_TARGET_POSITIONS:
            return "long", f"{utt.origin or utt.id} ({n_tokens} tokens)"
        try:
            return "ok", len(load_audio(utt.audio)) / 16000
        except AudioError as exc:
            return "bad", f"{utt.origin or utt.id}: {exc}"

    out = Screened([], [])
    with ThreadPoolExecutor(max(1, jobs)) as pool:   # libsndfile/soxr release the GIL
        for utt, (kind, value) in zip(utterances, pool.map(check, utterances)):
            if kind == "ok":
                out.kept.append(utt)
                out.durations.append(value)
            else:
                (out.too_long if kind == "long" else out.undecodable).append(value)
    return out
