"""The training fast path (CPU autocast) computes what the plain peft-style path computes:
same loss and gradients without dropout, the same drop rate with it, reproducible masks, and
the vocabulary projection over labelled positions only gives the same loss."""
from __future__ import annotations

import pytest
import torch

from lora_whisper.adapters import LoraSpec, inject
from lora_whisper.adapters.layer import frozen_cast, keep_mask, quantized_rate, set_fast_train


def _batch(language_index):
    from lora_whisper.data.batching import IGNORE_INDEX

    g = torch.Generator().manual_seed(3)
    feats = torch.randn(3, 80, 64, generator=g)
    ids = torch.tensor([[50258, 50269, 50359, 50363, 440, 1080, 13, 50257],
                        [50258, 50267, 50359, 50363, 220, 300, 11, 50257],
                        [50258, 50261, 50359, 50363, 1029, 50, 291, 50257]])
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 3:-1] = ids[:, 4:]
    labels[2, 5:] = IGNORE_INDEX     # a shorter row: padding
    return {"input_features": feats, "frame_lengths": torch.tensor([64, 48, 40]),
            "decoder_input_ids": ids, "labels": labels, "language_index": torch.tensor(language_index),
            "languages": ["pl", "pt", "pl"]}


def _loss_and_grads(model, bank, batch, routing, fast, labelled=True, autocast=True):
    from lora_whisper.training.loop import forward_loss

    set_fast_train(model, fast)
    for p in bank.set_trainable(bank.experts):
        p.grad = None
    loss, _ = forward_loss(model, batch, routing, autocast, labelled_only=labelled)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize("routing_kind", ["rows", "single", "mixture"])
def test_fast_path_matches_the_plain_path_without_dropout(tiny, routing_kind):
    from lora_whisper.adapters.routing import Routing

    torch.manual_seed(0)
    bank = inject(tiny.model, LoraSpec(r=4, alpha=8, dropout=0.0), ["pl", "pt"], seed=0)
    with torch.no_grad():
        for layer in bank.layers.values():
            for B in layer.lora_B:
                B.normal_(0, 0.05)
    tiny.model.train()
    batch = _batch([0, 1, 0])
    routing = {"rows": bank.routing_for(["pl", "pt", "pl"]), "single": Routing.single(1, 3, 2),
               "mixture": bank.routing_for([{"pl": 0.7, "pt": 0.3}, "pt", None])}[routing_kind]
    slow_loss, slow = _loss_and_grads(tiny.model, bank, batch, routing, fast=False)
    fast_loss, fast = _loss_and_grads(tiny.model, bank, batch, routing, fast=True)
    # bfloat16 autocast both ways: the paths round at different points, nothing more
    assert torch.allclose(fast_loss, slow_loss, rtol=2e-3), (fast_loss, slow_loss)
    assert set(fast) == set(slow) and fast
    for n in slow:
        scale = float(slow[n].abs().max()) + 1e-12
        assert float((fast[n] - slow[n]).abs().max()) / scale < 0.05, n


def test_fast_path_is_off_outside_cpu_autocast_training(tiny):
    """fp32 training and inference take the plain path: bit-identical to it."""
    bank = inject(tiny.model, LoraSpec(r=4, dropout=0.0), ["pl", "pt"], seed=0)
    with torch.no_grad():
        for layer in bank.layers.values():
            for B in layer.lora_B:
                B.normal_(0, 0.05)
    tiny.model.train()
    batch = _batch([0, 1, 0])
    routing = bank.routing_for(["pl", "pt", "pl"])
    a, ga = _loss_and_grads(tiny.model, bank, batch, routing, fast=False, autocast=False)
    b, gb = _loss_and_grads(tiny.model, bank, batch, routing, fast=True, autocast=False)
    assert torch.equal(a, b) and all(torch.equal(ga[n], gb[n]) for n in ga)


def test_labelled_only_projection_gives_the_same_loss(tiny):
    bank = inject(tiny.model, LoraSpec(r=4, dropout=0.0), ["pl", "pt"], seed=0)
    tiny.model.train()
    batch = _batch([0, 1, 0])
    routing = bank.routing_for(["pl", "pt", "pl"])
    full, gf = _loss_and_grads(tiny.model, bank, batch, routing, fast=False, labelled=False, autocast=False)
    part, gp = _loss_and_grads(tiny.model, bank, batch, routing, fast=False, labelled=True, autocast=False)
    assert torch.allclose(full, part, rtol=1e-6)
    assert all(torch.allclose(gf[n], gp[n], rtol=1e-4, atol=1e-8) for n in gf)


def test_keep_mask_rate_and_reproducibility():
    torch.manual_seed(5)
    a = keep_mask((64, 100, 50), 0.05)
    torch.manual_seed(5)
    b = keep_mask((64, 100, 50), 0.05)
    c = keep_mask((64, 100, 50), 0.05)
    assert a.dtype == torch.bool and a.shape == (64, 100, 50)
    assert torch.equal(a, b) and not torch.equal(b, c)
    drop = 1.0 - a.float().mean().item()
    assert abs(drop - 0.05) < 0.003 and abs(quantized_rate(0.05) - 0.05) < 1e-5


def test_dropout_keeps_the_expected_activation_on_average(tiny):
    """Inverted dropout: the fast path's mean LoRA delta equals the no-dropout delta."""
    bank = inject(tiny.model, LoraSpec(r=4, alpha=4, dropout=0.3), ["pl"], seed=0)
    layer = next(iter(bank.layers.values()))
    with torch.no_grad():
        layer.lora_B[0].normal_(0, 0.5)
    layer.train()
    x = torch.randn(4, 2000, layer.in_features)
    from lora_whisper.adapters.routing import Routing, routed

    with routed(Routing.single(0, 4, 1)):
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.enable_grad():
            y = layer(x).float()
        with torch.no_grad():
            layer.eval()
            y0 = layer(x).float()
    base = layer.base_layer(x)
    delta, delta0 = (y - base).mean(), (y0 - base).mean()
    assert abs(float(delta - delta0)) < 0.05 * float((y0 - base).abs().mean()) + 1e-3


def test_frozen_cast_is_made_again_when_the_tensor_changes():
    w = torch.randn(8, 4)
    a = frozen_cast(w, torch.bfloat16)
    assert frozen_cast(w, torch.bfloat16) is a and torch.equal(a, w.bfloat16())
    with torch.no_grad():
        w.add_(1.0)
    b = frozen_cast(w, torch.bfloat16)
    assert b is not a and torch.equal(b, w.bfloat16())
