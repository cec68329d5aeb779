"""Careless and hostile input on the command line: one line naming the file or flag, a
non-zero exit, never a traceback, and finished work never lost (tiny model)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from lora_whisper.cli import main


def _tone(seconds: float = 1.0) -> np.ndarray:
    return (0.1 * np.sin(np.arange(int(16000 * seconds)) * 0.05)).astype(np.float32)


@pytest.fixture()
def nan_wav(tmp_path):
    x = _tone()
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    return tmp_path / "nan.wav"


@pytest.fixture()
def good_wavs(tmp_path):
    paths = []
    for name, s in (("good.wav", 1.0), ("other.wav", 1.5)):
        sf.write(tmp_path / name, _tone(s), 16000)
        paths.append(tmp_path / name)
    return paths


def test_nan_file_fails_alone_results_for_the_others(tiny_dir, good_wavs, nan_wav, tmp_path, capsys):
    out_dir = tmp_path / "out"
    rc = main(["transcribe", str(good_wavs[0]), str(nan_wav), str(good_wavs[1]), "--backbone", str(tiny_dir),
               "--max-new-tokens", "3", "--format", "json", "--output-dir", str(out_dir)])
    out, err = capsys.readouterr()
    assert rc == 1
    done = [json.loads(line) for line in out.splitlines()]
    assert sorted(d["source"] for d in done) == sorted(map(str, good_wavs))
    assert f"error: {nan_wav}: contains NaN or infinite samples" in err
    assert "Traceback" not in err
    # --output-dir: one file per finished input, no temp files left
    assert sorted(p.name for p in out_dir.iterdir()) == ["good.json", "other.json"]
    assert json.loads((out_dir / "good.json").read_text())["source"] == str(good_wavs[0])


def test_detect_language_never_prints_nan(tiny_dir, good_wavs, nan_wav, capsys):
    rc = main(["detect-language", str(nan_wav), str(good_wavs[0]), "--backbone", str(tiny_dir), "--format", "json"])
    out, err = capsys.readouterr()
    assert rc == 1 and "NaN" not in out and f"{nan_wav}: contains NaN" in err
    assert [json.loads(line)["file"] for line in out.splitlines()] == [str(good_wavs[0])]


def test_results_written_as_each_file_finishes(tiny_dir, good_wavs, tmp_path, monkeypatch, capsys):
    """An interrupt after the first file keeps the first file's result (stdout and file)."""
    from lora_whisper.inference import transcriber as tr

    calls = {"n": 0}
    real = tr.Transcriber._decode_short

    def interrupted_after_one(self, job, idx, clips):
        if calls["n"] == 1:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(self, job, idx, clips)

    monkeypatch.setattr(tr.Transcriber, "_decode_short", interrupted_after_one)
    out_dir = tmp_path / "out"
    rc = main(["transcribe", *map(str, good_wavs), "--backbone", str(tiny_dir), "--batch-size", "1",
               "--max-new-tokens", "2", "--output-dir", str(out_dir)])
    out, err = capsys.readouterr()
    assert rc == 130 and "interrupted: 1 of 2 file(s) finished" in err
    assert out.startswith(str(good_wavs[0]))
    assert [p.name for p in out_dir.iterdir()] == ["good.txt"]
