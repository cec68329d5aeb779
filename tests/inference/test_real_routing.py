"""A file that switches language half-way (real whisper-base, espeak-ng English then Spanish):
each segment carries the language it was spoken in."""
from __future__ import annotations

import numpy as np
import pytest

from lora_whisper.inference.transcriber import Transcriber

pytestmark = pytest.mark.real

EN = ("Please call me when you get home tonight. The weather is lovely today, so we walk to the park. "
      "I would like a cup of coffee and some bread. Our train leaves at noon from the central station. "
      "She reads a new book every single week.")
ES = ("Me gusta mucho leer libros en la biblioteca. Mañana vamos a la playa con mis amigos. "
      "El tren sale a las diez de la estación central. Quiero un café con leche y pan tostado. "
      "Los niños juegan al fútbol en el parque todos los días.")


def test_segments_carry_the_language_spoken(real_backbone, make_speech):
    from lora_whisper.audio import load_audio

    en = load_audio(make_speech(EN, voice="en", name="en.wav"))
    es = load_audio(make_speech(ES, voice="es", name="es.wav"))
    audio = np.concatenate([en, np.zeros(8000, np.float32), es])
    switch = (len(en) + 4000) / 16000
    t = Transcriber(real_backbone, candidates=["en", "es"])
    r = t.transcribe(audio, max_new_tokens=96)
    assert {w["language"] for w in r.windows} == {"en", "es"}
    right = [g.language == ("en" if (g.start + g.end) / 2 < switch else "es") for g in r.segments]
    assert len(r.segments) >= 6 and np.mean(right) >= 0.7, [(g.start, g.language, g.text) for g in r.segments]
    assert {g.language for g in r.segments} <= {"en", "es"}
