"""Identical inputs give identical transcripts whatever else shares their batch, even when
the temperature fallback samples (it did not: one generator was shared by all rows)."""
from __future__ import annotations

import numpy as np

from lora_whisper.inference.decoding import DecodeOptions
from lora_whisper.inference.transcriber import Transcriber


def test_fallback_sampling_is_per_row(tiny):
    noise = lambda s, seed: (np.random.default_rng(seed).standard_normal(int(16000 * s)) * 0.1).astype(np.float32)
    t = Transcriber(tiny, options=DecodeOptions(max_new_tokens=12))   # the default ladder: samples on noise
    x = noise(3.0, 1)
    solo = t.transcribe(x, language="en")
    assert solo.text
    assert [r.text for r in t.transcribe([x] * 6, language="en")] == [solo.text] * 6
    mixed = t.transcribe([noise(2.0, 5), x, noise(3.0, 7), x], language="en")
    assert mixed[1].text == mixed[3].text == solo.text
