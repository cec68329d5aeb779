from __future__ import annotations

import numpy as np
import pytest

from lora_whisper.corpus import augment as aug
from lora_whisper.corpus.rng import rng_for

SR = 16000


def tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_tempo_changes_length():
    x = tone(440)
    assert len(aug.change_tempo(x, 1.1)) == pytest.approx(SR / 1.1, abs=2)
    assert len(aug.change_tempo(x, 0.9)) == pytest.approx(SR / 0.9, abs=2)


def test_reverb_adds_a_tail_and_keeps_level():
    # broadband input: a pure tone could cancel against its own echo
    x = (0.3 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    y = aug.add_reverb(x, rt60=0.4, wet=0.3, seed=1)
    assert SR < len(y) <= SR + int(0.3 * SR)
    assert y.dtype == np.float32
    assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=0.5)


def test_band_limit_passes_speech_band_only():
    for f, kept in [(100, False), (1000, True), (6000, False)]:
        y = aug.band_limit(tone(f), 300, 3400)
        ratio = np.sqrt(np.mean(y**2) / np.mean(tone(f) ** 2))
        assert (ratio > 0.9) if kept else (ratio < 0.05), (f, ratio)


@pytest.mark.parametrize("color", ["white", "pink"])
@pytest.mark.parametrize("snr", [10.0, 25.0])
def test_noise_snr(color, snr):
    x = tone(440, 2.0)
    y = aug.add_noise(x, snr, color, seed=3)
    n = y.astype(np.float64) - x
    measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(n**2))
    assert measured == pytest.approx(snr, abs=0.2)


def test_pink_noise_has_more_low_than_high_energy():
    spec = np.abs(np.fft.rfft(aug.noise(SR * 2, "pink", 0))) ** 2
    f = np.fft.rfftfreq(SR * 2, 1 / SR)
    assert spec[(f > 100) & (f < 500)].mean() > 10 * spec[(f > 4000) & (f < 8000)].mean()


def test_trim_silence_keeps_padding():
    x = np.concatenate([np.zeros(SR), tone(440, 0.5), np.zeros(SR)])
    y = aug.trim_silence(x, pad_s=0.1)
    assert len(y) == pytest.approx(0.7 * SR, abs=SR // 100 * 2)


def test_draw_and_apply_are_reproducible():
    p1 = aug.draw(rng_for(7, "pl-train-00001", "augment"))
    p2 = aug.draw(rng_for(7, "pl-train-00001", "augment"))
    p3 = aug.draw(rng_for(7, "pl-train-00002", "augment"))
    assert p1 == p2 and p1 != p3
    x = tone(300) + tone(1200)
    assert np.array_equal(aug.apply(x, p1), aug.apply(x, p2))


def test_apply_every_effect_and_peak():
    params = {"tempo": 1.05, "reverb": {"rt60": 0.3, "wet": 0.2, "seed": 1},
              "band": [300, 3400], "noise": {"snr_db": 20.0, "color": "pink", "seed": 2},
              "gain_db": -3.0}
    y = aug.apply(tone(500), params)
    assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all()
    assert np.max(np.abs(y)) == pytest.approx(10 ** (-3 / 20), rel=1e-4)


def test_draws_cover_the_ranges():
    draws = [aug.draw(rng_for(0, i, "augment")) for i in range(300)]
    tempos = [d["tempo"] for d in draws if d["tempo"]]
    snrs = [d["noise"]["snr_db"] for d in draws if d["noise"]]
    assert 0.9 <= min(tempos) and max(tempos) <= 1.1
    assert 10 <= min(snrs) and max(snrs) <= 30
    assert 0 < sum(d["band"] is not None for d in draws) < 100
    assert 0 < sum(d["reverb"] is not None for d in draws) < 150
