"""load_audio / decode_bytes / write_wav on every kind of input a user may hand us."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from lora_whisper.audio import AudioError, audio_duration, decode_bytes, load_audio, write_wav
from lora_whisper.errors import UserError


def tone(seconds=0.5, sr=16000, freq=440.0, channels=1):
    t = np.arange(int(seconds * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def one_line_error(exc_info, path, words):
    msg = str(exc_info.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert words in msg, msg
    assert isinstance(exc_info.value, UserError)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError) as e:
        load_audio(path)
    one_line_error(e, path, "not found")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError) as e:
        load_audio(path)
    one_line_error(e, path, "empty file")


def test_corrupt_bytes(tmp_path):
    path = tmp_path / "corrupt.flac"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError) as e:
        load_audio(path)
    one_line_error(e, path, "not audio or corrupt")


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is a shopping list, not a recording\n" * 20)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    one_line_error(e, path, "not audio or corrupt")


def test_directory(tmp_path):
    with pytest.raises(AudioError) as e:
        load_audio(tmp_path)
    one_line_error(e, tmp_path, "directory")


def test_zero_length_audio(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    assert path.stat().st_size > 0  # a valid header, no samples
    with pytest.raises(AudioError) as e:
        load_audio(path)
    one_line_error(e, path, "no audio samples")


def test_silence_is_valid(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(8000, np.float32), 16000)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (8000,)
    assert not audio.any()


def test_mono_16k_roundtrip(tmp_path):
    x = tone(0.5)
    path = write_wav(tmp_path / "a.wav", x)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1 and len(y) == len(x)
    assert np.abs(y - x).max() < 1e-3  # 16-bit PCM


def test_stereo_is_averaged(tmp_path):
    left = tone(0.5, freq=440)
    right = np.zeros_like(left)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    y = load_audio(path)
    assert y.shape == left.shape
    np.testing.assert_allclose(y, left / 2, atol=1e-6)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resampled_to_16k(tmp_path, sr):
    path = tmp_path / f"r{sr}.wav"
    sf.write(path, tone(1.0, sr=sr), sr, subtype="FLOAT")
    y = load_audio(path)
    assert abs(len(y) - 16000) <= 1
    # still a 440 Hz tone after resampling
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 16000 / len(y) - 440) < 3
    assert load_audio(path, sample_rate=8000).shape[0] == pytest.approx(8000, abs=1)


@pytest.mark.parametrize("fmt,subtype,ext", [("FLAC", None, "flac"), ("OGG", "VORBIS", "ogg"),
                                             ("OGG", "OPUS", "opus"), ("MP3", None, "mp3")])
def test_compressed_formats(tmp_path, fmt, subtype, ext):
    path = tmp_path / f"a.{ext}"
    sf.write(path, tone(1.0), 16000, format=fmt, subtype=subtype)
    y = load_audio(path)
    assert abs(len(y) - 16000) < 1200  # codecs pad or trim by a frame
    assert np.abs(y).max() > 0.1


def test_m4a_falls_back_to_pyav(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "a.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100, layout="stereo")
        x = np.tile(tone(1.0, sr=44100), (2, 1))
        frame = av.AudioFrame.from_ndarray(x, format="fltp", layout="stereo")
        frame.sample_rate = 44100
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(sf.LibsndfileError):
        sf.info(path)  # libsndfile cannot: this is the fallback's job
    y = load_audio(path)
    assert abs(len(y) - 16000) < 1600
    assert np.abs(y).max() > 0.1


def test_decode_bytes(tmp_path):
    path = write_wav(tmp_path / "a.wav", tone(0.5, freq=300))
    np.testing.assert_array_equal(decode_bytes(path.read_bytes(), "a.wav"), load_audio(path))
    sf.write(tmp_path / "b.mp3", tone(0.5), 16000, format="MP3")
    assert len(decode_bytes((tmp_path / "b.mp3").read_bytes(), "b.mp3")) > 7000
    with pytest.raises(AudioError, match="upload.wav: empty file"):
        decode_bytes(b"", "upload.wav")
    with pytest.raises(AudioError, match="upload.wav: not audio or corrupt"):
        decode_bytes(b"hello, this is text" * 10, "upload.wav")


def test_write_wav_is_atomic_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.wav"
    write_wav(target, tone(0.25) * 10)  # out of range: clipped, not wrapped
    assert [p.name for p in target.parent.iterdir()] == ["out.wav"]
    y = load_audio(target)
    assert y.max() <= 1.0 and y.max() > 0.99


def test_audio_duration(tmp_path):
    sf.write(tmp_path / "a.flac", tone(0.75, sr=48000), 48000)
    assert audio_duration(tmp_path / "a.flac") == pytest.approx(0.75)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_refused_by_every_reader(tmp_path, bad):
    from lora_whisper.audio import AudioError, AudioStream, decode_bytes, load_audio

    x = np.zeros(32000, np.float32)
    x[24000] = bad
    p = tmp_path / "nan.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    for read in (lambda: load_audio(p), lambda: decode_bytes(p.read_bytes(), "nan.wav"),
                 lambda: AudioStream(p, block_seconds=1.0).read(40000)):
        with pytest.raises(AudioError, match=r"nan.wav: contains NaN or infinite samples \(first at 1.50 s\)"):
            read()
