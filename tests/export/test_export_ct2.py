"""CTranslate2 export: ctranslate2 on the merged weights decodes as our routed PyTorch run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lora_whisper.data.features import log_mel
from lora_whisper.export import export
from lora_whisper.inference.decoding import DecodeOptions, decode_batch
from lora_whisper.inference.transcriber import load

ctranslate2 = pytest.importorskip("ctranslate2")


def clips():
    rng = np.random.default_rng(2)
    return [(rng.standard_normal(int(s * 16000)) * 0.1).astype(np.float32) for s in (0.9, 1.6)]


@pytest.mark.parametrize("lang", ["en", "pl"])
def test_ct2_float32_tokens_equal_routed(tiny_export_run, tmp_path, lang):
    out = export(tiny_export_run, lang, tmp_path / "ct2", fmt="ct2", quantization="float32")
    routed = load(run=str(tiny_export_run))
    v = routed.vocab
    feats, lens = log_mel(clips(), routed.backbone.n_mels, pad_30s=True)  # ctranslate2 takes 30 s windows
    prompts = [v.sot_sequence(lang)] * 2
    n = 8
    want = decode_batch(routed.model, v, feats, lens, prompts, routing=routed.routing_for([lang] * 2),
                        options=DecodeOptions(temperatures=(0.0,), max_new_tokens=n,
                                              compression_ratio_threshold=None, logprob_threshold=None))
    model = ctranslate2.models.Whisper(str(out), device="cpu", compute_type="float32", intra_threads=1)
    got = model.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy())), prompts,
                         beam_size=1, max_length=len(prompts[0]) + n, suppress_blank=True)
    got_tokens = [r.sequences_ids[0] for r in got]
    assert all(len(g) >= 3 for g in got_tokens)
    assert [w.tokens[:len(g)] for w, g in zip(want, got_tokens)] == got_tokens


def test_ct2_int8_export_loads_in_faster_whisper(tiny_export_run, tmp_path):
    faster_whisper = pytest.importorskip("faster_whisper")
    out = export(tiny_export_run, "de", tmp_path / "ct2-int8", fmt="ct2", quantization="int8")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["suppress_ids_begin"] and len(cfg["lang_ids"]) == 99
    assert (out / "tokenizer.json").exists() and (out / "preprocessor_config.json").exists()
    assert json.loads((out / "lora_whisper_export.json").read_text())["quantization"] == "int8"
    model = faster_whisper.WhisperModel(str(out), device="cpu", compute_type="int8", cpu_threads=1)
    segments, info = model.transcribe(clips()[1], language="de", beam_size=1, without_timestamps=True,
                                      temperature=0.0, condition_on_previous_text=False)
    list(segments)
    assert info.language == "de" and info.duration == pytest.approx(1.6)
