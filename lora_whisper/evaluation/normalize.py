"""Whisper's BasicTextNormalizer, the normaliser of the Whisper paper's multilingual results.

Lower-case, drop bracketed/parenthesised spans, replace punctuation and symbols with spaces,
collapse whitespace; diacritics are kept (they are spelling in pl, pt, da, cy...). Languages
scored by characters also lose their spaces, so "你好 世界" and "你好世界" score the same.
"""
from __future__ import annotations

from functools import lru_cache

from lora_whisper.languages import uses_cer


@lru_cache(maxsize=1)
def _basic():
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    return BasicTextNormalizer()


def normalize(text: str, language: str | None = None) -> str:
    """The form references and hypotheses are compared in."""
    s = _basic()(text or "").strip()
    if language is not None and uses_cer(language):
        s = "".join(s.split())
    return s
