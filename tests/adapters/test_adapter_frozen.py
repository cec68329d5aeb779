"""Frozen means frozen: training one expert leaves the backbone and every other expert
bitwise unchanged, and adding an expert touches none of the existing ones."""
import pytest
import torch
import torch.nn.functional as F

from lora_whisper.adapters import AdapterError, routed
from lora_whisper.backbone.forward import decoder_logits, encode


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_adamw_on_one_language_changes_only_that_expert(make_bank, batch):
    feats, lengths, tokens = batch
    bank = make_bank()
    model = bank.model.train()
    params = bank.set_trainable(["pt"])
    assert {id(p) for p in params} == {id(p) for p in model.parameters() if p.requires_grad}
    before = snapshot(model)
    # Every parameter is handed to the optimizer (with weight decay): a frozen one must still not move.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    with routed(bank.routing_for(["pt", "pl", "pt"])):
        for _ in range(3):
            enc, keep = encode(model, feats, lengths)
            out = decoder_logits(model, tokens[:, :-1], enc, keep)
            loss = F.cross_entropy(out.flatten(0, 1), tokens[:, 1:].flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
    after = model.state_dict()
    pt = bank.index("pt")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    expected = {f"{path}.lora_{w}.{pt}" for path in bank.layers for w in "AB"}
    assert changed == expected


def test_adding_a_language_leaves_existing_experts_bitwise_unchanged(make_bank):
    bank = make_bank(["pl", "pt"])
    before = snapshot(bank.model)
    pl_before = bank.state_dict_of("pl")
    assert bank.add_language("cy", init="copy:pl") == 2
    assert bank.add_language("da", seed=3) == 3
    assert bank.experts == ["pl", "pt", "cy", "da"]
    after = bank.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(a, b) for a, b in zip(pl_before.values(), bank.state_dict_of("cy").values()))
    da = bank.state_dict_of("da")
    assert all(not v.any() for k, v in da.items() if k.endswith("lora_B.weight"))  # B = 0: starts bare
    assert all(not p.requires_grad for p in bank.parameters_of("da"))
    with pytest.raises(AdapterError, match="already exists"):
        bank.add_language("pl")
    with pytest.raises(AdapterError, match="not valid"):
        bank.add_language("../x")


def test_random_init_is_seeded_like_peft(make_bank):
    bank = make_bank(["pl"])
    bank.add_language("a", seed=7)
    bank.add_language("b", seed=7)
    a, b = bank.state_dict_of("a"), bank.state_dict_of("b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    A = next(v for k, v in a.items() if k.endswith("lora_A.weight"))
    bound = 1 / A.shape[1] ** 0.5  # kaiming_uniform(a=sqrt(5)) on [r, in]
    assert A.abs().max() <= bound and A.std() > bound / 3
