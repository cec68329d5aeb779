"""A tiny run with random non-zero experts (de, en) and a MoE language (pl), for export tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from export_helpers import make_run


@pytest.fixture(scope="session")
def tiny_export_run(tiny_dir, tmp_path_factory) -> Path:
    from lora_whisper.backbone.load import load_backbone

    return make_run(load_backbone(str(tiny_dir)), tmp_path_factory.mktemp("export") / "run", std=0.2)
