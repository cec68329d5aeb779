"""Speech chunks: the streamed Silero VAD gives faster-whisper's numbers, chunk times map back
to the file exactly, and `vad=True` decodes the chunks of several files as batches, routed
per file (tiny random Whisper; the real model in test_words_real.py)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from lora_whisper.inference.decoding import DecodeOptions
from lora_whisper.inference.transcriber import Transcriber
from lora_whisper.inference.vad import (WINDOW, Chunk, ChunkReader, VadOptions, chunk_file,
                                        merge_chunks, speech_probs, speech_spans)

SR = 16000
GREEDY = DecodeOptions(temperatures=(0.0,), compression_ratio_threshold=None, logprob_threshold=None,
                       max_new_tokens=12)


class _Stream:
    """An AudioStream stand-in that hands out odd-sized reads."""

    def __init__(self, audio: np.ndarray):
        self.audio, self.pos = audio, 0

    def read(self, n: int) -> np.ndarray:
        n = min(n, 12_345)
        out = self.audio[self.pos:self.pos + n]
        self.pos += len(out)
        return out

    def close(self) -> None:
        pass


def _bursty(rng, seconds: float) -> np.ndarray:
    """Voiced-like bursts (harmonic tones with noise) and pauses of varied length."""
    out, n = [], 0
    while n < seconds * SR:
        k = int(rng.uniform(0.5, 6) * SR)
        t = np.arange(k) / SR
        f0 = rng.uniform(100, 220)
        burst = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6)) * 0.2
        burst *= 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
        gap = np.zeros(int(rng.uniform(0.05, 2.5) * SR))
        out += [burst + rng.normal(0, 0.01, k), gap]
        n += k + len(gap)
    return np.concatenate(out).astype(np.float32)[: int(seconds * SR)]


SENTENCES = ("The quick brown fox jumps over the lazy dog.", "Please call me when you get home tonight.",
             "Our train leaves at noon from the station.")


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    import subprocess

    from lora_whisper.audio import load_audio

    d = tmp_path_factory.mktemp("voices")
    for i, s in enumerate(SENTENCES):
        subprocess.run(["espeak-ng", "-v", "en", "-w", str(d / f"s{i}.wav"), s], check=True)
    return [load_audio(d / f"s{i}.wav") for i in range(len(SENTENCES))]


def _speech(voices, seconds: float, seed: int = 0) -> np.ndarray:
    """espeak sentences in rotation with pauses of 0.1 to 3 s."""
    rng = np.random.default_rng(seed)
    out, n, i = [], 0, seed
    while n < seconds * SR:
        gap = np.zeros(int(rng.uniform(0.1, 3.0) * SR), np.float32)
        out += [voices[i % len(voices)], gap]
        n += len(out[-2]) + len(gap)
        i += 1
    return np.concatenate(out)[: int(seconds * SR)]


def test_streamed_probabilities_and_spans_equal_faster_whisper(rng):
    from faster_whisper.vad import VadOptions as FWOptions
    from faster_whisper.vad import get_speech_timestamps, get_vad_model

    audio = _bursty(rng, 10_000 * WINDOW / SR + 25)   # across our block boundaries and faster-whisper's
    probs, n = speech_probs(_Stream(audio))
    padded = np.pad(audio, (0, WINDOW - len(audio) % WINDOW))
    np.testing.assert_array_equal(probs, get_vad_model()(padded).reshape(-1))
    assert n == len(audio)
    theirs = get_speech_timestamps(audio, FWOptions(max_speech_duration_s=30, min_silence_duration_ms=160))
    assert speech_spans(probs, n) == [(s["start"], s["end"]) for s in theirs]


def test_chunk_times_map_back_exactly(rng):
    spans = [(1008, 50_000), (80_000, 81_008), (81_008, 200_000), (300_000, 310_000)]   # on the ms grid
    audio = rng.standard_normal(400_000).astype(np.float32)
    chunk = Chunk(tuple(spans))
    joined = ChunkReader(audio).read(chunk)
    assert len(joined) == chunk.samples
    for k in rng.integers(0, chunk.samples // 16, 200) * 16:   # times in whole ms, as segments have
        t = k / SR
        assert joined[k] == audio[round(chunk.to_original(t) * SR)]
    # A seam between two spans: a segment ending there ends the earlier span, one starting
    # there starts the later one.
    seam = (50_000 - 1008) / SR
    assert chunk.to_original(seam, is_end=True) == 50_000 / SR
    assert chunk.to_original(seam) == 80_000 / SR


def test_chunks_hold_at_most_30s_in_order():
    spans = [(i * 5 * SR, i * 5 * SR + 4 * SR) for i in range(30)]   # 4 s of speech every 5 s
    chunks = merge_chunks(spans)
    assert [s for c in chunks for s in c.spans] == spans
    assert [len(c.spans) for c in chunks] == [7, 7, 7, 7, 2]   # 28 s each: one more would pass 30 s


def test_chunk_reader_streams_what_the_array_gives(tmp_path, voices):
    from lora_whisper.audio import AudioStream

    audio = _speech(voices, 70)
    f = tmp_path / "a.wav"
    sf.write(f, audio, SR, subtype="FLOAT")
    chunks, n = chunk_file(AudioStream(f))
    assert n == len(audio) and chunks == chunk_file(audio)[0] and len(chunks) >= 2
    reader = ChunkReader(AudioStream(f))
    for c in chunks:
        np.testing.assert_array_equal(reader.read(c), ChunkReader(audio).read(c))
    reader.close()


def test_vad_transcription_maps_segments_into_speech_and_batches_files(tiny, voices):
    """Several files' chunks share batches; each file gives what it gives alone; segment (and
    word) times lie inside its chunks, in order; a file of silence has no segments."""
    audios = [_speech(voices, secs, seed) for seed, secs in ((1, 75), (2, 40))]
    silence = np.zeros(20 * SR, np.float32)
    t = Transcriber(tiny, options=GREEDY, batch_size=3)
    together = t.transcribe(audios + [silence], language=["de", "en", "en"], vad=True, word_timestamps=True)
    assert together[2].segments == [] and together[2].duration == 20.0
    for a, lang, r in zip(audios, ("de", "en"), together):
        chunks, _ = chunk_file(a)
        assert r.duration == len(a) / SR and r.segments
        alone = t.transcribe(a, language=lang, vad=True, word_timestamps=True)
        assert [(g.start, g.end, g.text) for g in alone.segments] == [(g.start, g.end, g.text) for g in r.segments]
        bounds = [(c.start / SR, c.end / SR) for c in chunks]
        last = 0.0
        for g in r.segments:
            assert any(s <= g.start <= g.end <= e for s, e in bounds)
            assert g.start >= last - 1e-9
            last = g.start
            assert g.words is not None
            for w in g.words:
                assert g.start <= w.start <= w.end <= g.end


def test_vad_options_reach_the_detector(voices):
    audio = _speech(voices, 30)
    probs, n = speech_probs(audio)
    loose = speech_spans(probs, n, VadOptions(min_silence_duration_ms=2000))
    assert len(loose) <= len(speech_spans(probs, n))


def test_chunk_encoder_routes_each_row_through_its_experts(tiny, rng):
    """VAD chunks are encoded apart from decoding (ENCODE_ROWS at a time); each row still goes
    through its own language's encoder experts, as decode_batch's own encoding does."""
    import torch

    from lora_whisper.adapters.config import LoraSpec
    from lora_whisper.adapters.model import inject, perturb_experts
    from lora_whisper.adapters.routing import routed
    from lora_whisper.backbone.forward import encode
    from lora_whisper.inference.chunked import encode_rows

    bank = inject(tiny.model, LoraSpec(r=4, alpha=8, dropout=0.0), ["de", "en"], seed=0)
    perturb_experts(bank, 0.5, 1)
    feats = torch.randn(3, tiny.n_mels, 3000, generator=torch.Generator().manual_seed(0))
    lens = torch.full((3,), 3000)
    routing = bank.routing_for(["de", None, "en"])
    with torch.no_grad():
        with routed(routing):
            whole, _ = encode(tiny.model, feats, lens)
        rows = encode_rows(tiny.model, feats, lens, routing)
        bare = encode_rows(tiny.model, feats, lens)
    assert torch.allclose(rows, whole, atol=1e-5)
    assert torch.equal(rows[1], bare[1]) and not torch.allclose(rows[0], bare[0], atol=1e-3)
