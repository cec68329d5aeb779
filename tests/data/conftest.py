"""Tiny audio writers for building corpus layouts inside tmp_path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def write_tone(path: Path, seconds: float = 0.3, sr: int = 16000, fmt: str | None = None,
               subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr,
             format=fmt, subtype=subtype)
    return path


@pytest.fixture
def tone():
    return write_tone
