"""`lora-whisper transcribe` / `detect-language` on bad and odd input (tiny model)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from lora_whisper.cli import main


@pytest.fixture()
def files(tmp_path, rng):
    good = {}
    tone = (0.1 * np.sin(np.arange(16000) * 0.05)).astype(np.float32)
    sf.write(tmp_path / "mono16k.wav", tone, 16000); good["mono16k"] = tmp_path / "mono16k.wav"
    sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 16000); good["silent"] = tmp_path / "silent.wav"
    sf.write(tmp_path / "stereo.wav", np.stack([tone, tone], 1), 16000); good["stereo"] = tmp_path / "stereo.wav"
    sf.write(tmp_path / "8k.wav", tone[::2], 8000); good["8k"] = tmp_path / "8k.wav"
    sf.write(tmp_path / "48k.flac", np.repeat(tone, 3), 48000); good["48k"] = tmp_path / "48k.flac"
    bad = {}
    (tmp_path / "empty.wav").write_bytes(b""); bad["empty"] = tmp_path / "empty.wav"
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" + bytes(rng.integers(0, 255, 64, dtype=np.uint8)))
    bad["corrupt"] = tmp_path / "corrupt.wav"
    (tmp_path / "notes.wav").write_text("this is a text file, not audio\n"); bad["text"] = tmp_path / "notes.wav"
    bad["missing"] = tmp_path / "missing.wav"
    return good, bad


def test_bad_files_reported_others_done(tiny_dir, files, capsys):
    good, bad = files
    paths = [str(p) for p in list(good.values()) + list(bad.values())]
    rc = main(["transcribe", *paths, "--backbone", str(tiny_dir), "--language", "en",
               "--max-new-tokens", "3", "--format", "json"])
    out, err = capsys.readouterr()
    assert rc != 0
    import json

    done = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert sorted(d["source"] for d in done) == sorted(str(p) for p in good.values())
    assert all(d["language"] == "en" for d in done)
    err_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(err_lines) == len(bad)
    for p in bad.values():
        assert any(str(p) in line for line in err_lines), (p, err)


def test_unknown_language_refused_with_valid_list(tiny_dir, files, capsys):
    good, _ = files
    rc = main(["transcribe", str(good["mono16k"]), "--backbone", str(tiny_dir), "--language", "xx"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "unknown language 'xx'" in err and "pl" in err and "en" in err


def test_detect_language_reports_distribution(tiny_dir, files, capsys):
    good, bad = files
    rc = main(["detect-language", str(good["48k"]), str(bad["missing"]), "--backbone", str(tiny_dir),
               "--format", "json"])
    out, err = capsys.readouterr()
    assert rc == 1 and str(bad["missing"]) in err
    import json

    rec = json.loads(out.strip().splitlines()[0])
    assert abs(sum(rec["probabilities"].values()) - 1) < 1e-4


def test_long_audio_is_windowed(tiny_dir, tmp_path, capsys):
    sf.write(tmp_path / "long.wav", (0.05 * np.random.default_rng(1).standard_normal(16000 * 65)).astype(np.float32), 16000)
    rc = main(["transcribe", str(tmp_path / "long.wav"), "--backbone", str(tiny_dir), "--language", "en",
               "--max-new-tokens", "2", "--format", "json"])
    import json

    rec = json.loads(capsys.readouterr().out)
    assert rc == 0 and rec["duration"] == pytest.approx(65.0)
    # segments lie inside their 30 s window (empty texts are dropped); windows follow each other
    assert all(0 <= s["start"] <= s["end"] <= 65.0 and s["end"] - s["start"] <= 30.0 for s in rec["segments"])
    assert [s["start"] for s in rec["segments"]] == sorted(s["start"] for s in rec["segments"])


def test_long_file_gets_timed_segments_int8(tiny_dir, tmp_path, rng, capsys):
    """A 70 s file through the CLI: srt blocks from several 30 s windows (int8 backbone)."""
    sf.write(tmp_path / "long.flac", (0.1 * rng.standard_normal(70 * 16000)).astype(np.float32), 16000)
    rc = main(["transcribe", str(tmp_path / "long.flac"), "--backbone", str(tiny_dir), "--language", "de",
               "--max-new-tokens", "6", "--format", "srt", "--compute-type", "int8"])
    out = capsys.readouterr().out
    assert rc == 0
    times = [line for line in out.splitlines() if " --> " in line]
    assert len(times) >= 3 and times[-1].split(" --> ")[0] >= "00:00:30,000"


def test_format_text_is_txt(tiny_dir, files, capsys):
    """`--format text` (the OpenAI API's name) prints what `--format txt` prints."""
    good, _ = files
    outs = []
    for fmt in ("txt", "text"):
        rc = main(["transcribe", str(good["mono16k"]), str(good["stereo"]), "--backbone", str(tiny_dir),
                   "--language", "en", "--max-new-tokens", "3", "--format", fmt])
        assert rc == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] and outs[0].count("\t[en]\t") == 2


def test_candidate_languages_flag(tiny_dir, files, capsys):
    import json

    good, _ = files
    rc = main(["detect-language", str(good["mono16k"]), "--backbone", str(tiny_dir), "--languages", "cy,pl",
               "--format", "json"])
    rec = json.loads(capsys.readouterr().out.strip())
    assert rc == 0 and set(rec["probabilities"]) == {"cy", "pl"} and rec["language"] in ("cy", "pl")
    rc = main(["transcribe", str(good["mono16k"]), "--backbone", str(tiny_dir), "--languages", "cy,pl",
               "--routing", "nbest", "--routing-threshold", "1", "--max-new-tokens", "3", "--format", "json"])
    rec = json.loads(capsys.readouterr().out.strip())
    assert rc == 0 and rec["language"] in ("cy", "pl") and set(rec["language_probs"]) == {"cy", "pl"}
    assert main(["transcribe", str(good["mono16k"]), "--backbone", str(tiny_dir), "--languages", "cy,xx"]) == 2
    assert "unknown language 'xx'" in capsys.readouterr().err
    assert main(["transcribe", str(good["mono16k"]), "--backbone", str(tiny_dir), "--routing-threshold", "2"]) == 2
