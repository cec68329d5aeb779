"""Many processes: inputs shared out by length, one file per input written as it finishes, a
rerun skips what is done, and two torchrun (gloo) processes give what one does, for
transcribe --output-dir and for evaluate (tiny random Whisper)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import soundfile as sf

from lora_whisper.cli import main
from lora_whisper.inference.outputs import OutputDir
from lora_whisper.inference.sharding import Rank, shard

SR = 16000


def test_shards_are_disjoint_complete_and_balanced():
    lengths = [600, 30, 30, 30, 300, 300, 5, None, 1, 40]
    parts = [shard(lengths, Rank(r, 3)) for r in range(3)]
    assert sorted(i for p in parts for i in p) == list(range(len(lengths)))
    loads = [sum(lengths[i] or 0 for i in p) for p in parts]
    assert max(loads) == 600 and min(loads) >= 300     # the hour-long file alone; the rest split
    assert shard(lengths, Rank(0, 1)) == list(range(len(lengths)))
    assert parts == [shard(lengths, Rank(r, 3)) for r in range(3)]   # every rank computes the same


def test_output_names_are_stems_and_shared_stems_get_their_folder(tmp_path):
    out = OutputDir(tmp_path / "o", "srt", ["a/x.wav", "b/x.flac", "c/y.mp3"])
    assert [p.name for p in out.paths.values()] == ["a-x.srt", "b-x.srt", "y.srt"]


def _inputs(tmp_path) -> list[str]:
    rng = np.random.default_rng(0)
    files = []
    for i, seconds in enumerate((35, 3, 7, 2, 12)):   # one long (seeking), four short
        f = tmp_path / "in" / f"clip{i}.wav"
        f.parent.mkdir(exist_ok=True)
        sf.write(f, (rng.standard_normal(seconds * SR) * 0.1).astype(np.float32), SR, subtype="FLOAT")
        files.append(str(f))
    return files


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "lora_whisper.cli", *args, "--threads", "1"],
                          env=env, capture_output=True, text=True, timeout=300)


def test_transcribe_output_dir_two_ranks_match_one_and_rerun_skips(tiny_dir, tmp_path, capsys):
    files = _inputs(tmp_path)
    common = ["--backbone", str(tiny_dir), "--language", "en", "--format", "json", "--max-new-tokens", "6"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["transcribe", *files, *common, "--output-dir", str(one), "--threads", "1"]) == 0
    assert "wrote 5 file(s)" in capsys.readouterr().err
    proc = _torchrun(["transcribe", *files, *common, "--output-dir", str(two)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 0/2" in proc.stderr and "rank 1/2" in proc.stderr
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in two.iterdir()) == [f"clip{i}.json" for i in range(5)]
    for n in names:
        assert json.loads((one / n).read_text()) == json.loads((two / n).read_text())
    (two / "clip0.json").unlink()   # as if the job had been killed while decoding it
    before = {n: (two / n).stat().st_mtime_ns for n in names if n != "clip0.json"}
    assert main(["transcribe", *files, *common, "--output-dir", str(two), "--threads", "1"]) == 0
    assert "wrote 1 file(s) to" in (err := capsys.readouterr().err) and "4 already there" in err
    assert {n: (two / n).stat().st_mtime_ns for n in before} == before
    assert json.loads((two / "clip0.json").read_text()) == json.loads((one / "clip0.json").read_text())


def test_torchrun_transcribe_without_output_dir_is_one_line(tiny_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(["transcribe", "x.wav", "--backbone", str(tiny_dir)]) != 0
    assert "needs --output-dir" in capsys.readouterr().err


def test_evaluate_two_ranks_write_one_report_equal_to_one_process(tiny_dir, tmp_path):
    import subprocess as sp

    rows = []
    for i, (lang, text) in enumerate([("pl", "dzień dobry"), ("pt", "bom dia"), ("pl", "do widzenia dzisiaj"),
                                      ("pt", "boa noite"), ("pl", "tak")]):
        wav = tmp_path / f"{lang}-{i}.wav"
        sp.run(["espeak-ng", "-v", lang, "-s", "220", "-w", str(wav), text], check=True)
        rows.append({"id": f"{lang}-{i}", "audio": wav.name, "text": text, "language": lang})
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    common = ["evaluate", "--backbone", str(tiny_dir), "--data", str(data), "--max-new-tokens", "6"]
    assert main([*common, "--out", str(tmp_path / "one"), "--threads", "1"]) == 0
    proc = _torchrun([*common, "--out", str(tmp_path / "two")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("one", "two"))
    assert two["settings"]["ranks"] == 2
    assert one["system"] == two["system"] and one["system"]["languages"].keys() == {"pl", "pt"}
    hyps = [(tmp_path / d / "hyps.jsonl").read_text() for d in ("one", "two")]
    assert hyps[0] == hyps[1] and len(hyps[0].splitlines()) == 5
