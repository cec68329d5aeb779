"""int8 compute type: quantised backbone linears, float32 experts, routing unchanged."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lora_whisper.backbone.forward import decoder_logits, encode
from lora_whisper.data.features import log_mel
from lora_whisper.inference.decoding import DecodeOptions
from lora_whisper.inference.transcriber import Transcriber

GREEDY = DecodeOptions(temperatures=(0.0,), compression_ratio_threshold=None, logprob_threshold=None,
                       max_new_tokens=8)


def test_int8_logits_track_float32(tiny, tiny_dir, rng):
    from lora_whisper.backbone.load import load_backbone
    from lora_whisper.backbone.quantize import quantize_int8

    feats, lens = log_mel([rng.standard_normal(16000 * 3).astype(np.float32) * 0.1])
    ids = torch.tensor([tiny.vocab.sot_sequence("en") + [300, 400, 500]])
    with torch.no_grad():
        ref = decoder_logits(tiny.model, ids, *encode(tiny.model, feats, lens))
        q = quantize_int8(load_backbone(str(tiny_dir)).model)
        got = decoder_logits(q, ids, *encode(q, feats, lens))
    assert "quantized.dynamic" in type(q.model.encoder.layers[0].fc1).__module__
    cos = torch.nn.functional.cosine_similarity(ref.flatten(), got.flatten(), dim=0)
    assert cos > 0.99 and not torch.equal(ref, got)
    # cached decoding (cross-attention keys/values in bfloat16 where the CPU has it) agrees
    from lora_whisper.backbone.forward import decoder_step, init_cache

    with torch.no_grad():
        cache = init_cache(q, *encode(q, feats, lens))
        step = decoder_step(q, ids, cache)
    assert cache.cross_kt[0].dtype == getattr(q, "cross_attention_dtype", torch.float32)
    assert torch.nn.functional.cosine_similarity(step.flatten(), got.flatten(), dim=0) > 0.999


def test_int8_keeps_per_row_routing_exact(tiny, rng):
    """The experts are added in float32 on top of the int8 base layer, each row its own:
    output = int8 base(x) + that row's expert delta, whatever the other rows are routed to.
    (The int8 base layer itself scales activations per batch, so unlike float32 a row's
    transcript can vary slightly with its batch mates.)"""
    from lora_whisper.adapters.config import LoraSpec
    from lora_whisper.adapters.model import inject, perturb_experts

    bank = inject(tiny.model, LoraSpec(r=4, alpha=8, dropout=0.0), ["de", "en"], seed=0)
    perturb_experts(bank, 0.5, 1)
    t = Transcriber(tiny, bank=bank, options=GREEDY, compute_type="int8")
    assert all(p.dtype == torch.float32 for p in bank.parameters_of("de"))  # experts stay float32
    layer = tiny.model.model.encoder.layers[0].fc1
    assert "quantized.dynamic" in type(layer.base_layer).__module__
    x = torch.randn(3, 5, layer.in_features)
    with torch.no_grad():
        base = layer.base_layer(x)
        bank.set_routing(bank.routing_for(["de", "en", "de"]))
        mixed = layer(x)
        bank.set_routing(None)
        for row, e in enumerate([0, 1, 0]):
            delta = (x[row] @ layer.lora_A[e].T @ layer.lora_B[e].T) * layer.scale
            assert torch.allclose(mixed[row], base[row] + delta, atol=1e-5)
    clips = [rng.standard_normal(16000 * s).astype(np.float32) * 0.1 for s in (2, 4)]
    out = t.transcribe(clips, language=["de", "en"])
    assert [r.expert for r in out] == ["de", "en"] and all(r.text for r in out)


def test_unknown_compute_type_is_refused(tiny):
    with pytest.raises(ValueError, match="float32, int8"):
        Transcriber(tiny, compute_type="int4")
