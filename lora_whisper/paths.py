"""Where caches live: `$LORA_WHISPER_CACHE`, else the user cache dir. Never inside the repo."""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir(*parts: str) -> Path:
    root = os.environ.get("LORA_WHISPER_CACHE")
    if root:
        base = Path(root).expanduser()
    else:
        base = Path(platformdirs.user_cache_dir("lora-whisper"))
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
