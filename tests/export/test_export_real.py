"""Real whisper-base with small random experts: merged exports transcribe as the routed run.

faster-whisper pads a short clip's log-mel features with zeros (Whisper pads the audio, so
its padding is the features of silence), which alone can change a transcript; so its output
is compared with our routed decoding of faster-whisper's own features, and ctranslate2 is
also checked directly on our features.

A fresh backbone is loaded here rather than the session's `real_backbone`, because building
the run injects LoRA layers into the model it is given.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lora_whisper.audio import load_audio
from lora_whisper.backbone.load import load_backbone
from lora_whisper.data.features import log_mel
from lora_whisper.export import export
from lora_whisper.inference.decoding import DecodeOptions, decode_batch
from lora_whisper.inference.transcriber import Transcriber, load

pytestmark = pytest.mark.real
GREEDY = DecodeOptions(temperatures=(0.0,), compression_ratio_threshold=None, logprob_threshold=None)
TEXT = "Guten Morgen, wie geht es dir heute?"  # faster-whisper's padding changes its ending


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    from export_helpers import make_run

    return make_run(load_backbone(), tmp_path_factory.mktemp("real-export") / "run", std=0.003)


def test_exports_transcribe_as_the_routed_run(real_run, make_speech, tmp_path):
    lang = "de"
    audio = load_audio(make_speech(TEXT, voice=lang, speed=140))
    routed = load(run=str(real_run), options=GREEDY)
    routed_30 = load(run=str(real_run), options=GREEDY, pad_30s=True)
    want = routed.transcribe(audio, language=lang).text
    assert len(want.split()) >= 4, want

    hf = export(real_run, lang, tmp_path / "hf", fmt="hf")
    merged = Transcriber(load_backbone(str(hf)), options=GREEDY)
    assert merged.transcribe(audio, language=lang).text == want

    import ctranslate2
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim

    ct2 = export(real_run, lang, tmp_path / "ct2", fmt="ct2", quantization="float32")
    v, prompt = routed.vocab, [routed.vocab.sot_sequence(lang)]
    feats, _ = log_mel([audio], routed.backbone.n_mels, pad_30s=True)
    ours = routed_30.transcribe(audio, language=lang).text
    out = ctranslate2.models.Whisper(str(ct2), device="cpu", compute_type="float32", intra_threads=1).generate(
        ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy())), prompt, beam_size=1)
    assert v.decode(out[0].sequences_ids[0]) == ours

    fw = WhisperModel(str(ct2), device="cpu", compute_type="float32", cpu_threads=1)
    segments, info = fw.transcribe(audio, language=lang, beam_size=1, temperature=0.0, without_timestamps=True,
                                   condition_on_previous_text=False, vad_filter=False)
    got = " ".join(s.text.strip() for s in segments)
    fw_feats = fw.feature_extractor(audio)
    fw_feats = torch.from_numpy(pad_or_trim(fw_feats[:, : fw_feats.shape[1] - 1]))[None].float()
    routed_on_fw = decode_batch(routed.model, v, fw_feats, None, prompt, routing=routed.routing_for([lang]),
                                options=GREEDY)[0].text
    assert got == routed_on_fw
