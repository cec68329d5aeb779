"""An utterance that cannot be decoded is skipped and reported; the report is still written."""
from __future__ import annotations

import json
import shutil

import numpy as np
import soundfile as sf

from lora_whisper.cli import main


def test_undecodable_row_skipped_report_written(tiny_dir, test_manifest, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(test_manifest.parent, data)
    x = np.zeros(16000, np.float32)
    x[3] = np.inf
    sf.write(data / "inf.wav", x, 16000, subtype="FLOAT")
    with (data / "test.jsonl").open("a") as fh:
        fh.write(json.dumps({"id": "pl-inf", "audio": "inf.wav", "text": "tak", "language": "pl"}) + "\n")
    out = tmp_path / "out"
    rc = main(["evaluate", "--backbone", str(tiny_dir), "--data", str(data / "test.jsonl"), "--out", str(out),
               "--max-new-tokens", "4"])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"warning: skipped {data / 'test.jsonl'}:5: " in err and "inf.wav: contains NaN or infinite" in err
    report = json.loads((out / "report.json").read_text())
    assert [s["id"] for s in report["settings"]["skipped_undecodable"]] == ["pl-inf"]
    hyps = [json.loads(line)["id"] for line in (out / "hyps.jsonl").read_text().splitlines()]
    assert sorted(hyps) == ["pl-0", "pl-1", "pt-2", "pt-3"]
