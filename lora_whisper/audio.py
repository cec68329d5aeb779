"""Any audio file or upload -> 16 kHz mono float32, with one-line errors a user can act on.

libsndfile (soundfile) reads wav/flac/ogg/opus/mp3 quickly and without a subprocess, so it is
tried first; PyAV (FFmpeg's libraries, a pinned dependency) covers the containers it cannot
open, such as m4a/aac or video files.
"""
from __future__ import annotations

import io
import os
import re
import tempfile
import warnings
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

from lora_whisper.errors import UserError

SAMPLE_RATE = 16000


class AudioWarning(UserWarning):
    """Audio that decodes but not as its header promised (a truncated WAV); the CLI prints
    these as one `warning:` line."""


class AudioError(UserError):
    """An input that cannot be turned into audio; the message names the input and why."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = " ".join(str(reason).split())  # one line, whatever the decoder said
        super().__init__(f"{name}: {self.reason}")


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode a file to mono float32 at `sample_rate` (channels are averaged)."""
    name = _check_file(path)
    return _finish(_decode(name, lambda: name), name, sample_rate)


def _check_file(path: str | os.PathLike) -> str:
    """The path as a name for messages, once it is known to be a non-empty file."""
    name, p = str(path), Path(path)
    if not p.exists():
        raise AudioError(name, "file not found")
    if p.is_dir():
        raise AudioError(name, "is a directory, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(name, "empty file (0 bytes)")
    return name


class AudioTooLong(AudioError):
    """More seconds of audio than allowed (a small compressed upload can hold hours)."""


def decode_bytes(data: bytes, name: str = "upload", sample_rate: int = SAMPLE_RATE,
                 max_seconds: float | None = None) -> np.ndarray:
    """Decode an in-memory file (an HTTP upload, an embedded dataset column). With
    `max_seconds`, longer audio is refused from the header where it tells, else as soon as
    decoding passes the limit (never after decoding hours of it)."""
    if not data:
        raise AudioError(name, "empty file (0 bytes)")
    if max_seconds is not None:
        seconds = _header_seconds(io.BytesIO(data))
        if seconds is not None and seconds > max_seconds:
            raise AudioTooLong(name, f"{seconds:.1f} s of audio; the limit is {max_seconds:g} s per request")
    audio = _finish(_decode(name, lambda: io.BytesIO(data), max_seconds=max_seconds), name, sample_rate)
    if max_seconds is not None and len(audio) > max_seconds * sample_rate:
        raise AudioTooLong(name, f"{len(audio) / sample_rate:.1f} s of audio; the limit is {max_seconds:g} s per request")
    return audio


def audio_duration(path: str | os.PathLike) -> float:
    """Seconds of audio, from the header where the format allows (no full decode)."""
    seconds = _header_seconds(path)
    return seconds if seconds is not None else len(load_audio(path)) / SAMPLE_RATE


def _header_seconds(path) -> float | None:
    """Frames / rate from libsndfile's reading of the header; None if it cannot say."""
    try:
        info = sf.info(path if isinstance(path, io.IOBase) else str(path))
        if info.frames > 0 and info.samplerate > 0:
            return info.frames / info.samplerate
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError, ValueError):
        pass
    return None


