"""One long file as a batch: speech chunks (vad.py) of one file, and of the next files, are
decoded together, `batch_size` chunks per decoder pass, each row prompted with and routed to
its own file's language.

As faster-whisper's BatchedInferencePipeline: each chunk (at most 30 s of speech, silence
between its spans left out) is decoded once, without seeking and without previous-text
prompts, by default without timestamps: the chunk is one segment, from its first speech to
its last (word timestamps give the detail). With `VadOptions(segment_timestamps=True)` the
chunk is decoded with timestamps into segments, their times mapped back through the chunk's
spans to the file's timeline; but with no next window to seek to, whisper-base then drops
speech it leaves for later near a chunk's end (WER 0.138 vs 0.047 without, on 2 minutes of
the long_form benchmark's speech). Silence outside speech is never decoded. Unlike faster-
whisper, the temperature fallback still applies per row, and the encoder runs one row at a
time so that memory does not grow with the batch (the decoder's per-token steps are where
batching pays on a CPU). Files are read twice, both times as streams: once for the VAD,
once for the chunks.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

from lora_whisper.adapters.routing import routed
from lora_whisper.audio import AudioStream
from lora_whisper.backbone.forward import encode
from lora_whisper.data.features import SAMPLE_RATE
from lora_whisper.inference.decoding import TIME_PRECISION, decode_batch, is_silence
from lora_whisper.inference.longform import Piece, split_segments
from lora_whisper.inference.vad import Chunk, ChunkReader, VadOptions, chunk_file
from lora_whisper.inference.words import align_rows

if TYPE_CHECKING:
    from lora_whisper.inference.transcriber import Transcriber, TranscribeJob

# Encoder rows per forward: its activations (attention over 1500 positions) grow with the
# rows, its speed does not (1.40 s for 2 rows one by one, 1.42-1.65 s together, int8, 1 thread);
# the decoder then takes all rows of the batch at once.
ENCODE_ROWS = 1


def _open(t: "Transcriber", x):
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return t.load_input(x)
    return AudioStream(x)


def _rows(t: "Transcriber", job: "TranscribeJob", order: list[int], vad: VadOptions
          ) -> Iterator[tuple[int, Chunk | None, np.ndarray | None, bool]]:
    """(input, chunk, its audio, last chunk of the input?) in input order; (i, None, None,
    True) for an input with no speech, or one that failed part-way (what was done is kept)."""
    for i in order:
        reader = None
        try:
            first = _open(t, job.items[i])
            try:
                chunks, n = chunk_file(first, vad)
            finally:
                if not isinstance(first, np.ndarray):
                    first.close()
            job.outs[i].duration = n / SAMPLE_RATE
            if not chunks:
                yield i, None, None, True
                continue
            reader = ChunkReader(_open(t, job.items[i]))
            for k, ch in enumerate(chunks):
                yield i, ch, reader.read(ch), k == len(chunks) - 1
        except Exception as exc:  # noqa: BLE001  (reported per file; others continue)
            t.fail_input(job, i, exc)
            yield i, None, None, True
        finally:
            if reader is not None:
                reader.close()


def encode_rows(model, feats: torch.Tensor, lens: torch.Tensor, routing=None):
    """The encoder over a batch, ENCODE_ROWS rows at a time (all rows are 30 s: no mask),
    each row through its own experts (`routing`, None = the bare backbone)."""
    parts = []
    for s in range(0, feats.shape[0], ENCODE_ROWS):
        rows = None if routing is None else routing.index_select(torch.arange(s, min(s + ENCODE_ROWS, feats.shape[0])))
        with routed(rows):
            parts.append(encode(model, feats[s:s + ENCODE_ROWS], lens[s:s + ENCODE_ROWS])[0])
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def close_open_segment(tokens: list[int], timestamp_begin: int, samples: int) -> list[int]:
    """A chunk's tokens that end in text get a closing timestamp at the chunk's end: the text
    is kept (there is no next window to decode it again)."""
    if tokens and tokens[-1] < timestamp_begin:
        return tokens + [timestamp_begin + int(round(samples / SAMPLE_RATE / TIME_PRECISION))]
    return tokens


def transcribe_chunked(t: "Transcriber", job: "TranscribeJob", order: list[int], vad: VadOptions = VadOptions(),
                       words: bool = False) -> None:
    from lora_whisper.inference.transcriber import Segment   # transcriber imports this module

    options = replace(job.options, timestamps=vad.segment_timestamps)
    tb = t.vocab.timestamp_begin
    seen: set[int] = set()
    rows = _rows(t, job, order, vad)
    exhausted = False
    while not exhausted:
        batch: list[tuple[int, Chunk, np.ndarray, bool]] = []
        while len(batch) < t.batch_size:
            item = next(rows, None)
            if item is None:
                exhausted = True
                break
            i, ch, audio, last = item
            if ch is None:   # no speech, or failed: finished as it stands
                if i not in seen:
                    job.outs[i].language = job.forced[i] or job.outs[i].language
                    job.outs[i].expert = t.expert_for(job.outs[i].language)
                _finish(job, i)
                continue
            batch.append(item)
        if not batch:
            continue
        fresh = [k for k, (i, *_) in enumerate(batch) if i not in seen and (seen.add(i) or True)]
        if fresh:   # a file's language: given, or detected on its first chunk of speech
            t.assign_languages(job, [batch[k][0] for k in fresh], [batch[k][2] for k in fresh])
        clips = [a for _, _, a, _ in batch]
        languages = [job.outs[i].language for i, *_ in batch]
        feats, lens = t.features_of(clips, silence_to_30s=True)
        routing = t.routing_for(languages)
        enc = encode_rows(t.model, feats, lens, routing)
        prompts = [t.vocab.sot_sequence(t.prompt_language(lang), timestamps=options.timestamps) for lang in languages]
        results = decode_batch(t.model, t.vocab, feats, lens, prompts, routing=routing, options=options,
                               encoded=(enc, None))
        pieces_per_row = []
        for (i, ch, audio, last), res in zip(batch, results):
            if is_silence(res, options):
                pieces_per_row.append([])
                continue
            if options.timestamps:
                pieces, _ = split_segments(close_open_segment(res.tokens, tb, len(audio)), tb, 0.0, len(audio))
            else:   # the chunk is the segment
                text = [x for x in res.tokens if x < t.vocab.eot]
                pieces = [Piece(0.0, round(len(audio) / SAMPLE_RATE, 3), text)] if text else []
            pieces_per_row.append(pieces)
        word_rows = None
        if words:
            word_rows = align_rows(t, enc, prompts, routing, pieces_per_row, [len(a) for a in clips], results=results)
        for r, ((i, ch, audio, last), pieces) in enumerate(zip(batch, pieces_per_row)):
            out = job.outs[i]
            for k, p in enumerate(pieces):
                text = t.vocab.decode(p.tokens)
                if not text.strip():
                    continue
                start = ch.to_original(p.start)
                seg = Segment(start, max(start, ch.to_original(p.end, is_end=True)), text, language=out.language)
                if word_rows is not None:
                    seg.words = [w.mapped(ch.to_original) for w in word_rows[r][k]]
                out.segments.append(seg)
                job.segment(i, seg)
            if last:
                _finish(job, i)
        if job.bar:
            job.bar.update(sum(len(a) for a in clips) / SAMPLE_RATE)


def _finish(job: "TranscribeJob", i: int) -> None:
    out = job.outs[i]
    out.text = " ".join(g.text.strip() for g in out.segments).strip()
    job.done(i)
