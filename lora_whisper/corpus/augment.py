"""Acoustic variety on top of clean TTS: tempo, reverb, telephone band, noise, level.

`draw` picks the parameters of one utterance from its RNG (all values are always drawn,
in a fixed order, so turning one effect off does not reshuffle the others); `apply` is a
pure function of the audio and those parameters, so a parameter record reproduces the
audio exactly.
"""
from __future__ import annotations

import numpy as np
import soxr

from lora_whisper.audio import SAMPLE_RATE


def draw(rng: np.random.Generator) -> dict:
    tempo = float(rng.uniform(0.9, 1.1))
    rt60, wet = float(rng.uniform(0.15, 0.6)), float(rng.uniform(0.1, 0.4))
    snr, pink = float(rng.uniform(10.0, 30.0)), bool(rng.random() < 0.5)
    reverb_seed, noise_seed = (int(s) for s in rng.integers(0, 2**31, size=2))
    gain_db = float(rng.uniform(-6.0, -1.0))
    use = rng.random(4)
    return {
        "tempo": round(tempo, 4) if use[0] < 0.5 else None,
        "reverb": {"rt60": round(rt60, 3), "wet": round(wet, 3), "seed": reverb_seed}
        if use[1] < 0.3 else None,
        "band": [300, 3400] if use[2] < 0.15 else None,
        "noise": {"snr_db": round(snr, 2), "color": "pink" if pink else "white",
                  "seed": noise_seed} if use[3] < 0.7 else None,
        "gain_db": round(gain_db, 2),
    }


def trim_silence(x: np.ndarray, sr: int = SAMPLE_RATE, pad_s: float = 0.15,
                 threshold_db: float = -45.0) -> np.ndarray:
    """Cut leading/trailing silence (TTS pads unevenly), keeping `pad_s` on each side."""
    hop = sr // 100
    n = len(x) // hop
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (threshold_db / 20))
    if loud.size == 0:
        return x
    pad = int(pad_s * sr)
    return x[max(0, loud[0] * hop - pad): min(len(x), (loud[-1] + 1) * hop + pad)]


def change_tempo(x: np.ndarray, factor: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Speed perturbation (pitch moves with tempo, as in Kaldi's 0.9/1.0/1.1 recipe)."""
    return soxr.resample(x, sr * factor, sr, quality="HQ").astype(np.float32)


def _fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    n = len(x) + len(h) - 1
    nfft = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[:n]


def impulse_response(rt60: float, seed: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Exponentially decaying noise: amplitude falls 60 dB over `rt60` seconds."""
    t = np.arange(int(rt60 * sr)) / sr
    h = np.random.default_rng(seed).standard_normal(len(t)) * 10 ** (-3.0 * t / rt60)
    h[0] = 0.0  # the direct path is mixed in separately, as the dry signal
    return h / np.sqrt(np.sum(h**2))


def add_reverb(x: np.ndarray, rt60: float, wet: float, seed: int,
               sr: int = SAMPLE_RATE) -> np.ndarray:
    h = impulse_response(rt60, seed, sr)
    tail = min(len(h) - 1, int(0.3 * sr))
    y = _fft_convolve(x, h)[: len(x) + tail]
    dry = np.concatenate([x, np.zeros(tail, dtype=x.dtype)])
    y *= np.sqrt(np.mean(dry**2) / max(np.mean(y**2), 1e-12))  # same level as the dry path
    return ((1.0 - wet) * dry + wet * y).astype(np.float32)


def band_limit(x: np.ndarray, low: float, high: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Telephone-like band: an FFT mask with 100 Hz cosine edges (no hard ringing)."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1.0 / sr)
    edge = 100.0
    mask = np.clip(np.minimum((f - low) / edge + 0.5, (high - f) / edge + 0.5), 0.0, 1.0)
    mask = 0.5 - 0.5 * np.cos(np.pi * mask)
    return np.fft.irfft(spec * mask, len(x)).astype(np.float32)


def noise(n: int, color: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n)
    if color == "white":
        return white
    spec = np.fft.rfft(white)
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    spec /= np.sqrt(f)  # 1/f power
    spec[0] = 0.0
    return np.fft.irfft(spec, n)


def add_noise(x: np.ndarray, snr_db: float, color: str, seed: int) -> np.ndarray:
    """Noise at `snr_db` relative to the mean power of the whole clip."""
    nz = noise(len(x), color, seed)
    p_sig = np.mean(x.astype(np.float64) ** 2)
    p_noise = max(np.mean(nz**2), 1e-20)
    return (x + nz * np.sqrt(p_sig / (p_noise * 10 ** (snr_db / 10)))).astype(np.float32)


def set_peak(x: np.ndarray, gain_db: float) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak <= 0:
        return x.astype(np.float32)
    return (x * (10 ** (gain_db / 20) / peak)).astype(np.float32)


def apply(x: np.ndarray, params: dict | None, sr: int = SAMPLE_RATE) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if params is None:
        return set_peak(x, -1.0)
    if params.get("tempo"):
        x = change_tempo(x, params["tempo"], sr)
    if params.get("reverb"):
        r = params["reverb"]
        x = add_reverb(x, r["rt60"], r["wet"], r["seed"], sr)
    if params.get("band"):
        x = band_limit(x, *params["band"], sr=sr)
    if params.get("noise"):
        n = params["noise"]
        x = add_noise(x, n["snr_db"], n["color"], n["seed"])
    return set_peak(x, params.get("gain_db", -1.0))
