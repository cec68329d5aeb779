"""Long-form transcription: timestamp rules, segment splitting and seeking, streamed windows,
flat memory, and routing per row (tiny random Whisper)."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch

from lora_whisper.data.features import N_SAMPLES_30S, log_mel
from lora_whisper.inference.decoding import DecodeOptions, decode_batch
from lora_whisper.inference.longform import Cursor, split_segments
from lora_whisper.inference.transcriber import Transcriber

SR = 16000
TB = 50364  # <|0.00|> in every multilingual Whisper
GREEDY = DecodeOptions(temperatures=(0.0,), compression_ratio_threshold=None, logprob_threshold=None,
                       max_new_tokens=12)


def ts(seconds: float) -> int:
    return TB + round(seconds / 0.02)


def test_split_complete_segments_use_the_whole_window():
    toks = [ts(0.0), 11, 12, ts(2.0), ts(2.0), 13, ts(4.5)]
    pieces, advance = split_segments(toks, TB, offset=30.0, window_samples=20 * SR)
    assert [(p.start, p.end, p.tokens) for p in pieces] == [(30.0, 32.0, [11, 12]), (32.0, 34.5, [13])]
    assert advance == 20 * SR  # ends on a lone timestamp: the window is used up


def test_split_unfinished_segment_is_decoded_again_from_its_start():
    toks = [ts(0.0), 11, ts(2.0), ts(2.4), 13, ts(25.0), ts(25.0), 14, 15]  # cut inside the last
    pieces, advance = split_segments(toks, TB, offset=0.0, window_samples=N_SAMPLES_30S)
    assert [p.tokens for p in pieces] == [[11], [13]]
    assert advance == 25 * SR


def test_split_without_pairs_is_one_segment_and_never_stalls():
    pieces, advance = split_segments([ts(0.0), 11, 12, ts(3.0)], TB, 10.0, 5 * SR)
    assert [(p.start, p.end, p.tokens) for p in pieces] == [(10.0, 13.0, [11, 12])] and advance == 5 * SR
    pieces, advance = split_segments([ts(0.0), ts(0.0), 11], TB, 0.0, 5 * SR)  # degenerate: 0 s forward
    assert advance == 5 * SR
    pieces, advance = split_segments([11, 12], TB, 0.0, 5 * SR)
    assert [(p.start, p.end) for p in pieces] == [(0.0, 5.0)] and advance == 5 * SR


def _check_rules(tokens, max_index):
    stamps = [t - TB for t in tokens if t >= TB]
    assert tokens and tokens[0] >= TB and tokens[0] - TB <= 50        # starts <= 1.0 s
    assert stamps == sorted(stamps) and max(stamps) <= max_index      # never back, never past the audio
    for a, b, c in zip(tokens, tokens[1:], tokens[2:]):
        assert not (a >= TB and b >= TB and c >= TB)                  # at most a pair in a row


@pytest.mark.parametrize("beam", [1, 3])
def test_timestamp_rules_hold_in_a_mixed_length_batch(tiny, rng, beam):
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (3 * SR, 7 * SR)]
    feats, lens = log_mel(clips)
    opts = DecodeOptions(temperatures=(0.0,), compression_ratio_threshold=None, logprob_threshold=None,
                         max_new_tokens=40, timestamps=True, beam_size=beam)
    prompts = [tiny.vocab.sot_sequence("en", timestamps=True)] * 2
    both = decode_batch(tiny.model, tiny.vocab, feats, lens, prompts, options=opts)
    for row, res in enumerate(both):
        _check_rules(res.tokens, (int(lens[row]) + 1) // 2)
        alone = decode_batch(tiny.model, tiny.vocab, *log_mel([clips[row]]), prompts[:1], options=opts)[0]
        assert alone.tokens == res.tokens
        assert res.no_speech_prob is not None and 0.0 <= res.no_speech_prob <= 1.0


def _long_file(path, seconds: float, sr: int = 44100, channels: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal((int(seconds * sr), channels))).astype(np.float32), sr)
    return path


def test_streamed_windows_equal_the_decoded_file(tmp_path):
    from lora_whisper.audio import AudioStream, load_audio

    f = _long_file(tmp_path / "long.flac", 75)
    whole = load_audio(f)
    cur = Cursor(0, AudioStream(f))
    for step in (0, 25 * SR, 30 * SR, 17 * SR):
        cur.seek += step
        assert np.array_equal(cur.window(), whole[cur.seek:cur.seek + N_SAMPLES_30S])
    assert not cur.advance(len(whole) - cur.seek)
    assert cur.duration == len(whole) / SR
    cur.close()


def test_memory_stays_flat_with_file_length(tiny, tmp_path):
    """Transcribing a 10-minute file holds about one window of audio, not the file (numpy
    allocations are what tracemalloc sees: the decoded audio, soxr's and soundfile's buffers)."""
    f = _long_file(tmp_path / "ten-minutes.wav", 600, sr=16000, channels=1)
    t = Transcriber(tiny, options=GREEDY)
    tracemalloc.start()
    try:
        r = t.transcribe(str(f), language="en", max_new_tokens=3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    decoded = 600 * SR * 4
    assert r.duration == 600.0 and len(r.segments) >= 20
    assert peak < decoded / 4, f"peak {peak / 1e6:.1f} MB for a file that decodes to {decoded / 1e6:.0f} MB"


def test_long_file_and_array_and_short_clip_with_timestamps(tiny, tmp_path):
    from lora_whisper.audio import load_audio

    f = _long_file(tmp_path / "long.flac", 70)
    t = Transcriber(tiny, options=GREEDY)
    from_file = t.transcribe(str(f), language="de")
    from_array = t.transcribe(load_audio(f), language="de")
    assert [(g.start, g.end, g.text) for g in from_file.segments] == [(g.start, g.end, g.text) for g in from_array.segments]
    starts = [g.start for g in from_file.segments]
    assert starts == sorted(starts) and from_file.segments[-1].end <= 70.0 + 1e-6
    assert from_file.segments[-1].start > 29.0  # more than one window
    short = load_audio(f)[: 8 * SR]
    plain = t.transcribe(short, language="de")
    timed = t.transcribe(short, language="de", timestamps=True)
    assert [(g.start, g.end) for g in plain.segments] in ([(0.0, 8.0)], [])
    assert all(0.0 <= g.start <= g.end <= 8.0 for g in timed.segments)


def test_long_inputs_of_several_languages_route_per_row(tiny, tmp_path):
    """Long files decoded side by side give what each gives alone, each with its own expert;
    a bad file among them is reported and the rest go on."""
    from lora_whisper.adapters.config import LoraSpec
    from lora_whisper.adapters.model import inject, perturb_experts
    from lora_whisper.audio import load_audio

    bank = inject(tiny.model, LoraSpec(r=4, alpha=8, dropout=0.0), ["de", "en"], seed=0)
    perturb_experts(bank, 0.5, 1)
    t = Transcriber(tiny, bank=bank, options=GREEDY, batch_size=4)
    files = [str(_long_file(tmp_path / f"f{i}.flac", s, seed=i)) for i, s in enumerate((65, 40, 12))]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wave file at all")
    langs = ["de", "en", "en", "de"]
    together = t.transcribe(files + [str(bad)], language=langs)
    assert together[3].error and "bad.wav" in together[3].error
    for i, f in enumerate(files):
        alone = t.transcribe(load_audio(f), language=langs[i])
        assert together[i].expert == langs[i] and together[i].error is None
        assert [(g.start, g.text) for g in together[i].segments] == [(g.start, g.text) for g in alone.segments]
    with torch.no_grad():
        assert together[0].text != t.transcribe(load_audio(files[0]), language="en").text  # the expert matters


def test_stream_reports_files_that_break_part_way(tmp_path):
    from lora_whisper.audio import AudioError, AudioStream

    f = _long_file(tmp_path / "broken.flac", 60, sr=16000, channels=1)
    data = bytearray(f.read_bytes())
    cut = len(data) // 2
    data[cut:] = bytes(np.random.default_rng(1).integers(0, 256, len(data) - cut, dtype=np.uint8))
    f.write_bytes(bytes(data))
    s = AudioStream(f)
    with pytest.raises(AudioError) as err:
        while len(s.read(SR * 10)):
            pass
    assert "broken.flac" in str(err.value) and "corrupt after 20.0 s" in str(err.value)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="no audio samples"):
        AudioStream(empty).read(10)


def test_windows_taken_for_silence_are_skipped(tiny):
    """Whisper's rule (no-speech probability over its threshold and an unlikely text) drops a
    window; thresholds of 0 make every window of a random model count as silence."""
    from dataclasses import replace

    audio = (0.1 * np.random.default_rng(3).standard_normal(SR * 65)).astype(np.float32)
    t = Transcriber(tiny, options=replace(GREEDY, no_speech_threshold=0.0, logprob_threshold=0.0))
    r = t.transcribe(audio, language="en")
    assert r.segments == [] and r.text == "" and r.duration == 65.0
    assert Transcriber(tiny, options=GREEDY).transcribe(audio, language="en").segments  # not silent by default


def test_long_form_windows_are_padded_to_30s_like_whisper(tiny):
    """Short clips keep a 1 s silence tail; a long file's windows (its last one too) get
    Whisper's 30 s of padding (a cut word with 1 s of silence makes whisper-base loop)."""
    t = Transcriber(tiny)
    clip = np.zeros(SR * 3, np.float32)
    _, short = t.features_of([clip])
    _, last = t.features_of([clip], silence_to_30s=True)
    assert int(short[0]) == 400 and int(last[0]) == 3000
