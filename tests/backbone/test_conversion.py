"""The converted embedded whisper-base against CTranslate2 running the very same files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lora_whisper.backbone.forward import encode
from lora_whisper.backbone.load import embedded_ct2_dir
from lora_whisper.data.features import log_mel
from lora_whisper.inference.decoding import DecodeOptions, decode_batch

pytestmark = pytest.mark.real

SENTENCES = [
    ("en", "Please call me when you get home tonight."),
    ("de", "Ich habe heute keine Zeit, aber morgen komme ich gern."),
    ("es", "Me gusta mucho leer libros en la biblioteca."),
    ("pl", "Dzisiaj jest bardzo ładna pogoda."),
]


def test_strict_conversion_and_parameter_count(real_backbone):
    n = sum(p.numel() for p in real_backbone.model.parameters())
    assert 72_000_000 < n < 73_000_000
    assert real_backbone.config.num_mel_bins == 80
    assert real_backbone.vocab.eot == 50257 and real_backbone.vocab.sot == 50258
    assert len(real_backbone.vocab.languages) == 99


def test_greedy_tokens_and_encoder_match_ctranslate2(real_backbone, make_speech):
    ctranslate2 = pytest.importorskip("ctranslate2")  # a declared test dependency: present in CI
    from lora_whisper.audio import load_audio

    ct2 = ctranslate2.models.Whisper(str(embedded_ct2_dir()), device="cpu", compute_type="float32")
    clips = [load_audio(make_speech(text, voice=lang, name=f"{lang}.wav")) for lang, text in SENTENCES]
    feats, lens = log_mel(clips, 80, pad_30s=True)
    vocab = real_backbone.vocab
    prompts = [vocab.sot_sequence(lang) for lang, _ in SENTENCES]
    ours = decode_batch(real_backbone.model, vocab, feats, lens, prompts,
                        options=DecodeOptions(temperatures=(0.0,), max_new_tokens=60))
    sv = ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy()))
    theirs = ct2.generate(sv, prompts, beam_size=1, max_length=60 + len(prompts[0]),
                          suppress_blank=True, return_scores=False)
    agree = sum(o.tokens == [t for t in r.sequences_ids[0] if t != vocab.eot] for o, r in zip(ours, theirs))
    assert agree >= len(SENTENCES) - 1, [(o.text, vocab.decode(r.sequences_ids[0])) for o, r in zip(ours, theirs)]
    enc_ct2 = torch.from_numpy(np.array(ct2.encode(sv, to_cpu=True)))
    with torch.no_grad():
        enc_ours, _ = encode(real_backbone.model, feats)
    assert (enc_ours - enc_ct2).abs().max().item() < 1e-2
