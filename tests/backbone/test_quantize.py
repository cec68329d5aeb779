"""int8 compute type: per-token int8 decoder linears, bfloat16 encoder (where native), float32
experts; a row's transcript does not depend on its batch mates."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lora_whisper.backbone.forward import decoder_logits, decoder_step, encode, init_cache
from lora_whisper.backbone.load import load_backbone
from lora_whisper.backbone.quantize import Int8Linear, native_bf16, prepare, quantize_int8
from lora_whisper.data.features import log_mel
from lora_whisper.inference.decoding import DecodeOptions
from lora_whisper.inference.transcriber import Transcriber

GREEDY = DecodeOptions(temperatures=(0.0,), compression_ratio_threshold=None, logprob_threshold=None,
                       max_new_tokens=8)


def test_int8_linear_is_close_and_rows_are_independent():
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 96).requires_grad_(False)
    q = Int8Linear(lin)
    x = torch.randn(5, 3, 64) * torch.tensor([0.1, 1.0, 30.0, 2.0, 0.5])[:, None, None]
    ref, got = lin(x), q(x)
    assert torch.allclose(got, ref, atol=0.05 * float(ref.abs().max()))
    for i in range(5):  # exact, whatever the other rows hold
        assert torch.equal(q(x[i:i + 1]), got[i:i + 1])
        assert torch.equal(q(x[i, 1:2]), got[i, 1:2])
    assert torch.equal(q(torch.zeros(2, 64)), lin.bias.detach().expand(2, -1))


def test_int8_model_tracks_float32(tiny, tiny_dir, rng):
    feats, lens = log_mel([rng.standard_normal(16000 * 3).astype(np.float32) * 0.1])
    ids = torch.tensor([tiny.vocab.sot_sequence("en") + [300, 400, 500]])
    with torch.no_grad():
        ref = decoder_logits(tiny.model, ids, *encode(tiny.model, feats, lens))
        q = quantize_int8(load_backbone(str(tiny_dir)).model)
        got = decoder_logits(q, ids, *encode(q, feats, lens))
        cache = init_cache(q, *encode(q, feats, lens))
        step = decoder_step(q, ids, cache)
    assert isinstance(q.model.decoder.layers[0].fc1, Int8Linear) and isinstance(q.proj_out, Int8Linear)
    expect = torch.bfloat16 if native_bf16() else torch.float32
    assert q.model.encoder.layers[0].fc1.weight.dtype == expect and cache.cross_kt[0].dtype == expect
    cos = torch.nn.functional.cosine_similarity
    assert cos(ref.flatten(), got.flatten(), dim=0) > 0.99 and not torch.equal(ref, got)
    assert cos(step.flatten(), got.flatten(), dim=0) > 0.999   # cached decoding agrees


def test_int8_routed_mixed_batch_equals_rows_alone(tiny, rng):
    """Rows of one length (no padding): exact. (With padding, a bfloat16 encoder's rows agree
    with their alone results to bfloat16 rounding, which a random tiny model can amplify.)"""
    from lora_whisper.adapters.config import LoraSpec
    from lora_whisper.adapters.model import inject, perturb_experts

    bank = inject(tiny.model, LoraSpec(r=4, alpha=8, dropout=0.0), ["de", "en"], seed=0)
    perturb_experts(bank, 0.5, 1)
    t = Transcriber(prepare(tiny, "int8"), bank=bank, options=GREEDY)
    assert all(p.dtype == torch.float32 for p in bank.parameters_of("de"))  # experts stay float32
    clips = [rng.standard_normal(16000 * 3).astype(np.float32) * 0.1 for _ in range(4)]
    langs = ["de", "en", "de", "en"]
    together = t.transcribe(clips, language=langs)
    for clip, lang, r in zip(clips, langs, together):
        alone = t.transcribe(clip, language=lang)
        assert r.expert == lang and r.text == alone.text
    assert together[0].text != t.transcribe(clips[0], language="en").text  # the expert matters


def test_unknown_compute_type_is_refused(tiny_dir):
    with pytest.raises(ValueError, match="float32, int8"):
        load_backbone(str(tiny_dir), compute_type="int4")
