"""Merged export == routed run: the transformers directory, reloaded fresh, gives the same
logits and tokens as the run routed to that language (one expert, or a MoE mixture)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lora_whisper.adapters.routing import routed as routed_scope
from lora_whisper.backbone.forward import decoder_logits, encode
from lora_whisper.backbone.load import load_backbone
from lora_whisper.data.features import log_mel
from lora_whisper.export import ExportError, export
from lora_whisper.inference.decoding import DecodeOptions, decode_batch
from lora_whisper.inference.transcriber import load

GREEDY = DecodeOptions(temperatures=(0.0,), max_new_tokens=10, compression_ratio_threshold=None,
                       logprob_threshold=None)


def clips(n=3):
    rng = np.random.default_rng(1)
    return [(rng.standard_normal(int(s * 16000)) * 0.1).astype(np.float32) for s in (0.8, 1.7, 1.1)[:n]]


def run_outputs(t, lang, routing):
    """(logits of a teacher-forced prefix, greedy tokens) for the test clips."""
    v, model = t.vocab, t.model
    feats, lens = log_mel(clips(), t.backbone.n_mels)
    prompt = v.sot_sequence(lang)
    ids = torch.tensor([prompt + [440, 1200, 9000]] * feats.shape[0])
    with torch.no_grad(), routed_scope(routing):
        enc, keep = encode(model, feats, lens)
        logits = decoder_logits(model, ids, enc, keep)
    toks = decode_batch(model, v, feats, lens, [prompt] * feats.shape[0], routing=routing, options=GREEDY)
    return logits, [r.tokens for r in toks]


@pytest.mark.parametrize("lang", ["de", "pl"])
def test_hf_export_equals_routed_run(tiny_export_run, tmp_path, lang):
    routed = load(run=str(tiny_export_run))
    want_logits, want_tokens = run_outputs(routed, lang, routed.routing_for([lang] * 3))
    bare_logits, _ = run_outputs(routed, lang, None)
    assert (want_logits - bare_logits).abs().max() > 0.1  # the expert matters, so equality means something

    out = export(tiny_export_run, lang, tmp_path / f"hf-{lang}", fmt="hf")
    merged = load(str(out))
    assert merged.bank is None
    got_logits, got_tokens = run_outputs(merged, lang, None)
    assert torch.allclose(got_logits, want_logits, atol=2e-4, rtol=1e-4)
    assert got_tokens == want_tokens and any(want_tokens)


def test_hf_export_is_a_plain_whisper_dir(tiny_export_run, tiny, tmp_path):
    from transformers import GenerationConfig, WhisperForConditionalGeneration

    out = export(tiny_export_run, "pl", tmp_path / "hf", fmt="hf")
    model = WhisperForConditionalGeneration.from_pretrained(str(out))
    assert not any("lora" in k or "base_layer" in k for k in model.state_dict())
    gen = GenerationConfig.from_pretrained(str(out))
    assert gen.begin_suppress_tokens == tiny.vocab.suppress_begin and gen.lang_to_id["<|pl|>"] == 50269
    for name in ("tokenizer.json", "preprocessor_config.json", "config.json", "model.safetensors"):
        assert (out / name).exists(), name
    meta = json.loads((out / "lora_whisper_export.json").read_text())
    assert meta["language"] == "pl" and meta["experts"] == {"de": 0.6, "en": 0.15, "pl": 0.25}
    assert meta["backbone"]["fingerprint"] == tiny.fingerprint and set(meta["adapters"]) == {"de", "en", "pl"}
    # the backbone's own weights are unchanged outside the LoRA targets
    assert torch.equal(model.model.encoder.conv1.weight, tiny.model.model.encoder.conv1.weight)


def test_export_refusals(tiny_export_run, tmp_path):
    with pytest.raises(ExportError, match="no expert for 'ja'.*de, en, pl"):
        export(tiny_export_run, "ja", tmp_path / "x")
    with pytest.raises(ExportError, match="ct2 only"):
        export(tiny_export_run, "de", tmp_path / "x", fmt="hf", quantization="int8")
    with pytest.raises(ExportError, match="unknown export format"):
        export(tiny_export_run, "de", tmp_path / "x", fmt="onnx")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(ExportError, match="--force"):
        export(tiny_export_run, "de", tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").exists()


def test_cli_export(tiny_export_run, tmp_path, capsys):
    from lora_whisper.cli import main

    out = tmp_path / "cli-hf"
    assert main(["export", "--run", str(tiny_export_run), "--language", "en", "--format", "hf", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert load_backbone(str(out)).vocab.suppress_begin
    assert main(["export", "--run", str(tiny_export_run), "--language", "xx", "--out", str(tmp_path / "y")]) == 2
    assert "no expert for 'xx'" in capsys.readouterr().err


def test_shared_lora_run_exports_its_one_expert_for_any_language(tiny, tmp_path):
    from lora_whisper.adapters.config import LoraSpec
    from lora_whisper.adapters.run import save_run
    from lora_whisper.adapters.model import inject

    bank = inject(tiny.model, LoraSpec(r=4, alpha=8, dropout=0.0), ["shared"], seed=0)
    with torch.no_grad():
        for layer in bank.layers.values():
            layer.lora_B[0].normal_(0.0, 0.2, generator=torch.Generator().manual_seed(1))
    run = tmp_path / "shared-run"
    save_run(run, bank, tiny, {"shared": {"route_all": True, "languages": ["de", "en"]}})
    routed = load(run=str(run))
    want_logits, want_tokens = run_outputs(routed, "de", routed.routing_for(["de"] * 3))
    out = export(run, "de", tmp_path / "hf", fmt="hf")
    got_logits, got_tokens = run_outputs(load(str(out)), "de", None)
    assert torch.allclose(got_logits, want_logits, atol=2e-4, rtol=1e-4) and got_tokens == want_tokens
    assert json.loads((out / "lora_whisper_export.json").read_text())["experts"] == {"shared": 1.0}