def write_wav(path: str | os.PathLike, audio: np.ndarray, sr: int = SAMPLE_RATE,
              subtype: str = "PCM_16") -> Path:
    """Write a wav atomically: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(audio, dtype=np.float32)
    if subtype.startswith("PCM"):
        data = np.clip(data, -1.0, 1.0)  # integer PCM would wrap around instead of clipping
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        sf.write(tmp, data, sr, format="WAV", subtype=subtype)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _decode(name: str, opener, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """-> (samples [n, channels] float32, sample rate), trying each decoder in turn."""
    reasons = []
    try:
        with sf.SoundFile(opener()) as f:
            _warn_if_truncated(name, f)
            return f.read(dtype="float32", always_2d=True), f.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        # "Error opening '<path>': Format not recognised." - the path is already in ours
        reasons.append(str(exc).split("': ", 1)[-1].rstrip("."))
    try:
        return _decode_av(opener(), max_seconds)
    except AudioTooLong:
        raise
    except _TooLong as exc:
        raise AudioTooLong(name, f"over {exc.args[0]:g} s of audio; the limit is {exc.args[0]:g} s per request") from None
    except _NoAudioStream:
        raise AudioError(name, "has no audio stream") from None
    except Exception as exc:  # PyAV raises a zoo of FFmpeg error classes
        reasons.append(str(exc))
    raise AudioError(name, f"not audio or corrupt ({reasons[0]})")


def _warn_if_truncated(name: str, f: "sf.SoundFile") -> None:
    """libsndfile decodes a cut-off WAV up to where it stops and notes the header's claim
    ("data : 32000 (should be 15978)"); say so rather than transcribe half a file silently."""
    m = re.search(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", f.extra_info or "", re.M)
    if m and 0 < int(m.group(2)) < int(m.group(1)) and f.samplerate > 0:
        present = f.frames / f.samplerate
        declared = present * int(m.group(1)) / int(m.group(2))
        warnings.warn(AudioWarning(f"{name}: truncated file: {present:.2f} s present of the {declared:.2f} s "
                                   f"its header declares; decoding what is there"), stacklevel=3)


class _NoAudioStream(Exception):
    pass


class _TooLong(Exception):
    pass


def _decode_av(source, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    with av.open(source) as container:
        if not container.streams.audio:
            raise _NoAudioStream()
        stream = container.streams.audio[0]
        # Planar float keeps the channels apart, so downmixing is our plain mean (as with
        # soundfile) rather than FFmpeg's matrix.
        resampler = av.AudioResampler(format="fltp")
        chunks, sr, n = [], stream.rate, 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
                sr = out.sample_rate
                n += out.samples
            if max_seconds is not None and n > max_seconds * sr:
                raise _TooLong(max_seconds)
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    if not chunks:
        # FFmpeg "opens" random bytes with some probe or other and decodes nothing; after
        # libsndfile has refused the file too, that means corrupt rather than empty.
        raise ValueError("no audio frames could be decoded")
    return np.concatenate(chunks, axis=1).T.astype(np.float32), sr


def check_finite(samples: np.ndarray, name: str, offset: int = 0, sample_rate: int = SAMPLE_RATE) -> None:
    """Refuse NaN/inf samples (a float WAV can hold them): they would poison every feature,
    the language ID and a whole decode batch, or a training loss, far from the cause."""
    bad = ~np.isfinite(samples)
    if bad.any():
        first = int(np.argmax(bad.reshape(len(samples), -1).any(axis=1))) + offset
        raise AudioError(name, f"contains NaN or infinite samples (first at {first / sample_rate:.2f} s); "
                               f"re-export it with finite values")


def _finish(decoded: tuple[np.ndarray, int], name: str, sample_rate: int) -> np.ndarray:
    samples, sr = decoded
    if samples.size == 0:
        raise AudioError(name, "contains no audio samples (zero length)")
    check_finite(samples, name, sample_rate=sr)
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


# -- streaming: long files a block at a time ------------------------------------------------------

def probe_duration(path: str | os.PathLike) -> float | None:
    """Seconds of audio read from the file's header only (soundfile, then PyAV's container
    duration); None when neither knows without decoding."""
    seconds = _header_seconds(path)
    if seconds is not None:
        return seconds
    try:
        with av.open(str(path)) as container:
            if container.streams.audio and container.duration:
                return container.duration / 1_000_000
    except Exception:  # noqa: BLE001  (not probe-able: the caller decodes and reports)
        pass
    return None


class AudioStream:
    """A file decoded as 16 kHz mono float32 a block at a time, so that an hour of audio never
    sits in memory. Same decoders, downmix (channel mean) and soxr resampler as `load_audio`;
    a file that turns out corrupt part-way raises AudioError naming where."""

    def __init__(self, path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, block_seconds: float = 10.0):
        self.name = _check_file(path)
        self.sample_rate = sample_rate
        self._sf_refused: str | None = None   # why libsndfile could not open it (PyAV did)
        self._block_s = block_seconds
        self._closers: list = []
        self._blocks = self._open()
        self._resampler = None
        self._pending = np.zeros(0, np.float32)
        self._eof = False
        self.samples_read = 0
        self._decoded = 0   # samples decoded so far, read or not (for "corrupt after N s")

    def _open(self):
        try:
            f = sf.SoundFile(self.name)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            sf_reason = self._sf_refused = str(exc).split("': ", 1)[-1].rstrip(".")
        else:
            self._closers.append(f.close)
            _warn_if_truncated(self.name, f)
            return self._sf_blocks(f)
        try:
            container = av.open(self.name)
        except Exception as exc:  # noqa: BLE001
            raise AudioError(self.name, f"not audio or corrupt ({sf_reason}; {exc})") from None
        self._closers.append(container.close)
        if not container.streams.audio:
            raise AudioError(self.name, "has no audio stream")
        return self._av_blocks(container)

    def _sf_blocks(self, f):
        n = max(1, int(self._block_s * f.samplerate))
        while True:
            x = f.read(n, dtype="float32", always_2d=True)
            if not len(x):
                return
            yield x, f.samplerate

    def _av_blocks(self, container):
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp")  # planar float: our own channel mean
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                yield out.to_ndarray().T, out.sample_rate
        for out in resampler.resample(None):
            yield out.to_ndarray().T, out.sample_rate

    def _next_block(self) -> np.ndarray | None:
        """The next piece of 16 kHz mono audio (possibly empty); None once the file and the
        resampler's tail are used up."""
        if self._eof:
            return None
        try:
            block, sr = next(self._blocks)
        except StopIteration:
            self._eof = True
            return None if self._resampler is None else self._resampler.resample_chunk(
                np.zeros(0, np.float32), last=True)
        except AudioError:
            raise
        except Exception as exc:  # noqa: BLE001  (libsndfile/FFmpeg errors part-way through)
            at = self._decoded / self.sample_rate
            raise AudioError(self.name, f"corrupt after {at:.1f} s ({' '.join(str(exc).split())})") from None
        check_finite(block, self.name, sample_rate=sr, offset=int(self._decoded * sr / self.sample_rate))
        mono = np.ascontiguousarray(block.mean(axis=1) if block.shape[1] > 1 else block[:, 0], dtype=np.float32)
        if sr == self.sample_rate:
            return mono
        if self._resampler is None:
            self._resampler = soxr.ResampleStream(sr, self.sample_rate, 1, dtype="float32", quality="HQ")
        return self._resampler.resample_chunk(mono)

    def read(self, n: int) -> np.ndarray:
        """Up to `n` more samples; fewer only at the end of the file."""
        parts, have = [self._pending], len(self._pending)
        while have < n:
            block = self._next_block()
            if block is None:
                break
            parts.append(block)
            have += len(block)
            self._decoded += len(block)
        data = np.concatenate(parts) if len(parts) > 1 else parts[0]
        out, self._pending = data[:n], data[n:]
        if self.samples_read == 0 and len(out) == 0 and n > 0:
            # As load_audio: FFmpeg "opens" random bytes and decodes nothing from them.
            raise AudioError(self.name, f"not audio or corrupt ({self._sf_refused})" if self._sf_refused
                             else "contains no audio samples (zero length)")
        self.samples_read += len(out)
        return out

    def close(self) -> None:
        for close in self._closers:
            close()
        self._closers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
