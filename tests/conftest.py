"""Shared fixtures: a tiny random Whisper (unit tests) and the real embedded whisper-base.

Tests run with a private cache (LORA_WHISPER_CACHE) unless the environment sets one, so a
test run never depends on, or disturbs, a user's cache; the real backbone is converted once
per cache.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LORA_WHISPER_CACHE", str(REPO / ".cache" / "test-cache"))
torch.set_num_threads(1)  # two xdist workers on two cores


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    from lora_whisper.backbone.tiny import save_tiny

    return save_tiny(tmp_path_factory.mktemp("tiny-whisper"), seed=0)


@pytest.fixture()
def tiny(tiny_dir):
    """A fresh tiny Backbone per test (tests may inject adapters into it)."""
    from lora_whisper.backbone.load import load_backbone

    return load_backbone(str(tiny_dir))


@pytest.fixture(scope="session")
def real_backbone():
    from lora_whisper.backbone.load import load_backbone

    return load_backbone()


def espeak(text: str, path: Path, voice: str = "en", speed: int = 150) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (make test installs it)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path


@pytest.fixture()
def make_speech(tmp_path):
    def _make(text: str, voice: str = "en", name: str = "clip.wav", speed: int = 150) -> Path:
        return espeak(text, tmp_path / name, voice, speed)

    return _make


@pytest.fixture()
def rng():
    return np.random.default_rng(0)
