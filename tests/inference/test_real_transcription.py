"""Zero-shot transcription with the real embedded whisper-base on espeak-ng speech."""
from __future__ import annotations

import jiwer
import pytest
from transformers.models.whisper.english_normalizer import BasicTextNormalizer

from lora_whisper.inference.transcriber import Transcriber

pytestmark = pytest.mark.real

TEXT = "Please call me when you get home tonight."


@pytest.mark.parametrize("pad_30s", [False, True])
def test_english_sentence(real_backbone, make_speech, pad_30s):
    wav = make_speech(TEXT, voice="en", speed=140)
    t = Transcriber(real_backbone, pad_30s=pad_30s)
    r = t.transcribe(str(wav))  # language detected
    norm = BasicTextNormalizer()
    assert r.language == "en" and r.language_probability > 0.5
    assert jiwer.wer(norm(TEXT), norm(r.text)) < 0.25, r.text


def test_language_distribution_is_full(real_backbone, make_speech):
    wav = make_speech("Me gusta mucho leer libros en la biblioteca.", voice="es")
    probs = Transcriber(real_backbone).detect_language(str(wav))
    assert len(probs) == len(real_backbone.vocab.languages)
    assert abs(sum(probs.values()) - 1.0) < 1e-4
    assert next(iter(probs)) == "es"
