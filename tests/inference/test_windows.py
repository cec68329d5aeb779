"""Long audio is cut into <= 29 s windows at the quietest point near each boundary."""
from __future__ import annotations

import numpy as np

from lora_whisper.inference.transcriber import _windows


def test_short_audio_is_one_window():
    a = np.ones(16000 * 10, np.float32)
    assert [(o, len(w)) for o, w in _windows(a)] == [(0.0, len(a))]


def test_cuts_fall_in_silence_and_cover_everything():
    rng = np.random.default_rng(0)
    a = (0.3 * rng.standard_normal(16000 * 70)).astype(np.float32)
    a[int(26.0 * 16000):int(26.4 * 16000)] = 0.0      # a pause inside the first search range
    wins = _windows(a)
    assert sum(len(w) for _, w in wins) == len(a)
    assert all(len(w) <= 29 * 16000 for _, w in wins)
    first_cut = wins[1][0]
    assert 26.0 <= first_cut <= 26.4
    offsets = [o for o, _ in wins]
    assert offsets == sorted(offsets) and offsets[0] == 0.0
