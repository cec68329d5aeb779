"""Interrupted and resumed == uninterrupted; a diverging loss stops without losing files;
bad input is refused before training."""
from __future__ import annotations

import json

import pytest
import torch

from lora_whisper.cli import main
from lora_whisper.errors import UserError
from lora_whisper.training import train
from lora_whisper.training.loop import TrainingDiverged

torch.set_num_threads(1)


def _losses(run):
    return [(r["step"], round(r["loss"], 5)) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "loss" in r]


def test_killed_then_resumed_ends_with_the_same_adapters(config_for, adapters_of, tmp_path):
    # LoRA dropout stays on (0.05): the resumed run must draw the same masks.
    settings = dict(max_steps=6, eval_every=3, checkpoint_every=2, lr=5e-3)
    straight = train(config_for(tmp_path / "straight", **settings))

    cut = tmp_path / "cut"
    config_for(cut, **settings).save(tmp_path / "cut.toml")
    # Stop after step 5 as a kill would: the last checkpoint is step 4, step 5 is redone.
    assert main(["train", "--config", str(tmp_path / "cut.toml"), "--stop-after-steps", "5"]) == 0
    assert torch.load(cut / "checkpoints" / "last.pt", weights_only=False)["step"] == 4
    assert not (cut / "final").exists()
    assert main(["train", "--resume", "--out", str(cut)]) == 0

    for sub in ("final", "."):  # final weights, and the best-dev ones the run keeps
        a, b = adapters_of(straight / sub), adapters_of(cut / sub)
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), sub
    assert _losses(cut) == _losses(straight)  # the step logged before the kill was dropped


def test_nan_loss_stops_naming_the_step_and_keeps_earlier_files(config_for, monkeypatch, tmp_path):
    from lora_whisper.training import loop

    real, calls = loop.forward_loss, {"n": 0}

    def poisoned(*args, **kw):
        loss, n = real(*args, **kw)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 4 else loss), n

    monkeypatch.setattr(loop, "forward_loss", poisoned)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"step 4: loss is nan"):
        train(config_for(run, max_steps=6, eval_every=2, checkpoint_every=2))
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["step"] == 2
    meta = json.loads((run / "lora_whisper.json").read_text())
    assert meta["experts"][0]["provenance"]["step"] == 2  # the best-dev save of step 2 is intact
    from lora_whisper.evaluation.systems import load_system

    load_system(run)  # still loads


def test_huge_learning_rate_diverges_with_a_clear_error(config_for, tmp_path):
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+.*Lower the learning rate"):
        train(config_for(tmp_path / "run", lr=1e30, max_steps=6, dev=None, max_grad_norm=None,
                         warmup_steps=0))


@pytest.mark.parametrize("change, message", [
    (dict(languages=("pl", "xx")), "unknown language 'xx'"),
    (dict(languages=("pl", "de")), "no training utterances for de"),
    (dict(recipe="lora-whisper", max_train_per_language=1, batch_size=4, grad_accum=2), "fewer than grad_accum"),
])
def test_bad_input_is_refused_before_training(config_for, tmp_path, change, message):
    out = tmp_path / "run"
    with pytest.raises(UserError, match=message):
        train(config_for(out, **change))
    assert not (out / "checkpoints").exists()


def test_existing_run_and_mismatched_resume_are_refused(config_for, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(UserError, match="nothing to resume"):
        train(config_for(out, resume=True))
    train(config_for(out, max_steps=2, dev=None))
    with pytest.raises(UserError, match="add --resume"):
        train(config_for(out, max_steps=2, dev=None))
    with pytest.raises(UserError, match="different settings.*lr"):
        train(config_for(out, max_steps=2, dev=None, lr=0.5, resume=True))
