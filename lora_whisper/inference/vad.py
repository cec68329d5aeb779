"""Voice activity detection: cut a long file at speech pauses into chunks of at most 30 s.

The model is the Silero VAD (v6, ONNX) that faster-whisper ships, run on onnxruntime; the
rules that turn its speech probabilities into speech spans are faster-whisper's
`get_speech_timestamps` (itself from snakers4/silero-vad), and the spans are merged into
chunks the way its `collect_chunks` does: consecutive spans, silence between them dropped,
until the next would push the chunk past 30 s. Unlike faster-whisper, the probabilities are
computed a block at a time from a stream, so an hour of audio is never held: the model's
state and the last window's context carry across blocks, so the probabilities (and spans)
are the same numbers as faster-whisper's one call over the whole array (tested). What is kept per file is one float per 32 ms window and the spans.
"""
from __future__ import annotations

import bisect
import functools
import os
from dataclasses import dataclass

import numpy as np

from lora_whisper.data.features import SAMPLE_RATE

WINDOW = 512            # samples per VAD probability (32 ms)
CONTEXT = 64            # samples of the previous window each window sees
BLOCK_WINDOWS = 1_000   # windows per onnxruntime call (32 s): the same numbers as faster-whisper's 10,000 (tested), a tenth of the memory


@dataclass(frozen=True)
class VadOptions:
    """faster-whisper's VadOptions, with the defaults its BatchedInferencePipeline uses."""
    threshold: float = 0.5
    neg_threshold: float | None = None
    min_speech_duration_ms: int = 0
    max_speech_duration_s: float = 30.0
    min_silence_duration_ms: int = 160
    speech_pad_ms: int = 400
    max_chunk_s: float = 30.0     # spans are merged into chunks up to this long
    segment_timestamps: bool = False   # decode chunks with timestamps (chunked.py says why not)


@functools.lru_cache(maxsize=1)
def _session():
    # Only --vad pays for onnxruntime and faster-whisper (a second or so to import):
    # vad.py is imported by every Transcriber.
    import onnxruntime
    from faster_whisper.utils import get_assets_path

    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.enable_cpu_mem_arena = False   # the arena would keep its peak block for good
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(os.path.join(get_assets_path(), "silero_vad_v6.onnx"),
                                        providers=["CPUExecutionProvider"], sess_options=opts)


def _blocks(source, samples: int):
    """Blocks of `samples` from an array or an AudioStream-like `.read(n)`."""
    if isinstance(source, np.ndarray):
        for s in range(0, len(source), samples):
            yield source[s:s + samples]
        return
    while len(x := source.read(samples)):
        yield x


def speech_probs(source) -> tuple[np.ndarray, int]:
    """-> (speech probability per 512-sample window, samples in the input), read a block at a
    time. The input is padded as faster-whisper pads it (to the next multiple of 512, by a
    whole window when already a multiple)."""
    session = _session()
    h = np.zeros((1, 1, 128), np.float32)
    c = np.zeros((1, 1, 128), np.float32)
    prev = np.zeros(CONTEXT, np.float32)    # the context of the first window: silence
    probs, total, pending = [], 0, np.zeros(0, np.float32)
    block = WINDOW * BLOCK_WINDOWS
    for x in _blocks(source, block):
        total += len(x)
        pending = np.concatenate([pending, x.astype(np.float32, copy=False)]) if len(pending) else x
        while len(pending) >= block:
            prev, h, c = _run(session, pending[:block], prev, h, c, probs)
            pending = pending[block:]
    tail = np.pad(pending, (0, WINDOW - len(pending) % WINDOW))
    _run(session, tail, prev, h, c, probs)
    return (np.concatenate(probs) if probs else np.zeros(0, np.float32)), total


def _run(session, audio, prev, h, c, out):
    windows = audio.reshape(-1, WINDOW)
    context = np.concatenate([prev[None, :], windows[:-1, -CONTEXT:]], 0)
    batch = np.concatenate([context, windows], 1)
    p, h, c = session.run(None, {"input": batch, "h": h, "c": c})
    out.append(np.asarray(p, np.float32).reshape(-1))
    return windows[-1, -CONTEXT:].copy(), h, c


