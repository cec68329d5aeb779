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
