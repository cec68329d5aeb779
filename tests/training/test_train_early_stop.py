"""Early stopping: training stops `patience` dev evaluations after the best one, keeps the
best adapters as the run, records how it ended (fit.json), and a resumed run agrees."""
from __future__ import annotations

import json

import pytest
import torch

from lora_whisper.cli import main
from lora_whisper.errors import UserError
from lora_whisper.training import train

torch.set_num_threads(1)


def test_no_improvement_stops_after_patience_evaluations(config_for, tmp_path):
    # A learning rate too small to change a greedy token: the dev error never improves on
    # its first value, so evaluation 1 stays best and the run stops at evaluation 1 + patience.
    run = train(config_for(tmp_path / "run", max_steps=20, eval_every=2, patience=2, lr=1e-12,
                           checkpoint_every=100))
    fit = json.loads((run / "fit.json").read_text())
    assert fit["stopped_early"] and fit["steps"] == 6 and fit["best_step"] == 2 and fit["max_steps"] == 20
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "dev_error" in r] == [2, 4, 6]
    assert any(r.get("early_stop") and r["best_step"] == 2 for r in records)
    meta = json.loads((run / "lora_whisper.json").read_text())
    assert meta["experts"][0]["provenance"]["step"] == 2  # the run's adapters are the best dev ones
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=False)["step"] == 6
    # resuming a run that stopped early trains nothing more
    assert main(["train", "--resume", "--out", str(run)]) == 0
    assert json.loads((run / "fit.json").read_text())["steps"] == 6


def test_patience_without_dev_is_refused(config_for, tmp_path):
    with pytest.raises(UserError, match="--patience needs a dev set"):
        train(config_for(tmp_path / "run", dev=None, patience=2))


def test_without_patience_the_budget_is_used(config_for, tmp_path):
    run = train(config_for(tmp_path / "run", max_steps=4, eval_every=2, lr=1e-12))
    fit = json.loads((run / "fit.json").read_text())
    assert fit["steps"] == 4 and not fit["stopped_early"] and fit["steps_per_epoch"] == 2
