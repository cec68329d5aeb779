"""`lora-whisper evaluate` writes its report files, for a backbone and for a run compared
with its zero-shot backbone or an earlier report."""
from __future__ import annotations

import json

import torch

from lora_whisper.cli import main

torch.set_num_threads(1)


def _files(out):
    return {p.name for p in out.iterdir()}


def test_zero_shot_backbone_report(tiny_dir, test_manifest, tmp_path, capsys):
    out = tmp_path / "zs"
    assert main(["evaluate", "--backbone", str(tiny_dir), "--data", str(test_manifest), "--out", str(out),
                 "--max-new-tokens", "4", "--batch-size", "2"]) == 0
    assert {"report.md", "report.json", "report.png", "hyps.jsonl"} <= _files(out)
    report = json.loads((out / "report.json").read_text())
    assert list(report["system"]["languages"]) == ["pl", "pt"]
    assert report["system"]["languages"]["pl"]["metric"] == "WER"
    assert report["settings"]["max_new_tokens"] == 4 and report["settings"]["language"] == "given"
    hyps = [json.loads(x) for x in (out / "hyps.jsonl").read_text().splitlines()]
    assert [h["id"] for h in hyps] == ["pl-0", "pl-1", "pt-2", "pt-3"]
    assert {"ref", "hyp", "ref_norm", "hyp_norm", "errors", "length"} <= set(hyps[0])
    assert "| **macro** |" in capsys.readouterr().out
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_run_against_zero_shot_and_against_an_earlier_report(tiny_dir, test_manifest, tmp_path):
    from lora_whisper.training.config import TrainConfig
    from lora_whisper.training import train

    run = train(TrainConfig(data=str(test_manifest), out=str(tmp_path / "run"), backbone=str(tiny_dir),
                            batch_size=4, max_steps=2, num_workers=0, bf16=False, progress=False,
                            lr=1e-2).with_overrides(rank=4))
    out = tmp_path / "vs-zero"
    assert main(["evaluate", "--run", str(run), "--data", str(test_manifest), "--out", str(out),
                 "--compare", "zero-shot", "--max-new-tokens", "4"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["compare"]["name"] == "zero-shot"
    assert set(report["relative_gain"]) == {"pl", "pt", "macro"}
    assert "hyps.compare.jsonl" in _files(out)
    rows = [json.loads(x) for x in (out / "hyps.jsonl").read_text().splitlines()]
    assert [r["expert"] for r in rows] == ["pl", "pl", "pt", "pt"]

    again = tmp_path / "vs-report"
    assert main(["evaluate", "--run", str(run), "--data", str(test_manifest), "--out", str(again),
                 "--compare", str(out), "--max-new-tokens", "4", "--language", "detect"]) == 0
    second = json.loads((again / "report.json").read_text())
    assert second["compare"]["languages"] == report["system"]["languages"]
    assert second["settings"]["language"] == "detect"


def test_unknown_language_filter_is_one_line(tiny_dir, test_manifest, tmp_path, capsys):
    rc = main(["evaluate", "--backbone", str(tiny_dir), "--data", str(test_manifest), "--out", str(tmp_path / "x"),
               "--languages", "pl,de"])
    assert rc == 2 and "no utterances for de" in capsys.readouterr().err
