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


@pytest.mark.parametrize("argv, flag", [
    (["transcribe", "x.wav", "--batch-size", "0"], "--batch-size: must be at least 1, got 0"),
    (["transcribe", "x.wav", "--threads", "-1"], "--threads: must be at least 1, got -1"),
    (["train", "--threads", "-1"], "--threads: must be at least 1"),
    (["evaluate", "--data", "x", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["serve", "--port", "99999"], "--port: must be between 0 and 65535, got 99999"),
    (["serve", "--max-upload-mb", "nan"], "--max-upload-mb: must be a number above 0"),
])
def test_bad_flags_one_line(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and flag in err.splitlines()[-1] and "Traceback" not in err


def test_run_pointing_to_a_file(tiny_dir, good_wavs, tmp_path, capsys):
    f = tmp_path / "notarun.txt"
    f.write_text("x")
    assert main(["transcribe", str(good_wavs[0]), "--run", str(f)]) == 2
    assert f"error: {f}: is a file; --run takes a run directory" in capsys.readouterr().err


def test_non_utf8_manifest_is_a_bad_row(tmp_path, capsys):
    m = tmp_path / "m.jsonl"
    m.write_bytes(b'{"id": "a", "audio": "a.wav", "text": "caf\xe9", "language": "fr"}\n')
    assert main(["data", "check", str(m)]) == 1
    out = capsys.readouterr().out
    assert f"{m}:1: not UTF-8 text (byte 0xe9 at column 43)" in out


def test_non_utf8_csv_is_one_line(tmp_path, capsys):
    m = tmp_path / "m.csv"
    m.write_bytes(b"audio,text,language\na.wav,caf\xe9,fr\n")
    assert main(["data", "check", str(m)]) == 2
    assert f"error: {m}: not UTF-8 text" in capsys.readouterr().err


def test_declared_duration_checked_against_the_audio(good_wavs, tmp_path, capsys):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"id": "a", "audio": str(good_wavs[0]), "text": "x", "language": "en", "duration": 1e9})
                 + "\n" + json.dumps({"id": "b", "audio": "other.wav", "text": "y", "language": "en", "duration": 1.5})
                 + "\n" + json.dumps({"id": "c", "audio": "../nowhere/c.wav", "text": "z", "language": "en"}) + "\n")
    assert main(["data", "check", str(m)]) == 1
    out = capsys.readouterr().out
    assert f"{m}:1: declared duration 1e+09 s but the audio is 1.00 s" in out
    assert f"{m}:2" not in out   # relative to the manifest's folder: found, and 1.5 s is right
    assert f"{m}:3: audio file not found: {tmp_path.parent / 'nowhere' / 'c.wav'}" in out


def test_truncated_wav_warns(tiny_dir, good_wavs, tmp_path, capsys):
    data = good_wavs[1].read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    assert main(["transcribe", str(cut), "--backbone", str(tiny_dir), "--max-new-tokens", "2"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {cut}: truncated file: 0.75 s present of the 1.50 s its header declares" in err


def test_unexpected_error_is_one_line_with_a_hint(tiny_dir, good_wavs, monkeypatch, capsys):
    from lora_whisper.inference import transcriber as tr

    def boom(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(tr.Transcriber, "transcribe", boom)
    assert main(["transcribe", str(good_wavs[0]), "--backbone", str(tiny_dir)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == ["error: ZeroDivisionError: division by zero",
                   "hint: this is unexpected; rerun with --debug before the command (or LORA_WHISPER_DEBUG=1) "
                   "for the traceback, and report it"]
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "transcribe", str(good_wavs[0]), "--backbone", str(tiny_dir)])


def test_data_check_refuses_nan_audio(good_wavs, nan_wav, tmp_path, capsys):
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps({"id": p.stem, "audio": p.name, "text": "x", "language": "en"}) + "\n"
                         for p in (good_wavs[0], nan_wav)))
    assert main(["data", "check", str(m)]) == 1
    out = capsys.readouterr().out
    assert f"{m}:2: contains NaN or infinite samples" in out and f"{m}:1" not in out


def test_language_without_an_expert_is_said_out_loud(tiny_dir, good_wavs, tmp_path, capsys):
    from lora_whisper.adapters.config import LoraSpec
    from lora_whisper.adapters.run import save_run
    from lora_whisper.adapters.model import inject
    from lora_whisper.backbone.load import load_backbone

    bb = load_backbone(str(tiny_dir))
    save_run(tmp_path / "run", inject(bb.model, LoraSpec(r=4, alpha=8, dropout=0.0), ["de"], seed=0), bb)
    rc = main(["transcribe", str(good_wavs[0]), "--run", str(tmp_path / "run"), "--backbone", str(tiny_dir),
               "--language", "fr", "--max-new-tokens", "2", "--format", "json"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert f"warning: {good_wavs[0]}: no expert for language 'fr' in this run; decoded by the bare backbone" in err
    assert json.loads(out)["expert"] is None