def speech_spans(probs: np.ndarray, n_samples: int, options: VadOptions = VadOptions()) -> list[tuple[int, int]]:
    """Speech probabilities -> [(start, end)] samples: faster-whisper's get_speech_timestamps
    rules, step for step (hysteresis, minimum silence, split of over-long speech at its last
    pause, padding)."""
    sr = SAMPLE_RATE
    threshold = options.threshold
    neg = options.neg_threshold if options.neg_threshold is not None else max(threshold - 0.15, 0.01)
    min_speech = sr * options.min_speech_duration_ms / 1000
    pad = sr * options.speech_pad_ms / 1000
    max_speech = sr * options.max_speech_duration_s - WINDOW - 2 * pad
    min_silence = sr * options.min_silence_duration_ms / 1000
    min_silence_at_max = sr * 98 / 1000
    triggered, speeches, cur = False, [], {}
    temp_end = prev_end = next_start = 0
    for i, p in enumerate(probs):
        at = WINDOW * i
        if p >= threshold and temp_end:
            temp_end = 0
            if next_start < prev_end:
                next_start = at
        if p >= threshold and not triggered:
            triggered = True
            cur["start"] = at
            continue
        if triggered and at - cur["start"] > max_speech:
            if prev_end:
                cur["end"] = prev_end
                speeches.append(cur)
                cur = {}
                if next_start < prev_end:
                    triggered = False
                else:
                    cur["start"] = next_start
                prev_end = next_start = temp_end = 0
            else:
                cur["end"] = at
                speeches.append(cur)
                cur = {}
                prev_end = next_start = temp_end = 0
                triggered = False
                continue
        if p < neg and triggered:
            if not temp_end:
                temp_end = at
            if at - temp_end > min_silence_at_max:
                prev_end = temp_end
            if at - temp_end < min_silence:
                continue
            cur["end"] = temp_end
            if cur["end"] - cur["start"] > min_speech:
                speeches.append(cur)
            cur = {}
            prev_end = next_start = temp_end = 0
            triggered = False
    if cur and n_samples - cur["start"] > min_speech:
        cur["end"] = n_samples
        speeches.append(cur)
    for i, s in enumerate(speeches):
        if i == 0:
            s["start"] = int(max(0, s["start"] - pad))
        if i != len(speeches) - 1:
            gap = speeches[i + 1]["start"] - s["end"]
            if gap < 2 * pad:
                s["end"] += int(gap // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - gap // 2))
            else:
                s["end"] = int(min(n_samples, s["end"] + pad))
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - pad))
        else:
            s["end"] = int(min(n_samples, s["end"] + pad))
    return [(int(s["start"]), int(s["end"])) for s in speeches]


@dataclass(frozen=True)
class Chunk:
    """Speech spans of one file decoded as one window: their audio, silence between them
    left out. `to_original` maps a time in the chunk's audio back to the file's timeline."""
    spans: tuple[tuple[int, int], ...]

    @property
    def samples(self) -> int:
        return sum(e - s for s, e in self.spans)

    @property
    def start(self) -> int:
        return self.spans[0][0]

    @property
    def end(self) -> int:
        return self.spans[-1][1]

    def to_original(self, t: float, is_end: bool = False) -> float:
        """Chunk seconds -> file seconds. A time on the seam of two spans belongs to the
        earlier span if it ends a segment, to the later one if it starts one."""
        sample = round(t * SAMPLE_RATE)
        cum, ends = 0, []
        for s, e in self.spans:
            cum += e - s
            ends.append(cum)
        k = bisect.bisect_left(ends, sample) if is_end else bisect.bisect_right(ends, sample)
        k = min(k, len(self.spans) - 1)
        before = ends[k - 1] if k else 0
        return round((self.spans[k][0] + sample - before) / SAMPLE_RATE, 3)


def merge_chunks(spans: list[tuple[int, int]], max_s: float = 30.0) -> list[Chunk]:
    """faster-whisper's collect_chunks: consecutive spans while they fit in `max_s`."""
    limit = max_s * SAMPLE_RATE
    chunks, cur, size = [], [], 0
    for s, e in spans:
        if cur and size + (e - s) > limit:
            chunks.append(Chunk(tuple(cur)))
            cur, size = [], 0
        cur.append((s, e))
        size += e - s
    if cur:
        chunks.append(Chunk(tuple(cur)))
    return chunks


def chunk_file(source, options: VadOptions = VadOptions()) -> tuple[list[Chunk], int]:
    """An array or an AudioStream -> (its speech chunks, its length in samples)."""
    probs, n = speech_probs(source)
    return merge_chunks(speech_spans(probs, n, options), options.max_chunk_s), n


class ChunkReader:
    """The audio of a file's chunks, in order, reading the file forward once: only the
    current chunk's samples are held."""

    def __init__(self, source):
        self.source = source
        self._in_memory = isinstance(source, np.ndarray)
        self._pos = 0      # samples of the stream consumed

    def read(self, chunk: Chunk) -> np.ndarray:
        if self._in_memory:
            return np.concatenate([self.source[s:e] for s, e in chunk.spans]).astype(np.float32, copy=False)
        parts = []
        for s, e in chunk.spans:
            if s > self._pos:
                self._skip(s - self._pos)
            got = self.source.read(e - self._pos)
            self._pos += len(got)
            parts.append(got[max(0, len(got) - (e - s)):])
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def _skip(self, n: int) -> None:
        while n > 0:
            got = self.source.read(min(n, 10 * SAMPLE_RATE))
            if not len(got):
                return
            self._pos += len(got)
            n -= len(got)

    def close(self) -> None:
        if not self._in_memory:
            self.source.close()
