"""A tiny run with three experts (pl, es, it) whose B are nonzero, and a small corpus of
synthetic clips: those three, a new language (pt) and one under a code Whisper lacks (xx).

The run is written directly (inject, randomise, save_run) rather than trained: the tests
are about what adding a language does to a run, not about training quality.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

torch.set_num_threads(1)

BASE = ("pl", "es", "it")
TEXTS = ["ala ma kota", "buenos días", "buongiorno a tutti", "bom dia a todos", "hello there"]


def _clip(seed: int, seconds: float = 0.6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    f0 = 120 + 40 * rng.random()
    x = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def write_corpus(root: Path, per_language: int = 4) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    rows = {"train": [], "dev": []}
    seed = 0
    for lang in (*BASE, "pt", "xx"):
        for i in range(per_language + 1):
            seed += 1
            split = "train" if i < per_language else "dev"
            wav = root / f"{lang}-{i}.wav"
            sf.write(wav, _clip(seed), 16000)
            rows[split].append({"id": f"{lang}-{i}", "audio": wav.name, "text": TEXTS[i % len(TEXTS)],
                                "language": lang, "duration": 0.6})
    out = {}
    for split, recs in rows.items():
        for lang in (*BASE, "pt", "xx"):
            p = root / f"{split}-{lang}.jsonl"
            p.write_text("".join(json.dumps(r) + "\n" for r in recs if r["language"] == lang))
            out[f"{split}-{lang}"] = p
        # every language Whisper knows in one manifest (xx rows would be refused by the readers)
        p = root / f"{split}.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in recs if r["language"] != "xx"))
        out[split] = p
    return out


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("expansion-corpus"))


@pytest.fixture(scope="session")
def base_run_dir(tmp_path_factory, tiny_dir) -> Path:
    from lora_whisper.adapters import LoraSpec, inject, save_run
    from lora_whisper.backbone.load import load_backbone

    bb = load_backbone(str(tiny_dir))
    bank = inject(bb.model, LoraSpec(r=4, alpha=4, dropout=0.0), list(BASE), seed=0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in bank.layers.values():
            for p in (*layer.lora_A, *layer.lora_B):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    run = tmp_path_factory.mktemp("base-run") / "run"
    save_run(run, bank, bb, provenance={c: {"recipe": "lora-whisper"} for c in BASE})
    return run


@pytest.fixture()
def base_run(base_run_dir, tmp_path) -> Path:
    """A private copy of the base run (tests add languages to it in place)."""
    dst = tmp_path / "run"
    shutil.copytree(base_run_dir, dst)
    return dst


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


@pytest.fixture()
def digest():
    return tree_digest


# Short everything: 2 steps of batch 2, no workers, dev decoding capped at 3 tokens.
FAST = dict(max_steps=2, batch_size=2, num_workers=0, bf16=False, progress=False,
            eval_max_new_tokens=3, lr=1e-2, warmup_steps=0, checkpoint_every=100, log_every=1)


@pytest.fixture()
def fast():
    return dict(FAST)
