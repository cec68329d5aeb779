"""The real whisper-base on espeak speech with pauses: `--vad` chunks, word timestamps close
to faster-whisper's on the same weights and audio, monotonic and inside their segments, and
the segments streamed as decoded are the result's."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

SR = 16000
SENTENCES = ["Please call me when you get home tonight.", "The weather is lovely today, so we walk.",
             "Our train leaves at noon from the station.", "She reads a new book every single week.",
             "Turn left at the next corner, then go on.", "The children played football all day.",
             "We need to buy milk, eggs and apples.", "I would like a cup of coffee and bread.",
             "My brother plays the piano very well.", "The museum opens at nine in the morning.",
             "Put the red box under the kitchen table.", "He forgot his umbrella on the bus."]


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """About 50 s: twelve sentences with pauses of 0.3 to 2.5 s, as one array (over 30 s of
    speech: two chunks). No sentence twice: a chunk whose text repeats passes Whisper's
    compression-ratio limit and goes to the sampling fallback."""
    from lora_whisper.audio import load_audio

    d = tmp_path_factory.mktemp("real-words")
    said = []
    for i, s in enumerate(SENTENCES):
        subprocess.run(["espeak-ng", "-v", "en", "-w", str(d / f"{i}.wav"), s], check=True)
        said.append(load_audio(d / f"{i}.wav"))
    gaps = [0.3, 2.5, 0.8, 1.5, 0.4, 2.0, 1.0, 0.6, 1.2, 0.5, 2.2, 0.7]
    parts = []
    for k, g in enumerate(gaps):
        parts += [said[k], np.zeros(int(g * SR), np.float32)]
    return np.concatenate(parts), " ".join(SENTENCES)


def test_vad_word_timestamps_match_faster_whisper(real_backbone, speech):
    import difflib

    import jiwer
    from faster_whisper import BatchedInferencePipeline, WhisperModel
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    from lora_whisper.backbone.load import embedded_ct2_dir
    from lora_whisper.inference.transcriber import Transcriber

    audio, reference = speech
    norm = BasicTextNormalizer()
    t = Transcriber(real_backbone)
    streamed = []
    r = t.transcribe(audio, language="en", vad=True, word_timestamps=True,
                     on_segment=lambda i, g: streamed.append(g))
    assert streamed == r.segments and len(r.segments) >= 2
    assert jiwer.wer(norm(reference), norm(r.text)) < 0.15
    ours = [w for g in r.segments for w in g.words]
    last = 0.0
    for g in r.segments:
        for w in g.words:
            assert g.start <= w.start <= w.end <= g.end and w.start >= last
            last = w.start
    fw = BatchedInferencePipeline(WhisperModel(str(embedded_ct2_dir()), device="cpu", compute_type="float32",
                                               cpu_threads=1))
    segs, _ = fw.transcribe(audio, language="en", batch_size=8, beam_size=1, word_timestamps=True)
    theirs = [w for g in segs for w in g.words]
    a, b = [norm(w.word).strip() for w in ours], [norm(w.word).strip() for w in theirs]
    diffs = [abs(ours[m.a + k].start - theirs[m.b + k].start)
             for m in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks() for k in range(m.size)]
    assert len(diffs) >= 0.8 * len(theirs)
    assert np.median(diffs) <= 0.1 and np.percentile(diffs, 95) <= 0.3, (np.median(diffs), np.percentile(diffs, 95))
