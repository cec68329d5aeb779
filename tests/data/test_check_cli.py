"""`lora-whisper data check` reports every bad row, not the first, and exits 1."""
from __future__ import annotations

import json

import pytest

from lora_whisper.cli import main


@pytest.fixture
def manifest(tmp_path, tone):
    tone(tmp_path / "good1.wav", 0.5)
    tone(tmp_path / "good2.wav", 0.25, sr=8000)
    tone(tmp_path / "it.wav", 1.0)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not a recording at all\n" * 10)
    rows = [
        {"id": "good1", "audio": "good1.wav", "text": "dobrze", "language": "pl"},
        {"id": "good2", "audio": "good2.wav", "text": "też dobrze", "language": "pl"},
        {"id": "it1", "audio": "it.wav", "text": "bene", "language": "it", "duration": 1.0},
        {"id": "missing", "audio": "missing.wav", "text": "brak", "language": "pl"},
        {"id": "empty", "audio": "empty.wav", "text": "pusty", "language": "pl"},
        {"id": "garbage", "audio": "text.wav", "text": "śmieci", "language": "pl"},
        {"id": "notext", "audio": "good1.wav", "text": "  ", "language": "pl"},
        {"id": "klingon", "audio": "good1.wav", "text": "Qapla'", "language": "tlh"},
    ]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    lines.insert(3, "{broken")
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_check_reports_every_bad_row(manifest, capsys):
    assert main(["data", "check", str(manifest)]) == 1
    out = capsys.readouterr().out
    expected = {
        ":4: not valid JSON": None,
        ":5: audio file not found": "missing.wav",
        ":6: audio file is empty": "empty.wav",
        ":7: not audio or corrupt": None,
        ":8: empty text": None,
        ":9: unknown language 'tlh'": None,
    }
    for fragment, extra in expected.items():
        line = next((ln for ln in out.splitlines() if fragment in ln), None)
        assert line is not None, f"{fragment!r} not reported in:\n{out}"
        assert extra is None or extra in line
    assert "bad rows (6)" in out
    pl = next(ln for ln in out.splitlines() if ln.startswith("pl "))
    assert pl.split()[1] == "2"


def test_check_json(manifest, capsys):
    assert main(["data", "check", str(manifest), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "jsonl"
    assert report["languages"]["pl"]["utterances"] == 2
    assert report["languages"]["pl"]["hours"] == pytest.approx(0.75 / 3600, rel=1e-3)
    assert report["languages"]["it"]["hours"] == pytest.approx(1 / 3600, rel=1e-3)
    assert report["total"]["bad_rows"] == 6
    assert {b["id"] for b in report["bad_rows"]} == {None, "missing", "empty", "garbage", "notext", "klingon"}


def test_check_no_decode_misses_only_corrupt_audio(manifest, capsys):
    assert main(["data", "check", str(manifest), "--no-decode", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["total"]["bad_rows"] == 5
    assert report["languages"]["pl"]["without_duration"] == 3  # good1, good2, garbage


def test_check_clean_source_exits_0(tmp_path, tone, capsys):
    tone(tmp_path / "pl" / "a.wav")
    (tmp_path / "pl" / "a.txt").write_text("zdanie")
    assert main(["data", "check", f"folder:{tmp_path}", "--language", "pl"]) == 0
    out = capsys.readouterr().out
    assert "bad rows: none" in out and "pl" in out


def test_check_unknown_language_argument_is_a_user_error(tmp_path, tone, capsys):
    tone(tmp_path / "a.wav")
    (tmp_path / "a.txt").write_text("x")
    assert main(["data", "check", str(tmp_path), "--language", "xx"]) == 2
    assert "unknown language 'xx'" in capsys.readouterr().err


def test_manifest_command_writes_jsonl(tmp_path, tone, capsys):
    tone(tmp_path / "src" / "a.wav")
    (tmp_path / "src" / "a.txt").write_text("zdanie")
    out = tmp_path / "out" / "m.jsonl"
    assert main(["data", "manifest", str(tmp_path / "src"), str(out), "--language", "pl"]) == 0
    rec = json.loads(out.read_text())
    assert (rec["id"], rec["language"], rec["text"]) == ("a", "pl", "zdanie")
