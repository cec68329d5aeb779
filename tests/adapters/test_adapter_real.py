"""The bank on the real whisper-base: size, peft-format files, mixed batch == rows alone."""
import copy
import dataclasses

import numpy as np
import pytest
import torch

from lora_whisper.adapters import LoraSpec, inject, load_run, routed, save_run
from lora_whisper.backbone.forward import decoder_logits, encode
from lora_whisper.data.features import log_mel


@pytest.mark.real
def test_real_whisper_base_bank(real_backbone, tmp_path, randomize_bank):
    # The session backbone is shared with other tests: adapt a copy.
    bb = dataclasses.replace(real_backbone, model=copy.deepcopy(real_backbone.model))
    bank = inject(bb.model, LoraSpec(), ["pl", "pt"])
    assert bank.count_parameters().per_expert == {"pl": 4_325_376, "pt": 4_325_376}
    randomize_bank(bank, std=0.01)
    rng = np.random.default_rng(0)
    feats, lengths = log_mel([rng.standard_normal(16000).astype(np.float32) * 0.1,
                              rng.standard_normal(12000).astype(np.float32) * 0.1], bb.n_mels)
    tokens = torch.tensor([[50258, 50269, 50359, 50363]] * 2)
    model = bb.model.eval()
    with torch.no_grad():
        with routed(bank.routing_for(["pt", "pl"])):
            enc, keep = encode(model, feats, lengths)
            mixed = decoder_logits(model, tokens, enc, keep)
        with routed(bank.routing_for(["pl"])):
            enc, keep = encode(model, feats[1:, :, : lengths[1]], lengths[1:])
            alone = decoder_logits(model, tokens[1:], enc, keep)
    # fp32 rounding of different batch shapes, on logits of magnitude ~10: 2e-5 seen
    assert (mixed[1] - alone[0]).abs().max() <= 1e-4
    save_run(tmp_path / "run", bank, bb, only=["pl"])
    fresh = dataclasses.replace(real_backbone, model=copy.deepcopy(real_backbone.model))
    bank2, info = load_run(tmp_path / "run", fresh)
    assert info.backbone_source == real_backbone.source and bank2.experts == ["pl"]
