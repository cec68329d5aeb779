"""Whisper log-mel features computed in torch, in batch, at each clip's real length.

transformers' feature extractor pads every clip to 30 s; training and decoding at the real
length is most of our CPU speed (see ../shared/ASSETS.md), so features are computed here with
the same filters and normalisation as Whisper, over the longest clip in the batch only.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank

from lora_whisper.audio import SAMPLE_RATE

N_FFT = 400
HOP_LENGTH = 160
CHUNK_SECONDS = 30
N_SAMPLES_30S = CHUNK_SECONDS * SAMPLE_RATE
N_FRAMES_30S = N_SAMPLES_30S // HOP_LENGTH  # 3000 mel frames = 1500 encoder positions


@lru_cache(maxsize=4)
def mel_filters(n_mels: int) -> torch.Tensor:
    # Same slaney-normalised filter bank as openai/whisper's mel_filters.npz and
    # transformers' WhisperFeatureExtractor.
    fb = mel_filter_bank(
        num_frequency_bins=1 + N_FFT // 2,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=8000.0,
        sampling_rate=SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(np.asarray(fb, dtype=np.float32)).T.contiguous()  # [n_mels, n_freq]


def frames_for(n_samples: int) -> int:
    """Mel frames kept for a clip: even (the encoder's conv halves it), at least 2."""
    frames = max(2, -(-n_samples // HOP_LENGTH))
    return frames + (frames % 2)


# Silence kept after each clip at real length. Whisper only ever saw speech followed by the
# silence padding of its 30 s window: a clip cut right at its last word makes whisper-base loop
# or stop after one word (measured on 32 espeak test clips in 4 languages: WER 98.8% with no
# tail, 46.4% with 1 s, 49.6% padded to 30 s at 3x the time). One second restores the cue.
TAIL_SECONDS = 1.0
# The bare backbone on real recorded speech needs more: with 1 s, whisper-base wrote 16 of 37
# real far-field English commands again and again (benchmarks/real_speech.py); with 5 s none
# looped and the error fell to faster-whisper's at 30 s padding (25.6% vs 26.7%; 3 s: 9 loops,
# 10 s or 20 s: no better than 5 s). Our experts are trained, and decoded, with TAIL_SECONDS.
BACKBONE_TAIL_SECONDS = 5.0


def log_mel(
    audios: list[np.ndarray] | list[torch.Tensor],
    n_mels: int = 80,
    pad_30s: bool = False,
    max_frames: int = N_FRAMES_30S,
    tail_seconds: float | list[float] = TAIL_SECONDS,
    context: list[np.ndarray] | None = None,
    level: list[float | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch of 16 kHz mono float clips -> (features [B, n_mels, T], frame lengths [B]).

    Each row keeps its real length plus `tail_seconds` of silence (one value, or one per row);
    T is the longest row's frame
    count (or 3000 with `pad_30s`); shorter rows are padded with the features of silence,
    exactly as Whisper pads with zeros before the STFT (and the encoder masks them).
    Clips longer than 30 s are cut to `max_frames`: long-form audio is windowed by the caller.

    `context`: per clip, the audio just before it (a long file's window after the first; a
    whole number of hops, at most CONTEXT_SAMPLES used). The first frames then see that audio,
    as in Whisper's one STFT over the whole file, instead of the STFT's mirror padding, which
    turns a window that opens on a word (as seeking makes them) into a garbled onset.

    `level`: per clip, the loudest log-mel value already seen earlier in the same recording
    (`loudness` of the earlier features). Whisper normalises a long file once, so its floor
    (loudest - 8) holds for every window; a quiet window normalised against itself alone
    would be lifted to levels that whole-file normalisation never gives it.
    """
    if not audios:
        raise ValueError("log_mel needs at least one clip")
    waves = [torch.as_tensor(np.asarray(a, dtype=np.float32)) for a in audios]
    if context is not None:
        return _log_mel_with_context(waves, context, n_mels, max_frames, tail_seconds, level)
    tails = tail_seconds if isinstance(tail_seconds, (list, tuple)) else [tail_seconds] * len(waves)
    lengths = torch.tensor([min(frames_for(len(w) + int(round(t * SAMPLE_RATE))), max_frames)
                            for w, t in zip(waves, tails)])
    T = max_frames if pad_30s else int(lengths.max())
    n = T * HOP_LENGTH
    batch = torch.zeros(len(waves), n)
    for i, w in enumerate(waves):
        w = w[:n]
        batch[i, : len(w)] = w
    window = torch.hann_window(N_FFT)
    stft = torch.stft(batch, N_FFT, HOP_LENGTH, window=window, return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2  # [B, n_freq, T]
    mel = mel_filters(n_mels) @ magnitudes
    log_spec = torch.clamp(mel, min=1e-10).log10()
    # Whisper's dynamic-range clamp is per clip over its own frames; padding frames must not
    # raise the floor, so take the max over each row's real frames only.
    frame_idx = torch.arange(T)
    real = frame_idx[None, :] < lengths[:, None]
    row_max = torch.where(real[:, None, :], log_spec, torch.full_like(log_spec, -1e9)).amax(dim=(1, 2))
    if pad_30s:
        row_max = log_spec.amax(dim=(1, 2))
    if level is not None:
        row_max = torch.maximum(row_max, torch.tensor([-1e9 if v is None else v for v in level]))
    log_spec = torch.maximum(log_spec, (row_max - 8.0)[:, None, None])
    features = (log_spec + 4.0) / 4.0
    return features, (lengths if not pad_30s else torch.full_like(lengths, T))


CONTEXT_SAMPLES = 2 * HOP_LENGTH  # covers the STFT's half window (N_FFT // 2 = 200 samples)


def loudness(features: torch.Tensor, lengths: torch.Tensor) -> list[float]:
    """Each row's loudest log-mel value (before normalisation), to pass on as `level`."""
    return [4.0 * float(f[:, :int(n)].max()) - 4.0 for f, n in zip(features, lengths)]


def _log_mel_with_context(waves, context, n_mels, max_frames, tail_seconds, level=None):
    """log_mel of each clip with its preceding audio in the STFT, the context's frames dropped."""
    feats, lens = [], []
    for i, (w, c) in enumerate(zip(waves, context)):
        c = np.asarray(c, dtype=np.float32)[-CONTEXT_SAMPLES:]
        k = len(c) // HOP_LENGTH
        c = c[len(c) - k * HOP_LENGTH:]
        f, n = log_mel([np.concatenate([c, w.numpy()])], n_mels, max_frames=max_frames + k,
                       tail_seconds=tail_seconds[i] if isinstance(tail_seconds, (list, tuple)) else tail_seconds,
                       level=None if level is None else [level[i]])
        feats.append(f[0, :, k:k + max_frames])
        lens.append(min(int(n[0]) - k, max_frames))
    T = max(lens)
    batch = torch.stack([_pad_frames(f[:, :T], T) for f in feats])
    return batch, torch.tensor(lens)


def _pad_frames(f: torch.Tensor, T: int) -> torch.Tensor:
    """Pad [n_mels, t] to T frames with the row's floor value; the encoder zeroes (masks)
    frames past a row's length, so the value only has to be finite."""
    if f.shape[1] >= T:
        return f
    return torch.cat([f, f.new_full((f.shape[0], T - f.shape[1]), float(f.min()))], dim=1)
