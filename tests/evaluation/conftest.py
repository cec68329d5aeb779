"""A few espeak-ng clips in two languages with a manifest, for evaluation end to end."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

CLIPS = [("pl", "dzień dobry"), ("pl", "do widzenia"), ("pt", "bom dia"), ("pt", "boa noite")]


@pytest.fixture(scope="session")
def test_manifest(tmp_path_factory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (make test installs it)")
    root = tmp_path_factory.mktemp("eval-corpus")
    rows = []
    for i, (lang, text) in enumerate(CLIPS):
        wav = root / f"{lang}-{i}.wav"
        subprocess.run(["espeak-ng", "-v", lang, "-s", "220", "-w", str(wav), text], check=True)
        rows.append({"id": f"{lang}-{i}", "audio": wav.name, "text": text, "language": lang})
    path = root / "test.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path
