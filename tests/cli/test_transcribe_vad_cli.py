"""`transcribe --vad --word-timestamps` from the command line: json words, srt per word, a
bad file among good ones, and --per-word without words refused in one line (tiny model)."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import soundfile as sf

from lora_whisper.cli import main


def _speech_file(tmp_path) -> str:
    from lora_whisper.audio import load_audio

    subprocess.run(["espeak-ng", "-v", "en", "-w", str(tmp_path / "s.wav"),
                    "Please call me when you get home tonight."], check=True)
    s = load_audio(tmp_path / "s.wav")
    audio = np.concatenate([s, np.zeros(16000, np.float32), s, np.zeros(24000, np.float32), s])
    sf.write(tmp_path / "talk.flac", audio, 16000)
    return str(tmp_path / "talk.flac")


def test_vad_words_json_and_per_word_srt(tiny_dir, tmp_path, capsys):
    f = _speech_file(tmp_path)
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    common = ["--backbone", str(tiny_dir), "--language", "en", "--max-new-tokens", "6", "--vad", "--word-timestamps"]
    assert main(["transcribe", f, str(bad), *common, "--format", "json"]) == 1
    out, err = capsys.readouterr()
    assert "bad.wav" in err
    d = json.loads(out.strip().splitlines()[-1])
    words = [w for g in d["segments"] for w in g["words"]]
    assert words and all(set(w) == {"word", "start", "end", "probability"} for w in words)
    assert main(["transcribe", f, *common, "--format", "srt", "--per-word"]) == 0
    cues = capsys.readouterr().out.strip().split("\n\n")
    assert len(cues) == len(words)


def test_per_word_needs_word_timestamps(tiny_dir, tmp_path, capsys):
    assert main(["transcribe", "x.wav", "--backbone", str(tiny_dir), "--per-word", "--format", "srt"]) != 0
    err = capsys.readouterr().err.strip()
    assert "--per-word needs --word-timestamps" in err and len(err.splitlines()) == 1
