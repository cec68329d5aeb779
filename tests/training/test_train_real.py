"""A few lora-whisper steps on the real whisper-base: the loss on real speech falls and the
run decodes."""
from __future__ import annotations

import json

import pytest
import torch

from lora_whisper.training import train

torch.set_num_threads(1)


@pytest.mark.real
def test_real_backbone_learns_from_a_few_steps(config_for, tmp_path):
    from lora_whisper.backbone.load import load_backbone
    from lora_whisper.evaluation.systems import load_system

    backbone = load_backbone()  # a fresh copy: training injects adapters into it
    config = config_for(tmp_path / "run", backbone=None, max_steps=8, eval_every=8, lr=1e-3, rank=8,
                        bf16=None, checkpoint_every=8, eval_max_new_tokens=8)
    run = train(config, backbone=backbone)
    losses = [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert all(map(torch.isfinite, torch.tensor(losses)))
    assert losses[-1] < losses[0] * 0.8, losses
    meta = json.loads((run / "lora_whisper.json").read_text())
    assert meta["backbone"]["source"] == "embedded:whisper-base"
    out = load_system(run).transcriber.transcribe(str(config.data).replace("train.jsonl", "pl-0.wav"),
                                                  language="pl", max_new_tokens=8)
    assert out.expert == "pl" and out.text
