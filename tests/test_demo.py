"""The main job (`make demo`) end to end on a tiny random Whisper: every stage runs, the
table and chart are written, and adding a language leaves the base languages' transcripts
token-identical. (The real run on whisper-base is `make demo`.)"""
from __future__ import annotations

import json

from lora_whisper.demo import DemoConfig, run_demo

WORDS = {
    "es": "la casa es muy grande y bonita cerca del mar azul hoy".split(),
    "it": "la casa è molto grande e bella vicino al mare blu oggi".split(),
    "pl": "dom jest bardzo duży i ładny blisko morza dzisiaj rano".split(),
    "pt": "a casa é muito grande e bonita perto do mar azul hoje".split(),
}


def _sentences(words, n=14):
    return [" ".join(words[(i + j) % len(words)] for j in range(5)) for i in range(n)]


def test_demo_runs_every_stage_on_a_tiny_model(tiny_dir, tmp_path):
    cfg = DemoConfig(out=tmp_path / "demo", per_language=6, test_per_language=2, base_steps=3, new_steps=2,
                     batch_size=4, max_new_tokens=4, threads=1, backbone=str(tiny_dir),
                     texts={lang: _sentences(w) for lang, w in WORDS.items()})
    table = run_demo(cfg)
    out = cfg.out
    assert table == out / "results.md" and (out / "results.png").stat().st_size > 0
    summary = json.loads((out / "results.json").read_text())
    assert summary["base_unchanged"] == {"warm": True, "moe": True}
    assert set(summary["systems"]) == {"zero-shot whisper-base", "LoRA-Whisper (base languages)",
                                       "+ pt warm start", "+ pt LoRA MoE"}
    assert [s["expert"] for s in summary["samples"]] == ["es", "it", "pl", "pt"]
    # a second run reuses every stage and gives the same table
    assert run_demo(cfg).read_text() == table.read_text()
