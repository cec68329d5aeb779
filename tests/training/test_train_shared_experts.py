"""Recipe shared+experts: a shared expert on every row plus the row's language expert.
Isolation is the paper's: a step on language A's rows leaves expert B bit-identical (even
with AdamW momentum from earlier B steps); the run decodes each language as shared + own."""
from __future__ import annotations

import json

import torch

from lora_whisper.adapters import LoraSpec
from lora_whisper.training import train

torch.set_num_threads(1)


def _batch(languages):
    from lora_whisper.data.batching import IGNORE_INDEX

    g = torch.Generator().manual_seed(0)
    n = len(languages)
    ids = torch.tensor([[50258, 50269, 50359, 50363, 440, 1080, 13, 50257]] * n)
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[:, 3:-1] = ids[:, 4:]
    return {"input_features": torch.randn(n, 80, 48, generator=g), "frame_lengths": torch.full((n,), 48),
            "decoder_input_ids": ids, "labels": labels, "languages": list(languages),
            "language_index": torch.zeros(n, dtype=torch.long)}


def _snapshot(bank, name):
    return [p.detach().clone() for p in bank.parameters_of(name)]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_a_step_on_one_language_leaves_the_other_expert_bit_identical(tiny):
    from lora_whisper.training.loop import forward_loss, make_optimizer
    from lora_whisper.training.recipes import make_plan

    plan = make_plan("shared+experts", tiny, ["pl", "pt"], LoraSpec(r=4), seed=0)
    bank = plan.bank
    assert bank.experts == ["shared", "pl", "pt"] and plan.trained == ["shared", "pl", "pt"]
    params = list(plan.params.values())
    opt = make_optimizer([{"params": params, "weight_decay": 0.01}], 1e-2, torch.device("cpu"))
    plan.model.train()

    def step(langs, bf16):
        b = _batch(langs)
        routing = plan.routing_fn(b)
        assert routing.kind == "mixture"
        loss, n = forward_loss(plan.model, b, routing, bf16)
        (loss / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for bf16 in (False, True):
        pt, shared, pl = _snapshot(bank, "pt"), _snapshot(bank, "shared"), _snapshot(bank, "pl")
        step(["pl", "pl", "pl"], bf16)
        assert _same(pt, _snapshot(bank, "pt"))
        assert not _same(shared, _snapshot(bank, "shared")) and not _same(pl, _snapshot(bank, "pl"))
        pl = _snapshot(bank, "pl")
        step(["pt", "pt"], bf16)   # pl has AdamW momentum now; it must still not move
        assert _same(pl, _snapshot(bank, "pl"))


def test_shared_experts_run_decodes_each_language_with_shared_plus_its_own(config_for, corpus, tmp_path):
    from lora_whisper.evaluation.systems import load_system

    run = train(config_for(tmp_path / "run", recipe="shared+experts", max_steps=2, bf16=True))
    meta = json.loads((run / "lora_whisper.json").read_text())
    experts = {e["name"]: e["provenance"] for e in meta["experts"]}
    assert list(experts) == ["shared", "pl", "pt"]
    assert experts["pl"]["moe"] == {"experts": {"shared": 1.0, "pl": 1.0}}
    t = load_system(run, batch_size=2).transcriber
    assert t.mixture_for("pt") == {"shared": 1.0, "pt": 1.0}
    out = t.transcribe(str(corpus["train"].parent / "pl-0.wav"), language="pl", max_new_tokens=3)
    assert out.expert == "shared+pl" and isinstance(out.text, str)
