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


SENTENCES = ["Please call me when you get home tonight.", "The weather is lovely today, so we walk.",
             "I would like a cup of coffee and bread.", "Our train leaves at noon from the station.",
             "She reads a new book every single week.", "Turn left at the next corner, then go on.",
             "The children played football all day.", "We need to buy milk, eggs and apples."]


def test_long_audio_is_transcribed_by_timestamp_seeking(real_backbone, make_speech, tmp_path):
    """About 65 s of speech (three 30 s windows): segments with times that follow the speech,
    the words of every window, and srt output with those times."""
    import numpy as np
    import soundfile as sf

    from lora_whisper.audio import load_audio
    from lora_whisper.inference.formats import to_srt

    said = [load_audio(make_speech(s, name=f"s{i}.wav")) for i, s in enumerate(SENTENCES)]
    gap = np.zeros(6400, np.float32)
    order = list(range(8)) + list(range(8)) + [0, 1, 2]
    audio = np.concatenate([x for i in order for x in (said[i], gap)])
    sf.write(tmp_path / "long.flac", audio, 16000)
    r = Transcriber(real_backbone).transcribe(str(tmp_path / "long.flac"), language="en")
    norm = BasicTextNormalizer()
    reference = " ".join(SENTENCES[i] for i in order)
    assert jiwer.wer(norm(reference), norm(r.text)) < 0.3, r.text
    assert len(r.segments) >= 8
    starts = [g.start for g in r.segments]
    assert starts == sorted(starts) and r.segments[-1].end > 0.8 * r.duration
    assert abs(r.duration - len(audio) / 16000) < 1e-6
    # The segment that says the 9th sentence starts near where that sentence was spoken.
    spoken_at = sum(len(said[i]) + len(gap) for i in order[:8]) / 16000
    ninth = [g.start for g in r.segments if "call me" in g.text.lower()]
    assert any(abs(s - spoken_at) < 2.0 for s in ninth), (spoken_at, [(g.start, g.text) for g in r.segments])
    assert "00:00:00,000 --> " in to_srt(r)
    # The same algorithm as faster-whisper's (float32, same weights, greedy, no previous-text
    # prompts) gives the same segments, times and texts: each window's STFT sees the audio
    # before it, as in one STFT over the whole file. (The last window may differ: we add 1 s
    # of silence where faster-whisper pads the file with 30 s.)
    from faster_whisper import WhisperModel

    from lora_whisper.backbone.load import embedded_ct2_dir

    fw = WhisperModel(str(embedded_ct2_dir()), device="cpu", compute_type="float32", cpu_threads=1)
    theirs = [(round(g.start, 2), round(g.end, 2), g.text.strip()) for g in fw.transcribe(
        audio, language="en", beam_size=1, temperature=0.0, condition_on_previous_text=False, vad_filter=False)[0]]
    ours = [(round(g.start, 2), round(g.end, 2), g.text) for g in r.segments]
    same = len(set(ours) & set(theirs))
    assert same >= 0.8 * len(theirs), "\n".join(f"{a}    {b}" for a, b in zip(ours, theirs))


def test_int8_compute_type(make_speech):
    """int8 (backbone linears quantised, on a fresh backbone: the conversion is in place)."""
    from lora_whisper.backbone.load import load_backbone

    wav = make_speech(TEXT, voice="en", speed=140)
    t = Transcriber(load_backbone(compute_type="int8"))
    norm = BasicTextNormalizer()
    assert jiwer.wer(norm(TEXT), norm(t.transcribe(str(wav), language="en").text)) < 0.25
    assert next(iter(t.detect_language(str(wav)))) == "en"
