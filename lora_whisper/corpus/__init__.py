"""The offline synthetic multilingual benchmark corpus.

Sentences come from Debian translation packages (`text_sources`), speech from offline
TTS engines (`tts`) with voices partitioned so held-out splits have unseen speakers
(`voices`), and light acoustic augmentation (`augment`). `build_corpus` writes
`audio/<lang>/<split>/<id>.wav` and `train/dev/test.jsonl` manifests.
"""
from __future__ import annotations

from lora_whisper.corpus.build import build_corpus
from lora_whisper.corpus.text_sources import SOURCES, load_sentences, supported_languages

__all__ = ["SOURCES", "build_corpus", "load_sentences", "supported_languages"]
