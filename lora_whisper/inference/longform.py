"""Long-form transcription: Whisper's timestamp-based seeking over 30 s windows.

As in openai/whisper's `transcribe()`: a window is decoded with timestamps, its complete
`<|t0|> text <|t1|>` segments are kept, and the next window starts where the last complete
segment ended, so words cut at a window's edge are decoded again, whole, in the next window;
a window that ends on a lone timestamp was used up. Unlike it, the windows of many files are
decoded together (one row per file, each with its own seek), and files are read from disk a
window at a time, so memory does not grow with a file's length. Previous-text prompts are not
used: rows of one batch share a prompt length, and those prompts are also what makes Whisper
repeat itself on hard audio (faster-whisper's batched pipeline leaves them out too).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lora_whisper.data.features import CONTEXT_SAMPLES, N_SAMPLES_30S, SAMPLE_RATE
from lora_whisper.inference.decoding import TIME_PRECISION

SAMPLES_PER_STAMP = int(TIME_PRECISION * SAMPLE_RATE)  # 320 samples per timestamp step
MIN_WINDOW = SAMPLE_RATE // 10   # a leftover under 100 ms is not worth a decoder pass


@dataclass
class Piece:
    start: float          # seconds from the start of the file
    end: float
    tokens: list[int]     # text tokens (timestamps removed)
    language: str | None = None   # the language its window was decoded in


def split_segments(tokens: list[int], timestamp_begin: int, offset: float,
                   window_samples: int) -> tuple[list[Piece], int]:
    """A window's decoded tokens -> (its complete segments, samples to seek forward)."""
    tb = timestamp_begin
    is_ts = [t >= tb for t in tokens]
    window_s = window_samples / SAMPLE_RATE
    single_ending = len(tokens) >= 2 and is_ts[-1] and not is_ts[-2]
    consecutive = [i for i in range(1, len(tokens)) if is_ts[i] and is_ts[i - 1]]
    pieces: list[Piece] = []

    def piece(start: int, end: int, part: list[int]) -> Piece:
        s = min((start - tb) * TIME_PRECISION, window_s)
        e = min(max((end - tb) * TIME_PRECISION, s), window_s)
        return Piece(round(offset + s, 3), round(offset + e, 3), [t for t in part if t < tb])

    if consecutive:
        slices = consecutive + ([len(tokens)] if single_ending else [])
        last = 0
        for cut in slices:
            part = tokens[last:cut]
            pieces.append(piece(part[0], part[-1], part))
            last = cut
        # Ends inside an unfinished segment: resume where the last complete one ended.
        advance = window_samples if single_ending else (tokens[last - 1] - tb) * SAMPLES_PER_STAMP
    else:
        stamps = [t for t in tokens if t >= tb]
        end = stamps[-1] if stamps and stamps[-1] != tb else tb + round(window_s / TIME_PRECISION)
        pieces.append(piece(stamps[0] if stamps else tb, end, tokens))
        advance = window_samples
    if not 0 < advance <= window_samples:
        advance = window_samples   # never stall on a degenerate timestamp
    return [p for p in pieces if p.tokens], advance


class Cursor:
    """One input being transcribed window by window: an array, or an `AudioStream` read a
    window ahead and dropped behind the seek point (but for the few samples the next window's
    STFT needs as context)."""

    def __init__(self, index: int, source):
        self.index = index
        self.source = source
        self.seek = 0                         # samples from the start of the file
        self._in_memory = isinstance(source, np.ndarray)
        self._buf = source if self._in_memory else np.zeros(0, np.float32)
        self._buf_start = 0
        self._eof = self._in_memory
        self.segments: list = []              # transcriber.Segment, as each window is decoded
        self.level: float | None = None   # loudest log-mel so far: the file's normalisation floor

    def window(self) -> np.ndarray:
        """Up to 30 s of audio from the seek point (empty once the input is used up)."""
        if self._in_memory:
            return self._buf[self.seek:self.seek + N_SAMPLES_30S]
        keep_from = max(0, self.seek - CONTEXT_SAMPLES)
        if keep_from > self._buf_start:
            self._buf, self._buf_start = self._buf[keep_from - self._buf_start:], keep_from
        at = self.seek - self._buf_start
        want = at + N_SAMPLES_30S - len(self._buf)
        if want > 0 and not self._eof:
            more = self.source.read(want)
            self._eof = len(more) < want
            self._buf = np.concatenate([self._buf, more]) if len(self._buf) else more
        return self._buf[at:at + N_SAMPLES_30S]

    def context(self) -> np.ndarray:
        """The audio just before the window (empty at the start of the file)."""
        at = self.seek - self._buf_start   # _buf_start stays 0 for an array
        return self._buf[max(0, at - CONTEXT_SAMPLES):at]

    @property
    def offset(self) -> float:
        return self.seek / SAMPLE_RATE

    def advance(self, samples: int) -> bool:
        """Move the seek point on; True while audio worth a window is left."""
        self.seek += samples
        return len(self.window()) >= MIN_WINDOW

    @property
    def duration(self) -> float:
        n = len(self._buf) if self._in_memory else self.source.samples_read
        return n / SAMPLE_RATE

    def close(self) -> None:
        if not self._in_memory:
            self.source.close()
