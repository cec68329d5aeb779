"""Whisper's no-speech rule on short clips too: 5 s of silence is no text (it was a Welsh
sentence: the language ID's guess on silence, decoded with confidence)."""
from __future__ import annotations

import numpy as np


def test_five_seconds_of_silence_is_no_text(real_backbone):
    from lora_whisper.inference.transcriber import Transcriber

    r = Transcriber(real_backbone).transcribe(np.zeros(5 * 16000, np.float32))
    assert r.text == "" and r.segments == []
