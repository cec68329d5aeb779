"""Fixtures for the adapter tests: a tiny Whisper with a bank of experts whose B are nonzero
(peft's init leaves B = 0, which would make every expert equal to the bare backbone)."""
from __future__ import annotations

import pytest
import torch

from lora_whisper.adapters import LoraSpec, inject


def randomize(bank, seed: int = 0, std: float = 0.05) -> None:
    """Give every expert distinct, nonzero A and B."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in bank.layers.values():
            for p in (*layer.lora_A, *layer.lora_B):
                p.copy_(torch.randn(p.shape, generator=g) * std)


@pytest.fixture()
def randomize_bank():
    return randomize


@pytest.fixture()
def make_bank(tiny):
    def _make(languages=("pl", "pt", "de"), spec: LoraSpec | None = None, seed: int = 0):
        bank = inject(tiny.model, spec or LoraSpec(), list(languages), seed=seed)
        randomize(bank, seed)
        return bank

    return _make


@pytest.fixture()
def batch():
    """Features of 3 clips of different lengths (64, 48, 40 mel frames) and a token prefix."""
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(3, 80, 64, generator=g)
    lengths = torch.tensor([64, 48, 40])
    for i, n in enumerate(lengths.tolist()):
        feats[i, :, n:] = 0.0
    tokens = torch.tensor([[50258, 50269, 50359, 50363, 440, 1080, 13],
                           [50258, 50267, 50359, 50363, 220, 300, 11],
                           [50258, 50261, 50359, 50363, 1029, 50, 291]])
    return feats, lengths, tokens
