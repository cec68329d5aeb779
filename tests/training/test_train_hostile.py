"""Training on careless data: bad clips and overlong transcripts are skipped with a count
before the first step; resume refuses changed data; a finished run has nothing to resume."""
from __future__ import annotations

import json
import shutil

import numpy as np
import soundfile as sf
import torch

from lora_whisper.cli import main
from lora_whisper.training import train

torch.set_num_threads(1)


def _with_bad_rows(corpus, root):
    """The corpus copied, plus a NaN clip and a 600-word transcript (both Polish)."""
    root.mkdir()
    for f in corpus["train"].parent.iterdir():
        shutil.copy(f, root / f.name)
    x = np.zeros(16000, np.float32)
    x[5] = np.nan
    sf.write(root / "nan.wav", x, 16000, subtype="FLOAT")
    rows = [json.loads(line) for line in (root / "train.jsonl").read_text().splitlines()]
    rows.append({"id": "pl-nan", "audio": "nan.wav", "text": "tak", "language": "pl"})
    rows.append({"id": "pl-long", "audio": "pl-0.wav", "text": " ".join(["dzień dobry"] * 300), "language": "pl"})
    (root / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return root / "train.jsonl"


def test_bad_clips_and_overlong_texts_skipped_with_a_count(corpus, config_for, tmp_path, capsys):
    data = _with_bad_rows(corpus, tmp_path / "data")
    run = train(config_for(tmp_path / "run", data=str(data), max_steps=2, eval_every=2))
    err = capsys.readouterr().err
    assert "note: skipped 2 of 10 training utterances: 1 undecodable" in err
    assert "nan.wav: contains NaN or infinite samples" in err
    assert "1 with a transcript over Whisper's 448 decoder positions" in err and "train.jsonl:10" in err
    assert (run / "lora_whisper.json").exists()


def test_resume_refuses_changed_data_and_finishes_cleanly(corpus, config_for, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for f in corpus["train"].parent.iterdir():
        shutil.copy(f, data / f.name)
    run = tmp_path / "run"
    config_for(run, data="train.jsonl", dev="dev.jsonl", max_steps=4).save(tmp_path / "cfg.toml")
    monkeypatch.chdir(data)   # relative paths: the saved config must not depend on this folder
    assert main(["train", "--config", str(tmp_path / "cfg.toml"), "--stop-after-steps", "3"]) == 0
    saved = (run / "train_config.toml").read_text()
    assert f'data = "{data / "train.jsonl"}"' in saved
    stale = run / "checkpoints" / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")

    rows = (data / "train.jsonl").read_text().splitlines()
    (data / "train.jsonl").write_text("\n".join(rows[:-1]) + "\n")   # one row fewer
    monkeypatch.chdir(tmp_path)   # resumed from elsewhere
    assert main(["train", "--resume", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"error: {run}: the training or dev data changed since the checkpoint" in err
    assert not stale.exists() and "removed 1 unfinished temp file" in err

    (data / "train.jsonl").write_text("\n".join(rows) + "\n")
    assert main(["train", "--resume", "--out", str(run)]) == 0
    meta = (run / "lora_whisper.json").read_text()
    assert main(["train", "--resume", "--out", str(run)]) == 0
    assert "already finished (4 of 4 steps); nothing to resume" in capsys.readouterr().err
    assert (run / "lora_whisper.json").read_text() == meta


def test_a_start_that_failed_before_its_first_checkpoint_does_not_block_a_rerun(config_for, tmp_path, monkeypatch, capsys):
    from lora_whisper.training import loop

    def broken(*a, **k):
        raise RuntimeError("out of memory")

    run = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(loop, "forward_loss", broken)
        try:
            train(config_for(run, max_steps=2))
        except RuntimeError:
            pass
    assert (run / "train_config.toml").exists() and not (run / "checkpoints" / "last.pt").exists()
    assert (train(config_for(run, max_steps=2)) / "lora_whisper.json").exists()
    assert "never reached its first checkpoint; starting again" in capsys.readouterr().err
